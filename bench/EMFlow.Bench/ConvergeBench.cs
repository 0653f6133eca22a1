using System.Diagnostics;
using System.Text.Json;
using EMFlow.Baselines;
using EMFlow.Evaluation;
using ScottPlot;
using static TorchSharp.torch;

namespace EMFlow.Bench;

/// <summary>One point of a convergence curve: a method's test RMSE after some training budget and the seconds it took.</summary>
internal sealed record ConvergeRecord(
    string dataset, int rows, int columns, string mechanism, int fold, string method, string budget, double train_seconds,
    double rmse, bool selected, bool quick, long seed, string machine, string date);

/// <summary>
/// Time to converge (the paper's Figure 2): test RMSE of one fold against training seconds, for EMFlow (one fit,
/// every iteration replayed through <see cref="EMFlowImputer.TransformAtIteration"/>) and for the competitors (one fit
/// per budget of epochs or iterations, since their test imputation can only be read at the end of a fit).
/// </summary>
internal static class ConvergeBench
{
    public static void Run(Args a)
    {
        set_num_threads(1);
        bool quick = a.Flag("quick");
        long seed = a.Int("seed", 0);
        int fold = a.Int("fold", 0);
        int iterations = a.Int("iterations", quick ? 2 : 6);
        var methods = a.List("methods") ?? new[] { "emflow", "emflow-paper", "mcflow", "gain", "miwae" };
        var names = a.List("datasets") ?? new[] { "concrete" };
        var dataDir = a.Get("data-dir") ?? Path.Combine(TablesBench.RepoRoot(), "..", "shared", "data");
        var outPath = a.Get("out") ?? Path.Combine(TablesBench.RepoRoot(), "bench", "results", quick ? "converge-quick.jsonl" : "converge.jsonl");
        var plotDir = a.Get("plots") ?? Path.Combine(TablesBench.RepoRoot(), "docs");
        var records = new List<ConvergeRecord>();
        foreach (var name in names)
        {
            var (_, values, _) = TablesBench.LoadDataset(name, dataDir);
            var mechanism = a.Get("mechanism") ?? "mcar";
            var options = new ProtocolOptions
            {
                Seed = seed,
                Mechanism = mechanism switch
                {
                    "mcar" => Mechanism.Mcar(0.2),
                    "mar" => Mechanism.Mar(),
                    _ => throw new ArgumentException($"unknown mechanism '{mechanism}'; expected mcar or mar"),
                },
            };
            var table = Protocol.Prepare(values, options);
            // The protocol's own fold assignment (Protocol.Run without a folds file).
            var folds = Protocol.AssignFolds(table.KeptRows.Length, options.Folds, Tensors.deriveSeed(seed, 1));
            var split = Protocol.Split(table, folds, fold);
            var (trainRows, testRows) = (split.TrainRows, split.TestRows);
            double Score(double[,] imputed) => Protocol.HiddenRmse(table, split, imputed);
            ConvergeRecord Point(string method, string budget, double seconds, double rmse, bool selected)
            {
                var rec = new ConvergeRecord(name, table.Values.GetLength(0), table.Values.GetLength(1), options.Mechanism.ToString(), fold, method, budget,
                    seconds, rmse, selected, quick, seed, Report.Machine, DateTime.UtcNow.ToString("yyyy-MM-dd"));
                Console.Error.WriteLine($"  {name} {method} {budget}: {seconds:F1} s, RMSE {rmse:F4}");
                Report.AppendJson(outPath, rec);
                records.Add(rec);
                return rec;
            }
            foreach (var method in methods)
            {
                Console.Error.WriteLine($"{name} fold {fold}: {method}");
                switch (method)
                {
                    case "emflow":
                    case "emflow-paper":
                        {
                            var o = (method == "emflow" ? new EMFlowOptions() : EMFlowOptions.Paper) with { Seed = seed, TorchThreads = 1, Iterations = iterations };
                            if (quick) o = o with { EpochsPerIteration = 2 };
                            using var imputer = new EMFlowImputer(o);
                            imputer.Fit(trainRows);
                            double t = imputer.InitialSeconds;
                            Point(method, "iteration 0", t, Score(imputer.TransformAtIteration(0, testRows)), imputer.SelectedIteration == 0);
                            for (int k = 1; k <= imputer.AvailableIterations; k++)
                            {
                                t += imputer.History[k - 1].Seconds;
                                Point(method, $"iteration {k}", t, Score(imputer.TransformAtIteration(k, testRows)), imputer.SelectedIteration == k);
                            }
                            break;
                        }
                    default:
                        foreach (var (budget, create) in Budgets(method, seed, quick))
                        {
                            using var imputer = create();
                            var sw = Stopwatch.StartNew();
                            imputer.Fit(trainRows);
                            double t = sw.Elapsed.TotalSeconds;
                            Point(method, budget, t, Score(imputer.Transform(testRows)), false);
                        }
                        break;
                }
            }
            Plot(plotDir, name, fold, quick, records.Where(r => r.dataset == name && r.mechanism == options.Mechanism.ToString()).ToList());
        }
        var md = Markdown(records);
        Console.WriteLine(md);
        if (a.Get("markdown") is { } mdPath) File.WriteAllText(mdPath, md);
    }

