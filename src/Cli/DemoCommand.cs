using System.Diagnostics;
using Spectre.Console;

namespace EMFlow.Cli;

/// <summary>
/// <c>emflow demo</c>: hides 20% of a seeded non-Gaussian table (made in code, nothing to download), imputes it with
/// the mean, Gaussian EM and EMFlow, and prints the RMSE of each on the hidden cells, on the [0, 1] scale of the
/// complete data as the paper reports it.
/// </summary>
internal static class DemoCommand
{
    public const string DefaultReport = "emflow-demo-report.html";
    private const double MissingRate = 0.2;

    public static void Run(string[] words, IAnsiConsole console, bool interactive, TextWriter stderr, CancellationToken ct)
    {
        var a = new Arguments(words, new HashSet<string> { "--quiet", "--no-report" }, new Dictionary<string, string> { ["-q"] = "--quiet" });
        int rows = a.Int("--rows", 3000, min: 50);
        long seed = a.Long("--seed", 1);
        int threads = a.Int("--threads", 1, min: 1);
        // The library's flow (width 128) for half its epochs, so that the demo is a short wait on two cores;
        // --epochs 40 gives the library's defaults exactly.
        int epochs = a.Int("--epochs", 20, min: 1);
        int width = a.Int("--hidden-width", 128, min: 1);
        bool quiet = a.Flag("--quiet");
        bool noReport = a.Flag("--no-report");
        string? report = a.Text("--report");
        string? pngDir = a.Text("--png-dir");
        a.RejectUnknown(0);
        if (noReport && report is not null) throw new UsageException("--report and --no-report contradict each other");
        report ??= noReport ? null : DefaultReport;

        var clock = Stopwatch.StartNew();
        var features = Synthetic.nonlinearColumns;
        int p = features.Length;
        using var completeTensor = Synthetic.nonlinear(seed, rows, 0.1);
        using var maskTensor = Missingness.mcar(Tensors.deriveSeed(seed, 1), MissingRate, rows, p);
        var complete = Tensors.toArray2D(completeTensor);
        var mask = Tensors.toArray2D(maskTensor);
        var incomplete = (double[,])complete.Clone();
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < p; j++)
                if (mask[i, j] > 0.5) incomplete[i, j] = double.NaN;

        if (!quiet)
            console.MarkupLine(Markup.Escape($"Synthetic table: {rows} rows x {p} features (seed {seed}), {MissingRate:P0} of cells hidden at random (MCAR)."));

        var scores = new List<MethodScore>();
        double[,]? emflowImputed = null;
        ReportData? details = null;
        using (var mean = new MeanImputer())
            scores.Add(Score("Mean", complete, mask, () => mean.FitTransform(incomplete, cancellationToken: ct)));
        using (var gaussian = new GaussianEmImputer())
            scores.Add(Score("Gaussian EM", complete, mask, () => gaussian.FitTransform(incomplete, cancellationToken: ct)));
        using (var emflow = new EMFlowImputer(new EMFlowOptions { Seed = seed, TorchThreads = threads, EpochsPerIteration = epochs, HiddenWidth = width }))
        {
            scores.Add(Score("EMFlow", complete, mask, () =>
            {
                double[,]? result = null;
                Fitting.Run(console, interactive && !quiet, "EMFlow", progress =>
                    result = emflowImputed = emflow.FitTransform(incomplete, progress: progress, cancellationToken: ct), quiet ? null : stderr);
                return result!;
            }));
            details = new ReportData
            {
                Title = "EMFlow demo: synthetic non-Gaussian table",
                Notes = new[]
                {
                    $"{rows} rows x {p} features, seed {seed}; {MissingRate:P0} of the cells hidden completely at random.",
                    "RMSE over the hidden cells, on the [0, 1] scale of the complete data (per-feature min-max).",
                    $"EMFlow kept iteration {emflow.SelectedIteration} of {emflow.IterationsRun} (iteration 0 = its start, Gaussian EM and kNN blended per feature), chosen on held-out observed cells.",
                },
                Features = features,
                Incomplete = incomplete,
                Imputed = emflowImputed!,
                Scores = scores,
                Epochs = emflow.EpochHistory.ToArray(),
                Iterations = emflow.History.ToArray(),
                InitialValidationRmse = emflow.InitialValidationRmse,
                SelectedIteration = emflow.SelectedIteration,
                LatentCovariance = emflow.Sigma,
            };
        }

        if (!quiet)
        {
            var table = new Spectre.Console.Table().Border(App.TableBorderFor(console)).AddColumn("Method").AddColumn(new TableColumn("RMSE").RightAligned()).AddColumn(new TableColumn("Seconds").RightAligned());
            foreach (var s in scores)
                table.AddRow(s.Method, s.Rmse.ToString("F4", System.Globalization.CultureInfo.InvariantCulture), s.Seconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture));
            console.Write(table);
        }
        if (report is not null)
        {
            HtmlReport.Write(report, details);
            if (!quiet) console.MarkupLine(Markup.Escape($"Report: {Path.GetFullPath(report)}"));
        }
        if (pngDir is not null)
        {
            var files = PngReport.Write(pngDir, details);
            if (!quiet) console.MarkupLine(Markup.Escape($"Figures: {files.Count} PNG files in {Path.GetFullPath(pngDir)}"));
        }
        if (!quiet) console.MarkupLine(Markup.Escape($"Done in {clock.Elapsed.TotalSeconds:F1} s."));
    }

    private static MethodScore Score(string method, double[,] complete, double[,] mask, Func<double[,]> impute)
    {
        var watch = Stopwatch.StartNew();
        var imputed = impute();
        double seconds = watch.Elapsed.TotalSeconds;
        using var scope = TorchSharp.torch.NewDisposeScope();
        var truth = Tensors.ofArray2D(complete);
        // The scale of the complete data, as in the paper: the same yardstick for every method.
        var scaler = Scaler.fit(truth, TorchSharp.torch.zeros_like(truth));
        var t = Scaler.transform(scaler, truth);
        var x = Scaler.transform(scaler, Tensors.ofArray2D(imputed));
        var m = Tensors.ofArray2D(mask);
        return new MethodScore(method, Metrics.rmse(t, x, m), seconds, Metrics.perFeatureRmse(t, x, m));
    }
}
