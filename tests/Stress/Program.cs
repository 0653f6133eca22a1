// Stress test for TorchSharp's temporary-Scalar race: fits every imputer over and over while a second thread
// allocates and forces garbage collections. TorchSharp 0.107 frees a Scalar in its finalizer while native code may still
// read it, so a library call that creates a temporary Scalar fails or crashes under this load within seconds; the
// library keeps every Scalar it passes, and this program is the proof. Every fit under load must also reproduce, bit for
// bit, the same seeded fit run before the collecting thread starts.
//
//   emflow-stress [--seconds S | --minutes M] [--imputers a,b,...] [--list]
//   exit code 0: no exception and every result identical; 1: an exception or a differing result; 2: bad arguments.
using System.Diagnostics;
using EMFlow;
using EMFlow.Baselines;
using EMFlow.Evaluation;

var seconds = 8.0;
string[]? only = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--seconds" when i + 1 < args.Length: seconds = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
        case "--minutes" when i + 1 < args.Length: seconds = 60 * double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
        case "--imputers" when i + 1 < args.Length: only = args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries); break;
        case "--list": foreach (var c in StressCases.All) Console.WriteLine(c.Name); return 0;
        default:
            Console.Error.WriteLine("usage: emflow-stress [--seconds S | --minutes M] [--imputers a,b,...] [--list]");
            return 2;
    }
}
var cases = only is null ? StressCases.All : only.Select(n => StressCases.All.FirstOrDefault(c => c.Name == n)
    ?? throw new ArgumentException($"unknown imputer '{n}'; expected one of {string.Join(", ", StressCases.All.Select(c => c.Name))}")).ToArray();

TorchSharp.torch.set_num_threads(1);
Console.WriteLine($"{"imputer",-16} {"fits",6} {"seconds",8} {"collections",11}  identical");
bool ok = true;
foreach (var c in cases)
{
    var line = Stress.Run(c, TimeSpan.FromSeconds(seconds));
    Console.WriteLine(line.Text);
    ok &= line.Ok;
}
return ok ? 0 : 1;

/// <summary>One imputer (or the LeNet classifier) as a seeded fit that returns its result as numbers.</summary>
sealed record StressCase(string Name, Func<double[]> Fit);

static class Stress
{
    public static (bool Ok, string Text) Run(StressCase c, TimeSpan duration)
    {
        // The reference: the same seeded fit with no other thread running.
        var reference = c.Fit();
        long fits = 0, collections = 0;
        var stop = 0;
        var collector = new Thread(() =>
        {
            var keep = new object[64];
            for (long k = 0; Volatile.Read(ref stop) == 0; k++)
            {
                for (int i = 0; i < 256; i++) keep[i % keep.Length] = new byte[64 + i];
                GC.Collect();
                if (k % 8 == 0) GC.WaitForPendingFinalizers();
                Interlocked.Increment(ref collections);
            }
        }) { IsBackground = true, Name = "collector" };
        var clock = Stopwatch.StartNew();
        collector.Start();
        string? failure = null;
        try
        {
            do
            {
                var result = c.Fit();
                fits++;
                if (!Identical(reference, result)) { failure = $"fit {fits} differs from the reference fit"; break; }
            } while (clock.Elapsed < duration);
        }
        catch (Exception e)
        {
            failure = $"fit {fits + 1} threw {e.GetType().Name}: {e.Message.Split('\n')[0].Trim()}";
        }
        Volatile.Write(ref stop, 1);
        collector.Join();
        var text = $"{c.Name,-16} {fits,6} {clock.Elapsed.TotalSeconds,8:F1} {Interlocked.Read(ref collections),11}  "
            + (failure is null ? "yes" : "FAILED after " + clock.Elapsed.TotalSeconds.ToString("F1") + " s: " + failure);
        return (failure is null, text);
    }

    static bool Identical(double[] a, double[] b) =>
        a.Length == b.Length && a.Zip(b).All(p => BitConverter.DoubleToInt64Bits(p.First) == BitConverter.DoubleToInt64Bits(p.Second));
}

static class StressCases
{
    // Small seeded data, so each fit takes well under a second and a run makes many of them.
    static readonly double[,] Table = WithMissing(CorrelatedTable(160, 6, seed: 1), 0.2, seed: 2);
    static readonly double[,] MarTable = WithMissingByFirst(CorrelatedTable(160, 6, seed: 8), seed: 9);
    static readonly (double[,] Images, int[] Labels) Images8 = ImagesOf(96, 8, 8, seed: 3);
    static readonly double[,] Images8Missing = WithMissing(Images8.Images, 0.3, seed: 4);
    static readonly (double[,] Images, int[] Labels) Images12 = ImagesOf(64, 12, 12, seed: 5);

