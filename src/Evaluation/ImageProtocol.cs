using System.Diagnostics;
using static TorchSharp.torch;

namespace EMFlow.Evaluation;

/// <summary>Settings of <see cref="ImageProtocol.Run"/>: rates, methods and the compute budget of one run.</summary>
public sealed record ImageProtocolOptions
{
    /// <summary>MCAR rates per pixel, each in (0, 1). Default .1 … .9 (the paper's Table 2).</summary>
    public IReadOnlyList<double> Rates { get; init; } = new[] { .1, .2, .3, .4, .5, .6, .7, .8, .9 };
    /// <summary>Methods by name: "mean", "nearest", "gaussian-em", "emflow", "emflow-zero" (EMFlow from a zero start, appendix G.3), "emflow-checkerboard" (checkerboard coupling masks), "emflow-conv" (checkerboard masks and convolutional s/t networks), "emflow-gem-start" (EMFlow from the Gaussian-EM imputation, keeping whichever of the start and the flow's iteration imputes 5% held-out training pixels best).</summary>
    public IReadOnlyList<string> Methods { get; init; } = new[] { "mean", "nearest", "gaussian-em", "emflow" };
    /// <summary>EMFlow iterations. Default 1.</summary>
    public int Iterations { get; init; } = 1;
    /// <summary>EMFlow epochs per iteration. Default 2.</summary>
    public int Epochs { get; init; } = 2;
    /// <summary>Width of the hidden layers of EMFlow's s and t networks. Default 128.</summary>
    public int HiddenWidth { get; init; } = 128;
    /// <summary>Channels of the hidden layers of "emflow-conv"'s convolutional s/t networks. Default 16.</summary>
    public int ConvChannels { get; init; } = 16;
    /// <summary>Ridge of Gaussian EM's and EMFlow's covariances, relative to the mean diagonal. Default 1e-6 (the libraries' default).</summary>
    public double Ridge { get; init; } = 1e-6;
    /// <summary>EMFlow's mini-batch. Default 512 (appendix F.2).</summary>
    public int BatchSize { get; init; } = 512;
    /// <summary>Gaussian-EM sweeps (each one E-step over every training image). Default 3.</summary>
    public int GaussianEmSweeps { get; init; } = 3;
    /// <summary>Epochs of the LeNet-style classifier on the complete training images. Default 3.</summary>
    public int ClassifierEpochs { get; init; } = 3;
    /// <summary>Test images kept per (rate, method) for a figure. Default 8.</summary>
    public int KeptImages { get; init; } = 8;
    /// <summary>Seed of the masks, the classifier and EMFlow.</summary>
    public long Seed { get; init; }
    /// <summary>Optional progress lines.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Optional sink called as soon as each (rate, method) is done, so that a long run keeps what it finished.</summary>
    public Action<ImageMethodResult>? OnResult { get; init; }
}

/// <summary>One (rate, method) of <see cref="ImageProtocol.Run"/>.</summary>
/// <param name="Rate">MCAR rate asked for.</param>
/// <param name="HiddenRate">Share of the test pixels actually hidden.</param>
/// <param name="Method">Method name.</param>
/// <param name="Settings">The settings the method ran under, in words.</param>
/// <param name="Rmse">RMSE over the test images' missing pixels, pixel scale [0, 1].</param>
/// <param name="Accuracy">Classifier accuracy on the completed test images.</param>
/// <param name="FitSeconds">Seconds to fit on the masked training images.</param>
/// <param name="TransformSeconds">Seconds to complete the masked test images.</param>
/// <param name="IterationSeconds">EMFlow: seconds of each iteration; empty for other methods.</param>
/// <param name="PeakWorkingSetBytes">Largest working set of the process while the method ran (sampled every 50 ms).</param>
/// <param name="FirstImages">(k, p) the first k completed test images.</param>
/// <param name="FirstMask">(k, p) their masks, true = missing.</param>
/// <param name="CompleteAccuracy">The classifier's accuracy on the complete test images (the same for every row of a run).</param>
public sealed record ImageMethodResult(double Rate, double HiddenRate, string Method, string Settings, double Rmse, double Accuracy,
    double FitSeconds, double TransformSeconds, double[] IterationSeconds, double PeakWorkingSetBytes, double[,] FirstImages, bool[,] FirstMask,
    double CompleteAccuracy);

