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
/// <para>A Fit that throws (bad input, cancellation, divergence) changes nothing: a fitted imputer keeps its previous
/// model, bit for bit, and an unfitted one stays unfitted. After <see cref="Dispose()"/> every member that reads or
/// changes fitted state (<see cref="IsFitted"/> included) throws <see cref="ObjectDisposedException"/>; the settings
/// given to the constructor stay readable.</para>
/// </remarks>
public abstract class Imputer : IDisposable
{
    private Scaler.MinMax? _scaler;
    private Scaler.MinMax? _fitting;
    private string[]? _columnNames;
    private int[]? _groups;
    private bool _disposed;

    /// <summary>True once <c>Fit</c> has completed.</summary>
    /// <exception cref="ObjectDisposedException">After <see cref="Dispose()"/>.</exception>
    public bool IsFitted
    {
        get
        {
            ThrowIfDisposed();
            return _scaler is not null;
        }
    }

    /// <summary>The column names given to the last successful Fit (or stored in a loaded model), in the order of the
    /// fitted columns; null when the imputer was fitted without names.</summary>
    /// <exception cref="ObjectDisposedException">After <see cref="Dispose()"/>.</exception>
    public IReadOnlyList<string>? ColumnNames
    {
        get
        {
            ThrowIfDisposed();
            return _columnNames;
        }
    }

    /// <summary>Number of features p seen at Fit.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public int FeatureCount => RequireScaler().Features;

    /// <summary>Fits the imputer to a table (n, p) with NaN (or <paramref name="missing"/>) marking missing values.</summary>
    /// <param name="data">(n, p) values; NaN is missing unless <paramref name="missing"/> is given.</param>
    /// <param name="missing">Optional (n, p) mask, true where the value is missing.</param>
    /// <param name="progress">Optional progress sink for long fits.</param>
    /// <param name="cancellationToken">Stops the fit with <see cref="OperationCanceledException"/>; every long loop
    /// (EM sweeps, kNN chunks, training batches, re-imputation chunks) checks it, so it takes effect within about a
    /// second for tables of up to 100 columns.</param>
    /// <remarks>The new model is built aside and replaces the old one only when the fit succeeds: a Fit that throws
    /// (cancelled, bad input, failure) leaves the imputer exactly as it was, its previous model transforming bit for bit
    /// as before, or unfitted (<see cref="IsFitted"/> false) when it had not been fitted. <see cref="ColumnNames"/>
    /// becomes null.</remarks>
    /// <exception cref="ArgumentException">Bad input (see the class remarks) or invalid settings.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">After <see cref="Dispose()"/>.</exception>
    public void Fit(double[,] data, bool[,]? missing = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default) =>
        FitCore(data, null, missing, progress, cancellationToken);

    /// <summary>Fits on a table whose columns carry names; <see cref="ColumnNames"/> keeps them, so that
    /// <see cref="Transform(double[,], IReadOnlyList{string}, bool[,], CancellationToken)"/> can match columns by name
    /// (and a saved EMFlow model stores them).</summary>
    /// <param name="data">(n, p) values; NaN is missing unless <paramref name="missing"/> is given.</param>
    /// <param name="columnNames">p distinct, non-empty names, one per column of <paramref name="data"/>.</param>
    /// <param name="missing">Optional (n, p) mask, true where the value is missing.</param>
    /// <param name="progress">Optional progress sink for long fits.</param>
    /// <param name="cancellationToken">As for <see cref="Fit(double[,], bool[,], IProgress{TrainingProgress}, CancellationToken)"/>.</param>
    /// <remarks>A Fit that throws leaves the imputer exactly as it was (names included).</remarks>
    /// <exception cref="ArgumentException">The names are not p distinct non-empty texts (the message names them), or
    /// as for the other overload.</exception>
    public void Fit(double[,] data, IReadOnlyList<string> columnNames, bool[,]? missing = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(columnNames);
        FitCore(data, columnNames, missing, progress, cancellationToken);
    }

