using System.Globalization;
using EMFlow.Evaluation;
using static TorchSharp.torch;

namespace EMFlow.Bench;

/// <summary>
/// The paper's protocol on benchmark tables with categorical columns: each table's class label (`target`) kept as a
/// categorical feature, and for Wine Quality also its colour. Every method runs through the one-hot layer
/// (<see cref="MixedImputer"/>) on the same masks and folds; numeric cells are scored by the RMSE on [0, 1], categorical
/// ones by accuracy. One JSON line per (dataset, mechanism, method) in bench/results/mixed-*.jsonl.
/// </summary>
internal static class MixedBench
{
    /// <summary>The tables, largest last: the order a run covers them in when none are named.</summary>
    public static readonly string[] Datasets = { "breast_cancer", "wine_quality", "spam", "letter" };

    /// <summary>Wine Quality stacks 1599 red wines over 4898 white ones (data README: rows 1-1599 red) and has no
    /// column saying which; the benchmark adds it as a categorical column, colour, 0 = red and 1 = white.</summary>
    private const int RedWines = 1599;

    public static void Run(Args a)
    {
        set_num_threads(1);
        bool quick = a.Flag("quick");
        long seed = a.Int("seed", 0);
        int folds = a.Int("folds", 5);
        var methods = a.List("methods") ?? new[] { "mean", "knn", "gaussian-em", "forest", "emflow" };
        var mechanisms = a.List("mechanisms") ?? new[] { "mcar" };
        var dataDir = a.Get("data-dir") ?? Path.Combine(TablesBench.RepoRoot(), "..", "shared", "data");
        var resultsDir = Path.Combine(TablesBench.RepoRoot(), "bench", "results");
        Func<EMFlowOptions, EMFlowOptions> adjust = quick
            ? o => o with { Iterations = 1, EpochsPerIteration = 2, TorchThreads = 1 }
            : o => o with { TorchThreads = 1 };
        var notes = new Dictionary<string, List<string>>();
        var methodList = methods.Select(m => Method.Standard(m, seed, adjust))
            .Select(m => new Method(m.Name, () => new Observed(m.Create(), s => notes[m.Name].Add(s)))).ToArray();
        var records = new List<TableRecord>();
        foreach (var name in a.List("datasets") ?? (quick ? new[] { "breast_cancer" } : Datasets))
        {
            var (columns, values, kinds) = Load(name, dataDir);
            foreach (var mech in mechanisms)
            {
                var options = new ProtocolOptions
                {
                    Folds = folds,
                    Seed = seed,
                    Mechanism = mech switch
                    {
                        "mcar" => Mechanism.Mcar(0.2),
                        "mar" => Mechanism.Mar(),
                        "mnar" => Mechanism.Mnar(),
                        _ => throw new ArgumentException($"unknown mechanism '{mech}'; expected mcar, mar or mnar"),
                    },
                    ColumnKinds = kinds,
                    OnlyFolds = quick ? new[] { 0 } : a.List("only-folds")?.Select(int.Parse).ToArray(),
                    Log = new Progress<string>(s => Console.Error.WriteLine($"  {name} {mech}: {s}")),
                };
                foreach (var m in methods) notes[m] = new List<string>();
                var categorical = Enumerable.Range(0, columns.Length).Where(j => kinds[j] == ColumnKind.Categorical).ToArray();
                Console.Error.WriteLine($"{name} ({values.GetLength(0)} x {values.GetLength(1)}, categorical {string.Join(", ", categorical.Select(j => columns[j]))}), {mech}, {string.Join(", ", methods)}");
                var result = Protocol.Run(values, methodList, options);
                var file = Path.Combine(resultsDir, $"mixed-{name}-{result.Mechanism}{(quick ? "-quick" : "")}.jsonl");
                var outPath = a.Get("out") ?? file;
                foreach (var m in result.Methods)
                {
                    var t = result.Table;
                    var kept = t.KeptColumns;
                    var keptCategorical = Enumerable.Range(0, kept.Length).Where(c => t.ColumnKinds[c] == ColumnKind.Categorical).ToArray();
                    var byColumn = keptCategorical.ToDictionary(c => columns[kept[c]], c => Mean(m.Folds.Select(f => f.ColumnAccuracy![c])));
                    var rec = new TableRecord(
                        name, t.Values.GetLength(0), t.Values.GetLength(1), result.Mechanism, m.Method, m.Folds.Count, folds, seed, quick,
                        m.MeanRmse, m.StdRmse, m.Folds.Select(f => f.Rmse).ToArray(), m.SecondsPerFold,
                        m.Folds.Average(f => f.FitSeconds), m.Folds.Average(f => f.TransformSeconds), m.PeakWorkingSetBytes / 1048576.0,
                        t.HiddenRate, t.TrailingHiddenRate, t.UnknownRate, t.DroppedColumns, t.DroppedColumns.Select(j => columns[j]).ToArray(),
                        t.DroppedRows, true, Report.Machine, DateTime.UtcNow.ToString("yyyy-MM-dd"),
                        notes[m.Method].Count > 0 ? notes[m.Method].ToArray() : null, DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
                        m.MeanAccuracy, m.StdAccuracy, m.Folds.Select(f => f.Accuracy).ToArray(),
                        keptCategorical.Select(c => columns[kept[c]]).ToArray(),
                        keptCategorical.Select(c => Enumerable.Range(0, t.Values.GetLength(0)).Select(i => t.Values[i, c]).Where(v => !double.IsNaN(v)).Distinct().Count()).ToArray(),
                        byColumn, m.Folds.Sum(f => f.CategoricalScored), m.Folds.Sum(f => f.Scored));
                    records.Add(rec);
                    Report.AppendJson(outPath, rec);
                }
            }
        }
        Console.WriteLine(Markdown(records));
    }

