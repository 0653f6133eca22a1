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
    public void Number_codes_of_one_value_are_one_category_and_match_the_fitted_one_written_otherwise()
    {
        var table = Table.Read(new StringReader("x,grade\n1,1\n2,1.0\n3,01\n4,2\n5,\n"), categorical: new[] { "grade" });
        Assert.Equal(new[] { "1", "2" }, table.Categories("grade"));
        var written = new StringWriter();
        table.Write(written);
        Assert.Contains("2,1.0", written.ToString());   // observed cells stay as they were written

        using var imputer = new MixedImputer(new MeanImputer());
        imputer.Fit(table);
        var other = Table.Read(new StringReader("x,grade\n1,2.0\n2,\n"), categorical: new[] { "grade" });
        var done = new StringWriter();
        imputer.Transform(other).Write(done);
        var lines = done.ToString().Split('\n');
        Assert.Equal("1,2.0", lines[1]);
        Assert.Equal("2,1", lines[2]);                  // the mode, written as the fitted category
        var unseen = Table.Read(new StringReader("x,grade\n1,3\n"), categorical: new[] { "grade" });
        Assert.Contains("'3' (data row 1)", Assert.Throws<ArgumentException>(() => imputer.Transform(unseen)).Message);
    }

    [Fact]
    public void A_text_column_is_categorical_unless_skipped()
    {
        var csv = "id,name,score\n1,ann,3\n2,bob,\n3,,4\n4,ann,5\n";
        var t = Parse(csv);
        Assert.Equal(new[] { "id", "score" }, t.NumericColumns);
        Assert.Equal(new[] { "name" }, t.CategoricalColumns);
        Assert.Equal(new[] { "id", "name", "score" }, t.ImputedColumns);
        Assert.Equal(new[] { ColumnKind.Numeric, ColumnKind.Categorical, ColumnKind.Numeric }, t.ColumnKinds);
        Assert.Equal(new[] { "ann", "bob" }, t.Categories("name"));
        Assert.Equal(2, t.MissingCount);
        var m = t.ToMixedMatrix();
        Assert.Equal(new double[] { 0, 1, double.NaN, 0 }, Enumerable.Range(0, 4).Select(i => m[i, 1]));
        Assert.Equal(new[] { false, false, true, false }, Enumerable.Range(0, 4).Select(i => t.MixedMissingMask()[i, 1]));
        Assert.Equal("column", Assert.Throws<ArgumentException>(() => t.Categories("score")).ParamName);

        var skipped = Parse(csv, skip: true);
        Assert.Equal(new[] { "id", "score" }, skipped.NumericColumns);
        Assert.Empty(skipped.CategoricalColumns);
        Assert.Equal(new[] { "id", "name", "score" }, skipped.ColumnNames);
        Assert.Equal(1, skipped.MissingCount);
    }

    [Fact]
    public void A_column_mixing_numbers_and_text_is_rejected_naming_its_first_text_cell_unless_declared_or_skipped()
    {
        var csv = "a,b\n1,2\n2,n/a\n3,4\n";
        var ex = Assert.Throws<FormatException>(() => Parse(csv));
        Assert.Contains("'b'", ex.Message);
        Assert.Contains("line 3", ex.Message);
        Assert.Contains("'n/a'", ex.Message);
        Assert.Equal(new[] { "a" }, Parse(csv, skip: true).NumericColumns);
        Assert.Equal(3, Parse(csv, false, "n/a").ToMatrix().GetLength(0));
        var declared = Table.Read(new StringReader(csv), categorical: new[] { "b" });
        Assert.Equal(new[] { "2", "4", "n/a" }, declared.Categories("b"));
    }

    [Fact]
    public void Declared_categorical_columns_must_be_columns_and_keep_numeric_codes_in_numeric_order()
    {
        var csv = "a,b\n10,1\n2,3\n1,\n";
        var ex = Assert.Throws<ArgumentException>(() => Table.Read(new StringReader(csv), categorical: new[] { "b", "c" }));
        Assert.Equal("categorical", ex.ParamName);
        Assert.Contains("'c'", ex.Message);
        Assert.DoesNotContain("'b' declared", ex.Message);
        var t = Table.Read(new StringReader(csv), categorical: new[] { "a", "b" });
        Assert.Empty(t.NumericColumns);
        Assert.Equal(new[] { "1", "2", "10" }, t.Categories("a"));
        Assert.Equal(new[] { "1", "3" }, t.Categories("b"));
    }

    [Fact]
    public void Imputed_categories_are_written_as_their_text_quoted_where_needed_and_observed_cells_verbatim()
    {
        var csv = "city,n\n\"New York, NY\",1\n Paris ,2\n,3\nNA,4\n";
        var t = Parse(csv);
        Assert.Equal(new[] { "New York, NY", "Paris" }, t.Categories("city"));
        var completed = t.WithImputedMixed(new double[,] { { 9, 9 }, { 9, 9 }, { 0, 9 }, { 1, 9 } });
        Assert.Equal("city,n\n\"New York, NY\",1\n Paris ,2\n\"New York, NY\",3\nParis,4\n", Text(completed));
        Assert.Equal(0, completed.MissingCount);
        Assert.Equal(new[] { "New York, NY", "Paris" }, completed.Categories("city"));
        // Observed cells keep their text whatever the matrix says there; a missing one needs a category index.
        Assert.Equal("completed", Assert.Throws<ArgumentException>(() => t.WithImputedMixed(new double[,] { { 0, 0 }, { 0, 0 }, { 2, 0 }, { 0, 0 } })).ParamName);
        Assert.Throws<ArgumentException>(() => t.WithImputedMixed(new double[,] { { 0, 0 }, { 0, 0 }, { 0.5, 0 }, { 0, 0 } }));
        Assert.Throws<ArgumentException>(() => t.WithImputedMixed(new double[4, 1]));
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

    [Theory]
    [InlineData("inf", "+")]
    [InlineData("-inf", "-")]
    [InlineData("Inf", "+")]
    [InlineData("-Infinity", "-")]
    [InlineData("1e999", "+")]
    public void An_infinite_cell_is_rejected_naming_the_line_and_the_header_name(string cell, string sign)
    {
        var ex = Assert.Throws<FormatException>(() => Parse($"a,b\n1,2\n3,{cell}\n"));
        Assert.Contains("'b'", ex.Message);
        Assert.Contains("line 3", ex.Message);
        Assert.Contains(sign + "∞", ex.Message);
        // Passing non-numeric columns through does not let an infinity in either.
        Assert.Throws<FormatException>(() => Parse($"a,b\n1,2\n3,{cell}\n", skip: true));
    }

    [Fact]
    public void Missing_spellings_are_missing_in_any_letter_case()
    {
        var t = Parse("a,b\nnan,1\nNAN,na\nNaN,NA\n,2\n3,4\n");
        Assert.Equal(new[] { "a", "b" }, t.NumericColumns);
        Assert.Equal(6, t.MissingCount);
    }

    [Fact]
    public void Repeated_header_names_are_rejected_naming_them()
    {
        var ex = Assert.Throws<FormatException>(() => Parse("x,y,x,z,y\n1,2,3,4,5\n"));
        Assert.Contains("'x'", ex.Message);
        Assert.Contains("'y'", ex.Message);
        Assert.DoesNotContain("'z'", ex.Message);
    }

    [Fact]
    public void Trailing_blank_lines_are_not_rows_but_a_blank_line_inside_a_one_column_table_is_missing()
    {
        var t = Parse("a\n1\n\n3\n\n\n");
        Assert.Equal(3, t.RowCount);
        Assert.Equal(1, t.MissingCount);
        Assert.Equal("a\n1\n\n3\n", Text(t));
        Assert.Equal(2, Parse("a,b\n1,2\n\n3,4\n\n").RowCount);
    }

    [Theory]
    [InlineData(';', "';'")]
    [InlineData('\t', "tab")]
    public void A_file_separated_by_another_character_is_detected_and_read_with_that_separator(char separator, string named)
    {
        var csv = $"a{separator}b{separator}c{separator}d\n1{separator}2{separator}3{separator}4\n";
        var ex = Assert.Throws<FormatException>(() => Parse(csv));
        Assert.Contains(named, ex.Message);
        Assert.Contains("separator", ex.Message);
        var t = Table.Read(new StringReader(csv), separator: separator);
        Assert.Equal(new[] { "a", "b", "c", "d" }, t.NumericColumns);
        Assert.Equal(4, t.ToMatrix()[0, 3]);
    }

    [Theory]
    [InlineData("a,b,c\n1,2,3\n4,,6\n", ';', "','")]
    [InlineData("a;b;c\n1;2;3\n4;;6\n", '\t', "';'")]
    public void A_separator_given_wrongly_is_rejected_naming_the_one_the_file_looks_separated_by(string csv, char given, string likely)
    {
        var ex = Assert.Throws<FormatException>(() => Table.Read(new StringReader(csv), separator: given));
        Assert.Contains("one column", ex.Message);
        Assert.Contains(likely, ex.Message);
        // A one-column table with no other separator in its header reads as before.
        Assert.Equal(3, Table.Read(new StringReader("a\n1\n\n3\n"), separator: given).RowCount);
    }

    [Fact]
    public void A_column_whose_range_overflows_is_rejected_saying_why()
    {
        var data = new double[,] { { 1e308, 1 }, { -1e308, 2 }, { double.NaN, 3 }, { 0, double.NaN } };
        foreach (var imputer in new Imputer[] { new GaussianEmImputer(), new EMFlowImputer(TestData.QuickEMFlow()), new MeanImputer() })
            using (imputer)
            {
                var ex = Assert.Throws<ArgumentException>(() => imputer.Fit(data));
                Assert.Contains("column 0", ex.Message);
                Assert.Contains("overflows", ex.Message);
                Assert.False(imputer.IsFitted);
            }
    }
}