    /// <summary>Fits on a one-hot encoded mixed table (<see cref="MixedImputer"/>): as <see cref="Fit(double[,], bool[,], IProgress{TrainingProgress}, CancellationToken)"/>,
    /// with <see cref="ColumnGroups"/> set to <paramref name="columnGroups"/> while <see cref="FitScaled"/> runs.</summary>
    internal void FitGrouped(double[,] data, int[] columnGroups, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        _groups = columnGroups;
        try
        {
            FitCore(data, null, null, progress, cancellationToken);
        }
        finally
        {
            _groups = null;
        }
    }

    /// <summary>While <see cref="FitScaled"/> runs for a <see cref="MixedImputer"/>: per column (p), its group,
    /// 0 … G − 1, the one-hot indicator columns of one categorical column sharing a group (contiguous, in category
    /// order) and every numeric column alone; null in any other fit. An imputer that can, treats a group as one
    /// categorical column (the forest classifies it; EMFlow holds out and blends its entries together); one that
    /// ignores it imputes the indicators as numbers.</summary>
    protected IReadOnlyList<int>? ColumnGroups => _groups;

    private void FitCore(double[,] data, IReadOnlyList<string>? columnNames, bool[,]? missing, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        var c = Validation.check(nameof(data), data, ToOption(missing));
        var names = columnNames is null ? null : CheckNames(nameof(columnNames), columnNames, c.Columns);
        ValidateSettings(c.Rows, c.Columns);
        using var threads = new TorchThreadScope(TorchThreads);
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
        _columnNames = names;
    }

    /// <summary>A copy of the names after checking that there are <paramref name="count"/> of them, distinct and non-empty.</summary>
    internal static string[] CheckNames(string paramName, IReadOnlyList<string> names, int count)
    {
        if (names.Count != count)
            throw new ArgumentException($"Expected {count} column names, one per column; got {names.Count}.", paramName);
        if (names.FirstOrDefault(string.IsNullOrWhiteSpace) is { } blank)
            throw new ArgumentException($"Column names must not be empty; got '{blank}'.", paramName);
        var duplicates = names.GroupBy(n => n, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => $"'{g.Key}'").ToArray();
        if (duplicates.Length > 0)
            throw new ArgumentException($"Column names must be distinct; {string.Join(", ", duplicates)} appear more than once.", paramName);
        return names.ToArray();
    }

    /// <summary>Imputes the missing values of rows (m, p), using the fitted model only (nothing is refitted).</summary>
    /// <param name="data">(m, p) values with NaN (or <paramref name="missing"/>) marking missing values; p must match Fit.</param>
    /// <param name="missing">Optional (m, p) mask, true where the value is missing.</param>
    /// <returns>A new (m, p) table: observed cells copied from <paramref name="data"/>, missing cells imputed.</returns>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <param name="cancellationToken">Stops a long imputation (kNN, EMFlow) between chunks of rows with <see cref="OperationCanceledException"/>.</param>
    /// <exception cref="ArgumentException">A different number of columns, or an infinite observed value.</exception>
    public double[,] Transform(double[,] data, bool[,]? missing = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        var scaler = RequireScaler();
        cancellationToken.ThrowIfCancellationRequested();
        var c = Validation.checkForTransform(nameof(data), scaler.Features, data, ToOption(missing));
        using var threads = new TorchThreadScope(TorchThreads);
        using var scope = NewDisposeScope();
        var imputed = TransformScaled(Scaled(scaler, c), c.Mask, cancellationToken);
        return WriteBack(data, c, Scaler.inverseTransform(scaler, imputed));
    }