    static double[] Impute(Func<Imputer> create, double[,] data)
    {
        using var imputer = create();
        return Flatten(imputer.FitTransform(data));
    }

    static EMFlowOptions SmallEMFlow => new()
    {
        Seed = 7, TorchThreads = 1, Iterations = 2, EpochsPerIteration = 2, BatchSize = 64, CouplingLayers = 2, HiddenWidth = 16,
        StartSweeps = 20, SecondStep = SecondFlowStep.Paper,
    };

    static ForestOptions SmallForest => new() { Seed = 7, Trees = 10, MaxSweeps = 2 };

    public static readonly StressCase[] All =
    {
        new("mean", () => Impute(() => new MeanImputer(), Table)),
        new("median", () => Impute(() => new MeanImputer(SimpleStrategy.Median), Table)),
        new("knn", () => Impute(() => new KnnImputer(5), Table)),
        new("gaussian-em", () => Impute(() => new GaussianEmImputer(new GaussianEmOptions { MaxIterations = 30 }), Table)),
        new("emflow", () => Impute(() => new EMFlowImputer(SmallEMFlow), Table)),
        new("forest", () => Impute(() => new ForestImputer(SmallForest), Table)),
        new("emflow-forest", () => Impute(() => new EMFlowImputer(SmallEMFlow, new[] { new ForestStart(SmallForest) }), Table)),
        new("emflow-mixture", () => Impute(() => new EMFlowImputer(SmallEMFlow, new IStartCandidate[] { new MixtureStart() }), Table)),
        // The command line's default: the four-way start (Gaussian EM, kNN, forest, mixture) scored on held-out cells
        // weighed by their odds of being missing and averaged over three hold-out draws, on a table whose gaps follow
        // its first column so that the odds are fitted rather than gated to 1.
        new("emflow-propensity", () => Impute(() => new EMFlowImputer(SmallEMFlow with { InitialImputation = InitialImputation.Auto, HoldOut = HoldOutDraw.ByPropensity, StartDraws = 3 },
            new IStartCandidate[] { new ForestStart(SmallForest), new MixtureStart() }), MarTable)),
        // The other branches of the fit: sufficient-statistics update, kNN start, a hold-out shaped like the
        // missingness, the reconstruction-only second step and a β schedule.
        new("emflow-variant", () => Impute(() => new EMFlowImputer(SmallEMFlow with
        {
            SufficientStatisticsUpdate = true, InitialImputation = InitialImputation.Knn, HoldOut = HoldOutDraw.LikeMissingness,
            SecondStep = SecondFlowStep.ReconstructionOnly, BetaSchedule = new[] { 0.5, 1.0 }, RefitLatentGaussian = false,
            // The paper's flow: float64, separate tanh s and t networks, the E-step after the L1 update, every epoch.
            FlowPrecision = FlowPrecision.Float64, HiddenActivation = HiddenActivation.Tanh, CouplingNetwork = CouplingNetwork.Dense, LatentFromL1Pass = false, Patience = 0,
        }), Table)),
        // A streamed fit: the start, hold-out and refits on the sample, training on blocks read again every epoch.
        new("emflow-stream", () =>
        {
            using var imputer = new EMFlowImputer(SmallEMFlow);
            imputer.FitStream(() => Blocks(Table, 48), sampleRows: 100);
            return Flatten(imputer.Transform(Table));
        }),
        // A mixed table's model through its file: one-hot encoding, the inner EMFlow's own file inside, and back.
        new("mixed-save-load", () =>
        {
            using var mixed = new MixedImputer(new EMFlowImputer(SmallEMFlow));
            mixed.Fit(Mixed, MixedKinds);
            var path = Path.Combine(Path.GetTempPath(), $"emflow-stress-{Environment.ProcessId}.mixed");
            try
            {
                mixed.Save(path);
                using var loaded = MixedImputer.Load(path);
                return Flatten(loaded.Transform(Mixed));
            }
            finally { File.Delete(path); }
        }),
        new("emflow-conv", () => Impute(() => new EMFlowImputer(SmallEMFlow with
        {
            ImageWidth = 8, ImageHeight = 8, CouplingMask = CouplingMask.Checkerboard, CouplingNetwork = CouplingNetwork.Convolutional,
            HiddenWidth = 4, SuperBatchSize = 48, Iterations = 1, EpochsPerIteration = 1,
        }), Images8Missing)),
        new("nearest-pixel", () => Impute(() => new NearestPixelImputer(8, 8), Images8Missing)),
        new("gain", () => Impute(() => new GainImputer(new GainOptions { Seed = 7, TorchThreads = 1, Iterations = 150, BatchSize = 64 }), Table)),
        new("miwae", () => Impute(() => new MiwaeImputer(new MiwaeOptions
        {
            Seed = 7, TorchThreads = 1, Epochs = 4, Hidden = 16, Latent = 3, Samples = 5, ImputeSamples = 10, BatchSize = 64,
        }), Table)),
        new("mcflow", () => Impute(() => new McFlowImputer(new McFlowOptions
        {
            Seed = 7, TorchThreads = 1, Epochs = 3, BatchSize = 64, CouplingLayers = 2, HiddenWidth = 16, TransformPasses = 2,
        }), Table)),
        new("lenet", () =>
        {
            using var net = new LeNetClassifier(12, 12, classes: 3, seed: 7);
            net.Fit(Images12.Images, Images12.Labels, epochs: 2, batchSize: 16, torchThreads: 1);
            return net.EpochLosses.Concat(net.Predict(Images12.Images).Select(l => (double)l)).ToArray();
        }),
    };