/// <summary>Result of <see cref="ImageProtocol.Run"/>.</summary>
/// <param name="CompleteAccuracy">Classifier accuracy on the complete test images.</param>
/// <param name="ClassifierSeconds">Seconds to train the classifier.</param>
/// <param name="Rows">One entry per (rate, method), rates in the order given.</param>
public sealed record ImageProtocolResult(double CompleteAccuracy, double ClassifierSeconds, IReadOnlyList<ImageMethodResult> Rows);

/// <summary>
/// The paper's image protocol (section 4.2, Tables 2 and 3): for each MCAR rate, a mask per training and per test
/// image drawn with the seed; every method fitted on the masked training images (test pixels are never seen) and
/// asked to complete the masked test images; RMSE over the test images' missing pixels on [0, 1]; the accuracy of a
/// <see cref="LeNetClassifier"/> trained on the complete training images, on each completed test set.
/// </summary>
/// <example>
/// <code>
/// var r = ImageProtocol.Run(train, trainLabels, test, testLabels, 28, 28, new ImageProtocolOptions { Rates = new[] { .5 } });
/// </code>
/// </example>
public static class ImageProtocol
{
    /// <summary>Runs the protocol.</summary>
    /// <param name="train">(n, width · height) complete training images, pixels in [0, 1], row-major.</param>
    /// <param name="trainLabels">n labels 0 … classes − 1.</param>
    /// <param name="test">(m, width · height) complete test images.</param>
    /// <param name="testLabels">m labels.</param>
    /// <param name="width">Image width.</param>
    /// <param name="height">Image height.</param>
    /// <param name="options">Rates, methods and budget; null for the defaults.</param>
    /// <exception cref="ArgumentException">Shapes that disagree, a rate outside (0, 1), an unknown method.</exception>
    public static ImageProtocolResult Run(double[,] train, int[] trainLabels, double[,] test, int[] testLabels, int width, int height,
        ImageProtocolOptions? options = null)
    {
        var o = options ?? new ImageProtocolOptions();
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(trainLabels);
        ArgumentNullException.ThrowIfNull(testLabels);
        int p = width * height;
        if (train.GetLength(1) != p) throw new ArgumentException($"Expected {p} pixels per training image ({width} × {height}), got {train.GetLength(1)}.", nameof(train));
        if (test.GetLength(1) != p) throw new ArgumentException($"Expected {p} pixels per test image ({width} × {height}), got {test.GetLength(1)}.", nameof(test));
        foreach (var r in o.Rates)
            if (!(r > 0 && r < 1)) throw new ArgumentOutOfRangeException(nameof(options), r, $"Rates must lie in (0, 1); got {r}.");
        foreach (var m in o.Methods) _ = Describe(m, o);
        var log = o.Log ?? (_ => { });
        int classes = Math.Max(2, trainLabels.Concat(testLabels).DefaultIfEmpty(0).Max() + 1);

        var sw = Stopwatch.StartNew();
        using var classifier = new LeNetClassifier(width, height, classes, Tensors.deriveSeed(o.Seed, 7));
        classifier.Fit(train, trainLabels, epochs: o.ClassifierEpochs, torchThreads: 1);
        double classifierSeconds = sw.Elapsed.TotalSeconds;
        double completeAccuracy = classifier.Accuracy(test, testLabels);
        log($"classifier: {o.ClassifierEpochs} epochs in {classifierSeconds:F1} s; accuracy on complete test images {completeAccuracy:F4}");
        var rows = new List<ImageMethodResult>();
        foreach (var rate in o.Rates)
        {
            // The same rate draws the same masks whatever other rates run alongside.
            int rateKey = (int)Math.Round(rate * 1000);
            var trainMask = Mask(Tensors.deriveSeed(o.Seed, 10_000 + rateKey), rate, train.GetLength(0), p);
            var testMask = Mask(Tensors.deriveSeed(o.Seed, 20_000 + rateKey), rate, test.GetLength(0), p);
            var trainNaN = WithNaN(train, trainMask);
            var testNaN = WithNaN(test, testMask);
            double hidden = testMask.Cast<bool>().Count(m => m) / (double)Math.Max(1, testMask.Length);
            foreach (var method in o.Methods)
            {
                GC.Collect();
                using var imputer = Create(method, width, height, o);
                using var sampler = new PeakMemory();
                var (completed, fit, transform, rmse, _) = Scoring.FitAndScore(imputer, trainNaN, testNaN, test, testMask, name: method);
                double peak = sampler.Stop();
                double accuracy = classifier.Accuracy(completed, testLabels);
                var iterations = imputer is EMFlowImputer e ? e.History.Select(h => h.Seconds).ToArray() : Array.Empty<double>();
                int k = Math.Min(o.KeptImages, test.GetLength(0));
                var row = new ImageMethodResult(rate, hidden, method, Describe(method, o), rmse, accuracy, fit, transform, iterations, peak,
                    Head(completed, k), Head(testMask, k), completeAccuracy);
                rows.Add(row);
                o.OnResult?.Invoke(row);
                log($"rate {rate}: {method} RMSE {rmse:F4}, accuracy {accuracy:F4}, fit {fit:F1} s, transform {transform:F1} s"
                    + (iterations.Length > 0 ? $", iterations {string.Join(" / ", iterations.Select(t => $"{t:F1}"))} s" : "")
                    + $", peak working set {peak / 1048576.0:F0} MB");
            }
        }
        return new ImageProtocolResult(completeAccuracy, classifierSeconds, rows);
    }

