using System.Globalization;
using EMFlow.Evaluation;
using Spectre.Console;

namespace EMFlow.Cli;

/// <summary>
/// <c>emflow evaluate DATA.csv</c>: the paper's protocol on one complete table (min-max scaling, a missingness
/// mechanism, k-fold cross-validation where the test fold is only re-imputed, RMSE over hidden cells), printing
/// RMSE ± std and seconds per fold for each method. A client of <see cref="Protocol"/>, nothing more. A table with
/// categorical columns (text columns, and those named by <c>--categorical</c>) is run through each method's
/// <see cref="MixedImputer"/>: the RMSE is over the numeric hidden cells, and the accuracy over the categorical ones is
/// reported beside it.
/// </summary>
internal static class EvaluateCommand
{
    public static void Run(string[] words, IAnsiConsole console, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = new Arguments(words, new HashSet<string> { "--quiet", "--drop-target" }, new Dictionary<string, string> { ["-q"] = "--quiet" });
        var mechanismName = a.Text("--mechanism") ?? "mcar";
        bool rateGiven = a.Text("--rate") is not null;
        double rate = a.Positive("--rate", 0.2);
        int folds = a.Int("--folds", 5, min: 2);
        long seed = a.Long("--seed", 0);
        int threads = a.Int("--threads", 1, min: 1);
        var methodNames = (a.Text("--methods") ?? "mean,knn,gaussian-em,emflow").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var maskPath = a.Text("--mask");
        var foldsPath = a.Text("--fold-ids");
        bool quiet = a.Flag("--quiet");
        bool dropTarget = a.Flag("--drop-target");
        var format = a.Text("--format") ?? "table";
        var categoricalText = a.Text("--categorical");
        a.RejectUnknown(1);
        if (format is not ("table" or "json" or "csv" or "markdown"))
            throw new UsageException($"--format must be table, json, csv or markdown; got '{format}'");
        if (a.Positional.Count != 1) throw new UsageException("evaluate needs one input file: emflow evaluate DATA.csv [options]");
        var mechanism = mechanismName switch
        {
            "mcar" => Mechanism.Mcar(rate),
            // With --rate, MAR is calibrated to that expected rate over the trailing features (e.g. the paper's Table 4).
            "mar" => rateGiven ? Mechanism.Mar(rate) : Mechanism.Mar(),
            "mnar" => Mechanism.Mnar(),
            _ => throw new UsageException($"--mechanism must be mcar, mar or mnar; got '{mechanismName}'"),
        };
        var known = Method.StandardNames.Concat(Method.TreeNames).Concat(Method.VariantNames).Concat(Method.CompetitorNames).ToList();
        foreach (var m in methodNames)
            if (!known.Contains(m)) throw new UsageException($"unknown method '{m}'; the methods are {string.Join(", ", known)}");

        string[]? categorical = null;
        if (categoricalText is not null)
        {
            categorical = categoricalText.Split(',').Select(n => n.Trim()).ToArray();
            if (categorical.Any(n => n.Length == 0)) throw new UsageException($"--categorical takes column names separated by commas; got '{categoricalText}'");
        }
        if (!File.Exists(a.Positional[0]))
            throw new UsageException(Directory.Exists(a.Positional[0]) ? $"input {a.Positional[0]} is a folder, not a file" : $"input file not found: {a.Positional[0]}");

        string[] columns;
        double[,] values;
        ColumnKind[] kinds;
        try
        {
            (columns, values, kinds, _) = CsvTable.ReadMixed(a.Positional[0], categorical);
        }
        catch (FormatException e) when (e.Message.IndexOf(" Mark missing values", StringComparison.Ordinal) is var cut and > 0)
        {
            throw new UsageException(e.Message[..cut] + " Declare it categorical (--categorical) or drop it.");
        }
        catch (ArgumentException e) when (e.ParamName == "categorical")
        {
            throw new UsageException($"--categorical: {e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal)}");
        }
        if (dropTarget && columns.Length > 0 && columns[^1] == "target")
        {
            values = DropLastColumn(values);
            kinds = kinds[..^1];
        }
        if (values.GetLength(1) == 0) throw new UsageException($"{a.Positional[0]} has no column left to evaluate");
        int already = 0;
        foreach (var v in values) if (double.IsNaN(v)) already++;
        if (already > 0)
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"emflow: warning: {Path.GetFileName(a.Positional[0])} already has {already} missing cells ({already / (double)values.Length:P1}); they are never scored, only the cells the protocol hides are"));
        var options = new ProtocolOptions
        {
            Folds = folds,
            Seed = seed,
            Mechanism = mechanism,
            Mask = maskPath is null ? null : CsvTable.ReadMask(maskPath),
            FoldIds = foldsPath is null ? null : CsvTable.ReadFolds(foldsPath),
            // Without a categorical column the protocol takes its numeric path: the same scores and fields as with no kinds.
            ColumnKinds = kinds.Contains(ColumnKind.Categorical) ? kinds : null,
            // Progress goes to stderr, so stdout holds only the results (a script can read them).
            Log = quiet ? null : new Inline(line => { stderr.WriteLine("emflow: " + line); stderr.Flush(); }),
        };
        var methods = methodNames.Select(m => Method.Standard(m, seed, o => o with { TorchThreads = threads })).ToList();
        ct.ThrowIfCancellationRequested();
        var result = Protocol.Run(values, methods, options);
        bool mixed = result.Table.HasCategorical;

        var dataset = Path.GetFileName(a.Positional[0]);
        switch (format)
        {
            case "json": WriteJson(stdout, dataset, result, seed); break;
            case "csv": WriteCsv(stdout, dataset, result, seed); break;
            case "markdown": WriteMarkdown(stdout, dataset, result, folds); break;
            default:
                var table = new Spectre.Console.Table().Border(App.TableBorderFor(console));
                if (mixed) table.AddColumns("Method", "RMSE, numeric (mean ± std)", "Accuracy, categorical (mean ± std)", "Seconds per fold");
                else table.AddColumns("Method", "RMSE (mean ± std)", "Seconds per fold");
                foreach (var m in result.Methods)
                {
                    var seconds = m.SecondsPerFold.ToString("F1", CultureInfo.InvariantCulture);
                    if (mixed) table.AddRow(m.Method, MeanStd(m.MeanRmse, m.StdRmse, "F4"), MeanStd(m.MeanAccuracy, m.StdAccuracy, "F3"), seconds);
                    else table.AddRow(m.Method, $"{m.MeanRmse.ToString("F4", CultureInfo.InvariantCulture)} ± {m.StdRmse.ToString("F4", CultureInfo.InvariantCulture)}", seconds);
                }
                console.WriteLine(Heading(dataset, result, folds));
                console.Write(table);
                break;
        }
        stdout.Flush();
    }

    private static string Heading(string dataset, EvaluationResult result, int folds) =>
        $"{dataset}: {result.Mechanism}, {result.Folds.Length} rows in {folds} folds; hidden rate {result.Table.HiddenRate.ToString("F3", CultureInfo.InvariantCulture)}"
        + (result.Table.HasCategorical ? $"; {Count(result, ColumnKind.Numeric)} numeric and {Count(result, ColumnKind.Categorical)} categorical columns" : "");

    private static int Count(EvaluationResult result, ColumnKind kind) => result.Table.ColumnKinds.Count(k => k == kind);

    /// <summary>"mean ± std", or a dash when nothing was scored (a table without numeric or without categorical columns).</summary>
    private static string MeanStd(double mean, double std, string format) =>
        double.IsNaN(mean) ? "—" : $"{mean.ToString(format, CultureInfo.InvariantCulture)} ± {std.ToString(format, CultureInfo.InvariantCulture)}";

    /// <summary>The fields of one line per method and fold, in order, for JSON and CSV alike; a table with categorical
    /// columns adds the accuracy and the number of categorical cells it scored, a numeric one keeps its fields as they were.</summary>
    private static IEnumerable<(string Name, object? Value)> Fields(string dataset, EvaluationResult result, MethodResult m, FoldResult f, long seed) =>
        result.Table.HasCategorical
            ? NumericFields(dataset, result, m, f, seed).SelectMany(x => x.Name switch
            {
                "rmse" => new[] { x, ("accuracy", Finite(f.Accuracy)) },
                "scoredCells" => new[] { x, ("scoredCategoricalCells", (object?)f.CategoricalScored) },
                _ => new[] { x },
            })
            : NumericFields(dataset, result, m, f, seed);

    private static IEnumerable<(string Name, object? Value)> NumericFields(string dataset, EvaluationResult result, MethodResult m, FoldResult f, long seed) => new (string, object?)[]
    {
        ("dataset", dataset),
        ("method", m.Method),
        ("fold", f.Fold),
        ("rmse", Finite(f.Rmse)),
        ("fitSeconds", f.FitSeconds),
        ("imputeSeconds", f.TransformSeconds),
        ("seconds", f.FitSeconds + f.TransformSeconds),
        // Measured over all of the method's folds (the resident-set high-water mark), so the same on each of its lines.
        ("peakMemoryBytes", m.PeakWorkingSetBytes),
        ("mechanism", result.Mechanism),
        ("hiddenRate", result.Table.HiddenRate),
        ("scoredCells", f.Scored),
        ("trainRows", f.TrainRows),
        ("testRows", f.TestRows),
        ("seed", seed),
    };

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    private static void WriteJson(TextWriter w, string dataset, EvaluationResult result, long seed)
    {
        foreach (var m in result.Methods)
            foreach (var f in m.Folds)
                w.WriteLine(System.Text.Json.JsonSerializer.Serialize(Fields(dataset, result, m, f, seed).ToDictionary(x => x.Name, x => x.Value)));
    }

    private static void WriteCsv(TextWriter w, string dataset, EvaluationResult result, long seed)
    {
        bool header = true;
        foreach (var m in result.Methods)
            foreach (var f in m.Folds)
            {
                var fields = Fields(dataset, result, m, f, seed).ToList();
                if (header) { w.WriteLine(string.Join(",", fields.Select(x => x.Name))); header = false; }
                w.WriteLine(string.Join(",", fields.Select(x => Csv(x.Value))));
            }
    }

    private static string Csv(object? value) => value switch
    {
        null => "",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable n => n.ToString(null, CultureInfo.InvariantCulture),
        var o when o.ToString() is { } t && t.IndexOfAny(new[] { ',', '"', '\n', '\r' }) >= 0 => "\"" + t.Replace("\"", "\"\"") + "\"",
        var o => o.ToString() ?? "",
    };

    private static void WriteMarkdown(TextWriter w, string dataset, EvaluationResult result, int folds)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine(Heading(dataset, result, folds));
        w.WriteLine();
        if (result.Table.HasCategorical)
        {
            w.WriteLine("| Method | RMSE, numeric (mean) | RMSE (std) | Accuracy, categorical (mean) | Accuracy (std) | Seconds per fold | Peak memory (MiB) |");
            w.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (var m in result.Methods)
                w.WriteLine(string.Create(c, $"| {m.Method} | {Or(m.MeanRmse, "F4")} | {Or(m.StdRmse, "F4")} | {Or(m.MeanAccuracy, "F3")} | {Or(m.StdAccuracy, "F3")} | {m.SecondsPerFold:F1} | {m.PeakWorkingSetBytes / 1048576.0:F0} |"));
            return;
        }
        w.WriteLine("| Method | RMSE (mean) | RMSE (std) | Seconds per fold | Peak memory (MiB) |");
        w.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var m in result.Methods)
            w.WriteLine(string.Create(c, $"| {m.Method} | {m.MeanRmse:F4} | {m.StdRmse:F4} | {m.SecondsPerFold:F1} | {m.PeakWorkingSetBytes / 1048576.0:F0} |"));
    }

    private static string Or(double v, string format) => double.IsNaN(v) ? "—" : v.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>Reports on the calling thread, in order (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class Inline(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }

    private static double[,] DropLastColumn(double[,] v)
    {
        var r = new double[v.GetLength(0), v.GetLength(1) - 1];
        for (int i = 0; i < r.GetLength(0); i++)
            for (int j = 0; j < r.GetLength(1); j++)
                r[i, j] = v[i, j];
        return r;
    }
}
