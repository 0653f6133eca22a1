using EMFlow.Cli;

namespace EMFlow.Tests;

/// <summary>The emflow command line run in-process, as a user would call it, on small temporary files.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("emflow-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = App.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>A small table with correlated columns, a few missing cells in several spellings, and odd number formats.</summary>
    private string WriteInput(string name = "in.csv", bool withText = false)
    {
        var rng = new Random(3);
        var lines = new List<string> { withText ? "a,label,b,c" : "a,b,c" };
        for (int i = 0; i < 60; i++)
        {
            double a = rng.NextDouble() * 10, b = 2 * a + rng.NextDouble(), c = a * a / 10;
            string A = i % 7 == 3 ? "" : a.ToString("F3", System.Globalization.CultureInfo.InvariantCulture);
            string B = i % 5 == 1 ? "NA" : b.ToString("0.00000E+0", System.Globalization.CultureInfo.InvariantCulture);
            string C = i % 6 == 2 ? "?" : c.ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
            lines.Add(withText ? $"{A},\"item, {i}\",{B},{C}" : $"{A},{B},{C}");
        }
        var path = PathOf(name);
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    private static readonly string[] Quick = { "--iterations", "1", "--epochs", "2", "--batch-size", "32", "--threads", "1", "--seed", "4", "--quiet" };

    [Theory]
    [InlineData("mean")]
    [InlineData("median")]
    [InlineData("gaussian-em")]
    [InlineData("emflow")]
    public void Impute_writes_observed_cells_verbatim_and_fills_every_missing_cell(string method)
    {
        var input = WriteInput(withText: true);
        var output = PathOf("out.csv");
        var args = new[] { "impute", input, "-o", output, "--method", method, "--missing", "?", "--skip-non-numeric", "--quiet" };
        if (method == "emflow") args = args.Concat(Quick).ToArray();
        var (code, _, err) = Run(args);
        Assert.True(code == 0, err);
        var inLines = File.ReadAllLines(input);
        var outLines = File.ReadAllLines(output);
        Assert.Equal(inLines.Length, outLines.Length);
        Assert.Equal(inLines[0], outLines[0]);
        for (int i = 1; i < inLines.Length; i++)
        {
            var before = Fields(inLines[i]);
            var after = Fields(outLines[i]);
            Assert.Equal(before.Length, after.Length);
            for (int j = 0; j < before.Length; j++)
            {
                if (before[j] is "" or "NA" or "?")
                    Assert.True(double.TryParse(after[j], System.Globalization.CultureInfo.InvariantCulture, out var v) && double.IsFinite(v), $"line {i + 1}: '{after[j]}'");
                else
                    Assert.Equal(before[j], after[j]);
            }
        }
    }

    /// <summary>Splits a line of the test table, whose only quoted field holds one comma.</summary>
    private static string[] Fields(string line)
    {
        int q = line.IndexOf('"');
        if (q < 0) return line.Split(',');
        int end = line.IndexOf('"', q + 1);
        var head = line[..q].TrimEnd(',').Split(',');
        var tail = line[(end + 1)..].TrimStart(',').Split(',');
        return head.Append(line[q..(end + 1)]).Concat(tail).ToArray();
    }

    [Fact]
    public void A_non_numeric_column_exits_2_naming_the_column_and_writes_nothing()
    {
        var input = WriteInput(withText: true);
        var output = PathOf("out.csv");
        var (code, _, err) = Run("impute", input, "-o", output, "--method", "mean", "--missing", "?");
        Assert.Equal(App.BadInput, code);
        Assert.Contains("'label'", err);
        Assert.Single(err.TrimEnd().Split('\n'));
        Assert.False(File.Exists(output));
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void A_missing_input_file_and_bad_arguments_exit_2_with_one_line()
    {
        var (code, _, err) = Run("impute", PathOf("nope.csv"), "-o", PathOf("out.csv"));
        Assert.Equal(App.BadInput, code);
        Assert.Contains("nope.csv", err);

        var input = WriteInput();
        Assert.Equal(App.BadInput, Run("impute", input, "-o", PathOf("o.csv"), "--method", "knn").Code);
        Assert.Equal(App.BadInput, Run("impute", input, "-o", PathOf("o.csv"), "--epochs", "zero").Code);
        Assert.Equal(App.BadInput, Run("impute", input, "-o", PathOf("o.csv"), "--frobnicate", "1").Code);
        Assert.Equal(App.BadInput, Run("impute", input).Code);
        Assert.Equal(App.BadInput, Run("impute", input, "-o", PathOf("o.csv"), "--method", "mean", "--multiple", "2").Code);
        Assert.Equal(App.BadInput, Run("unknown-command").Code);
        var (c2, _, e2) = Run("impute", input, "-o", PathOf("o.csv"), "--load", PathOf("no.model"));
        Assert.Equal(App.BadInput, c2);
        Assert.Contains("no.model", e2);
        Assert.False(File.Exists(PathOf("o.csv")));
    }

    [Fact]
    public void A_file_that_is_not_a_model_exits_2()
    {
        var input = WriteInput();
        var (code, _, err) = Run("impute", input, "-o", PathOf("o.csv"), "--load", input, "--missing", "?");
        Assert.Equal(App.BadInput, code);
        Assert.Contains("not an EMFlow model", err);
    }

    [Fact]
    public void Start_takes_auto_gaussian_em_or_knn_and_names_a_bad_value()
    {
        var input = WriteInput();
        var (code, _, err) = Run(new[] { "impute", input, "-o", PathOf("knn.csv"), "--missing", "?", "--start", "knn" }.Concat(Quick).ToArray());
        Assert.True(code == 0, err);
        var (bad, _, message) = Run(new[] { "impute", input, "-o", PathOf("x.csv"), "--missing", "?", "--start", "magic" }.Concat(Quick).ToArray());
        Assert.Equal(App.BadInput, bad);
        Assert.Contains("--start", message);
        Assert.Equal(App.BadInput, Run("impute", input, "-o", PathOf("y.csv"), "--missing", "?", "--method", "mean", "--start", "knn").Code);
    }

    [Fact]
    public void Multiple_2_writes_two_sampled_tables_that_differ_only_at_missing_cells()
    {
        var input = WriteInput();
        var output = PathOf("out.csv");
        var (code, _, err) = Run(new[] { "impute", input, "-o", output, "--missing", "?", "--multiple", "2" }.Concat(Quick).ToArray());
        Assert.True(code == 0, err);
        var one = File.ReadAllLines(PathOf("out.1.csv"));
        var two = File.ReadAllLines(PathOf("out.2.csv"));
        Assert.False(File.Exists(PathOf("out.3.csv")));
        Assert.Equal(File.ReadAllLines(input).Length, one.Length);
        Assert.NotEqual(one, two);
        // Line 2 (row 0) has no missing cell: it must be identical in both draws.
        Assert.Equal(one[1], two[1]);
    }

    [Fact]
    public void A_saved_model_imputes_new_rows_without_refitting_and_matches_the_fit()
    {
        var input = WriteInput();
        var model = PathOf("m.model");
        var fitted = PathOf("fitted.csv");
        var (code, _, err) = Run(new[] { "impute", input, "-o", fitted, "--missing", "?", "--model", model }.Concat(Quick).ToArray());
        Assert.True(code == 0, err);
        Assert.True(File.Exists(model));

        var again = PathOf("again.csv");
        (code, _, err) = Run("impute", input, "-o", again, "--missing", "?", "--load", model, "--quiet");
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllLines(fitted), File.ReadAllLines(again));

        // A table with a different number of numeric columns is refused by name of the problem.
        var other = PathOf("other.csv");
        File.WriteAllText(other, "x,y\n1,\n2,3\n");
        (code, _, err) = Run("impute", other, "-o", PathOf("o.csv"), "--load", model);
        Assert.Equal(App.BadInput, code);
        Assert.Contains("3 numeric columns", err);
    }

    [Fact]
    public void Impute_writes_an_offline_report_with_plotly_inlined()
    {
        var input = WriteInput();
        var report = PathOf("r.html");
        var (code, _, err) = Run(new[] { "impute", input, "-o", PathOf("o.csv"), "--missing", "?", "--report", report }.Concat(Quick).ToArray());
        Assert.True(code == 0, err);
        var html = File.ReadAllText(report);
        Assert.DoesNotContain("src=\"http", html);
        Assert.DoesNotContain("<script src=", html);
        Assert.Contains("Plotly.newPlot", html);
        Assert.Contains("\"heatmap\"", html);
        Assert.True(html.Length > 1_000_000, "plotly.js should be inlined");
    }

    [Fact]
    public void Help_prints_usage_and_exits_0()
    {
        var (code, output, _) = Run("help");
        Assert.Equal(0, code);
        Assert.Contains("emflow impute", output);
    }

    [Fact]
    public void Evaluate_prints_RMSE_per_method_and_rejects_an_unknown_mechanism()
    {
        var rng = new Random(5);
        var lines = new List<string> { "a,b,c" };
        for (int i = 0; i < 80; i++)
        {
            double a = rng.NextDouble();
            lines.Add(string.Join(",", new[] { a, 2 * a + 0.1 * rng.NextDouble(), rng.NextDouble() }.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        }
        var input = PathOf("complete.csv");
        File.WriteAllLines(input, lines);
        var (code, stdout, err) = Run("evaluate", input, "--folds", "2", "--methods", "mean,gaussian-em", "--quiet");
        Assert.True(code == App.Success, err);
        Assert.Contains("gaussian-em", stdout);
        Assert.Contains("±", stdout);
        Assert.Equal(App.BadInput, Run("evaluate", input, "--mechanism", "sometimes").Code);
        Assert.Equal(App.BadInput, Run("evaluate", input, "--methods", "magic").Code);
    }
}
