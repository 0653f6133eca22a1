using static TorchSharp.torch;

namespace EMFlow;

/// <summary>Which per-feature statistic <see cref="MeanImputer"/> fills with.</summary>
public enum SimpleStrategy
{
    /// <summary>Mean of the observed values.</summary>
    Mean,
    /// <summary>Median of the observed values.</summary>
    Median,
}

/// <summary>
/// Fills each missing value with its feature's mean (or median) over the observed values seen at Fit.
/// The floor every other imputer is compared with.
/// </summary>
public sealed class MeanImputer : Imputer
{
    private Tensor? _fill;

    /// <summary>A mean (default) or median imputer.</summary>
    public MeanImputer(SimpleStrategy strategy = SimpleStrategy.Mean) => Strategy = strategy;

    /// <summary>The statistic used.</summary>
    public SimpleStrategy Strategy { get; }

    /// <summary>The fill value of each feature on the original scale, (p).</summary>
    public double[] FillValues => Tensors.toArray(Scaler.inverseTransform(RequireScaler(), _fill!.unsqueeze(0)));

    protected override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        // The new fill is built first and replaces the old one only when complete.
        var fill = FillValues(x, mask, Strategy).clone().DetachFromDisposeScope();
        _fill?.Dispose();
        _fill = fill;
    }

    protected override Tensor TransformScaled(Tensor x, Tensor mask) =>
        where(mask.gt(Tensors.sc(0.5)), _fill!.expand(x.shape), x);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        _fill?.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>Settings of <see cref="GaussianEmImputer"/>.</summary>
public sealed record GaussianEmOptions
{
    /// <summary>Most EM sweeps over the data. Default 500.</summary>
    public int MaxIterations { get; init; } = 500;
    /// <summary>Stop when the mean observed-data log-likelihood per row rises by less than this. Default 1e-7.</summary>
    public double Tolerance { get; init; } = 1e-7;
    /// <summary>Ridge added to Σ's diagonal after each M-step, relative to its mean diagonal. Default 1e-6.</summary>
    public double Ridge { get; init; } = 1e-6;
}

/// <summary>
/// Gaussian-EM imputation: fits a full-covariance Gaussian to the incomplete data by EM and imputes each
/// missing value by its conditional mean given the row's observed values. EMFlow with the identity flow.
/// </summary>
public sealed class GaussianEmImputer : Imputer
{
    private OnlineEm.Estimate? _estimate;

    /// <summary>An imputer with the given settings (checked at Fit).</summary>
    public GaussianEmImputer(GaussianEmOptions? options = null) => Options = options ?? new GaussianEmOptions();

    /// <summary>The settings.</summary>
    public GaussianEmOptions Options { get; }

    private int _iterationsRun;
    private bool _converged;
    private IReadOnlyList<double> _logLikelihoodHistory = Array.Empty<double>();

    /// <summary>EM sweeps run by the last Fit.</summary>
    /// <exception cref="ObjectDisposedException">After Dispose.</exception>
    public int IterationsRun { get { ThrowIfDisposed(); return _iterationsRun; } private set => _iterationsRun = value; }

    /// <summary>Whether the last Fit met the tolerance before <see cref="GaussianEmOptions.MaxIterations"/>; non-convergence is reported, not thrown.</summary>
    /// <exception cref="ObjectDisposedException">After Dispose.</exception>
    public bool Converged { get { ThrowIfDisposed(); return _converged; } private set => _converged = value; }

    /// <summary>Mean observed-data log-likelihood per row after each sweep (on the [0, 1] scale).</summary>
    /// <exception cref="ObjectDisposedException">After Dispose.</exception>
    public IReadOnlyList<double> LogLikelihoodHistory { get { ThrowIfDisposed(); return _logLikelihoodHistory; } private set => _logLikelihoodHistory = value; }

    /// <summary>Fitted mean (p) on the [0, 1] scale.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ObjectDisposedException">After Dispose.</exception>
    public double[] Mu => Tensors.toArray(Fitted.Mu);

    /// <summary>Fitted covariance (p, p) on the [0, 1] scale.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ObjectDisposedException">After Dispose.</exception>
    public double[,] Sigma => Tensors.toArray2D(Fitted.Sigma);

    private OnlineEm.Estimate Fitted
    {
        get
        {
            RequireScaler();
            return _estimate ?? throw new InvalidOperationException("GaussianEmImputer is not fitted yet; call Fit first.");
        }
    }