    /// <summary>Imputes rows whose columns are named, in any order: each column is matched by name to the column of
    /// that name at Fit, and the result comes back in the caller's order.</summary>
    /// <param name="data">(m, p) values with NaN (or <paramref name="missing"/>) marking missing values.</param>
    /// <param name="columnNames">The name of each column of <paramref name="data"/>: the names of <see cref="ColumnNames"/>, in any order.</param>
    /// <param name="missing">Optional (m, p) mask in the caller's column order, true where the value is missing.</param>
    /// <param name="cancellationToken">As for <see cref="Transform(double[,], bool[,], CancellationToken)"/>.</param>
    /// <returns>A new (m, p) table in the caller's column order: observed cells copied, missing cells imputed.</returns>
    /// <exception cref="InvalidOperationException">Before Fit, or fitted without column names.</exception>
    /// <exception cref="ArgumentException">A fitted name is missing, a name is not one of the fitted ones, or a name
    /// repeats (the message names them); or as for the other overload.</exception>
    public double[,] Transform(double[,] data, IReadOnlyList<string> columnNames, bool[,]? missing = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(columnNames);
        RequireScaler();
        var fitted = _columnNames ?? throw new InvalidOperationException($"{GetType().Name} was fitted without column names; fit it with Fit(data, columnNames) to transform by name.");
        var order = ColumnOrder(nameof(columnNames), fitted, columnNames, data.GetLength(1));
        int m = data.GetLength(0), p = fitted.Length;
        var reordered = new double[m, p];
        var mask = missing is null ? null : new bool[m, p];
        if (missing is not null && (missing.GetLength(0) != m || missing.GetLength(1) != p))
            throw new ArgumentException($"The mask must have the data's shape {m} x {p}; got {missing.GetLength(0)} x {missing.GetLength(1)}.", nameof(missing));
        for (int i = 0; i < m; i++)
            for (int k = 0; k < p; k++)
            {
                reordered[i, k] = data[i, order[k]];
                if (mask is not null) mask[i, k] = missing![i, order[k]];
            }
        var completed = Transform(reordered, mask, cancellationToken);
        var result = new double[m, p];
        for (int i = 0; i < m; i++)
            for (int k = 0; k < p; k++)
                result[i, order[k]] = completed[i, k];
        return result;
    }

