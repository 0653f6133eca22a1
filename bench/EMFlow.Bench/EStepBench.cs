using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace EMFlow.Bench;

/// <summary>
/// The latent E-step of one batch: <c>Gaussian.conditional</c> (one batched Cholesky per group of rows, on the smaller
/// of each row's observed and missing blocks) against the textbook per-row computation with an explicit inverse of
/// Σ_oo. Both return the conditional means and the sum of the conditional covariances. Next to them, in the same
/// process: the dense matrix-multiply rate, the rate of batched small-block products and factorisations of the
/// E-step's block sizes, and the achieved GFLOP/s of the E-step and of Gaussian-EM fits under the cost model of
/// <see cref="Cost"/>.
/// </summary>
internal static class EStepBench
{
    public static void Run(Args a)
    {
        set_num_threads(1);
        int repeats = a.Int("repeats", 5), batch = a.Int("batch", 256);
        bool naive = !a.Flag("no-naive");
        // Reference rates are cheap to time: more calls give a steadier median on a shared machine.
        int refRepeats = Math.Max(repeats, 5);
        var cases = new (int P, double Rate)[] { (16, 0.2), (90, 0.2), (784, 0.1), (784, 0.2), (784, 0.3), (784, 0.5), (784, 0.7), (784, 0.8), (784, 0.9) };
        string threads = $"{get_num_threads()} torch thread(s), OMP_NUM_THREADS={Environment.GetEnvironmentVariable("OMP_NUM_THREADS") ?? "unset"}";
        Console.WriteLine($"E-step, batch {batch}, MCAR masks (each row its own pattern), {repeats} repeats, median; {threads}; {Report.Machine}");

        var refRows = new List<IReadOnlyList<string>>();
        double matmulRate = 0;
        foreach (var n in new[] { 64, 256, 1024 })
        {
            double t = MatmulSeconds(n, refRepeats);
            double rate = 2.0 * n * n * n / t / 1e9;
            // The largest product is the machine's dense rate the E-step is compared with.
            if (n == 1024) matmulRate = rate;
            refRows.Add(new[] { "matmul", $"({n}, {n}) x ({n}, {n})", Ms(t), $"{rate:F2}" });
            Report.AppendJson(a.Get("out"), new
            {
                bench = "estep-matmul", n, repeats = refRepeats, ms_median = t * 1e3, flops = 2.0 * n * n * n, gflops = rate,
                threads = get_num_threads(), machine = Report.Machine, date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
            });
        }
        foreach (var k in new[] { 8, 45, 160 })
        {
            // As many blocks as one chunk of the E-step holds: 2^19 doubles, at most a batch.
            int count = (int)Math.Max(1, Math.Min(batch, (1L << 19) / (k * k)));
            foreach (var (op, t, flops) in BlockSeconds(k, count, refRepeats))
            {
                double? rate = flops > 0 ? flops / t / 1e9 : null;
                refRows.Add(new[] { op, $"{count} x ({k}, {k})", Ms(t), rate is { } r ? $"{r:F2}" : "(no flops)" });
                Report.AppendJson(a.Get("out"), new
                {
                    bench = "estep-blocks", op, k, count, repeats = refRepeats, ms_median = t * 1e3, flops, gflops = rate,
                    ratio_to_matmul = rate / matmulRate, threads = get_num_threads(), machine = Report.Machine,
                    date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
                });
            }
        }
        double call = CallSeconds(refRepeats);
        refRows.Add(new[] { "one torch call (add)", "(1) + (1)", $"{call * 1e3:F4}", "(overhead)" });
        Report.AppendJson(a.Get("out"), new
        {
            bench = "estep-call", op = "add of two 1-element tensors", repeats = refRepeats, us_median = call * 1e6,
            threads = get_num_threads(), machine = Report.Machine, date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
        });
        Console.WriteLine();
        Console.WriteLine(Report.Table(new[] { "reference (float64)", "shape", "ms", "GFLOP/s" }, refRows));

        var rows = new List<IReadOnlyList<string>>();
        foreach (var (p, rate) in cases)
        {
            using var scope = NewDisposeScope();
            using var gen = new Generator((ulong)(1000 + p));
            var a0 = randn(new long[] { p, p }, dtype: float64, generator: gen);
            var sigma = Tensors.plus(Tensors.divideBy(p, a0.matmul(a0.T)), Tensors.scaleBy(0.5, eye(p, dtype: float64)));
            var mu = randn(new long[] { p }, dtype: float64, generator: gen);
            var z = randn(new long[] { batch, p }, dtype: float64, generator: gen);
            var mask = Missingness.mcar(Tensors.deriveSeed(p, (int)(rate * 10)), rate, batch, p);

            var fast = Gaussian.conditional(mu, sigma, z, mask);
            double diffImp = double.NaN, diffCov = double.NaN, tNaive = double.NaN;
            // The naive form at p = 784 costs seconds per call: fewer repeats there keep the run short.
            int naiveRepeats = p >= 784 ? Math.Min(repeats, 3) : repeats;
            if (naive)
            {
                var (naiveImp, naiveCov) = Naive(mu, sigma, z, mask);
                diffImp = (fast.Imputed - naiveImp).abs().max().item<double>();
                diffCov = (fast.CovarianceSum - naiveCov).abs().max().item<double>();
            }

            var tFast = Time(repeats, () => { var c = Gaussian.conditional(mu, sigma, z, mask); c.Imputed.Dispose(); c.CovarianceSum.Dispose(); c.LogLikelihood.Dispose(); });
            if (naive) tNaive = Time(naiveRepeats, () => { var (i, c) = Naive(mu, sigma, z, mask); i.Dispose(); c.Dispose(); });
            double realised = mask.mean().item<double>();
            var cost = Cost(p, MissingCounts(mask));
            double gflops = cost.Total / tFast / 1e9;
            var ratio = tNaive / tFast;
            string diff = naive ? $"{Math.Max(diffImp, diffCov):E1}" : "-";
            rows.Add(new[]
            {
                p.ToString(), $"{rate:F1} ({realised:F3})", Ms(tFast), naive ? Ms(tNaive) : "-", naive ? $"{ratio:F1}x" : "-", diff,
                $"{cost.MeanBlock:F1}", $"{cost.Total / 1e6:F1}", $"{gflops:F2}", Percent(gflops / matmulRate),
            });
            Report.AppendJson(a.Get("out"), new
            {
                bench = "estep", p, batch, mcar = rate, realised_rate = realised, repeats, naive_repeats = naive ? naiveRepeats : 0,
                batched_ms_median = tFast * 1e3, naive_ms_median = naive ? tNaive * 1e3 : (double?)null, speedup = naive ? ratio : (double?)null,
                max_abs_diff_imputed = naive ? diffImp : (double?)null, max_abs_diff_cov_sum = naive ? diffCov : (double?)null,
                flops = cost.Total, flops_blocks = cost.Blocks, flops_blocks_unpadded = cost.BlocksUnpadded, flops_per_batch = cost.PerBatch,
                flops_row_products = cost.RowProducts, precision_rows = cost.PrecisionRows, observed_rows = cost.ObservedRows,
                chunks = cost.Chunks, mean_padded_block = cost.MeanBlock, gflops, matmul_gflops = matmulRate, ratio_to_matmul = gflops / matmulRate,
                threads = 1, machine = Report.Machine, date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
            });
            Console.Error.WriteLine($"  p = {p}, MCAR {rate}: batched {Ms(tFast)} ms ({gflops:F2} GFLOP/s), naive {(naive ? Ms(tNaive) : "-")} ms, max |diff| {diff}");
        }
        Console.WriteLine();
        Console.WriteLine(Report.Table(new[] { "p", "MCAR (realised)", "batched ms", "naive per-row ms", "speed-up", "max abs diff", "mean block K", "MFLOP", "GFLOP/s", "of matmul" }, rows));

        if (!a.Flag("no-fit"))
        {
            var fitRows = new List<IReadOnlyList<string>>();
            foreach (var (p, n) in new[] { (16, a.Int("fit-rows", 20000)), (90, a.Int("fit-rows90", 5000)) })
                fitRows.Add(Fit(a, p, n, Math.Min(repeats, 3), matmulRate));
            Console.WriteLine();
            Console.WriteLine(Report.Table(new[] { "Gaussian EM fit, 20% MCAR", "sweeps", "fit s", "ms per sweep", "MFLOP per sweep", "GFLOP/s", "of matmul" }, fitRows));
        }

        double after = 2.0 * 1024 * 1024 * 1024 / MatmulSeconds(1024, refRepeats) / 1e9;
        Console.WriteLine($"matmul (1024, 1024) x (1024, 1024): {matmulRate:F2} GFLOP/s at the start, {after:F2} at the end; the ratios use the first.");
        Report.AppendJson(a.Get("out"), new
        {
            bench = "estep-matmul-end", n = 1024, gflops = after, gflops_start = matmulRate, threads = get_num_threads(),
            machine = Report.Machine, date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
        });
    }

