using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace EMFlow;

/// <summary>One iteration of an EMFlow fit, as recorded in <see cref="EMFlowImputer.History"/>.</summary>
/// <param name="Iteration">Iteration number, from 1.</param>
/// <param name="MeanL1">Mean L1 loss (−log p_X(x̂)) over the iteration's last epoch.</param>
/// <param name="MeanL2">Mean L2 loss over the iteration's last epoch.</param>
/// <param name="LatentLogLikelihood">Mean log p_X(x̂) per row after re-imputation, on the [0, 1] scale.</param>
/// <param name="ValidationRmse">RMSE on the held-out observed entries after re-imputation ([0, 1] scale); NaN without a hold-out.</param>
/// <param name="Seconds">Wall-clock seconds the iteration took.</param>
/// <param name="Diverged">True when the iteration was abandoned because the model diverged (non-finite loss or covariance).</param>
public sealed record IterationRecord(int Iteration, double MeanL1, double MeanL2, double LatentLogLikelihood, double ValidationRmse, double Seconds, bool Diverged);

/// <summary>One epoch of an EMFlow fit, as recorded in <see cref="EMFlowImputer.EpochHistory"/>.</summary>
/// <param name="Iteration">Iteration number, from 1.</param>
/// <param name="Epoch">Epoch within the iteration, from 1.</param>
/// <param name="MeanL1">Mean L1 loss over the epoch's batches.</param>
/// <param name="MeanL2">Mean L2 loss over the epoch's batches.</param>
/// <param name="MeanReconstruction">Mean squared reconstruction error of observed entries per row.</param>
public sealed record EpochRecord(int Iteration, int Epoch, double MeanL1, double MeanL2, double MeanReconstruction);

/// <summary>
/// EMFlow imputation (Ma and Ghosh, ICLR 2022 submission): online EM on a full-covariance Gaussian in the latent
/// space of a RealNVP normalizing flow, alternating flow training with EM updates, then re-imputing.
/// </summary>
/// <remarks>
/// <para>Fit runs: validation, min-max scaling, hold-out of a few observed entries for model selection, the initial
/// imputation (Gaussian EM by default), then <see cref="EMFlowOptions.Iterations"/> iterations of a training phase
/// (per batch: L1 flow step, latent E-step, online M-step, L2 flow step) and a re-imputation phase. Each iteration
/// starts a fresh flow at the identity (appendix D). The iteration with the lowest hold-out error is kept; iteration 0
/// is the initial imputation itself, so a flow that does not help is not used.</para>
/// <para>Transform re-imputes new rows only: the start of the fit (<see cref="SelectedStart"/>: the Gaussian-EM imputation, kNN from the training rows, or the nearest observed pixels for <see cref="InitialImputation.NearestPixel"/>), then the re-imputation phase
/// of each kept iteration in turn, exactly as the training rows went through them.</para>
/// </remarks>
/// <example>
/// <code>
/// using var imputer = new EMFlowImputer(new EMFlowOptions { Seed = 42 });
/// double[,] completed = imputer.FitTransform(table);   // NaN marks missing values
/// </code>
/// </example>
public sealed class EMFlowImputer : Imputer
{
    // Every completed iteration is kept, so the model at any iteration can still impute (TransformAtIteration);
    // the first _selected of them form the model Transform uses.
    private readonly List<(Flow.Flow Flow, OnlineEm.Estimate Estimate)> _stages = new();
    private int _selected;
    private OnlineEm.Estimate? _gaussian;
    private InitialImputation _start;
    private Tensor? _knnShare;   // (p) share of the kNN imputation in each feature's start, for Knn and Auto
    private Knn.Donors? _donors; // (n, p) training rows, kept for new rows' kNN start
    // Shares tried by the Auto start: coarse enough that a few hundred held-out cells per feature can rank them.
    private static readonly double[] ShareGrid = { 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1 };
    private readonly List<IterationRecord> _history = new();
    private readonly List<EpochRecord> _epochs = new();

    /// <summary>An imputer with the given settings (checked at Fit).</summary>
    public EMFlowImputer(EMFlowOptions? options = null) => Options = options ?? new EMFlowOptions();

