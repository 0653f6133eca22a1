using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace EMFlow.Bench;

/// <summary>
/// The latent E-step of one batch: <c>Gaussian.conditional</c> (one batched Cholesky per group of rows, on the smaller
/// of each row's observed and missing blocks) against the textbook per-row computation with an explicit inverse of
/// Σ_oo. Both return the conditional means and the sum of the conditional covariances.
/// </summary>
internal static class EStepBench
{
    public static void Run(Args a)
    {
        set_num_threads(1);
        int repeats = a.Int("repeats", 5), batch = a.Int("batch", 256);
        var cases = new (int P, double Rate)[] { (16, 0.2), (90, 0.2), (784, 0.1), (784, 0.2), (784, 0.3), (784, 0.5), (784, 0.7), (784, 0.8), (784, 0.9) };
        var rows = new List<IReadOnlyList<string>>();
        Console.WriteLine($"E-step, batch {batch}, MCAR masks (each row its own pattern), {repeats} repeats, median; 1 torch thread; {Report.Machine}");
        foreach (var (p, rate) in cases)
        {
            using var scope = NewDisposeScope();
            using var gen = new Generator((ulong)(1000 + p));
            var a0 = randn(new long[] { p, p }, dtype: float64, generator: gen);
            var sigma = a0.matmul(a0.T) / p + eye(p, dtype: float64) * 0.5;
            var mu = randn(new long[] { p }, dtype: float64, generator: gen);
            var z = randn(new long[] { batch, p }, dtype: float64, generator: gen);
            var mask = Missingness.mcar(Tensors.deriveSeed(p, (int)(rate * 10)), rate, batch, p);

            var fast = Gaussian.conditional(mu, sigma, z, mask);
            var (naiveImp, naiveCov) = Naive(mu, sigma, z, mask);
            double diffImp = (fast.Imputed - naiveImp).abs().max().item<double>();
            double diffCov = (fast.CovarianceSum - naiveCov).abs().max().item<double>();

            // The naive form at p = 784 costs seconds per call: fewer repeats there keep the run short.
            int naiveRepeats = p >= 784 ? Math.Min(repeats, 3) : repeats;
            var tFast = Time(repeats, () => { var c = Gaussian.conditional(mu, sigma, z, mask); c.Imputed.Dispose(); c.CovarianceSum.Dispose(); });
            var tNaive = Time(naiveRepeats, () => { var (i, c) = Naive(mu, sigma, z, mask); i.Dispose(); c.Dispose(); });
            double realised = mask.mean().item<double>();
            var ratio = tNaive / tFast;
            rows.Add(new[] { p.ToString(), $"{rate:F1} ({realised:F3})", Ms(tFast), Ms(tNaive), $"{ratio:F1}x", $"{Math.Max(diffImp, diffCov):E1}" });
            Report.AppendJson(a.Get("out"), new
            {
                bench = "estep", p, batch, mcar = rate, realised_rate = realised, repeats, naive_repeats = naiveRepeats,
                batched_ms_median = tFast * 1e3, naive_ms_median = tNaive * 1e3, speedup = ratio,
                max_abs_diff_imputed = diffImp, max_abs_diff_cov_sum = diffCov, threads = 1,
                machine = Report.Machine, date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
            });
            Console.Error.WriteLine($"  p = {p}, MCAR {rate}: batched {Ms(tFast)} ms, naive {Ms(tNaive)} ms, {ratio:F1}x, max |diff| {Math.Max(diffImp, diffCov):E1}");
        }
        Console.WriteLine();
        Console.WriteLine(Report.Table(new[] { "p", "MCAR (realised)", "batched ms", "naive per-row ms", "speed-up", "max abs diff" }, rows));
    }

    private static string Ms(double seconds) => (seconds * 1e3).ToString(seconds < 0.01 ? "F2" : "F1");

    /// <summary>Median seconds of <paramref name="repeats"/> calls after one warm-up call.</summary>
    private static double Time(int repeats, Action action)
    {
        action();
        var times = new List<double>();
        for (int r = 0; r < repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            action();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        return Report.Median(times);
    }

    /// <summary>Row by row: ẑ_m = μ_m + Σ_mo Σ_oo⁻¹ (z_o − μ_o), C = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om, with Σ_oo⁻¹ formed explicitly.</summary>
    private static (Tensor Imputed, Tensor CovSum) Naive(Tensor mu, Tensor sigma, Tensor z, Tensor mask)
    {
        long b = z.shape[0], p = z.shape[1];
        var imputed = z.clone();
        var covSum = zeros(p, p, dtype: float64);
        var m = mask.gt(0.5);
        for (long i = 0; i < b; i++)
        {
            using var scope = NewDisposeScope();
            var row = m[i];
            var mis = row.nonzero().squeeze(1);
            if (mis.shape[0] == 0) continue;
            var obs = row.logical_not().nonzero().squeeze(1);
            var muM = mu.index_select(0, mis);
            var smm = sigma.index_select(0, mis).index_select(1, mis);
            Tensor mean, c;
            if (obs.shape[0] == 0)
            {
                mean = muM;
                c = smm;
            }
            else
            {
                var soo = sigma.index_select(0, obs).index_select(1, obs);
                var smo = sigma.index_select(0, mis).index_select(1, obs);
                var inv = linalg.inv(soo);
                var k = smo.matmul(inv);
                mean = muM + k.matmul(z[i].index_select(0, obs) - mu.index_select(0, obs));
                c = smm - k.matmul(smo.T);
            }
            imputed[i].index_copy_(0, mis, mean);
            var rowsOfC = zeros(mis.shape[0], p, dtype: float64).index_copy_(1, mis, c);
            covSum.index_add_(0, mis, rowsOfC, 1.0);
        }
        return (imputed, covSum);
    }
}