    /// <summary><c>GaussianEm.fitBatch GaussianEm.defaults</c> on the <c>fit</c> bench's training table; median of
    /// <paramref name="repeats"/> fits after one warm-up fit. Returns the table row.</summary>
    private static IReadOnlyList<string> Fit(Args a, int p, int n, int repeats, double matmulRate)
    {
        var (withNaN, _, missing) = FitBench.Table(11, n, p);
        using var scope = NewDisposeScope();
        var x = Tensors.ofArray2D(withNaN);
        var mask = Tensors.nanMask(x);
        var counts = new int[n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
                if (missing[i, j]) counts[i]++;
        GaussianEm.Fit? fit = null;
        var seconds = Time(repeats, () =>
        {
            using var inner = NewDisposeScope();
            fit = GaussianEm.fitBatch(GaussianEm.defaults, x, mask);
        });
        int sweeps = fit!.Iterations;
        // fitBatch runs one E-step more than M-steps: the last E-step measures the likelihood that stops it.
        int eSteps = sweeps + 1;
        var eStep = FitEStepCost(p, counts);
        double mStep = MStepFlops(n, p);
        double flops = eSteps * eStep.Total + sweeps * mStep;
        double gflops = flops / seconds / 1e9;
        Report.AppendJson(a.Get("out"), new
        {
            bench = "estep-fit", method = "GaussianEm.fitBatch defaults", rows = n, p, mcar = 0.2, realised_rate = counts.Sum() / (double)(n * p),
            repeats, fit_seconds_median = seconds, sweeps, e_steps = eSteps, converged = fit.Converged,
            sweep_ms = seconds / eSteps * 1e3, e_step_slice_rows = GaussianEm.eStepRows(p), flops, flops_e_step = eStep.Total,
            flops_e_step_blocks = eStep.Blocks, flops_e_step_blocks_unpadded = eStep.BlocksUnpadded, flops_e_step_per_batch = eStep.PerBatch,
            flops_e_step_row_products = eStep.RowProducts, flops_m_step = mStep, mean_padded_block = eStep.MeanBlock,
            gflops, matmul_gflops = matmulRate, ratio_to_matmul = gflops / matmulRate,
            threads = 1, machine = Report.Machine, date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
        });
        Console.Error.WriteLine($"  fit {n} x {p}: {sweeps} sweeps in {seconds:F2} s, {gflops:F2} GFLOP/s");
        return new[]
        {
            $"{n} x {p}", $"{sweeps}{(fit.Converged ? "" : " (not converged)")}", $"{seconds:F2}", Ms(seconds / eSteps),
            $"{(eStep.Total + mStep) / 1e6:F1}", $"{gflops:F2}", Percent(gflops / matmulRate),
        };
    }

    /// <summary>The cost of one E-step over all rows as <c>GaussianEm.conditional</c> runs it: one
    /// <c>Gaussian.conditional</c> per slice of <c>GaussianEm.eStepRows p</c> rows, each paying its own per-batch terms.</summary>
    private static EStepCost FitEStepCost(int p, int[] counts)
    {
        int step = (int)GaussianEm.eStepRows(p);
        var total = new EStepCost();
        for (int s = 0; s < counts.Length; s += step)
            total = total.Plus(Cost(p, counts.AsSpan(s, Math.Min(step, counts.Length - s)).ToArray()));
        return total;
    }

    /// <summary>M-step (OnlineEm.localEstimate): the Gram matrix of the centred rows, 2np², and the mean and centring,
    /// 2np. The O(p²) additions, scaling, symmetrising and ridge are left out.</summary>
    private static double MStepFlops(int n, int p) => 2.0 * n * p * p + 2.0 * n * p;

    /// <summary>Flops of one <c>Gaussian.conditional</c> call, by term (see <see cref="Cost"/>).</summary>
    private readonly record struct EStepCost(
        double Blocks, double BlocksUnpadded, double PerBatch, double RowProducts, int PrecisionRows, int ObservedRows, int Chunks, double BlockRowsK)
    {
        public double Total => Blocks + PerBatch + RowProducts;

        /// <summary>Mean padded block size over the rows that have one.</summary>
        public double MeanBlock => PrecisionRows + ObservedRows > 0 ? BlockRowsK / (PrecisionRows + ObservedRows) : 0;

        public EStepCost Plus(EStepCost o) => new(Blocks + o.Blocks, BlocksUnpadded + o.BlocksUnpadded, PerBatch + o.PerBatch,
            RowProducts + o.RowProducts, PrecisionRows + o.PrecisionRows, ObservedRows + o.ObservedRows, Chunks + o.Chunks, BlockRowsK + o.BlockRowsK);
    }

    /// <summary>
    /// Floating-point operations (a multiply and an add count two) of one <c>Gaussian.conditional</c> call on B rows of
    /// p features with the given missing counts, counted the way the batched form runs:
    /// <list type="bullet">
    /// <item>Blocks, per row, on its chunk's padded K × K block (LAPACK works on the padding too): Cholesky K³/3,
    /// cholesky_inverse (potri: triangular inverse and product) 2K³/3, the (K, K) × (K, 1) product 2K², the index_add of
    /// the K × K inverse into the covariance accumulator K². <c>BlocksUnpadded</c> is the same on each row's own block.</item>
    /// <item>Per batch: the Cholesky of Σ, p³/3; for the precision form Λ = cholesky_inverse, 2p³/3; for the covariance
    /// form Σ (Σ_i W_i) Σ, 4p³.</item>
    /// <item>Per row, p² terms: the triangular solve of the log-density, Bp²; (z − μ)Λ over the precision rows,
    /// 2 n_P p²; the spread times Σ over the covariance rows, 2 n_O p².</item>
    /// </list>
    /// Not counted: gathers, scatters, copies, the sort of each chunk's mask, index arithmetic, and elementwise O(Bp)
    /// and O(p²) work (masking, centring, symmetrising, logs of diagonals). Which form each row takes, the sort by block
    /// size and the chunking mirror the private <c>conditionalCore</c> and <c>forChunks</c> of Gaussian.fs, which the
    /// bench cannot call; a change there needs the same change here.
    /// </summary>
    private static EStepCost Cost(int p, int[] missing)
    {
        int b = missing.Length;
        double pf = p, p3 = pf * pf * pf, p2 = pf * pf;
        static double Choice(double k) => k * k * k + 50 * k * k;
        const double callCost = 5e6;
        var precisionCost = missing.Select(m => Choice(m)).ToArray();
        var observedCost = missing.Select(m => m > 0 ? Choice(p - m) : 0.0).ToArray();
        double precisionFixed = 2.0 / 3.0 * p3 + callCost, observedFixed = 4.0 * p3 + callCost;
        double allPrecision = precisionCost.Sum() + precisionFixed, allObserved = observedCost.Sum() + observedFixed;
        double split = precisionCost.Zip(observedCost, Math.Min).Sum() + precisionFixed + observedFixed;
        Func<int, bool> usePrecision =
            split < allPrecision && split < allObserved ? i => precisionCost[i] <= observedCost[i]
            : allPrecision <= allObserved ? _ => true : _ => false;
        var withMissing = Enumerable.Range(0, b).Where(i => missing[i] > 0).ToArray();
        var precisionSizes = withMissing.Where(usePrecision).Select(i => missing[i]).Order().ToArray();
        var observedSizes = withMissing.Where(i => !usePrecision(i)).Select(i => p - missing[i]).Order().ToArray();

        double blocks = 0, unpadded = 0, blockRowsK = 0;
        int chunks = 0;
        static double BlockFlops(double k) => k * k * k + 3 * k * k;
        foreach (var sizes in new[] { precisionSizes, observedSizes })
        {
            int count = sizes.Length, start = 0;
            while (start < count)
            {
                int Fits(int len) => (int)Math.Max(1, Math.Min(count - start, (1L << 19) / ((long)Math.Max(1, sizes[start + len - 1]) * Math.Max(1, sizes[start + len - 1]))));
                int len = Fits(1);
                while (Fits(len) < len) len = Fits(len);
                int k = Math.Max(1, sizes[start + len - 1]);
                blocks += len * BlockFlops(k);
                blockRowsK += (double)len * k;
                for (int i = start; i < start + len; i++) unpadded += BlockFlops(sizes[i]);
                chunks++;
                start += len;
            }
        }
        int nP = precisionSizes.Length, nO = observedSizes.Length;
        double perBatch = p3 / 3 + (nP > 0 ? 2.0 / 3.0 * p3 : 0) + (nO > 0 ? 4.0 * p3 : 0);
        double rowProducts = b * p2 + 2.0 * nP * p2 + 2.0 * nO * p2;
        return new EStepCost(blocks, unpadded, perBatch, rowProducts, nP, nO, chunks, blockRowsK);
    }

    private static int[] MissingCounts(Tensor mask) =>
        Tensors.toArray(mask.sum(1)).Select(v => (int)Math.Round(v)).ToArray();

    /// <summary>Median seconds of one (n, n) × (n, n) float64 product.</summary>
    private static double MatmulSeconds(int n, int repeats)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(7);
        var x = randn(new long[] { n, n }, dtype: float64, generator: gen);
        var y = randn(new long[] { n, n }, dtype: float64, generator: gen);
        return Time(repeats, () => x.matmul(y).Dispose());
    }

