using Microsoft.FSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace EMFlow;

/// <summary>
/// An imputer in the scikit-learn mould: settings are stored at construction and checked at
/// <see cref="Fit(double[,], bool[,], IProgress{TrainingProgress}, CancellationToken)"/>; fitted state is read-only; <see cref="Transform(double[,], bool[,])"/>
/// before Fit throws <see cref="InvalidOperationException"/>. Missing values are NaN, or are marked in an explicit
/// mask of the table's shape (true = missing).
/// </summary>
/// <remarks>
/// The pipeline is the same for every imputer: validation, min-max scaling fitted on observed values, the
/// imputer's own work on the [0, 1] scale, inverse scaling, and finally the observed cells of the input
/// copied into the result, so they come back bit for bit whatever the method does.
/// <para>Input rules: observed values must be finite (±∞ throws <see cref="ArgumentException"/>); a column with no
/// observed value throws at Fit (nothing can be learned about it; drop it); rows with every value missing are
/// imputed from the fitted distribution; constant columns are kept (they impute to their constant); n &lt; p is
/// accepted (covariances carry a small ridge).</para>
/// </remarks>
public abstract class Imputer : IDisposable
{
    private Scaler.MinMax? _scaler;
    private Scaler.MinMax? _fitting;
    private bool _disposed;

    /// <summary>True once <c>Fit</c> has completed.</summary>
    public bool IsFitted => _scaler is not null;

    /// <summary>Number of features p seen at Fit.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public int FeatureCount => RequireScaler().Features;

    /// <summary>Fits the imputer to a table (n, p) with NaN (or <paramref name="missing"/>) marking missing values.</summary>
    /// <param name="data">(n, p) values; NaN is missing unless <paramref name="missing"/> is given.</param>
    /// <param name="missing">Optional (n, p) mask, true where the value is missing.</param>
    /// <param name="progress">Optional progress sink for long fits.</param>
    /// <param name="cancellationToken">Stops the fit between batches with <see cref="OperationCanceledException"/>; the imputer then stays unfitted.</param>
    /// <exception cref="ArgumentException">Bad input (see the class remarks) or invalid settings.</exception>
    public void Fit(double[,] data, bool[,]? missing = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var c = Validation.check(nameof(data), data, ToOption(missing));
        ValidateSettings(c.Rows, c.Columns);
        using var scope = NewDisposeScope();
        var scaler = Scaler.fit(c.Values, c.Mask);
        Tensor x;
        // Scaling's temporaries are (n, p) each: freed now, not when the fit ends.
        using (var scaling = NewDisposeScope())
            x = Scaled(scaler, c).MoveToOuterDisposeScope();
        _fitting = scaler;
        try
        {
            FitScaled(x, c.Mask, progress, cancellationToken);
        }
        finally
        {
            _fitting = null;
        }
        _scaler = scaler;
    }

    /// <summary>Imputes the missing values of rows (m, p), using the fitted model only (nothing is refitted).</summary>
    /// <param name="data">(m, p) values with NaN (or <paramref name="missing"/>) marking missing values; p must match Fit.</param>
    /// <param name="missing">Optional (m, p) mask, true where the value is missing.</param>
    /// <returns>A new (m, p) table: observed cells copied from <paramref name="data"/>, missing cells imputed.</returns>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ArgumentException">A different number of columns, or an infinite observed value.</exception>
    public double[,] Transform(double[,] data, bool[,]? missing = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var scaler = RequireScaler();
        var c = Validation.checkForTransform(nameof(data), scaler.Features, data, ToOption(missing));
        using var scope = NewDisposeScope();
        var imputed = TransformScaled(Scaled(scaler, c), c.Mask);
        return WriteBack(data, c, Scaler.inverseTransform(scaler, imputed));
    }

    /// <summary>Fits on <paramref name="data"/> and returns its completed table; see <see cref="Fit"/> and <see cref="Transform"/>.</summary>
    public double[,] FitTransform(double[,] data, bool[,]? missing = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        Fit(data, missing, progress, cancellationToken);
        return Transform(data, missing);
    }

    /// <summary>Checks settings against the data's shape before any work; throws <see cref="ArgumentException"/> naming the setting.</summary>
    protected virtual void ValidateSettings(int rows, int columns) { }