    /// <inheritdoc />
    protected override void ValidateSettings(int rows, int columns)
    {
        if (Options.MaxIterations < 1) throw new ArgumentOutOfRangeException(nameof(Options.MaxIterations), Options.MaxIterations, "MaxIterations must be at least 1.");
        if (!(Options.Tolerance >= 0)) throw new ArgumentOutOfRangeException(nameof(Options.Tolerance), Options.Tolerance, "Tolerance must be non-negative.");
        if (!(Options.Ridge >= 0)) throw new ArgumentOutOfRangeException(nameof(Options.Ridge), Options.Ridge, "Ridge must be non-negative.");
    }

    /// <remarks>The token is checked before each EM sweep; the new estimate replaces the old one only when the fit succeeds.</remarks>
    protected override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var fit = GaussianEm.fitBatchCancellable(new GaussianEm.Settings(Options.MaxIterations, Options.Tolerance, Options.Ridge), cancellationToken, x, mask);
        var previous = _estimate;
        _estimate = OnlineEm.keep(fit.Estimate);
        if (previous is not null) OnlineEm.disposeEstimate(previous);
        IterationsRun = fit.Iterations;
        Converged = fit.Converged;
        LogLikelihoodHistory = fit.LogLikelihood.ToArray();
    }

    protected override Tensor TransformScaled(Tensor x, Tensor mask) => GaussianEm.impute(Fitted, x, mask);

    /// <summary>
    /// Multiple imputation: <paramref name="count"/> completed tables whose missing cells are draws from the fitted
    /// Gaussian's conditional distribution given each row's observed cells,
    /// N(μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o), Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om), whose mean <see cref="Imputer.Transform(double[,], bool[,], CancellationToken)"/> returns.
    /// </summary>
    /// <param name="data">(m, p) rows with NaN (or <paramref name="missing"/>) marking missing values.</param>
    /// <param name="count">Number of completed tables, at least 1.</param>
    /// <param name="seed">Seed of the draws; same seed, same tables.</param>
    /// <param name="missing">Optional (m, p) mask, true where missing.</param>
    /// <returns><paramref name="count"/> tables (m, p), observed cells copied from <paramref name="data"/>; draws are
    /// not clamped, so they may leave the range seen at Fit as the Gaussian's tails do.</returns>
    /// <remarks>The parameters are the maximum-likelihood ones, held fixed: the draws leave out their sampling
    /// uncertainty, which for n rows and p features is of relative order p / n.</remarks>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is below 1.</exception>
    /// <example>
    /// <code>
    /// using var gem = new GaussianEmImputer();
    /// gem.Fit(table);
    /// IReadOnlyList&lt;double[,]&gt; draws = gem.SampleImputations(newRows, count: 20, seed: 1);
    /// </code>
    /// </example>
    public IReadOnlyList<double[,]> SampleImputations(double[,] data, int count, long seed = 0, bool[,]? missing = null)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be at least 1; got {count}.");
        var scaler = RequireScaler();
        var estimate = Fitted;
        var c = CheckRows(nameof(data), scaler.Features, data, missing);
        using var scope = NewDisposeScope();
        var x = Scaled(scaler, c);
        using var gen = Tensors.generator(seed);
        var result = new List<double[,]>(count);
        for (int k = 0; k < count; k++)
        {
            using var inner = NewDisposeScope();
            var draw = Gaussian.sampleConditional(gen, estimate.Mu, estimate.Sigma, x, c.Mask);
            result.Add(WriteBack(data, c, Scaler.inverseTransform(scaler, draw)));
        }
        return result;
    }

    /// <summary>
    /// Proper multiple imputation (Rubin 1987; the EM-with-bootstrap of Honaker, King and Blackwell's Amelia II):
    /// before each draw the Gaussian is refitted by EM, with this imputer's settings, on a bootstrap resample of
    /// <paramref name="fittedRows"/>; the missing cells are then drawn from that Gaussian's conditional distribution,
    /// so the spread carries the uncertainty of μ and Σ as well as the conditional variance.
    /// </summary>
    /// <param name="data">(m, p) rows with NaN (or <paramref name="missing"/>) marking missing values.</param>
    /// <param name="count">Number of completed tables, at least 1; each costs one EM fit.</param>
    /// <param name="fittedRows">(n, p) the table this imputer was fitted on (or another sample of the same
    /// population), NaN (or <paramref name="fittedMissing"/>) marking missing values; n at least 2.</param>
    /// <param name="seed">Seed of the resamples and the draws; same seed, same tables.</param>
    /// <param name="missing">Optional (m, p) mask of <paramref name="data"/>, true where missing.</param>
    /// <param name="fittedMissing">Optional (n, p) mask of <paramref name="fittedRows"/>, true where missing.</param>
    /// <param name="cancellationToken">Checked before each EM sweep (<see cref="OperationCanceledException"/>).</param>
    /// <returns><paramref name="count"/> tables (m, p), observed cells copied from <paramref name="data"/>; draws are not clamped.</returns>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is below 1.</exception>
    /// <exception cref="ArgumentException">A table of another width than the fitted one, an infinite value, fewer
    /// than 2 fitted rows, or a column that <paramref name="fittedRows"/> never observes.</exception>
    /// <example>
    /// <code>
    /// gem.Fit(table);
    /// IReadOnlyList&lt;double[,]&gt; draws = gem.SampleProperImputations(table, count: 20, fittedRows: table, seed: 1);
    /// </code>
    /// </example>
    public IReadOnlyList<double[,]> SampleProperImputations(double[,] data, int count, double[,] fittedRows, long seed = 0,
        bool[,]? missing = null, bool[,]? fittedMissing = null, CancellationToken cancellationToken = default)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be at least 1; got {count}.");
        ArgumentNullException.ThrowIfNull(fittedRows);
        var scaler = RequireScaler();
        var estimate = Fitted;
        var c = CheckRows(nameof(data), scaler.Features, data, missing);
        var f = CheckRows(nameof(fittedRows), scaler.Features, fittedRows, fittedMissing);
        if (f.Rows < 2) throw new ArgumentException($"fittedRows must hold at least 2 rows; got {f.Rows}.", nameof(fittedRows));
        CheckObservedColumns(nameof(fittedRows), f);
        var settings = new GaussianEm.Settings(Options.MaxIterations, Options.Tolerance, Options.Ridge);
        using var scope = NewDisposeScope();
        var x = Scaled(scaler, c);
        var fx = Scaled(scaler, f);
        using var gen = Tensors.generator(seed);
        var result = new List<double[,]>(count);
        for (int k = 0; k < count; k++)
        {
            using var inner = NewDisposeScope();
            var draw = GaussianEm.sampleBootstrap(settings, gen, cancellationToken, estimate, fx, f.Mask, x, c.Mask);
            result.Add(WriteBack(data, c, Scaler.inverseTransform(scaler, draw)));
        }
        return result;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        _estimate?.Mu.Dispose();
        _estimate?.Sigma.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// Images: each missing pixel takes the value of the nearest observed pixel of the same image (Euclidean distance