    /// <summary>The settings.</summary>
    public EMFlowOptions Options { get; }

    /// <summary>Iterations completed by the last Fit.</summary>
    public int IterationsRun => _history.Count;

    /// <summary>The iteration whose model is used (0: the initial imputation was best on the hold-out).</summary>
    public int SelectedIteration => _selected;

    /// <summary>The initial imputation of the last Fit, <see cref="EMFlowOptions.InitialImputation"/>. New rows start
    /// the same way, except that the simple table starts (<see cref="InitialImputation.Mean"/>,
    /// <see cref="InitialImputation.Median"/>, <see cref="InitialImputation.RandomDraw"/>,
    /// <see cref="InitialImputation.Zero"/> without an image shape) start new rows from Gaussian EM.</summary>
    public InitialImputation SelectedStart => _start;

    /// <summary>Per feature (p), the share of the kNN imputation in the start, the rest being Gaussian EM's: all 1 for
    /// <see cref="InitialImputation.Knn"/>, chosen per feature on the held-out entries for
    /// <see cref="InitialImputation.Auto"/> (0, 0.1, …, 1), all 0 for the other starts.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public double[] KnnShare
    {
        get
        {
            var scaler = RequireScaler();
            return _knnShare is null ? new double[scaler.Features] : Tensors.toArray(_knnShare);
        }
    }

    /// <summary>Iterations whose model can still impute through <see cref="TransformAtIteration"/>: every iteration
    /// the last Fit completed without diverging; after <see cref="Load"/>, the saved (selected) ones.</summary>
    public int AvailableIterations => _stages.Count;

    /// <summary>Seconds the last Fit spent before its first iteration (validation, hold-out, initial imputation);
    /// with <see cref="IterationRecord.Seconds"/> it places each iteration on a time axis. NaN after <see cref="Load"/>.</summary>
    public double InitialSeconds { get; private set; } = double.NaN;

    /// <summary>Hold-out RMSE of the initial imputation (iteration 0), [0, 1] scale; NaN without a hold-out.</summary>
    public double InitialValidationRmse { get; private set; } = double.NaN;

    /// <summary>One record per iteration run.</summary>
    public IReadOnlyList<IterationRecord> History => _history;

    /// <summary>One record per epoch run.</summary>
    public IReadOnlyList<EpochRecord> EpochHistory => _epochs;

    /// <summary>Latent mean μ (p) of the selected model (the Gaussian-EM mean when iteration 0 was selected).</summary>
    public double[] Mu => Tensors.toArray(FinalEstimate.Mu);

    /// <summary>Latent covariance Σ (p, p) of the selected model.</summary>
    public double[,] Sigma => Tensors.toArray2D(FinalEstimate.Sigma);

    private OnlineEm.Estimate FinalEstimate =>
        _selected > 0 ? _stages[_selected - 1].Estimate : _gaussian ?? throw new InvalidOperationException("EMFlowImputer is not fitted yet; call Fit first.");

    /// <inheritdoc />
    protected override void ValidateSettings(int rows, int columns)
    {
        Options.Validate(rows, columns);
        if (rows < 2) throw new ArgumentException($"EMFlow needs at least 2 rows to fit; got {rows}.", "data");
    }

