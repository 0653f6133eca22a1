using System.Diagnostics;
using EMFlow.Evaluation;
using static TorchSharp.torch;

namespace EMFlow.Bench;

/// <summary>One line of bench/results/coverage*.jsonl: one (dataset, mechanism, method) of the multiple-imputation
/// protocol. Coverage and width are pooled over every hidden cell of the folds run; the per-fold lists follow the
/// folds in order; a column with no hidden cell has null coverage and width. It carries no <c>rmse_folds</c>, so the
/// `tables` report passes over it.</summary>
internal sealed record CoverageRecord(
    string dataset, int rows, int columns, string mechanism, string method, int folds_run, int folds, long seed, int draws,
    string interval, double nominal_coverage, double rmse_mean, double rmse_std, double[] fold_rmse, double coverage,
    double[] fold_coverage, double width_mean, double[] fold_width, double coverage_interpolated, double?[] column_coverage,
    double?[] column_width, int[] rank_histogram, int scored_cells, double hidden_rate, double fit_seconds_mean,
    double draw_seconds_mean, string[]? fold_notes, string machine, string date, string measured);

/// <summary>
/// Multiple imputation from the fitted model: the paper's protocol (hidden cells, folds and seeds of <see cref="Protocol"/>,
/// as `tables` uses them), one fit per fold with the library's defaults, a point imputation scored by RMSE, and
/// <c>--draws</c> completed tables whose spread is scored on the same hidden cells: the share of true values inside
/// each cell's central interval of the draws and the interval's mean width on [0, 1].
/// </summary>
/// <remarks>
/// <para>The interval is made of order statistics, not interpolated percentiles: with K draws it runs from the k-th
/// smallest draw to the k-th largest, k = max(1, ⌊0.05 (K + 1)⌋). A new value from the same distribution falls inside
/// it with probability (K + 1 − 2k) / (K + 1), whatever the distribution (19/21 = 90.5% for K = 20): that is the
/// coverage a perfectly calibrated sampler scores. Linearly interpolated 5th and 95th percentiles of 20 draws (numpy's
/// default) sit inside the 2nd smallest and 2nd largest draw and cover only about 81% for a perfect sampler; that
/// figure is kept in each record as <c>coverage_interpolated</c>.</para>
/// <para>The truth of the test fold is read only when scoring; nothing here is tuned on it.</para>
/// </remarks>
internal static class CoverageBench
{
    /// <summary>The demo's table: `emflow demo`'s seeded non-Gaussian 3000 × 7 table (seed 1, noise 0.1), complete.</summary>
    private static (string[] Columns, double[,] Values) DemoTable() => (Synthetic.nonlinearColumns, Tensors.toArray2D(Synthetic.nonlinear(1, 3000, 0.1)));