    /// <summary>For each fitted column, the index of the caller's column of that name; throws naming missing, extra or repeated names.</summary>
    internal static int[] ColumnOrder(string paramName, IReadOnlyList<string> fitted, IReadOnlyList<string> given, int columns)
    {
        var repeated = given.GroupBy(n => n, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => $"'{g.Key}'").ToArray();
        if (repeated.Length > 0)
            throw new ArgumentException($"Column names must be distinct; {string.Join(", ", repeated)} appear more than once.", paramName);
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int j = 0; j < given.Count; j++) index[given[j]] = j;
        var absent = fitted.Where(n => !index.ContainsKey(n)).Select(n => $"'{n}'").ToArray();
        var known = new HashSet<string>(fitted, StringComparer.Ordinal);
        var extra = given.Where(n => !known.Contains(n)).Select(n => $"'{n}'").ToArray();
        if (absent.Length > 0 || extra.Length > 0)
        {
            var parts = new List<string>();
            if (absent.Length > 0) parts.Add($"missing column{(absent.Length > 1 ? "s" : "")} {string.Join(", ", absent)}");
            if (extra.Length > 0) parts.Add($"column{(extra.Length > 1 ? "s" : "")} {string.Join(", ", extra)} not seen at Fit");
            throw new ArgumentException($"The columns do not match the fitted ones ({string.Join(", ", fitted.Select(n => $"'{n}'"))}): {string.Join("; ", parts)}.", paramName);
        }
        if (given.Count != columns)
            throw new ArgumentException($"Expected one name per column: {columns} columns, {given.Count} names.", paramName);
        return fitted.Select(n => index[n]).ToArray();
    }

    /// <summary>Fits on <paramref name="data"/> and returns its completed table; see <see cref="Fit(double[,], bool[,], IProgress{TrainingProgress}, CancellationToken)"/> and <see cref="Transform(double[,], bool[,], CancellationToken)"/>.</summary>
    public double[,] FitTransform(double[,] data, bool[,]? missing = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        Fit(data, missing, progress, cancellationToken);
        return Transform(data, missing, cancellationToken);
    }

    /// <summary>Checks settings against the data's shape before any work; throws <see cref="ArgumentException"/> naming the setting.</summary>
    protected virtual void ValidateSettings(int rows, int columns) { }

    /// <summary>Torch's intra-op threads while this imputer fits and transforms; null leaves torch's setting alone.
    /// 1 unless an imputer's settings say otherwise: on a machine whose other cores are busy, OpenMP's spinning
    /// threads made a fit up to 3x slower (README, "Platform notes").</summary>
    protected virtual int? TorchThreads => 1;

    /// <summary>Fits on min-max scaled data: the one method a new imputer must write, with <see cref="TransformScaled"/>.
    /// Runs after validation and scaling; throw <see cref="OperationCanceledException"/> when the token is cancelled.</summary>
    /// <param name="x">(n, p) float64, observed values on [0, 1], missing entries 0.</param>
    /// <param name="mask">(n, p) 1.0 where missing.</param>
    protected abstract void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken);

    /// <summary>Imputes scaled rows; returns (m, p) with missing entries filled (observed ones are overwritten later anyway).</summary>
    /// <param name="x">(m, p) float64 on the fitted [0, 1] scale, missing entries 0.</param>
    /// <param name="mask">(m, p) 1.0 where missing.</param>
    protected abstract Tensor TransformScaled(Tensor x, Tensor mask);

    /// <summary>Imputes scaled rows, checking <paramref name="cancellationToken"/> in long loops; imputers with slow
    /// transforms override it. The default checks the token once and calls <see cref="TransformScaled(Tensor, Tensor)"/>.</summary>
    protected virtual Tensor TransformScaled(Tensor x, Tensor mask, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return TransformScaled(x, mask);
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> after <see cref="Dispose()"/>.</summary>
    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Restores the column names of a saved model (used by Load).</summary>
    protected void SetColumnNames(IReadOnlyList<string>? names) =>
        _columnNames = names is null ? null : CheckNames(nameof(names), names, RequireScaler().Features);

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
        Scaler.transform(scaler, c.Values) * Tensors.oneMinus(c.Mask);

    /// <summary>Checks rows (m, p) for an imputer fitted on <paramref name="features"/> columns: the column count, no ±∞;
    /// the mask is NaN's, or <paramref name="missing"/> when given. Throws <see cref="ArgumentException"/> naming <paramref name="name"/>.</summary>
    protected static Validation.Checked CheckRows(string name, int features, double[,] data, bool[,]? missing) =>
        Validation.checkForTransform(name, features, data, ToOption(missing));

    // A bootstrap resample must observe every column for its EM fit, which a column the whole table never observes
    // cannot; checked here once rather than failing in a draw.
    internal static void CheckObservedColumns(string name, Validation.Checked c)
    {
        using var scope = NewDisposeScope();
        var observed = Tensors.toArray(Tensors.oneMinus(c.Mask).sum(dim: 0L));
        for (int j = 0; j < observed.Length; j++)
            if (observed[j] == 0) throw new ArgumentException($"Column {j} of {name} has no observed value; every column needs one to refit the Gaussian.", name);
    }

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

    /// <summary>
    /// Sets torch's intra-op thread count for the whole process, outside any scope: what every torch call made
    /// outside an imputer's fit uses, and what each scope restores.
    /// </summary>
    /// <param name="threads">At least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threads"/> below 1.</exception>
    /// <remarks>An application calls it once at start-up, before any tensor exists. Until the first call that sets a
    /// count, torch runs at its default (one thread per core); `emflow demo` left there, whose table and mask are made
    /// before the first fit sets one thread, gave other bits in 2 of 40 runs on 2 cores (the same seed and command).
    /// With this call first it gave the same bits in 80 of 80, and with <c>--threads 2</c> for its fits in 40 of 40.</remarks>
    public static void SetProcessDefault(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, $"must be at least 1; got {threads}");
        set_num_threads(threads);
    }

    /// <summary>Restores the thread count the scope found.</summary>
    public void Dispose()
    {
        if (_changed) set_num_threads(_previous);
    }
}