/// on the pixel grid; among equally near pixels the smallest row-major index wins, so the result is deterministic).
/// The paper's initial imputation for MNIST (section 4.2) and its nearest-neighbour baseline. Each row is one image,
/// pixel (r, c) at column r · width + c; an image with no observed pixel is filled with 0.
/// </summary>
/// <remarks>Nothing is learned: Fit checks the shape (width · height = p) and the scaling; each image is completed
/// from its own observed pixels only, except that a pixel whose observed training values are all equal (an MNIST
/// corner, always 0) imputes that value, as every imputer does for a constant feature.</remarks>
/// <example>
/// <code>
/// using var imputer = new NearestPixelImputer(28, 28);
/// double[,] completed = imputer.FitTransform(images);   // (n, 784), NaN marks missing pixels
/// </code>
/// </example>
public sealed class NearestPixelImputer : Imputer
{
    /// <summary>An imputer for images of <paramref name="width"/> × <paramref name="height"/> pixels.</summary>
    /// <param name="width">Image width in pixels, at least 1.</param>
    /// <param name="height">Image height in pixels, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException">width or height below 1.</exception>
    public NearestPixelImputer(int width, int height)
    {
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, $"width must be at least 1; got {width}.");
        if (height < 1) throw new ArgumentOutOfRangeException(nameof(height), height, $"height must be at least 1; got {height}.");
        Width = width;
        Height = height;
    }

    /// <summary>Image width in pixels.</summary>
    public int Width { get; }

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <inheritdoc />
    protected override void ValidateSettings(int rows, int columns)
    {
        if ((long)Width * Height != columns)
            throw new ArgumentException($"width × height must equal the {columns} columns of the data; got {Width} × {Height} = {(long)Width * Height}.", "data");
    }

    protected override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken) =>
        cancellationToken.ThrowIfCancellationRequested();

    protected override Tensor TransformScaled(Tensor x, Tensor mask) => NearestPixelFill(CurrentScaler, Width, Height, x, mask);
}