    protected override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        using var threads = new TorchThreadScope(Options.TorchThreads);
        try
        {
            Clear();
            Run(x, mask, progress, ct);
        }
        catch
        {
            Clear();
            throw;
        }
    }

    private void Run(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        var o = Options;
        var clock = Stopwatch.StartNew();
        long n = x.shape[0], p = x.shape[1];
        int batch = (int)Math.Min(o.BatchSize, n);
        using var gen = Tensors.generator(Tensors.deriveSeed(o.Seed, 0));
        progress?.Report(new TrainingProgress("initial imputation", 0, o.Iterations, 0, o.EpochsPerIteration, double.NaN, double.NaN, clock.Elapsed));
        var (trainMask, hidden, xHat) = FitStart(x, mask);
        bool images = StartsLikeImages;
        var (lower, upper) = Bounds(p);
        double bestScore = InitialValidationRmse = Selection.score(x, xHat, hidden);
        int best = 0;
        var stages = new List<(Flow.Flow, OnlineEm.Estimate)>();
        InitialSeconds = clock.Elapsed.TotalSeconds;
        var stepSize = new OnlineEm.StepSize(o.StepSizeC, o.StepSizeGamma, o.StepSizeFloor);
        var form = o.SufficientStatisticsUpdate ? OnlineEm.UpdateForm.SufficientStatistics : OnlineEm.UpdateForm.Moments;

        for (int it = 1; it <= o.Iterations; it++)
        {
            var started = clock.Elapsed;
            var flow = Flow.create(o.FlowConfig((int)p, Tensors.deriveSeed(o.Seed, 100 + it)));
            var parameters = Flow.parameters(flow);
            // Two optimisers: L2's α-scaled reconstruction gradients must not distort L1's moment estimates.
            using var optL1 = optim.Adam(parameters, o.LearningRate);
            using var optL2 = optim.Adam(parameters, o.LearningRate);
            var settings = new Training.StepSettings(o.Alpha, stepSize, o.BetaAt(it), o.MaxGradNorm, o.Ridge, o.SecondStep switch
            {
                SecondFlowStep.Paper => Training.SecondStep.Paper,
                SecondFlowStep.ReconstructionOnly => Training.SecondStep.ReconstructionOnly,
                _ => Training.SecondStep.Skip,
            });
            // Without a ridge: the online state keeps Σ bare and each use adds o.Ridge (GaussianEm.withRidge).
            var state = OnlineEm.init(form, o.SuperBatchSize, Training.initialEstimate(flow, 0, xHat));
            double l1 = double.NaN, l2 = double.NaN;
            bool diverged = false;
            // The latent Gaussian the re-imputation uses and the stage keeps.
            OnlineEm.Estimate? latent = null;
            try
            {
                for (int epoch = 1; epoch <= o.EpochsPerIteration; epoch++)
                {
                    if (o.RefitLatentGaussian && epoch > 1)
                    {
                        // Re-anchor the online estimate to the exact latent MLE under the current flow; the step
                        // counter keeps running so later online updates stay small.
                        var refit = Training.initialEstimate(flow, 0, xHat);
                        var anchored = OnlineEm.init(form, o.SuperBatchSize, refit);
                        anchored = new OnlineEm.State(anchored.Estimate, state.Step, anchored.Sufficient, anchored.Buffer);
                        Release(state, anchored);
                        state = anchored;
                    }
                    using var order = randperm(n, generator: gen);
                    double sum1 = 0, sum2 = 0, sumR = 0;
                    int batches = 0;
                    for (long s = 0; s + 1 < n; s += batch)
                    {
                        ct.ThrowIfCancellationRequested();
                        long len = Math.Min(batch, n - s);
                        // A lone last row would give a degenerate M-step; it is picked up in the next epoch's order.
                        if (len < 2) break;
                        using var rows = order.narrow(0, s, len);
                        using var xb = xHat.index_select(0, rows);
                        using var mb = trainMask.index_select(0, rows);
                        var (next, losses) = Training.trainStep(settings, flow, optL1, optL2, state, xb, mb).ToValueTuple();
                        Release(state, next);
                        state = next;
                        if (!double.IsFinite(losses.L1) || (o.SecondStep != SecondFlowStep.Skip && !double.IsFinite(losses.L2)))
                            throw new InvalidOperationException($"Non-finite loss (L1 = {losses.L1}, L2 = {losses.L2}).");
                        sum1 += losses.L1; sum2 += losses.L2; sumR += losses.Reconstruction; batches++;
                    }
                    l1 = sum1 / batches; l2 = sum2 / batches;
                    _epochs.Add(new EpochRecord(it, epoch, l1, l2, sumR / batches));
                    progress?.Report(new TrainingProgress("training", it, o.Iterations, epoch, o.EpochsPerIteration, l1, l2, clock.Elapsed));
                }
                progress?.Report(new TrainingProgress("re-imputation", it, o.Iterations, o.EpochsPerIteration, o.EpochsPerIteration, l1, l2, clock.Elapsed));
                if (o.RefitLatentGaussian)
                {
                    // The batch refit carries its ridge already; the online state is kept without one.
                    var refit = Training.refitLatent(flow, o.Ridge, xHat, trainMask);
                    Release(state, null);
                    state = OnlineEm.init(form, 0, refit);
                    latent = GaussianEmImputer.Keep(refit);
                }
                else
                {
                    using var ridged = NewDisposeScope();
                    latent = GaussianEmImputer.Keep(GaussianEm.withRidge(o.Ridge, state.Estimate));
                }
                var reimputed = Training.reimpute(flow, latent, lower, upper, xHat, trainMask);
                if (!reimputed.isfinite().all().item<bool>())
                    throw new InvalidOperationException("Re-imputation produced non-finite values.");
                xHat = reimputed;
            }
            catch (InvalidOperationException)
            {
                // Divergence (a non-finite loss, or a covariance that stays indefinite): keep what was fitted so far.
                diverged = true;
            }
            if (diverged)
            {
                latent?.Mu.Dispose();
                latent?.Sigma.Dispose();
                _history.Add(new IterationRecord(it, l1, l2, double.NaN, double.NaN, (clock.Elapsed - started).TotalSeconds, true));
                flow.Dispose();
                break;
            }
            var kept = latent!;
            Release(state, null);
            stages.Add((flow, kept));
            double score = Selection.score(x, xHat, hidden);
            double ll = Training.meanLogDensity(flow, kept, xHat);
            _history.Add(new IterationRecord(it, l1, l2, ll, score, (clock.Elapsed - started).TotalSeconds, false));
            // Without a hold-out every completed iteration is kept, as in the paper.
            if (double.IsNaN(score) || score < bestScore)
            {
                bestScore = double.IsNaN(score) ? bestScore : score;
                best = it;
            }
        }
        _stages.AddRange(stages);
        _selected = best;
        if (o.ValidationFraction > 0 && !images)
        {
            // New rows start from the Gaussian-EM imputation; now that selection is done, fit it on every
            // observed entry, the held-out ones included.
            var full = GaussianEm.fitBatch(o.StartEm, x, mask);
            _gaussian.Mu.Dispose();
            _gaussian.Sigma.Dispose();
            _gaussian = GaussianEmImputer.Keep(full.Estimate);
        }
    }

    /// <summary>The hold-out and the initial imputation of the training rows (and the Gaussian-EM fit and kNN donors
    /// behind it), in a dispose scope of their own: their temporaries are several (n, p) tensors, which for 60000
    /// images are gigabytes, and are freed here rather than when the fit ends.</summary>
    private (Tensor TrainMask, Tensor Hidden, Tensor XHat) FitStart(Tensor x, Tensor mask)
    {
        var o = Options;
        long n = x.shape[0], p = x.shape[1];
        using var scope = NewDisposeScope();
        var (trainMask, hidden) = o.HoldOutLikeMissingness
            ? Selection.holdOutLikeMissingness(Tensors.deriveSeed(o.Seed, 1), o.ValidationFraction, mask)
            : Selection.holdOut(Tensors.deriveSeed(o.Seed, 1), o.ValidationFraction, mask);

        bool images = StartsLikeImages;
        // Images start from their nearest pixels; a Gaussian-EM fit at p = 784 would cost minutes per sweep and is
        // not used, so the per-pixel mean and variance stand in for the (unused) iteration-0 Gaussian.
        _gaussian = images
            ? GaussianEmImputer.Keep(GaussianEm.initialEstimate(x, trainMask))
            : GaussianEmImputer.Keep(GaussianEm.fitBatch(o.StartEm, x, trainMask).Estimate);
        _start = o.InitialImputation;
        Tensor xHat;
        if (_start == InitialImputation.Auto && o.ValidationFraction == 0)
        {
            // Nothing is held out to compare the two on, so the blend is all Gaussian EM; kNN is not run.
            xHat = GaussianEm.impute(_gaussian, x, trainMask);
            _knnShare = zeros(p, dtype: float64).DetachFromDisposeScope();
        }
        else if (_start is InitialImputation.Knn or InitialImputation.Auto)
        {
            using var donorRows = DonorRows(n);
            var pool = Knn.donors(x.index_select(0, donorRows), trainMask.index_select(0, donorRows));
            try
            {
                xHat = Knn.impute(o.KnnNeighbours, pool, x, trainMask);
            }
            finally
            {
                Knn.dispose(pool);
            }
            if (_start == InitialImputation.Auto)
            {
                var gem = GaussianEm.impute(_gaussian, x, trainMask);
                _knnShare = Selection.blendShares(ShareGrid, x, gem, xHat, hidden).DetachFromDisposeScope();
                xHat = Selection.blend(_knnShare, gem, xHat);
            }
            else _knnShare = ones(p, dtype: float64).DetachFromDisposeScope();
            if (_knnShare.gt(0.0).any().item<bool>())
                _donors = KnnImputer.Keep(Knn.donors(x.index_select(0, donorRows), mask.index_select(0, donorRows)));
        }
        else
        {
            xHat = _start switch
            {
                InitialImputation.NearestPixel => NearestPixelFill(CurrentScaler, o.ImageWidth!.Value, o.ImageHeight!.Value, x, trainMask),
                InitialImputation.GaussianEm => GaussianEm.impute(_gaussian, x, trainMask),
                InitialImputation.RandomDraw => Missingness.impute(Missingness.InitialImputation.RandomDraw, Tensors.deriveSeed(o.Seed, 2), x, trainMask),
                InitialImputation.Mean => Missingness.impute(Missingness.InitialImputation.Mean, Tensors.deriveSeed(o.Seed, 2), x, trainMask),
                InitialImputation.Median => Missingness.impute(Missingness.InitialImputation.Median, Tensors.deriveSeed(o.Seed, 2), x, trainMask),
                _ => Missingness.impute(Missingness.InitialImputation.Zero, Tensors.deriveSeed(o.Seed, 2), x, trainMask),
            };
        }
        return (trainMask.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope(), xHat.MoveToOuterDisposeScope());
    }

    protected override Tensor TransformScaled(Tensor x, Tensor mask) => TransformScaled(x, mask, _selected);

    private Tensor TransformScaled(Tensor x, Tensor mask, int iterations)
    {
        var xHat = Start(x, mask);
        var (lower, upper) = Bounds(x.shape[1]);
        for (int s = 0; s < iterations; s++)
            xHat = Training.reimpute(_stages[s].Flow, _stages[s].Estimate, lower, upper, xHat, mask);
        return xHat;
    }

    /// <summary>Rows of the training table that serve as kNN donors: all of them, or a seeded sample of
    /// <see cref="EMFlowOptions.KnnMaxDonors"/> so that the start costs O(n · cap) rather than O(n²).</summary>
    private Tensor DonorRows(long n)
    {
        if (n <= Options.KnnMaxDonors) return arange(n, dtype: int64);
        using var gen = Tensors.generator(Tensors.deriveSeed(Options.Seed, 3));
        using var order = randperm(n, generator: gen);
        return order.narrow(0, 0, Options.KnnMaxDonors).sort().Values;
    }

    /// <summary>The starting imputation of new rows: nearest pixels (or zero) for images, kNN from the training rows
    /// or its blend with Gaussian EM when that was the start, else the Gaussian-EM conditional mean.</summary>
    private Tensor Start(Tensor x, Tensor mask) => _start switch
    {
        InitialImputation.Knn => Knn.impute(Options.KnnNeighbours, _donors!, x, mask),
        InitialImputation.Auto when _donors is not null => Selection.blend(_knnShare!, GaussianEm.impute(_gaussian!, x, mask), Knn.impute(Options.KnnNeighbours, _donors, x, mask)),
        InitialImputation.NearestPixel => NearestPixelFill(CurrentScaler, Options.ImageWidth!.Value, Options.ImageHeight!.Value, x, mask),
        InitialImputation.Zero when StartsLikeImages => Missingness.zeroImpute(x, mask),
        _ => GaussianEm.impute(_gaussian!, x, mask),
    };

    /// <summary>Images (nearest-pixel start, or zero start with an image shape given): no Gaussian-EM fit, and new
    /// rows start exactly as the training rows did.</summary>
    private bool StartsLikeImages => Options.InitialImputation == InitialImputation.NearestPixel
        || (Options.InitialImputation == InitialImputation.Zero && Options.ImageWidth is not null);

    /// <summary>
    /// Imputes rows with the model as it stood after <paramref name="iteration"/> iterations, whether or not that
    /// iteration was selected: 0 is the initial imputation (<see cref="SelectedStart"/>). For convergence curves (test error per
    /// iteration and per second, as in the paper's Figure 2) and for stepping through a fit.
    /// </summary>
    /// <param name="iteration">0 … <see cref="AvailableIterations"/>.</param>
    /// <param name="data">(m, p) rows with NaN (or <paramref name="missing"/>) marking missing values.</param>
    /// <param name="missing">Optional (m, p) mask, true where missing.</param>
    /// <returns>A new (m, p) table: observed cells copied from <paramref name="data"/>, missing cells imputed.</returns>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="iteration"/> outside 0 … <see cref="AvailableIterations"/>.</exception>
    public double[,] TransformAtIteration(int iteration, double[,] data, bool[,]? missing = null)
    {
        var scaler = RequireScaler();
        if (iteration < 0 || iteration > _stages.Count)
            throw new ArgumentOutOfRangeException(nameof(iteration), iteration, $"iteration must be in 0 … {_stages.Count} (the iterations this model keeps); got {iteration}.");
        var c = CheckRows(nameof(data), scaler.Features, data, missing);
        using var scope = NewDisposeScope();
        var imputed = TransformScaled(Scaled(scaler, c), c.Mask, iteration);
        return WriteBack(data, c, Scaler.inverseTransform(scaler, imputed));
    }

    /// <summary>
    /// Multiple imputation: <paramref name="count"/> completed tables whose missing cells are draws, not means.
    /// Each draw takes the latent missing parts from their conditional Gaussian N(ẑ_m, C) and pushes them
    /// through the flow. Not part of the paper; what users of mice and Amelia expect.
    /// </summary>
    /// <param name="data">(m, p) rows with NaN (or <paramref name="missing"/>) marking missing values.</param>
    /// <param name="count">Number of completed tables, at least 1.</param>
    /// <param name="seed">Seed of the draws; same seed, same tables.</param>
    /// <param name="missing">Optional (m, p) mask, true where missing.</param>
    /// <returns><paramref name="count"/> tables (m, p), observed cells copied from <paramref name="data"/>.</returns>
    public IReadOnlyList<double[,]> SampleImputations(double[,] data, int count, long seed = 0, bool[,]? missing = null)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be at least 1; got {count}.");
        var scaler = RequireScaler();
        var c = CheckRows(nameof(data), scaler.Features, data, missing);
        using var scope = NewDisposeScope();
        var x = Scaled(scaler, c);
        var result = new List<double[,]>(count);
        using var gen = Tensors.generator(seed);
        var (lower, upper) = Bounds(x.shape[1]);
        using var identity = Flow.identity((int)x.shape[1]);
        for (int k = 0; k < count; k++)
        {
            var xHat = Start(x, c.Mask);
            for (int s = 0; s + 1 < _selected; s++)
                xHat = Training.reimpute(_stages[s].Flow, _stages[s].Estimate, lower, upper, xHat, c.Mask);
            var (flow, estimate) = _selected > 0 ? _stages[_selected - 1] : (identity, _gaussian!);
            var draw = Training.sampleImputation(gen, flow, estimate, lower, upper, xHat, c.Mask);
            result.Add(WriteBack(data, c, Scaler.inverseTransform(scaler, draw)));
        }
        return result;
    }

    /// <summary>
    /// log-density of each row under the fitted model, on the original scale: log p_X of the row with its missing
    /// cells imputed (for complete rows, the exact flow density, eq. 3), minus Σ_j log(range_j) of the scaling.
    /// </summary>
    /// <param name="data">(m, p) rows.</param>
    /// <returns>(m) log-densities.</returns>
    public double[] LogLikelihood(double[,] data)
    {
        var scaler = RequireScaler();
        var c = CheckRows(nameof(data), scaler.Features, data, null);
        using var scope = NewDisposeScope();
        var imputed = TransformScaled(Scaled(scaler, c), c.Mask);
        using var identity = Flow.identity((int)imputed.shape[1]);
        var (flow, estimate) = _selected > 0 ? _stages[_selected - 1] : (identity, _gaussian!);
        using var noGrad = no_grad();
        var logp = Training.logDensity(flow, estimate, imputed);
        double logRange = scaler.Range.Sum(Math.Log);
        return Tensors.toArray(logp - logRange);
    }

    /// <summary>Writes the fitted model (options, scaler, Gaussian-EM fit, every selected iteration's flow and latent Gaussian) to one file; iterations after the selected one are not saved.</summary>
    /// <param name="path">File to create or overwrite.</param>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public void Save(string path)
    {
        var scaler = RequireScaler();
        ModelFile.Save(path, Options, scaler, _gaussian!, _stages.Take(_selected).ToList(), _history, _epochs, InitialValidationRmse, _start, _knnShare, _donors);
    }

    /// <summary>Reads a model written by <see cref="Save"/>; the loaded model transforms exactly as the saved one did.</summary>
    /// <param name="path">A file written by <see cref="Save"/>.</param>
    /// <exception cref="InvalidDataException">The file is not an EMFlow model.</exception>
    public static EMFlowImputer Load(string path)
    {
        var m = ModelFile.Load(path);
        var imputer = new EMFlowImputer(m.Options);
        imputer.SetScaler(m.Scaler);
        imputer._gaussian = m.Gaussian;
        imputer._stages.AddRange(m.Stages);
        imputer._selected = m.Stages.Count;
        imputer._history.AddRange(m.History);
        imputer._epochs.AddRange(m.Epochs);
        imputer.InitialValidationRmse = m.InitialValidationRmse;
        imputer._start = m.Start;
        imputer._donors = m.Donors;
        imputer._knnShare = m.KnnShare;
        return imputer;
    }

    /// <summary>Bounds (p) of re-imputed values on the [0, 1] scale: the observed range, or none.</summary>
    private (Tensor Lower, Tensor Upper) Bounds(long p) => Options.ClampToObservedRange
        ? (zeros(p, dtype: float64), ones(p, dtype: float64))
        : (full(p, double.NegativeInfinity, dtype: float64), full(p, double.PositiveInfinity, dtype: float64));

    /// <summary>Disposes the tensors of <paramref name="old"/> that <paramref name="next"/> does not hold, so that memory stays flat over long training.</summary>
    private static void Release(OnlineEm.State old, OnlineEm.State? next)
    {
        var keep = new HashSet<IntPtr>();
        if (next is not null) foreach (var t in StateTensors(next)) keep.Add(t.Handle);
        foreach (var t in StateTensors(old))
            if (!keep.Contains(t.Handle)) t.Dispose();
    }

    private static IEnumerable<Tensor> StateTensors(OnlineEm.State s)
    {
        yield return s.Estimate.Mu;
        yield return s.Estimate.Sigma;
        if (s.Sufficient is { } suff) { yield return suff.Value.S1; yield return suff.Value.S2; }
        foreach (var (a, b) in s.Buffer.Batches.Select(t => t.ToValueTuple())) { yield return a; yield return b; }
    }

    private static void Dispose((Flow.Flow Flow, OnlineEm.Estimate Estimate) stage)
    {
        stage.Flow.Dispose();
        stage.Estimate.Mu.Dispose();
        stage.Estimate.Sigma.Dispose();
    }

    private void Clear()
    {
        foreach (var s in _stages) Dispose(s);
        _stages.Clear();
        _selected = 0;
        InitialSeconds = double.NaN;
        _history.Clear();
        _epochs.Clear();
        _gaussian?.Mu.Dispose();
        _gaussian?.Sigma.Dispose();
        _gaussian = null;
        if (_donors is not null) Knn.dispose(_donors);
        _donors = null;
        _knnShare?.Dispose();
        _knnShare = null;
        _start = Options.InitialImputation;
        InitialValidationRmse = double.NaN;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        Clear();
        base.Dispose(disposing);
    }
}
