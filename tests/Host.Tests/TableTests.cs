namespace EMFlow.Tests;

public class TableTests
{
    private static Table Parse(string csv, bool skip = false, params string[] tokens) =>
        Table.Read(new StringReader(csv), tokens, skip);

    private static string Text(Table t)
    {
        var w = new StringWriter();
        t.Write(w);
        return w.ToString();
    }

    [Fact]
    public void Numeric_columns_become_a_matrix_with_NaN_at_every_missing_form()
    {
        var t = Parse("a,b,c\n1,,3\nNA,2.5e1,NaN\n4,?,-0.5\n", false, "?");
        Assert.Equal(new[] { "a", "b", "c" }, t.ColumnNames);
        var m = t.ToMatrix();
        Assert.Equal(3, t.RowCount);
        Assert.Equal(1, m[0, 0]);
        Assert.True(double.IsNaN(m[0, 1]));
        Assert.True(double.IsNaN(m[1, 0]));
        Assert.Equal(25, m[1, 1]);
        Assert.True(double.IsNaN(m[1, 2]));
        Assert.True(double.IsNaN(m[2, 1]));
        Assert.Equal(-0.5, m[2, 2]);
        Assert.Equal(4, t.MissingCount);
    }

    [Fact]
    public void Observed_cells_are_written_back_verbatim_and_only_missing_cells_change()
    {
        var csv = "x,\"y, in m\",z\n1.50,\"2,0\",NA\n007,3e2,\n";
        var t = Parse(csv, skip: true);
        Assert.Equal(new[] { "x", "z" }, t.NumericColumns);
        var completed = new double[,] { { 99, 0.25 }, { 99, 1.0 / 3 } };
        var text = Text(t.WithImputed(completed));
        Assert.Equal("x,\"y, in m\",z\n1.50,\"2,0\",0.25\n007,3e2," + (1.0 / 3).ToString("R", System.Globalization.CultureInfo.InvariantCulture) + "\n", text);
        // The original table is unchanged.
        Assert.Equal(csv, Text(t));
    }

    [Fact]
    public void A_non_numeric_column_is_rejected_by_name_unless_skipped()
    {
        var csv = "id,name,score\n1,ann,3\n2,bob,\n";
        var ex = Assert.Throws<FormatException>(() => Parse(csv));
        Assert.Contains("'name'", ex.Message);
        Assert.Contains("line 2", ex.Message);
        var t = Parse(csv, skip: true);
        Assert.Equal(new[] { "id", "score" }, t.NumericColumns);
        Assert.Equal(new[] { "id", "name", "score" }, t.ColumnNames);
    }

    [Fact]
    public void Quoted_fields_with_separators_quotes_and_line_breaks_are_one_field()
    {
        var csv = "a,b\r\n\"1,5\",\"say \"\"hi\"\"\nthere\"\r\n2,x\r\n";
        var t = Parse(csv, skip: true);
        Assert.Equal(2, t.RowCount);
        Assert.Empty(t.NumericColumns);
        Assert.Equal(csv, Text(t));
    }

    [Fact]
    public void Malformed_records_are_reported_with_their_line()
    {
        var ex = Assert.Throws<FormatException>(() => Parse("a,b\n1,2\n3\n"));
        Assert.Contains("Line 3", ex.Message);
        Assert.Throws<FormatException>(() => Parse("a,b\n\"1,2\n"));
        Assert.Throws<FormatException>(() => Parse(""));
    }

    [Fact]
    public void WithImputed_checks_the_shape_and_finiteness()
    {
        var t = Parse("a,b\n1,\n2,3\n");
        Assert.Equal("completed", Assert.Throws<ArgumentException>(() => t.WithImputed(new double[2, 3])).ParamName);
        Assert.Throws<ArgumentException>(() => t.WithImputed(new double[,] { { 1, double.NaN }, { 2, 3 } }));
    }

    [Fact]
    public void Write_to_a_path_replaces_the_file_only_when_complete_and_leaves_no_temporary_file()
    {
        var dir = Directory.CreateTempSubdirectory("emflow-table-").FullName;
        try
        {
            var path = Path.Combine(dir, "out.csv");
            File.WriteAllText(path, "old");
            var t = Parse("a,b\n1,\n2,3\n");
            t.WithImputed(new double[,] { { 1, 4 }, { 2, 3 } }).Write(path);
            Assert.Equal("a,b\n1,4\n2,3\n", File.ReadAllText(path));
            Assert.Single(Directory.GetFiles(dir));
            Assert.Throws<DirectoryNotFoundException>(() => t.Write(Path.Combine(dir, "missing", "out.csv")));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_read_table_imputes_end_to_end_through_an_imputer()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "u,v\n1,2\n2,\n3,6\n,8\n5,10\n");
            var t = Table.Read(path);
            using var imputer = new GaussianEmImputer();
            var completed = t.WithImputed(imputer.FitTransform(t.ToMatrix()));
            var m = completed.ToMatrix();
            Assert.Equal(4, m[1, 1], 1);
            Assert.Equal(4, m[3, 0], 1);
            Assert.Equal(0, completed.MissingCount);
        }
        finally { File.Delete(path); }
    }
}