    /// <summary>Median seconds of one torch call that does next to no work: what every one of the E-step's few dozen
    /// calls per chunk costs before any arithmetic.</summary>
    private static double CallSeconds(int repeats)
    {
        const int calls = 1000;
        using var scope = NewDisposeScope();
        var x = ones(1, dtype: float64);
        return Time(repeats, () => { for (int i = 0; i < calls; i++) Tensors.plus(x, x).Dispose(); }) / calls;
    }

    /// <summary>Median seconds of the E-step's batched calls on <paramref name="count"/> SPD blocks K × K: bmm, Cholesky,
    /// Cholesky then cholesky_inverse (the E-step's blockInverse), and the gather of the blocks out of a (p, p) matrix
    /// (p = 2K, random positions) that precedes them, which moves data and does no flops.</summary>
    private static IEnumerable<(string Op, double Seconds, double Flops)> BlockSeconds(int k, int count, int repeats)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)(2000 + k));
        var a0 = randn(new long[] { count, k, k }, dtype: float64, generator: gen);
        var spd = Tensors.plus(Tensors.divideBy(k, a0.bmm(a0.transpose(1, 2))), eye(k, dtype: float64));
        var other = randn(new long[] { count, k, k }, dtype: float64, generator: gen);
        int q = 2 * k;
        var big = randn(new long[] { q * q }, dtype: float64, generator: gen);
        var idx = randint(q, new long[] { count, k }, dtype: int64, generator: gen);
        var positions = Tensors.plus(idx.unsqueeze(2).mul(Tensors.scInt(q)), idx.unsqueeze(1)).reshape(-1);
        double kk = (double)k * k * k * count;
        var result = new List<(string, double, double)>
        {
            ("bmm", Time(repeats, () => spd.bmm(other).Dispose()), 2 * kk),
            ("cholesky", Time(repeats, () => linalg.cholesky(spd).Dispose()), kk / 3),
            ("cholesky + cholesky_inverse", Time(repeats, () => { using var l = linalg.cholesky(spd); cholesky_inverse(l).Dispose(); }), kk),
            ("gather K x K blocks", Time(repeats, () => big.index_select(0, positions).Dispose()), 0),
        };
        return result;
    }

    private static string Ms(double seconds) => (seconds * 1e3).ToString(seconds < 0.01 ? "F2" : "F1");

    private static string Percent(double fraction) => (fraction * 100).ToString(fraction < 0.1 ? "F1" : "F0") + "%";

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
        var m = mask.gt(Tensors.sc(0.5));
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
                mean = Tensors.plus(muM, k.matmul(z[i].index_select(0, obs) - mu.index_select(0, obs)));
                c = smm - k.matmul(smo.T);
            }
            imputed[i].index_copy_(0, mis, mean);
            var rowsOfC = zeros(mis.shape[0], p, dtype: float64).index_copy_(1, mis, c);
            covSum.index_add_(0, mis, rowsOfC, Tensors.sc(1.0));
        }
        return (imputed, covSum);
    }
}