    // The table with one more column: a category (0, 1 or 2) by the tertile of its first column, a fifth missing.
    static readonly double[,] Mixed = WithCategory(Table, seed: 6);
    static readonly ColumnKind[] MixedKinds = Enumerable.Repeat(ColumnKind.Numeric, Table.GetLength(1)).Append(ColumnKind.Categorical).ToArray();

    static double[,] WithCategory(double[,] x, int seed)
    {
        var rng = new Random(seed);
        int n = x.GetLength(0), p = x.GetLength(1);
        var first = Enumerable.Range(0, n).Select(i => x[i, 0]).Where(v => !double.IsNaN(v)).Order().ToArray();
        double low = first[first.Length / 3], high = first[2 * first.Length / 3];
        var y = new double[n, p + 1];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < p; j++) y[i, j] = x[i, j];
            double v = x[i, 0];
            y[i, p] = rng.NextDouble() < 0.2 ? double.NaN : double.IsNaN(v) ? rng.Next(3) : v < low ? 0 : v < high ? 1 : 2;
        }
        return y;
    }

    static IEnumerable<double[,]> Blocks(double[,] x, int rows)
    {
        int n = x.GetLength(0), p = x.GetLength(1);
        for (int start = 0; start < n; start += rows)
        {
            int m = Math.Min(rows, n - start);
            var block = new double[m, p];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < p; j++) block[i, j] = x[start + i, j];
            yield return block;
        }
    }

    static double[] Flatten(double[,] a) => a.Cast<double>().ToArray();

    static double[,] CorrelatedTable(int n, int p, int seed)
    {
        var rng = new Random(seed);
        var x = new double[n, p];
        for (int i = 0; i < n; i++)
        {
            double z = Normal(rng);
            for (int j = 0; j < p; j++) x[i, j] = (j + 1) * z + 0.5 * Normal(rng) + j;
        }
        return x;
    }

    static (double[,], int[]) ImagesOf(int n, int w, int h, int seed)
    {
        // Three classes of blurred bars (horizontal, vertical, diagonal) with noise: a learnable image task.
        var rng = new Random(seed);
        var x = new double[n, w * h];
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            int label = i % 3, at = rng.Next(1, Math.Min(w, h) - 1);
            labels[i] = label;
            for (int r = 0; r < h; r++)
                for (int c = 0; c < w; c++)
                {
                    int d = label switch { 0 => Math.Abs(r - at), 1 => Math.Abs(c - at), _ => Math.Abs(r - c) };
                    x[i, r * w + c] = Math.Clamp(1.0 / (1 + d * d) + 0.1 * Normal(rng), 0, 1);
                }
        }
        return (x, labels);
    }

    static double[,] WithMissing(double[,] x, double rate, int seed)
    {
        var rng = new Random(seed);
        var y = (double[,])x.Clone();
        int n = y.GetLength(0), p = y.GetLength(1);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
                if (j != i % p && rng.NextDouble() < rate) y[i, j] = double.NaN;   // each row keeps one entry
        return y;
    }

    // Columns 3 to 5 go missing with probability sigmoid(2 z), z the first column standardised: MAR.
    static double[,] WithMissingByFirst(double[,] x, int seed)
    {
        var rng = new Random(seed);
        var y = (double[,])x.Clone();
        int n = y.GetLength(0), p = y.GetLength(1);
        var first = Enumerable.Range(0, n).Select(i => x[i, 0]).ToArray();
        double mean = first.Average(), sd = Math.Sqrt(first.Select(v => (v - mean) * (v - mean)).Average());
        for (int i = 0; i < n; i++)
            for (int j = 3; j < p; j++)
                if (rng.NextDouble() < 1 / (1 + Math.Exp(-2 * (x[i, 0] - mean) / sd))) y[i, j] = double.NaN;
        return y;
    }

    static double Normal(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
