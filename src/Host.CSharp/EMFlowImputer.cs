using Microsoft.FSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace EMFlow;

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
    // The whole fit, as Fitting.fit returned it: the start, every completed iteration (so the model at any iteration
    // can still impute, TransformAtIteration) and the iteration kept. Null before Fit.
    private FitResult? _fit;
    private FitSettings? _settings;
    // SHA-256 of the scaled rows and mask the last Fit was given, so ChooseSpread can tell that it draws the fit's own
    // hold-out again; null after Load, since model files do not store it.
    private byte[]? _fittedHash;
    // Fitted by FitStream: the hold-out was drawn from a sample that is not kept.
    private bool _streamed;

    /// <summary>An imputer with the given settings (checked at Fit).</summary>
    public EMFlowImputer(EMFlowOptions? options = null) : this(options, Array.Empty<IStartCandidate>()) { }

    /// <summary>An imputer whose <see cref="InitialImputation.Auto"/> start blends Gaussian EM, kNN and
    /// <paramref name="startCandidates"/>, per feature, with the weights best on the held-out entries; for example
    /// <c>new EMFlowImputer(options, new[] { new ForestStart() })</c> with EMFlow.Forest's tree ensembles.</summary>
    /// <param name="options">The settings (checked at Fit); null for the defaults.</param>
    /// <param name="startCandidates">Imputers that join the blend, each with a distinct <see cref="IStartCandidate.Name"/>
    /// other than "gaussian-em" and "knn". They are used only by the Auto start.</param>
    /// <exception cref="ArgumentException">A candidate is null or its name is repeated or reserved.</exception>
    public EMFlowImputer(EMFlowOptions? options, IReadOnlyList<IStartCandidate> startCandidates)
    {
        Options = options ?? new EMFlowOptions();
        ArgumentNullException.ThrowIfNull(startCandidates);
        var names = new HashSet<string>(StringComparer.Ordinal) { "gaussian-em", "knn" };
        foreach (var c in startCandidates)
        {
            if (c is null) throw new ArgumentException("startCandidates holds a null entry.", nameof(startCandidates));
            if (string.IsNullOrWhiteSpace(c.Name) || !names.Add(c.Name))
                throw new ArgumentException($"Start candidate names must be distinct, non-empty and not 'gaussian-em' or 'knn'; got '{c.Name}'.", nameof(startCandidates));
        }
        StartCandidates = startCandidates.ToArray();
    }

    /// <summary>The imputers that join the Auto start's blend besides Gaussian EM and kNN (empty by default).</summary>
    public IReadOnlyList<IStartCandidate> StartCandidates { get; }

    /// <summary>The settings.</summary>
    public EMFlowOptions Options { get; }

    /// <summary>Iterations completed by the last Fit.</summary>
    public int IterationsRun => FitOrNull?.History.Length ?? 0;

    /// <summary>The iteration whose model is used (0: the initial imputation was best on the hold-out).</summary>
    public int SelectedIteration => FitOrNull?.Selected ?? 0;

    /// <summary>The initial imputation of the last Fit, <see cref="EMFlowOptions.InitialImputation"/>. New rows start
    /// the same way, except that the simple table starts (<see cref="InitialImputation.Mean"/>,
    /// <see cref="InitialImputation.Median"/>, <see cref="InitialImputation.RandomDraw"/>,
    /// <see cref="InitialImputation.Zero"/> without an image shape) start new rows from Gaussian EM.</summary>
    public InitialImputation SelectedStart => FitOrNull?.Start.Kind ?? Options.InitialImputation;

    /// <summary>Per feature (p), the share of the kNN imputation in the start, the rest being Gaussian EM's: all 1 for
    /// <see cref="InitialImputation.Knn"/>, chosen per feature on the held-out entries for
    /// <see cref="InitialImputation.Auto"/> (0, 0.1, …, 1), all 0 for the other starts.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public double[] KnnShare
    {
        get
        {
            var fit = Fitted;
            return fit.Start.KnnShare is { } share ? Tensors.toArray(share.Value) : new double[RequireScaler().Features];
        }
    }

    /// <summary>Names of the start's blended imputers, in the column order of <see cref="StartWeights"/>:
    /// "gaussian-em", "knn", then each start candidate's name; with a start averaged over k hold-out draws
    /// (<see cref="EMFlowOptions.StartDraws"/>) each candidate appears once per draw, as "forest", "forest 2", …, "forest k".</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public IReadOnlyList<string> StartNames
    {
        get
        {
            var start = Fitted.Start;
            int perDraw = start.Extra.Length / start.Draws;
            return new[] { "gaussian-em", "knn" }
                .Concat(start.Extra.Select((e, i) => i < perDraw ? e.Item1.Name : $"{e.Item1.Name} {i / perDraw + 1}")).ToArray();
        }
    }

    /// <summary>How many hold-out draws the fitted start averages (<see cref="EMFlowOptions.StartDraws"/>): 1 for a
    /// start without candidates or with no held-out cells, which has nothing to average. A reloaded model keeps the
    /// count it was fitted with. <see cref="StartNames"/> lists each candidate this many times.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public int StartDrawsUsed => Fitted.Start.Draws;

    /// <summary>(p, k) weight of each of the start's imputers (<see cref="StartNames"/>) per feature, each row summing
    /// to 1: with start candidates, chosen per feature on the held-out entries in multiples of 0.1; otherwise the
    /// Gaussian-EM and kNN shares (<see cref="KnnShare"/>).</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public double[,] StartWeights
    {
        get
        {
            var fit = Fitted;
            if (fit.Start.Weights is { } w) return Tensors.toArray2D(w.Value);
            var share = KnnShare;
            var result = new double[share.Length, 2];
            for (int j = 0; j < share.Length; j++) { result[j, 0] = 1 - share[j]; result[j, 1] = share[j]; }
            return result;
        }
    }

    /// <summary>Iterations whose model can still impute through <see cref="TransformAtIteration"/>: every iteration
    /// the last Fit completed without diverging; after <see cref="Load"/>, the saved (selected) ones.</summary>
    public int AvailableIterations => FitOrNull?.Models.Length ?? 0;

    /// <summary>Seconds the last Fit spent before its first iteration (validation, hold-out, initial imputation);
    /// with <see cref="IterationRecord.Seconds"/> it places each iteration on a time axis. NaN after <see cref="Load"/>.</summary>
    public double InitialSeconds => FitOrNull?.InitialSeconds ?? double.NaN;

    /// <summary>Hold-out RMSE of the initial imputation (iteration 0), [0, 1] scale; NaN without a hold-out.</summary>
    public double InitialValidationRmse => FitOrNull?.InitialValidationRmse ?? double.NaN;

    /// <summary>One record per iteration run.</summary>
    public IReadOnlyList<IterationRecord> History => FitOrNull?.History ?? Array.Empty<IterationRecord>();

    /// <summary>One record per epoch run.</summary>
    public IReadOnlyList<EpochRecord> EpochHistory => FitOrNull?.Epochs ?? Array.Empty<EpochRecord>();

    /// <summary>Latent mean μ (p) of the selected model (the Gaussian-EM mean when iteration 0 was selected).</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public double[] Mu => Tensors.toArray(FinalEstimate.Mu);

    /// <summary>Latent covariance Σ (p, p) of the selected model.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public double[,] Sigma => Tensors.toArray2D(FinalEstimate.Sigma);

    // The fit, or null before Fit; throws ObjectDisposedException after Dispose, as every member does.
    private FitResult? FitOrNull
    {
        get
        {
            ThrowIfDisposed();
            return _fit;
        }
    }

    private FitResult Fitted
    {
        get
        {
            RequireScaler();
            return _fit ?? throw new InvalidOperationException("EMFlowImputer is not fitted yet; call Fit first.");
        }
    }

    private OnlineEm.Estimate FinalEstimate
    {
        get
        {
            var fit = Fitted;
            return fit.Selected > 0 ? fit.Models[fit.Selected - 1].Latent : fit.Start.Gaussian;
        }
    }

    /// <inheritdoc />
    protected override int? TorchThreads => Options.TorchThreads;

    /// <inheritdoc />
    protected override void ValidateSettings(int rows, int columns)
    {
        Options.Validate(rows, columns);
        if (rows < 2) throw new ArgumentException($"EMFlow needs at least 2 rows to fit; got {rows}.", "data");
    }

    /// <inheritdoc />
    /// <remarks>The policy is <see cref="Fitting.fit"/>; a fit that fails or is cancelled leaves the previous model in place.</remarks>
    protected override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        var settings = Options.ToFitSettings((int)x.shape[1], StartCandidates, ColumnGroups);
        var fit = Fitting.fit(settings, CurrentScaler, progress!, ct, x, mask);
        Clear();
        _fit = fit;
        _settings = settings;
        _fittedHash = TableHash(x, mask);
        _streamed = false;
    }

    /// <summary>Rows held in memory by <see cref="FitStream"/> unless told otherwise.</summary>
    public const int DefaultSampleRows = 50_000;

    /// <summary>
    /// Fits on a table too large for memory, read block by block: every training step's batch comes from the table
    /// itself, read once per epoch, while the hold-out, the start, the latent refits and the choice of iteration work on
    /// a seeded uniform sample of <paramref name="sampleRows"/> rows held in memory (<see cref="Fitting.fitStreamed"/>).
    /// Memory is bounded by the sample, the model and one block, whatever the row count.
    /// </summary>
    /// <param name="readBlocks">Starts a pass over the table: its rows in the same order every time, as blocks (m, p)
    /// with NaN marking missing cells (any m ≥ 1). Called once to scale the columns and draw the sample, then once per
    /// epoch. The rows are shuffled within each block only, so blocks of tens of thousands of rows train as a shuffled
    /// table does; a table sorted by some column should be shuffled once before.</param>
    /// <param name="columnNames">Optional p distinct names (<see cref="Imputer.ColumnNames"/>).</param>
    /// <param name="sampleRows">Rows held in memory, at least 2 (the whole table when it has fewer).</param>
    /// <param name="progress">Optional progress of the fit (the first pass reports as "reading").</param>
    /// <param name="cancellationToken">Checked between blocks and between batches.</param>
    /// <remarks>After every block the hold-out (on the sample) is scored: an iteration keeps the flow of its best block
    /// and ends once <see cref="EMFlowOptions.Patience"/> blocks in a row have not improved on it, because an epoch of a
    /// large table is many thousands of steps and a flow trained that long imputed worse (bench/README.md, "Streaming
    /// fit"). Each epoch also re-imputes each block by every earlier iteration's model, as <see cref="Imputer.Transform(double[,], bool[,])"/>
    /// would impute those rows, so later iterations cost more per row. The scaler is fitted on every observed value of
    /// the table. After a streamed fit <see cref="ChooseSpread"/> is not available (it redraws the hold-out from the
    /// fitted table). A fit that throws leaves the imputer as it was.</remarks>
    /// <exception cref="ArgumentException">Blocks of different widths, an infinite observed value (the message names the
    /// column and the row), a column with no observed value, fewer than 2 rows, or bad settings.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public void FitStream(Func<IEnumerable<double[,]>> readBlocks, IReadOnlyList<string>? columnNames = null, int sampleRows = DefaultSampleRows,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(readBlocks);
        if (sampleRows < 2) throw new ArgumentOutOfRangeException(nameof(sampleRows), sampleRows, $"sampleRows must be at least 2; got {sampleRows}.");
        cancellationToken.ThrowIfCancellationRequested();

        // First pass: the columns' observed ranges and a uniform sample of the rows (reservoir sampling, seeded).
        int p = -1;
        double[] min = Array.Empty<double>(), max = Array.Empty<double>();
        long[] observed = Array.Empty<long>();
        var sample = new List<(long Row, double[] Values)>();
        var rng = new Random((int)(Tensors.deriveSeed(Options.Seed, 60) & 0x7FFFFFFF));
        long n = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (var block in readBlocks())
        {
            cancellationToken.ThrowIfCancellationRequested();
            ArgumentNullException.ThrowIfNull(block, nameof(readBlocks));
            if (p < 0)
            {
                p = block.GetLength(1);
                if (p == 0) throw new ArgumentException("The blocks have no column.", nameof(readBlocks));
                min = Enumerable.Repeat(double.PositiveInfinity, p).ToArray();
                max = Enumerable.Repeat(double.NegativeInfinity, p).ToArray();
                observed = new long[p];
            }
            else if (block.GetLength(1) != p)
                throw new ArgumentException($"Every block must have the first block's {p} columns; the block at row {n} has {block.GetLength(1)}.", nameof(readBlocks));
            for (int i = 0; i < block.GetLength(0); i++, n++)
            {
                var row = new double[p];
                for (int j = 0; j < p; j++)
                {
                    double v = row[j] = block[i, j];
                    if (double.IsNaN(v)) continue;
                    if (double.IsInfinity(v))
                        throw new ArgumentException($"{Described(columnNames, j)}, row {n}: the observed value {v} is not finite (use NaN for missing).", nameof(readBlocks));
                    if (v < min[j]) min[j] = v;
                    if (v > max[j]) max[j] = v;
                    observed[j]++;
                }
                if (sample.Count < sampleRows) sample.Add((n, row));
                else if (rng.NextInt64(n + 1) is var k && k < sampleRows) sample[(int)k] = (n, row);
            }
            progress?.Report(new TrainingProgress("reading", 0, Options.Iterations, 0, Options.EpochsPerIteration, double.NaN, double.NaN, clock.Elapsed));
        }
        if (n < 2) throw new ArgumentException($"EMFlow needs at least 2 rows to fit; the table has {n}.", nameof(readBlocks));
        for (int j = 0; j < p; j++)
            if (observed[j] == 0) throw new ArgumentException($"{Described(columnNames, j)} has no observed value; nothing can be learned about it: drop it.", nameof(readBlocks));
        var names = columnNames is null ? null : CheckNames(nameof(columnNames), columnNames, p);
        sample.Sort((a, b) => a.Row.CompareTo(b.Row));
        ValidateSettings(sample.Count, p);

        var scaler = new Scaler.MinMax(min, max);
        using var threads = new TorchThreadScope(TorchThreads);
        using var scope = NewDisposeScope();
        var rows = new double[sample.Count, p];
        for (int i = 0; i < sample.Count; i++)
            for (int j = 0; j < p; j++) rows[i, j] = sample[i].Values[j];
        var (x, mask) = ScaledBlock(scaler, rows);
        var stream = new RowStream(
            FuncConvert.FromFunc<Unit, IEnumerable<Tuple<Tensor, Tensor, long>>>(_ => Blocks(readBlocks, scaler, p, cancellationToken)),
            sample.Select(r => r.Row).ToArray());
        var settings = Options.ToFitSettings(p, StartCandidates);
        var fit = Fitting.fitStreamed(settings, scaler, progress!, cancellationToken, x, mask, stream);
        Clear();
        _fit = fit;
        _settings = settings;
        _streamed = true;
        SetScaler(scaler);
        SetColumnNames(names);
    }

    private static string Described(IReadOnlyList<string>? names, int j) =>
        names is not null && j < names.Count ? $"Column '{names[j]}'" : $"Column {j}";

    /// <summary>One pass of <paramref name="readBlocks"/> as scaled blocks with the index of each block's first row.</summary>
    private static IEnumerable<Tuple<Tensor, Tensor, long>> Blocks(Func<IEnumerable<double[,]>> readBlocks, Scaler.MinMax scaler, int p, CancellationToken ct)
    {
        long first = 0;
        foreach (var block in readBlocks())
        {
            ct.ThrowIfCancellationRequested();
            if (block.GetLength(1) != p)
                throw new ArgumentException($"Every block must have {p} columns; the block at row {first} has {block.GetLength(1)}.", nameof(readBlocks));
            if (block.GetLength(0) == 0) continue;
            var (x, mask) = ScaledBlock(scaler, block);
            yield return Tuple.Create(x, mask, first);
            first += block.GetLength(0);
        }
    }

    /// <summary>Rows (m, p) on the scaler's [0, 1] scale, missing entries 0, and their mask (m, p), 1.0 where NaN.</summary>
    private static (Tensor X, Tensor Mask) ScaledBlock(Scaler.MinMax scaler, double[,] block)
    {
        int m = block.GetLength(0), p = block.GetLength(1);
        var values = new double[m, p];
        var mask = new double[m, p];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < p; j++)
            {
                if (double.IsNaN(block[i, j])) { mask[i, j] = 1; values[i, j] = scaler.Min[j]; }
                else values[i, j] = block[i, j];
            }
        using var scope = NewDisposeScope();
        var maskTensor = Tensors.ofArray2D(mask);
        var x = Scaler.transform(scaler, Tensors.ofArray2D(values)) * Tensors.oneMinus(maskTensor);
        return (x.MoveToOuterDisposeScope(), maskTensor.MoveToOuterDisposeScope());
    }

    /// <inheritdoc />
    protected override Tensor TransformScaled(Tensor x, Tensor mask) => TransformScaled(x, mask, CancellationToken.None);

    /// <inheritdoc />
    /// <remarks>The token is checked between chunks of rows of the start (kNN) and of each re-imputation.</remarks>
    protected override Tensor TransformScaled(Tensor x, Tensor mask, CancellationToken cancellationToken) =>
        Fitting.transformCancellable(_settings!, CurrentScaler, Fitted, Fitted.Selected, cancellationToken, x, mask);

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
        var fit = Fitted;
        if (iteration < 0 || iteration > fit.Models.Length)
            throw new ArgumentOutOfRangeException(nameof(iteration), iteration, $"iteration must be in 0 … {fit.Models.Length} (the iterations this model keeps); got {iteration}.");
        var c = CheckRows(nameof(data), scaler.Features, data, missing);
        using var scope = NewDisposeScope();
        var imputed = Fitting.transform(_settings!, scaler, fit, iteration, Scaled(scaler, c), c.Mask);
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
    /// <param name="spread">Factor on the latent conditional standard deviations: 1 draws as the fitted model says;
    /// <see cref="ChooseSpread"/> calibrates it on the entries the fit held out.</param>
    /// <returns><paramref name="count"/> tables (m, p), observed cells copied from <paramref name="data"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is below 1, or <paramref name="spread"/> is not positive and finite.</exception>
    public IReadOnlyList<double[,]> SampleImputations(double[,] data, int count, long seed = 0, bool[,]? missing = null, double spread = 1)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be at least 1; got {count}.");
        CheckSpread(spread);
        var scaler = RequireScaler();
        var c = CheckRows(nameof(data), scaler.Features, data, missing);
        using var scope = NewDisposeScope();
        var x = Scaled(scaler, c);
        var fit = Fitted;
        var result = new List<double[,]>(count);
        using var gen = Tensors.generator(seed);
        var (lower, upper) = Fitting.bounds(_settings!, x.shape[1]).ToValueTuple();
        // Every iteration before the kept one re-imputes as usual; the kept one draws instead of taking the mean.
        var xHat = Fitting.transform(_settings!, scaler, fit, Math.Max(fit.Selected - 1, 0), x, c.Mask);
        var (model, owned) = Fitting.modelAt(fit, fit.Selected).ToValueTuple();
        var widened = ModelModule.widen(spread, model);
        try
        {
            for (int k = 0; k < count; k++)
            {
                var draw = ModelModule.sample(gen, widened, lower, upper, xHat, c.Mask);
                result.Add(WriteBack(data, c, Scaler.inverseTransform(scaler, draw)));
            }
        }
        finally
        {
            if (owned) model.Flow.Dispose();
        }
        return result;
    }

    /// <summary>
    /// Proper multiple imputation (Rubin 1987): <paramref name="count"/> completed tables whose draws also carry the
    /// uncertainty of the fitted latent Gaussian. Before each draw, the latent Gaussian of the kept model is refitted
    /// by batch EM on a bootstrap resample of <paramref name="fittedRows"/> (the EM-with-bootstrap of Honaker, King
    /// and Blackwell's Amelia II, here in the latent space; at iteration 0, the start's Gaussian-EM fit); then, as in
    /// <see cref="SampleImputations"/>, the latent missing parts are drawn from that Gaussian's conditionals and pushed
    /// through the flow, which is held fixed.
    /// </summary>
    /// <remarks>With the fitted Gaussian held fixed (<see cref="SampleImputations"/>), a row far from the rows that
    /// observe what it misses gets the spread of a typical row, although its imputation is an extrapolation of the
    /// fitted relations; the resampled fits disagree most there. Costs one EM fit per draw (at iteration 0 as long as
    /// the start's Gaussian-EM fit; after, a pass of <paramref name="fittedRows"/> through the flow and EM).</remarks>
    /// <param name="data">(m, p) rows with NaN (or <paramref name="missing"/>) marking missing values.</param>
    /// <param name="count">Number of completed tables, at least 1.</param>
    /// <param name="fittedRows">(n, p) the table the model was fitted on (or another sample of the same population),
    /// NaN (or <paramref name="fittedMissing"/>) marking missing values; n at least 2. <paramref name="data"/> itself
    /// when imputing the fitted table.</param>
    /// <param name="seed">Seed of the resamples and the draws; same seed, same tables.</param>
    /// <param name="missing">Optional (m, p) mask of <paramref name="data"/>, true where missing.</param>
    /// <param name="fittedMissing">Optional (n, p) mask of <paramref name="fittedRows"/>, true where missing.</param>
    /// <param name="spread">Factor on the latent conditional standard deviations, as for <see cref="SampleImputations"/>.</param>
    /// <param name="cancellationToken">Checked before each draw and each EM sweep (<see cref="OperationCanceledException"/>).</param>
    /// <returns><paramref name="count"/> tables (m, p), observed cells copied from <paramref name="data"/>.</returns>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is below 1, or <paramref name="spread"/> is not positive and finite.</exception>
    /// <exception cref="ArgumentException">A table of another width than the fitted one, an infinite value, fewer
    /// than 2 fitted rows, or a column that <paramref name="fittedRows"/> never observes.</exception>
    /// <example>
    /// <code>
    /// imputer.Fit(table);
    /// IReadOnlyList&lt;double[,]&gt; draws = imputer.SampleProperImputations(table, count: 20, fittedRows: table, seed: 1);
    /// </code>
    /// </example>
    public IReadOnlyList<double[,]> SampleProperImputations(double[,] data, int count, double[,] fittedRows, long seed = 0,
        bool[,]? missing = null, bool[,]? fittedMissing = null, double spread = 1, CancellationToken cancellationToken = default)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be at least 1; got {count}.");
        CheckSpread(spread);
        ArgumentNullException.ThrowIfNull(fittedRows);
        var scaler = RequireScaler();
        var fit = Fitted;
        var c = CheckRows(nameof(data), scaler.Features, data, missing);
        var f = CheckRows(nameof(fittedRows), scaler.Features, fittedRows, fittedMissing);
        if (f.Rows < 2) throw new ArgumentException($"fittedRows must hold at least 2 rows; got {f.Rows}.", nameof(fittedRows));
        CheckObservedColumns(nameof(fittedRows), f);
        using var threads = new TorchThreadScope(TorchThreads);
        using var scope = NewDisposeScope();
        var draws = Fitting.sampleProper(_settings!, scaler, fit, seed, count, spread, cancellationToken, Scaled(scaler, f), f.Mask, Scaled(scaler, c), c.Mask);
        return draws.Select(d => WriteBack(data, c, Scaler.inverseTransform(scaler, d))).ToArray();
    }

    /// <summary>
    /// A spread for <see cref="SampleImputations"/> and <see cref="SampleProperImputations"/> calibrated on the
    /// entries the fit held out (<see cref="EMFlowOptions.ValidationFraction"/>), which the kept model never saw: the
    /// factor on the latent conditional standard deviations for which the smallest and the largest of
    /// <paramref name="draws"/> draws hold the held-out true values as often as a calibrated model's would hold a new
    /// value, (K − 1) / (K + 1) of the time for K draws (19/21 = 90.5% for 20). No other observed entry is looked at.
    /// </summary>
    /// <remarks>
    /// <para>Why: a model's own conditional spread is right only where the model is. The flow is trained on rows whose
    /// missing entries hold conditional means, which sit closer together than real values, and a Gaussian gives every
    /// row the same conditional variance however skewed the feature; either can leave the draws too narrow (or too
    /// wide), and the held-out entries measure by how much.</para>
    /// <para>How: the fit's hold-out is drawn again from the observed cells of <paramref name="fittedRows"/> with the
    /// fit's seed, the start is fitted again without the held-out entries, and the iterations before the kept one
    /// re-impute those rows as they did during the fit; the factor is searched by bisection in [1/4, 8] on common
    /// draws, seeded from <see cref="EMFlowOptions.Seed"/>. It costs about the start's fit plus
    /// 10 × <paramref name="draws"/> draws of the held-out rows.</para>
    /// <para>Under MAR the held-out entries are spread over the observed cells (or over the columns' missing shares,
    /// with <see cref="EMFlowOptions.HoldOut"/> = <see cref="HoldOutDraw.LikeMissingness"/>), so they cannot show how far a model errs in the rows
    /// the mechanism hides, which lie elsewhere.</para>
    /// </remarks>
    /// <param name="fittedRows">(n, p) the table given to Fit, NaN (or <paramref name="fittedMissing"/>) marking missing values.</param>
    /// <param name="draws">Draws per held-out entry, at least 2 (20 by default, as many as the imputations asked for).</param>
    /// <param name="fittedMissing">Optional (n, p) mask of <paramref name="fittedRows"/>, true where missing.</param>
    /// <param name="cancellationToken">Checked between the start's stages and chunks of rows (<see cref="OperationCanceledException"/>).</param>
    /// <returns>Spread: the factor (1 when nothing was held out); HeldOutCoverage: the share of the held-out entries
    /// that the smallest and the largest of the draws enclose at that factor (NaN when nothing was held out).</returns>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="draws"/> is below 2.</exception>
    /// <exception cref="ArgumentException"><paramref name="fittedRows"/> is not the table the last Fit was given
    /// (checked by a SHA-256 of it, except after <see cref="Load"/>, which does not keep one).</exception>
    /// <example>
    /// <code>
    /// imputer.Fit(table);
    /// var choice = imputer.ChooseSpread(table);
    /// IReadOnlyList&lt;double[,]&gt; draws = imputer.SampleImputations(table, 20, seed: 1, spread: choice.Spread);
    /// </code>
    /// </example>
    public (double Spread, double HeldOutCoverage) ChooseSpread(double[,] fittedRows, int draws = 20, bool[,]? fittedMissing = null, CancellationToken cancellationToken = default)
    {
        if (draws < 2) throw new ArgumentOutOfRangeException(nameof(draws), draws, $"draws must be at least 2; got {draws}.");
        var scaler = RequireScaler();
        if (_streamed)
            throw new InvalidOperationException("ChooseSpread redraws the fit's hold-out from the fitted table; a fit by FitStream held out cells of a sample it does not keep.");
        var fit = Fitted;
        var f = CheckRows(nameof(fittedRows), scaler.Features, fittedRows, fittedMissing);
        using var threads = new TorchThreadScope(TorchThreads);
        using var scope = NewDisposeScope();
        var x = Scaled(scaler, f);
        if (_fittedHash is { } expected && !TableHash(x, f.Mask).AsSpan().SequenceEqual(expected))
            throw new ArgumentException("fittedRows must be the table given to Fit, whose held-out entries are drawn again from it; got another table.", nameof(fittedRows));
        return Fitting.chooseSpread(_settings!, scaler, fit, draws, cancellationToken, x, f.Mask).ToValueTuple();
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
        var fit = Fitted;
        var imputed = TransformScaled(Scaled(scaler, c), c.Mask);
        var (model, owned) = Fitting.modelAt(fit, fit.Selected).ToValueTuple();
        using var noGrad = no_grad();
        Tensor logp;
        try { logp = ModelModule.logDensity(model, imputed); }
        finally { if (owned) model.Flow.Dispose(); }
        using var logRange = scaler.Range.Sum(Math.Log).ToScalar();
        return Tensors.toArray(logp.sub(logRange));
    }

    /// <summary>Writes the fitted model (options, scaler, column names, Gaussian-EM fit, every selected iteration's flow
    /// and latent Gaussian, and the start candidates' fitted state) to one file, format 3 (4 with start candidates), with a SHA-256 checksum of its content; iterations after the selected
    /// one are not saved.</summary>
    /// <param name="path">File to create or overwrite.</param>
    /// <param name="columnNames">Names of the fitted columns to store, when the imputer was fitted without them
    /// (<see cref="Imputer.ColumnNames"/> otherwise, which they must then equal); null stores <see cref="Imputer.ColumnNames"/>.</param>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ArgumentException">The names are not one distinct name per column, or differ from <see cref="Imputer.ColumnNames"/>.</exception>
    public void Save(string path, IReadOnlyList<string>? columnNames = null)
    {
        var scaler = RequireScaler();
        var names = ColumnNames;
        if (columnNames is not null)
        {
            var given = CheckNames(nameof(columnNames), columnNames, scaler.Features);
            if (names is not null && !names.SequenceEqual(given, StringComparer.Ordinal))
                throw new ArgumentException($"The imputer was fitted on columns {string.Join(", ", names.Select(n => $"'{n}'"))}; the names given differ.", nameof(columnNames));
            names = given;
        }
        ModelFile.Save(path, Options, scaler, Fitted, names);
    }

    /// <summary>Reads a model written by <see cref="Save"/>; the loaded model transforms exactly as the saved one did,
    /// and <see cref="Imputer.ColumnNames"/> holds the stored names (null for files of formats 1 and 2, or saved without names).</summary>
    /// <param name="path">A file written by <see cref="Save"/>.</param>
    /// <exception cref="InvalidDataException">The file is not an EMFlow model, or is damaged or truncated (its
    /// checksum does not match, or its content cannot be read); the message names the file.</exception>
    /// <exception cref="TypeLoadException">The model was fitted with a start candidate whose assembly is not loaded
    /// (EMFlow.Forest for <c>ForestStart</c>); the message names the file and the assembly.</exception>
    public static EMFlowImputer Load(string path)
    {
        var m = ModelFile.Load(path);
        // A start averaged over several draws holds its candidates once per draw.
        var start = m.Fit.Start;
        var imputer = new EMFlowImputer(m.Options, start.Extra.Take(start.Extra.Length / start.Draws).Select(e => e.Item1).ToArray());
        imputer.SetScaler(m.Scaler);
        imputer.SetColumnNames(m.ColumnNames);
        imputer._fit = m.Fit;
        imputer._settings = m.Options.ToFitSettings(m.Scaler.Features, imputer.StartCandidates);
        return imputer;
    }

    /// <summary>For a model loaded inside a <see cref="MixedImputer"/>: the column groups it was fitted with, which
    /// model files do not store, so that <see cref="ChooseSpread"/> draws the fit's hold-out as the fit did.</summary>
    internal void RestoreColumnGroups(int[] groups) =>
        _settings = Options.ToFitSettings(RequireScaler().Features, StartCandidates, groups);

    private void Clear()
    {
        if (_fit is not null) Fitting.dispose(_fit);
        _fit = null;
        _settings = null;
        _fittedHash = null;
    }

    private static byte[] TableHash(Tensor x, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var values = Tensors.toArray(x.flatten());
        var missing = Tensors.toArray(mask.flatten());
        var bytes = new byte[16 * values.Length];
        Buffer.BlockCopy(values, 0, bytes, 0, 8 * values.Length);
        Buffer.BlockCopy(missing, 0, bytes, 8 * values.Length, 8 * missing.Length);
        return System.Security.Cryptography.SHA256.HashData(bytes);
    }

    private static void CheckSpread(double spread)
    {
        if (!(spread > 0) || double.IsInfinity(spread))
            throw new ArgumentOutOfRangeException(nameof(spread), spread, $"spread must be positive and finite; got {spread}.");
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        Clear();
        base.Dispose(disposing);
    }
}