    public static void Run(Args a)
    {
        set_num_threads(1);
        long seed = a.Int("seed", 0);
        int folds = a.Int("folds", 5);
        int draws = a.Int("draws", 20);
        if (draws < 2) throw new ArgumentException($"--draws must be at least 2; got {draws}");
        var methods = a.List("methods") ?? new[] { "emflow", "gaussian-em" };
        foreach (var m in methods)
            if (m is not ("emflow" or "gaussian-em"))
                throw new ArgumentException($"unknown method '{m}'; expected emflow or gaussian-em");
        var kinds = a.List("kinds") ?? new[] { "plain", "calibrated", "proper" };
        foreach (var k in kinds)
            if (k is not ("plain" or "calibrated" or "proper"))
                throw new ArgumentException($"unknown kind of draws '{k}'; expected plain, calibrated or proper");
        var mechanisms = a.List("mechanisms") ?? new[] { "mcar", "mar" };
        var dataDir = a.Get("data-dir") ?? Path.Combine(TablesBench.RepoRoot(), "..", "shared", "data");
        var names = a.List("datasets") ?? new[] { "demo", "concrete", "breast_cancer", "wine_quality" };
        var outPath = a.Get("out") ?? Path.Combine(TablesBench.RepoRoot(), "bench", "results", "coverage.jsonl");
        var onlyFolds = a.List("only-folds")?.Select(int.Parse).ToArray();
        var records = new List<CoverageRecord>();
        foreach (var name in names)
        {
            var (_, values) = name == "demo" ? DemoTable() : ColumnsAndValues(TablesBench.LoadDataset(name, dataDir));
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
                        _ => throw new ArgumentException($"unknown mechanism '{mech}'; expected mcar or mar"),
                    },
                };
                var table = Protocol.Prepare(values, options);
                // The protocol's own fold assignment, as Protocol.Run makes it without a folds file.
                var foldIds = Protocol.AssignFolds(table.KeptRows.Length, folds, Tensors.deriveSeed(seed, 1));
                var which = onlyFolds ?? Enumerable.Range(0, folds).ToArray();
                Console.Error.WriteLine($"{name} ({table.Values.GetLength(0)} x {table.Values.GetLength(1)}), {options.Mechanism}, {string.Join(", ", methods)}, {draws} draws");
                var perMethod = new Dictionary<string, List<FoldScore>>();
                foreach (var f in which)
                {
                    var split = Protocol.Split(table, foldIds, f);
                    var truth = Rows(table.Values, split.TestRowIds);
                    var hidden = Rows(table.Hidden, split.TestRowIds);
                    foreach (var m in methods)
                        foreach (var (label, s) in RunFold(m, kinds, seed, draws, split, truth, hidden))
                        {
                            if (!perMethod.TryGetValue(label, out var list)) perMethod[label] = list = new List<FoldScore>();
                            list.Add(s);
                            Console.Error.WriteLine(FormattableString.Invariant(
                                $"  {name} {mech} {label} fold {f}: RMSE {s.Rmse:F4}, coverage {s.Covered / (double)s.Cells:P1}, width {s.WidthSum / s.Cells:F4}, fit {s.FitSeconds:F1} s, draws {s.DrawSeconds:F1} s{(s.Note is null ? "" : "; " + s.Note)}"));
                        }
                }
                foreach (var (m, scores) in perMethod)
                {
                    var rec = Record(name, table, options.Mechanism.ToString(), m, which.Length, folds, seed, draws, scores);
                    records.Add(rec);
                    Report.AppendJson(outPath, rec);
                }
            }
        }
        var md = Markdown(records);
        Console.WriteLine(md);
        if (a.Get("markdown") is { } mdPath) File.WriteAllText(mdPath, md);
    }

    /// <summary>One fold's scores of one method: sums over its hidden cells, and per column.</summary>
    private sealed record FoldScore(double Rmse, int Cells, int Covered, int CoveredInterpolated, double WidthSum,
        int[] ColumnCells, int[] ColumnCovered, double[] ColumnWidth, int[] Ranks, double FitSeconds, double DrawSeconds, string? Note);

    /// <summary>Fits one method on the fold's training rows and scores each kind of draw from that one fit:
    /// "plain" (the fitted model held fixed, <c>SampleImputations</c>) under the method's name; "calibrated" (EMFlow
    /// only: the same with the spread <c>ChooseSpread</c> picks on the fit's held-out training entries) as
    /// name-calibrated; "proper" (a bootstrap refit of the Gaussian per draw, <c>SampleProperImputations</c>) as
    /// name-proper.</summary>
    private static List<(string Name, FoldScore Score)> RunFold(string method, IReadOnlyList<string> kinds, long seed, int draws, FoldSplit split, double[,] truth, bool[,] hidden)
    {
        var clock = Stopwatch.StartNew();
        // One fixed seed for the draws of every fold and method.
        long drawSeed = Tensors.deriveSeed(seed, 7);
        var scores = new List<(string, FoldScore)>();
        using Imputer imputer = method == "emflow" ? new EMFlowImputer(new EMFlowOptions { Seed = seed, TorchThreads = 1 }) : new GaussianEmImputer();
        imputer.Fit(split.TrainRows);
        double fitSeconds = clock.Elapsed.TotalSeconds;
        var point = imputer.Transform(split.TestRows);
        string? note = imputer is EMFlowImputer e ? $"iteration {e.SelectedIteration} of {e.IterationsRun}" : null;
        foreach (var kind in kinds)
        {
            // Gaussian EM holds nothing out, so it has no spread to calibrate.
            if (kind == "calibrated" && imputer is not EMFlowImputer) continue;
            clock.Restart();
            string? kindNote = note;
            IReadOnlyList<double[,]> sample;
            switch (imputer, kind)
            {
                case (EMFlowImputer f, "plain"): sample = f.SampleImputations(split.TestRows, draws, drawSeed); break;
                case (EMFlowImputer f, "calibrated"):
                    // Chosen on the training rows' own held-out entries; the test fold's truth is not read.
                    var choice = f.ChooseSpread(split.TrainRows, draws);
                    sample = f.SampleImputations(split.TestRows, draws, drawSeed, spread: choice.Spread);
                    kindNote = FormattableString.Invariant($"{note}, spread {choice.Spread:F2} (held-out coverage {choice.HeldOutCoverage:P1})");
                    break;
                case (EMFlowImputer f, _): sample = f.SampleProperImputations(split.TestRows, draws, split.TrainRows, drawSeed); break;
                case (GaussianEmImputer g, "plain"): sample = g.SampleImputations(split.TestRows, draws, drawSeed); break;
                case (GaussianEmImputer g, _): sample = g.SampleProperImputations(split.TestRows, draws, split.TrainRows, drawSeed); break;
                default: throw new InvalidOperationException(method);
            }
            double drawSeconds = clock.Elapsed.TotalSeconds;
            scores.Add((kind == "plain" ? method : $"{method}-{kind}", Score(truth, hidden, point, sample, fitSeconds, drawSeconds, kindNote)));
        }
        return scores;
    }

    /// <summary>The order statistic k of <see cref="CoverageBench"/>'s remarks for K draws.</summary>
    public static int LowerRank(int draws) => Math.Max(1, (int)Math.Floor(0.05 * (draws + 1)));

    private static FoldScore Score(double[,] truth, bool[,] hidden, double[,] point, IReadOnlyList<double[,]> sample,
        double fitSeconds, double drawSeconds, string? note)
    {
        int m = truth.GetLength(0), p = truth.GetLength(1), k = sample.Count, lo = LowerRank(k) - 1, hi = k - LowerRank(k);
        int cells = 0, covered = 0, coveredInterpolated = 0;
        double squared = 0, width = 0;
        var columnCells = new int[p];
        var columnCovered = new int[p];
        var columnWidth = new double[p];
        var ranks = new int[k + 1];
        var v = new double[k];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < p; j++)
            {
                if (!hidden[i, j]) continue;
                double t = truth[i, j];
                for (int d = 0; d < k; d++) v[d] = sample[d][i, j];
                Array.Sort(v);
                cells++;
                columnCells[j]++;
                squared += (point[i, j] - t) * (point[i, j] - t);
                double w = v[hi] - v[lo];
                width += w;
                columnWidth[j] += w;
                if (v[lo] <= t && t <= v[hi]) { covered++; columnCovered[j]++; }
                if (Quantile(v, 0.05) <= t && t <= Quantile(v, 0.95)) coveredInterpolated++;
                // The truth's rank among the draws, ties split evenly: flat when calibrated, U-shaped when the draws
                // are too narrow, sloped when they are off centre.
                int below = 0, equal = 0;
                foreach (var x in v) { if (x < t) below++; else if (x == t) equal++; }
                ranks[below + equal / 2]++;
            }
        return new FoldScore(cells == 0 ? double.NaN : Math.Sqrt(squared / cells), cells, covered, coveredInterpolated, width,
            columnCells, columnCovered, columnWidth, ranks, fitSeconds, drawSeconds, note);
    }

    /// <summary>Linear interpolation between order statistics (numpy's default, R's type 7) of sorted values.</summary>
    private static double Quantile(double[] sorted, double q)
    {
        double h = (sorted.Length - 1) * q;
        int f = (int)Math.Floor(h);
        return f + 1 < sorted.Length ? sorted[f] + (h - f) * (sorted[f + 1] - sorted[f]) : sorted[f];
    }

    private static CoverageRecord Record(string name, PreparedTable table, string mechanism, string method, int foldsRun, int folds,
        long seed, int draws, List<FoldScore> s)
    {
        int p = table.Values.GetLength(1), cells = s.Sum(x => x.Cells);
        var rmse = s.Select(x => x.Rmse).ToArray();
        double mean = rmse.Average();
        double std = Math.Sqrt(rmse.Sum(r => (r - mean) * (r - mean)) / rmse.Length);
        int k = LowerRank(draws);
        var columnCells = Enumerable.Range(0, p).Select(j => s.Sum(x => x.ColumnCells[j])).ToArray();
        return new CoverageRecord(
            name, table.Values.GetLength(0), p, mechanism, method, foldsRun, folds, seed, draws,
            $"order statistics: the {Ordinal(k)} smallest to the {Ordinal(k)} largest of {draws} draws", (draws + 1 - 2.0 * k) / (draws + 1),
            mean, std, rmse, s.Sum(x => x.Covered) / (double)cells, s.Select(x => x.Covered / (double)x.Cells).ToArray(),
            s.Sum(x => x.WidthSum) / cells, s.Select(x => x.WidthSum / x.Cells).ToArray(), s.Sum(x => x.CoveredInterpolated) / (double)cells,
            Enumerable.Range(0, p).Select(j => columnCells[j] == 0 ? (double?)null : s.Sum(x => x.ColumnCovered[j]) / (double)columnCells[j]).ToArray(),
            Enumerable.Range(0, p).Select(j => columnCells[j] == 0 ? (double?)null : s.Sum(x => x.ColumnWidth[j]) / columnCells[j]).ToArray(),
            Enumerable.Range(0, draws + 1).Select(r => s.Sum(x => x.Ranks[r])).ToArray(), cells, table.HiddenRate,
            s.Average(x => x.FitSeconds), s.Average(x => x.DrawSeconds),
            s.Any(x => x.Note is not null) ? s.Select(x => x.Note ?? "").ToArray() : null,
            Report.Machine, DateTime.UtcNow.ToString("yyyy-MM-dd"), DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"));
    }

    private static string Ordinal(int k) => k switch { 1 => "1st", 2 => "2nd", 3 => "3rd", _ => $"{k}th" };

    private static readonly string[] TableOrder = { "demo", "concrete", "breast_cancer", "wine_quality", "review", "spam" };

    /// <summary>Reads bench/results/coverage*.jsonl (or --files a.jsonl,b.jsonl) and prints the Markdown table; with
    /// --readme FILE, rewrites that file's coverage section with it.</summary>
    public static void ReportFiles(Args a)
    {
        var files = a.List("files") ?? Directory.GetFiles(Path.Combine(TablesBench.RepoRoot(), "bench", "results"), "coverage*.jsonl").OrderBy(f => f).ToArray();
        var records = files.SelectMany(File.ReadAllLines).Where(l => l.Length > 0)
            .Select(l => System.Text.Json.JsonSerializer.Deserialize<CoverageRecord>(l)!).ToList();
        // A (table, mechanism, method) measured more than once shows its latest run.
        records = records.GroupBy(r => (r.dataset, r.mechanism, r.method)).Select(g => g.OrderBy(r => r.measured, StringComparer.Ordinal).Last())
            .OrderBy(r => Array.IndexOf(TableOrder, r.dataset) is var i and >= 0 ? i : TableOrder.Length).ThenBy(r => r.dataset, StringComparer.Ordinal)
            .ThenBy(r => r.mechanism.StartsWith("mcar", StringComparison.Ordinal) ? 0 : 1).ThenBy(r => r.method, StringComparer.Ordinal).ToList();
        var md = Markdown(records);
        Console.WriteLine(md);
        if (a.Get("readme") is { } readme) TablesBench.ReplaceSection(readme, "coverage", md);
    }

    /// <summary>Markdown of the records: RMSE, coverage and width per table, mechanism and method, and the spreads
    /// the calibrated draws chose per fold.</summary>
    public static string Markdown(IEnumerable<CoverageRecord> records0)
    {
        var records = records0.ToList();
        var rows = records.Select(r => (IReadOnlyList<string>)new[]
        {
            $"{r.dataset} ({r.rows} x {r.columns})", r.mechanism, r.method, $"{r.folds_run}/{r.folds}",
            r.folds_run > 1 ? $"{r.rmse_mean:F4} ± {r.rmse_std:F4}" : $"{r.rmse_mean:F4}",
            $"{100 * r.coverage:F1}% ({100 * r.fold_coverage.Min():F1}-{100 * r.fold_coverage.Max():F1})",
            $"{r.width_mean:F4}", $"{100 * r.coverage_interpolated:F1}%", $"{r.scored_cells}",
        }).ToList();
        var notes = records.Where(r => r.fold_notes is { Length: > 0 } && r.method.EndsWith("-calibrated", StringComparison.Ordinal))
            .Select(r => $"- {r.dataset} {r.mechanism}: {string.Join(" | ", r.fold_notes!)}").ToList();
        return Report.Table(new[] { "data (n x p)", "mechanism", "method", "folds", "RMSE", "coverage (fold range)", "mean width", "interpolated 5-95%", "cells" }, rows)
            + (notes.Count > 0 ? "\nIteration kept and spread chosen on each fold (calibrated draws):\n\n" + string.Join("\n", notes) + "\n" : "");
    }

    private static (string[], double[,]) ColumnsAndValues((string[] Columns, double[,] Values, bool KeepTarget) t) => (t.Columns, t.Values);

    private static T[,] Rows<T>(T[,] x, int[] rows)
    {
        int p = x.GetLength(1);
        var r = new T[rows.Length, p];
        for (int i = 0; i < rows.Length; i++)
            for (int j = 0; j < p; j++)
                r[i, j] = x[rows[i], j];
        return r;
    }
}
