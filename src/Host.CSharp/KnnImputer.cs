using static TorchSharp.torch;

namespace EMFlow;

/// <summary>
/// k-nearest-neighbour imputation: each missing value of a row is the mean of that feature over the k training
/// rows nearest to it among those that observe the feature. The usual strong baseline for tabular imputation.
/// </summary>
/// <remarks>
/// <para>Distance between rows a and b: the Euclidean distance over the features both observe, scaled by the share
/// they observe, <c>sqrt(p / c · Σ_{j both observed} (a_j − b_j)²)</c> with c the number of such features (the
/// "nan-Euclidean" distance of scikit-learn's KNNImputer), so rows sharing few features are not made to look
/// near. Rows with no common observed feature are never neighbours. Distances are taken on the [0, 1] scale of
/// the min-max scaler fitted at Fit.</para>
/// <para>Neighbours come from the rows given to Fit only; Transform never adds its rows to the pool. Fewer than k
/// usable donors: the mean of those there are; none at all: the feature's mean over the training rows.</para>
/// <para>Each query row is compared with every donor once, over the features the row observes, in float32 with a
/// margin that never drops a donor float64 would keep; the donors that pass are ranked in float64, so the neighbours
/// are exactly those of the float64 distance (<c>Knn.impute</c> states the cost model).</para>
/// </remarks>
/// <example>
/// <code>
/// using var knn = new KnnImputer(k: 5);
/// knn.Fit(train);                      // (n, p), NaN = missing
/// double[,] completed = knn.Transform(test);
/// </code>
/// </example>
public sealed class KnnImputer : Imputer
{
    private Knn.Donors? _pool;

    /// <summary>An imputer averaging <paramref name="k"/> neighbours (checked at Fit).</summary>
    /// <param name="k">Number of neighbours, at least 1. Default 5.</param>
    public KnnImputer(int k = 5) => K = k;

    /// <summary>Number of neighbours averaged.</summary>
    public int K { get; }

    /// <inheritdoc />
    protected override void ValidateSettings(int rows, int columns)
    {
        if (K < 1) throw new ArgumentOutOfRangeException(nameof(K), K, $"K must be at least 1; got {K}.");
    }

    /// <remarks>The new donor pool replaces the old one only when complete.</remarks>
    protected override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var pool = Knn.keep(Knn.donors(x, mask));
        DisposeState();
        _pool = pool;
    }

    protected override Tensor TransformScaled(Tensor x, Tensor mask) => TransformScaled(x, mask, CancellationToken.None);

    /// <remarks>The token is checked before each chunk of rows (about 2M distances).</remarks>
    protected override Tensor TransformScaled(Tensor x, Tensor mask, CancellationToken cancellationToken) =>
        Knn.imputeCancellable(K, _pool ?? throw new InvalidOperationException("KnnImputer is not fitted yet; call Fit first."), cancellationToken, x, mask);

    private void DisposeState()
    {
        if (_pool is not null) Knn.dispose(_pool);
        _pool = null;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        DisposeState();
        base.Dispose(disposing);
    }
}