    private static double Mean(IEnumerable<double> values)
    {
        var v = values.Where(x => !double.IsNaN(x)).ToArray();
        return v.Length == 0 ? double.NaN : v.Average();
    }

    /// <summary>A table with its `target` kept as a categorical feature (and Wine Quality's colour added): column names,
    /// values (codes in categorical columns) and kinds.</summary>
    public static (string[] Columns, double[,] Values, ColumnKind[] Kinds) Load(string name, string dataDir)
    {
        if (!Datasets.Contains(name)) throw new ArgumentException($"unknown dataset '{name}'; expected one of {string.Join(", ", Datasets)}");
        var path = Path.Combine(dataDir, name, name + ".csv");
        if (!File.Exists(path)) throw new ArgumentException($"{path} not found; point --data-dir at a folder holding {name}/{name}.csv");
        var (columns, values) = CsvTable.Read(path);
        if (columns[^1] != "target") throw new ArgumentException($"{path}: expected a last column named target; got '{columns[^1]}'");
        var kinds = columns.Select(c => c == "target" ? ColumnKind.Categorical : ColumnKind.Numeric).ToArray();
        if (name != "wine_quality") return (columns, values, kinds);
        int n = values.GetLength(0), p = columns.Length;
        if (n <= RedWines) throw new ArgumentException($"{path} has {n} rows; the red and white wines stack 1599 over the rest");
        // colour goes before target, which stays last as in the file.
        var withColour = new double[n, p + 1];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < p - 1; j++) withColour[i, j] = values[i, j];
            withColour[i, p - 1] = i < RedWines ? 0 : 1;
            withColour[i, p] = values[i, p - 1];
        }
        return (columns[..^1].Append("colour").Append("target").ToArray(), withColour,
            kinds[..^1].Append(ColumnKind.Categorical).Append(ColumnKind.Categorical).ToArray());
    }

    /// <summary>What a table's `target` column holds (data README), for the tables' headings.</summary>
    private static string Meaning(string dataset, string column) => (dataset, column) switch
    {
        ("letter", "target") => "target: letter",
        ("wine_quality", "target") => "target: quality",
        ("breast_cancer", "target") => "target: diagnosis",
        ("spam", "target") => "target: spam or not",
        _ => column,
    };

    /// <summary>The Markdown tables of the records of mixed tables: accuracy of the categorical cells, RMSE of the
    /// numeric ones, seconds per fold; the latest run with the most folds of each (dataset, mechanism, method).</summary>
    public static string Markdown(IEnumerable<TableRecord> records0)
    {
        var records = records0.Select((r, i) => (r, i)).GroupBy(x => (x.r.dataset, x.r.mechanism, x.r.method))
            .Select(g => g.OrderByDescending(x => x.r.folds_run).ThenByDescending(x => x.r.measured ?? "", StringComparer.Ordinal).ThenByDescending(x => x.i).First().r).ToList();
        if (records.Count == 0) return "";
        var order = new[] { "mean", "knn", "gaussian-em", "forest", "emflow" };
        var methods = order.Where(m => records.Any(r => r.method == m))
            .Concat(records.Select(r => r.method).Distinct().Where(m => !order.Contains(m))).ToArray();
        string Label(string m) => m switch { "mean" => "mean (mode)", "knn" => "kNN", "gaussian-em" => "Gaussian EM", "forest" => "forest", "emflow" => "EMFlow", _ => m };
        var groups = records.GroupBy(r => (r.dataset, r.mechanism)).OrderBy(g => Array.IndexOf(Datasets, g.Key.dataset)).ToArray();
        string Folds(TableRecord r) => r.folds_run == r.folds ? "" : $" ({r.folds_run}/{r.folds} folds)";
        string MeanStd(double mean, double std, int folds) =>
            double.IsNaN(mean) ? "—" : folds > 1 ? $"{Dot(mean)} ± {Dot(std)}" : Dot(mean);
        string Dot(double v) => v.ToString(".000", CultureInfo.InvariantCulture);

        var accuracyRows = groups.Select(g =>
        {
            var first = g.First();
            var cells = new List<string>
            {
                $"{first.dataset} ({first.rows} x {first.columns})",
                string.Join(", ", first.categorical!.Zip(first.categories!, (c, k) => $"{Meaning(first.dataset, c)} ({k})")),
                first.mechanism,
                $"{(double)first.categorical_scored!.Value / first.folds_run:F0}",
            };
            var best = g.Select(r => r.accuracy_mean ?? double.NaN).Where(v => !double.IsNaN(v)).DefaultIfEmpty(double.NaN).Max();
            foreach (var m in methods)
            {
                var r = g.FirstOrDefault(x => x.method == m);
                if (r is null) { cells.Add("—"); continue; }
                var s = MeanStd(r.accuracy_mean ?? double.NaN, r.accuracy_std ?? double.NaN, r.folds_run) + Folds(r);
                if (r.accuracy_by_column is { Count: > 1 } by)
                    s += " (" + string.Join(", ", by.Select(kv => $"{Meaning(r.dataset, kv.Key)} {Dot(kv.Value)}")) + ")";
                cells.Add(r.accuracy_mean == best ? $"**{s}**" : s);
            }
            return (IReadOnlyList<string>)cells;
        });
        var rmseRows = groups.Select(g =>
        {
            var first = g.First();
            var cells = new List<string> { first.dataset, first.mechanism, $"{(double)first.numeric_scored!.Value / first.folds_run:F0}" };
            var best = g.Select(r => r.rmse_mean).Where(v => !double.IsNaN(v)).DefaultIfEmpty(double.NaN).Min();
            foreach (var m in methods)
            {
                var r = g.FirstOrDefault(x => x.method == m);
                if (r is null) { cells.Add("—"); continue; }
                var s = MeanStd(r.rmse_mean, r.rmse_std, r.folds_run) + Folds(r);
                cells.Add(r.rmse_mean == best ? $"**{s}**" : s);
            }
            return (IReadOnlyList<string>)cells;
        });
        var timeRows = groups.Select(g =>
        {
            var cells = new List<string> { g.Key.dataset, g.Key.mechanism };
            foreach (var m in methods)
            {
                var r = g.FirstOrDefault(x => x.method == m);
                cells.Add(r is null ? "—" : $"{r.seconds_per_fold:F1} s, {r.peak_working_set_mb:F0} MB");
            }
            return (IReadOnlyList<string>)cells;
        });
        var dates = records.Select(r => r.date).Distinct().OrderBy(d => d).ToArray();
        var machines = string.Join("; ", records.Select(r => r.machine).Distinct());
        return $"Measured on {machines}, {(dates.Length == 1 ? dates[0] : dates[0] + " to " + dates[^1])}, seed {string.Join(", ", records.Select(r => r.seed).Distinct())}; one torch thread per process.\n\n"
            + "Accuracy: share of the hidden categorical cells imputed as their true category, mean ± std over folds (per column in brackets when there are two; bold: best)\n\n"
            + Report.Table(new[] { "data (n x p)", "categorical (categories)", "mechanism", "hidden categorical cells per fold" }.Concat(methods.Select(Label)).ToArray(), accuracyRows) + "\n"
            + "RMSE of the hidden numeric cells on [0, 1], mean ± std over folds (bold: best)\n\n"
            + Report.Table(new[] { "data", "mechanism", "hidden numeric cells per fold" }.Concat(methods.Select(Label)).ToArray(), rmseRows) + "\n"
            + "Seconds per fold (fit + impute) and peak working set while the method ran\n\n"
            + Report.Table(new[] { "data", "mechanism" }.Concat(methods.Select(Label)).ToArray(), timeRows);
    }
}