    /// <summary>A fresh imputer for a method name, with this run's budget.</summary>
    /// <exception cref="ArgumentException">An unknown method name.</exception>
    public static Imputer Create(string method, int width, int height, ImageProtocolOptions options) => method switch
    {
        "mean" => new MeanImputer(),
        "nearest" => new NearestPixelImputer(width, height),
        "gaussian-em" => new GaussianEmImputer(new GaussianEmOptions { MaxIterations = options.GaussianEmSweeps, Ridge = options.Ridge }),
        "emflow" => new EMFlowImputer(EMFlowImages(width, height, options, zeroStart: false)),
        "emflow-zero" => new EMFlowImputer(EMFlowImages(width, height, options, zeroStart: true)),
        "emflow-checkerboard" => new EMFlowImputer(EMFlowImages(width, height, options) with { CouplingMask = CouplingMask.Checkerboard }),
        "emflow-conv" => new EMFlowImputer(EMFlowImages(width, height, options) with
        {
            CouplingMask = CouplingMask.Checkerboard, CouplingNetwork = CouplingNetwork.Convolutional, HiddenWidth = options.ConvChannels,
        }),
        "emflow-gem-start" => new EMFlowImputer(EMFlowImages(width, height, options) with
        {
            InitialImputation = InitialImputation.GaussianEm, StartSweeps = options.GaussianEmSweeps, ValidationFraction = 0.05,
        }),
        _ => throw new ArgumentException($"Unknown method '{method}'; expected {KnownMethods}.", nameof(method)),
    };