    /// <summary>Fits on min-max scaled data: the one method a new imputer must write, with <see cref="TransformScaled"/>.
    /// Runs after validation and scaling; throw <see cref="OperationCanceledException"/> when the token is cancelled.</summary>
    /// <param name="x">(n, p) float64, observed values on [0, 1], missing entries 0.</param>
    /// <param name="mask">(n, p) 1.0 where missing.</param>
    protected abstract void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken);

    /// <summary>Imputes scaled rows; returns (m, p) with missing entries filled (observed ones are overwritten later anyway).</summary>
    /// <param name="x">(m, p) float64 on the fitted [0, 1] scale, missing entries 0.</param>
    /// <param name="mask">(m, p) 1.0 where missing.</param>
    protected abstract Tensor TransformScaled(Tensor x, Tensor mask);

    /// <summary>The fitted scaler, for subclasses that persist or sample.</summary>
    protected Scaler.MinMax RequireScaler() =>
        _disposed ? throw new ObjectDisposedException(GetType().Name) : _scaler ?? throw new InvalidOperationException($"{GetType().Name} is not fitted yet; call Fit first.");

    /// <summary>The scaler of the Fit in progress, or the fitted one: image methods work on the original pixel scale.</summary>
    protected Scaler.MinMax CurrentScaler => _fitting ?? RequireScaler();

    /// <summary>Nearest observed pixel imputation of scaled rows (n, p), one image per row: pixels are copied on the
    /// original scale of <paramref name="scaler"/>, since each column has its own min-max range, then scaled back.</summary>
    protected static Tensor NearestPixelFill(Scaler.MinMax scaler, int width, int height, Tensor x, Tensor mask) =>
        Starts.nearestPixel(scaler, width, height, x, mask);

    /// <summary>Restores a fitted scaler (used by Load).</summary>
    protected void SetScaler(Scaler.MinMax scaler) => _scaler = scaler;

    /// <summary>Each feature's mean or median over its observed values, (p), as the shared initial imputations compute it.</summary>
    protected static Tensor FillValues(Tensor x, Tensor mask, SimpleStrategy strategy)
    {
        // A probe row with every entry missing receives exactly the per-feature fill value.
        var p = x.shape[1];
        var xs = cat(new[] { x, zeros(1, p, dtype: float64) }, 0);
        var ms = cat(new[] { mask, ones(1, p, dtype: float64) }, 0);
        var filled = strategy == SimpleStrategy.Mean ? Fill.meanImpute(xs, ms) : Fill.medianImpute(xs, ms);
        return filled[x.shape[0]];
    }

    /// <summary>Checked rows on the [0, 1] scale of <paramref name="scaler"/>, (n, p) float64, missing entries 0.</summary>
    protected static Tensor Scaled(Scaler.MinMax scaler, Validation.Checked c) =>
        Scaler.transform(scaler, c.Values) * (1.0 - c.Mask);

    /// <summary>Checks rows (m, p) for an imputer fitted on <paramref name="features"/> columns: the column count, no ±∞;
    /// the mask is NaN's, or <paramref name="missing"/> when given. Throws <see cref="ArgumentException"/> naming <paramref name="name"/>.</summary>
    protected static Validation.Checked CheckRows(string name, int features, double[,] data, bool[,]? missing) =>
        Validation.checkForTransform(name, features, data, ToOption(missing));

    /// <summary>The observed cells of the caller's table, the imputed ones from the model.</summary>
    protected static double[,] WriteBack(double[,] data, Validation.Checked c, Tensor imputedOriginalScale)
    {
        var values = Tensors.toArray2D(imputedOriginalScale);
        var mask = Tensors.toArray2D(c.Mask);
        var result = (double[,])data.Clone();
        for (int i = 0; i < c.Rows; i++)
            for (int j = 0; j < c.Columns; j++)
                if (mask[i, j] > 0.5) result[i, j] = values[i, j];
        return result;
    }

    private static FSharpOption<bool[,]> ToOption(bool[,]? missing) =>
        missing is null ? FSharpOption<bool[,]>.None : FSharpOption<bool[,]>.Some(missing);

    /// <summary>Releases the model's tensors.</summary>
    protected virtual void Dispose(bool disposing) => _disposed = true;

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }
}

/// <summary>Sets torch's intra-op thread count for a scope and restores it after: <c>using var _ = new TorchThreadScope(1);</c>.</summary>
/// <remarks>On a small shared machine OpenMP's spinning threads slow torch by up to an order of magnitude; imputers
/// take a <c>TorchThreads</c> setting and hold one of these for the length of a fit.</remarks>
public readonly struct TorchThreadScope : IDisposable
{
    private readonly int _previous;
    private readonly bool _changed;

    /// <summary>Sets the thread count to <paramref name="threads"/>; null leaves torch's setting alone.</summary>
    public TorchThreadScope(int? threads)
    {
        _previous = get_num_threads();
        _changed = threads is not null;
        if (threads is int t) set_num_threads(t);
    }

    /// <summary>Restores the thread count the scope found.</summary>
    public void Dispose()
    {
        if (_changed) set_num_threads(_previous);
    }
}