    /// <summary>Training budgets of each competitor, smallest first; the last is its default (the benchmark's setting).</summary>
    private static IEnumerable<(string Budget, Func<Imputer> Create)> Budgets(string method, long seed, bool quick)
    {
        switch (method)
        {
            case "mcflow":
                foreach (var e in quick ? new[] { 1, 2 } : new[] { 1, 2, 5, 10, 20, 30 })
                    yield return ($"{e} epochs", () => new McFlowImputer(new McFlowOptions { Seed = seed, TorchThreads = 1, Epochs = e }));
                break;
            case "gain":
                foreach (var i in quick ? new[] { 100, 200 } : new[] { 500, 1000, 2000, 5000, 10000 })
                    yield return ($"{i} iterations", () => new GainImputer(new GainOptions { Seed = seed, TorchThreads = 1, Iterations = i }));
                break;
            case "miwae":
                foreach (var e in quick ? new[] { 2, 4 } : new[] { 10, 25, 50, 100, 200 })
                    yield return ($"{e} epochs", () => new MiwaeImputer(new MiwaeOptions { Seed = seed, TorchThreads = 1, Epochs = e }));
                break;
            default:
                throw new ArgumentException($"unknown method '{method}'; expected emflow, emflow-paper, mcflow, gain or miwae");
        }
    }

    /// <summary>Reads bench/results/converge.jsonl and prints its Markdown summary.</summary>
    public static void ReportFile(Args a)
    {
        var path = a.Get("in") ?? Path.Combine(TablesBench.RepoRoot(), "bench", "results", "converge.jsonl");
        var records = File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<ConvergeRecord>(l)!).ToList();
        var md = Markdown(records);
        Console.WriteLine(md);
        if (a.Get("readme") is { } readme) TablesBench.ReplaceSection(readme, "converge", md);
        if (a.Flag("plot"))
            foreach (var g in records.GroupBy(r => (r.dataset, r.mechanism, r.fold, r.quick)))
                Plot(a.Get("plots") ?? Path.Combine(TablesBench.RepoRoot(), "docs"), g.Key.dataset, g.Key.fold, g.Key.quick, g.ToList());
    }

    /// <summary>Per method: the final RMSE, the best one, and the training seconds to come within 1% of each.</summary>
    public static string Markdown(IReadOnlyList<ConvergeRecord> records)
    {
        var rows = records.GroupBy(r => (r.dataset, r.mechanism, r.fold, r.method)).Select(g =>
        {
            var pts = g.OrderBy(r => r.train_seconds).ToList();
            var last = pts[^1];
            var reached = pts.First(r => r.rmse <= last.rmse * 1.01);
            var best = pts.MinBy(r => r.rmse)!;
            var nearBest = pts.First(r => r.rmse <= best.rmse * 1.01);
            return (IReadOnlyList<string>)new[]
            {
                $"{g.Key.dataset} ({last.rows} x {last.columns}), {g.Key.mechanism}, fold {g.Key.fold}", g.Key.method, $"{pts.Count}",
                string.Join(" → ", pts.Select(r => $"{r.rmse:F3}")),
                $"{last.rmse:F4} ({last.budget}, {last.train_seconds:F1} s)", $"{best.rmse:F4} ({best.budget})",
                $"{reached.train_seconds:F1} s ({reached.budget})", $"{nearBest.train_seconds:F1} s ({nearBest.budget})",
            };
        });
        return "Test RMSE (one fold) against training seconds; the last two columns give the first budget whose RMSE is within 1% of the method's final, and of its best\n\n"
            + Report.Table(new[] { "data", "method", "points", "RMSE by budget", "final", "best", "time to within 1% of final", "time to within 1% of best" }, rows);
    }

    private static void Plot(string folder, string dataset, int fold, bool quick, IReadOnlyList<ConvergeRecord> records)
    {
        if (records.Count == 0) return;
        Directory.CreateDirectory(folder);
        var plot = new Plot();
        var palette = new[] { Colors.C0, Colors.C1, Colors.C2, Colors.C3, Colors.C4, Colors.C5 };
        int k = 0;
        foreach (var g in records.GroupBy(r => r.method))
        {
            var pts = g.OrderBy(r => r.train_seconds).ToArray();
            var s = plot.Add.Scatter(pts.Select(r => r.train_seconds).ToArray(), pts.Select(r => r.rmse).ToArray());
            s.LegendText = g.Key;
            s.Color = palette[k++ % palette.Length];
            s.MarkerSize = 6;
        }
        var first = records[0];
        plot.Title($"{dataset} ({first.rows} x {first.columns}), {first.mechanism}, fold {fold}: test RMSE against training time");
        plot.XLabel("training seconds (one torch thread)");
        plot.YLabel("RMSE on hidden test entries, [0, 1] scale");
        plot.ShowLegend();
        var tag = first.mechanism == "mcar0.2" ? "" : "-" + first.mechanism;
        var path = Path.Combine(folder, $"convergence-{dataset}{tag}{(quick ? "-quick" : "")}.png");
        plot.SavePng(path, 900, 500);
        Console.Error.WriteLine($"wrote {path}");
    }
}