    /// <summary>The settings a method runs under, in words (for tables).</summary>
    public static string Describe(string method, ImageProtocolOptions o) => method switch
    {
        "mean" => "per-pixel mean of the observed training pixels",
        "nearest" => "nearest observed pixel of the same image",
        "gaussian-em" => $"{o.GaussianEmSweeps} EM sweep(s) from the per-pixel mean and variance, ridge {o.Ridge:g}",
        "emflow" or "emflow-zero" or "emflow-checkerboard" or "emflow-conv" or "emflow-gem-start" =>
            $"{o.Iterations} iteration(s) × {o.Epochs} epoch(s), batch {o.BatchSize}, lr 1e-3, α 5e8 (L2 as in the paper), super-batch 3000, "
            + $"ρ_t = 0.99 t^-0.8, ridge {o.Ridge:g}, 6 couplings ({(method is "emflow-checkerboard" or "emflow-conv" ? "checkerboard masks" : "alternating pixel columns")}), "
            + (method == "emflow-conv" ? $"3 × 3 convolutional s/t 2 × {o.ConvChannels} channels (float32)" : $"MLP s/t 2 × {o.HiddenWidth}") + ", online EM only, "
            + method switch
            {
                "emflow-zero" => "zero start",
                "emflow-gem-start" => $"Gaussian-EM start ({o.GaussianEmSweeps} sweep(s)), start or iteration kept by 5% held-out training pixels",
                _ => "nearest-pixel start",
            },
        _ => throw new ArgumentException($"Unknown method '{method}'; expected {KnownMethods}.", nameof(method)),
    };

    private const string KnownMethods = "mean, nearest, gaussian-em, emflow, emflow-zero, emflow-checkerboard, emflow-conv or emflow-gem-start";

    /// <summary>EMFlow with the paper's image settings (appendix F.2: α = 5e8, batch 512, learning rate 1e-3,
    /// super-batch 3000, ρ_t = 0.99 t^-0.8) and this run's budget of iterations, epochs and width.</summary>
    public static EMFlowOptions EMFlowImages(int width, int height, ImageProtocolOptions o, bool zeroStart = false) => new()
    {
        Seed = o.Seed,
        TorchThreads = 1,
        Iterations = o.Iterations,
        EpochsPerIteration = o.Epochs,
        BatchSize = o.BatchSize,
        LearningRate = 1e-3,
        Alpha = 5e8,
        SecondStep = SecondFlowStep.Paper,
        StepSizeC = 0.99,
        StepSizeGamma = 0.8,
        SuperBatchSize = 3000,
        HiddenWidth = o.HiddenWidth,
        Ridge = o.Ridge,
        // A batch-EM refit of the latent Gaussian costs one E-step over every image per sweep at p = 784.
        RefitLatentGaussian = false,
        // The paper keeps the last iteration; no observed pixels are held out.
        ValidationFraction = 0,
        InitialImputation = zeroStart ? InitialImputation.Zero : InitialImputation.NearestPixel,
        ImageWidth = width,
        ImageHeight = height,
    };

    private static T[,] Head<T>(T[,] x, int k)
    {
        var r = new T[k, x.GetLength(1)];
        for (int i = 0; i < k; i++) for (int j = 0; j < x.GetLength(1); j++) r[i, j] = x[i, j];
        return r;
    }

    /// <summary>
    /// Scores covariance ridges on the training images alone, for choosing <see cref="ImageProtocolOptions.Ridge"/>
    /// without looking at the test images: Gaussian EM (<paramref name="sweeps"/> sweeps) is fitted on the first three
    /// quarters of <paramref name="train"/> with pixels missing at <paramref name="rate"/> (MCAR) and completes the last
    /// quarter, masked the same way; the score is the RMSE over that quarter's missing pixels. Rows completed after a
    /// fit are what the ridge is for: a pixel of almost no variance in the fitted rows amplifies whatever a new row
    /// shows there.
    /// </summary>
    /// <param name="train">(n, p) training images on [0, 1], n at least 8.</param>
    /// <param name="rate">MCAR rate in (0, 1).</param>
    /// <param name="ridges">Ridges to score, each non-negative.</param>
    /// <param name="sweeps">Gaussian-EM sweeps per fit, at least 1.</param>
    /// <param name="seed">Seed of the masks.</param>
    /// <returns>One (ridge, RMSE on the held-out quarter's missing pixels, seconds) per ridge, in the order given.</returns>
    public static IReadOnlyList<(double Ridge, double Rmse, double Seconds)> RidgeValidation(double[,] train, double rate,
        IReadOnlyList<double> ridges, int sweeps, long seed)
    {
        if (sweeps < 1) throw new ArgumentOutOfRangeException(nameof(sweeps), sweeps, $"sweeps must be at least 1; got {sweeps}.");
        return RidgeValidation(train, rate, ridges, ridge => new GaussianEmImputer(new GaussianEmOptions { MaxIterations = sweeps, Ridge = ridge }), seed);
    }

