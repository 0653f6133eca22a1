using System.Diagnostics;
using EMFlow.Evaluation;
using static TorchSharp.torch;

namespace EMFlow.Bench;

/// <summary>
/// Whole fits: EMFlow with default options and Gaussian EM on the same synthetic table in one process, with wall time,
/// time per EMFlow iteration, peak working set and rows per second for Fit and for Transform of new rows.
/// </summary>
internal static class FitBench
{
    public static void Run(Args a)
    {
        set_num_threads(1);
        int rows16 = a.Int("rows", 20000), rows90 = a.Int("rows90", 5000), newRows = a.Int("transform-rows", 5000);
        var lines = new List<IReadOnlyList<string>>();
        Console.WriteLine($"Fit and transform, 20% MCAR, EMFlow default options (1 torch thread) and Gaussian EM; {Report.Machine}");
        foreach (var (p, n) in new[] { (16, rows16), (90, rows90) })
        {
            var (train, trainTruth, _) = Table(11, n, p);
            var (test, testTruth, hidden) = Table(12, newRows, p);
            var spans = Spans(trainTruth);
            foreach (var name in new[] { "gaussian-em", "emflow" })
            {
                GC.Collect();
                using Imputer imputer = name == "emflow"
                    ? new EMFlowImputer(new EMFlowOptions { Seed = 1, TorchThreads = 1 })
                    : new GaussianEmImputer();
                // RMSE over the new rows' missing cells, each column divided by the training table's range.
                var (_, fit, transform, rmse, _) = Scoring.FitAndScore(imputer, train, test, testTruth, hidden, spans);
                long peak;
                using (var proc = Process.GetCurrentProcess()) peak = proc.PeakWorkingSet64;
                var perIteration = imputer is EMFlowImputer e ? e.History.Select(h => h.Seconds).ToArray() : Array.Empty<double>();
                string iterations = imputer switch
                {
                    EMFlowImputer f => $"{f.IterationsRun} (kept {f.SelectedIteration}); {string.Join(" / ", perIteration.Select(s => $"{s:F1}"))} s",
                    GaussianEmImputer g => $"{g.IterationsRun} sweeps",
                    _ => "",
                };
                lines.Add(new[]
                {
                    $"{n} x {p}", name, $"{fit:F1}", iterations, $"{n / fit:F0}", $"{newRows / transform:F0}", $"{peak / 1048576.0:F0}", $"{rmse:F4}",
                });
                Report.AppendJson(a.Get("out"), new
                {
                    bench = "fit", method = name, rows = n, p, mcar = 0.2, fit_seconds = fit, transform_rows = newRows,
                    transform_seconds = transform, fit_rows_per_second = n / fit, transform_rows_per_second = newRows / transform,
                    iteration_seconds = perIteration, process_peak_working_set_mb = peak / 1048576.0, new_rows_rmse = rmse,
                    threads = 1, machine = Report.Machine, date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
                });
                Console.Error.WriteLine($"  {n} x {p} {name}: fit {fit:F1} s, transform {transform:F2} s, RMSE on new rows {rmse:F4}");
            }
        }
        Console.WriteLine();
        Console.WriteLine(Report.Table(new[] { "table", "method", "fit s", "iterations (s each)", "fit rows/s", "transform rows/s", "process peak WS MB", "RMSE new rows [0,1]" }, lines));
        Console.WriteLine("Process peak working set is cumulative over the process: each row's figure includes everything run before it.");
    }

    /// <summary>A nonlinear table (n, p): blocks of Synthetic.nonlinear (7 columns each) with different seeds, the
    /// remaining columns from Synthetic.gaussian; 20% MCAR as NaN. Returns the incomplete table, the truth and the
    /// missing cells.</summary>
    public static (double[,] WithNaN, double[,] Truth, bool[,] Missing) Table(long seed, int n, int p)
    {
        using var scope = NewDisposeScope();
        var blocks = new List<Tensor>();
        int k = 0;
        for (; (k + 1) * 7 <= p; k++) blocks.Add(Synthetic.nonlinear(Tensors.deriveSeed(seed, k), n, 0.1));
        if (p - 7 * k > 0) blocks.Add(Synthetic.gaussian(Tensors.deriveSeed(seed, k), n, p - 7 * k));
        var truth = Tensors.toArray2D(cat(blocks.ToArray(), 1));
        var mask = Tensors.toMask2D(Missingness.mcar(Tensors.deriveSeed(seed, 100), 0.2, n, p));
        var x = (double[,])truth.Clone();
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
                if (mask[i, j]) x[i, j] = double.NaN;
        return (x, truth, mask);
    }

    /// <summary>Each column's range (max − min; 1 for a constant column).</summary>
    private static double[] Spans(double[,] x) =>
        Enumerable.Range(0, x.GetLength(1)).Select(j =>
        {
            double lo = double.MaxValue, hi = double.MinValue;
            for (int i = 0; i < x.GetLength(0); i++) { lo = Math.Min(lo, x[i, j]); hi = Math.Max(hi, x[i, j]); }
            return hi > lo ? hi - lo : 1.0;
        }).ToArray();
}