    /// <summary>
    /// As <see cref="RidgeValidation(double[,], double, IReadOnlyList{double}, int, long)"/>, for any imputer that takes a
    /// ridge: <paramref name="imputerWithRidge"/> builds a fresh one for each ridge (for example EMFlow with
    /// <see cref="EMFlowOptions.Ridge"/> set), fitted on three quarters of the training images and scored on the last quarter.
    /// </summary>
    /// <param name="train">(n, p) training images on [0, 1], n at least 8.</param>
    /// <param name="rate">MCAR rate in (0, 1).</param>
    /// <param name="ridges">Ridges to score, each non-negative.</param>
    /// <param name="imputerWithRidge">A new imputer for a ridge; disposed here.</param>
    /// <param name="seed">Seed of the masks.</param>
    public static IReadOnlyList<(double Ridge, double Rmse, double Seconds)> RidgeValidation(double[,] train, double rate,
        IReadOnlyList<double> ridges, Func<double, Imputer> imputerWithRidge, long seed)
    {
        ArgumentNullException.ThrowIfNull(imputerWithRidge);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(ridges);
        int n = train.GetLength(0), p = train.GetLength(1), nFit = n * 3 / 4;
        if (n < 8) throw new ArgumentException($"Need at least 8 training images; got {n}.", nameof(train));
        if (!(rate > 0 && rate < 1)) throw new ArgumentOutOfRangeException(nameof(rate), rate, $"rate must lie in (0, 1); got {rate}.");
        foreach (var r in ridges)
            if (!(r >= 0 && double.IsFinite(r))) throw new ArgumentOutOfRangeException(nameof(ridges), r, $"ridges must be non-negative and finite; got {r}.");
        var mask = Mask(Tensors.deriveSeed(seed, 30_000 + (int)Math.Round(rate * 1000)), rate, n, p);
        var masked = WithNaN(train, mask);
        var fitRows = new double[nFit, p];
        var heldRows = new double[n - nFit, p];
        var heldTruth = new double[n - nFit, p];
        var heldMask = new bool[n - nFit, p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
                if (i < nFit) fitRows[i, j] = masked[i, j];
                else (heldRows[i - nFit, j], heldTruth[i - nFit, j], heldMask[i - nFit, j]) = (masked[i, j], train[i, j], mask[i, j]);
        var scores = new List<(double, double, double)>();
        foreach (var ridge in ridges)
        {
            var clock = Stopwatch.StartNew();
            using var imputer = imputerWithRidge(ridge);
            var score = Scoring.FitAndScore(imputer, fitRows, heldRows, heldTruth, heldMask);
            scores.Add((ridge, score.Rmse, clock.Elapsed.TotalSeconds));
        }
        return scores;
    }

    private static bool[,] Mask(long seed, double rate, int n, int p)
    {
        using var scope = NewDisposeScope();
        return Tensors.toMask2D(Missingness.mcar(seed, rate, n, p));
    }

    private static double[,] WithNaN(double[,] x, bool[,] mask)
    {
        var r = (double[,])x.Clone();
        for (int i = 0; i < x.GetLength(0); i++) for (int j = 0; j < x.GetLength(1); j++) if (mask[i, j]) r[i, j] = double.NaN;
        return r;
    }
}
