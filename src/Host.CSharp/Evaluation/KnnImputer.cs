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
/// <para>All distances of a chunk of query rows are formed by three matrix products, so the cost is that of a
/// (m, p) × (p, n) product plus one top-k per missing feature, with no per-row loop.</para>
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
    // Bounds each chunk's (rows, n) distance matrix to about 4M doubles (32 MB).
    private const long DistanceBudget = 1L << 22;

    private Tensor? _x;        // (n, p) training rows on [0, 1], missing entries 0
    private Tensor? _observed; // (n, p) 1.0 where observed
    private Tensor? _sqObs;    // (n, p) x² at observed entries
    private Tensor? _colMean;  // (p) mean of each feature over its observed training values

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

    private protected override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        DisposeState();
        var observed = 1.0 - mask;
        var xo = x * observed;
        _x = xo.clone().DetachFromDisposeScope();
        _observed = observed.clone().DetachFromDisposeScope();
        _sqObs = (xo * xo).DetachFromDisposeScope();
        // Validation has already rejected columns without an observed value, so the count is at least 1.
        _colMean = (xo.sum(0L) / observed.sum(0L)).DetachFromDisposeScope();
    }

    private protected override Tensor TransformScaled(Tensor x, Tensor mask)
    {
        var train = _x ?? throw new InvalidOperationException("KnnImputer is not fitted yet; call Fit first.");
        long m = x.shape[0], p = x.shape[1], n = train.shape[0];
        var result = x.clone();
        var donorCounts = _observed!.sum(0L).to_type(int64).data<long>().ToArray();
        var missingPerColumn = mask.sum(0L).data<double>().ToArray();
        long chunk = Math.Max(1, DistanceBudget / Math.Max(1, n));
        for (long start = 0; start < m; start += chunk)
        {
            using var scope = NewDisposeScope();
            long len = Math.Min(chunk, m - start);
            var mq = mask.narrow(0, start, len);
            var oq = 1.0 - mq;
            var q = x.narrow(0, start, len) * oq;
            // Σ over common features of (a − b)² = Σ oq·a² · o_b + Σ o_a · o_b·b² − 2 Σ a·b, each a matrix product.
            var d2 = (q * q).matmul(_observed.T) + oq.matmul(_sqObs!.T) - 2.0 * q.matmul(train.T);
            var common = oq.matmul(_observed.T);
            var dist = where(common.gt(0.5), (d2.clamp_min(0.0) * (double)p / common.clamp_min(1.0)).sqrt(), tensor(double.PositiveInfinity, dtype: float64));
            var filled = result.narrow(0, start, len);
            for (long j = 0; j < p; j++)
            {
                if (missingPerColumn[j] == 0 || donorCounts[j] == 0) continue;
                var need = mq.select(1, j).gt(0.5);
                if (!need.any().item<bool>()) continue;
                var donor = _observed.select(1, j).gt(0.5).unsqueeze(0);
                var dj = where(donor, dist, tensor(double.PositiveInfinity, dtype: float64));
                long kk = Math.Min(K, donorCounts[j]);
                var (values, idx) = dj.topk((int)kk, dim: 1, largest: false, sorted: true);
                var v = train.select(1, j).index_select(0, idx.flatten()).reshape(len, kk);
                var usable = values.isfinite().to_type(float64);
                var count = usable.sum(1);
                var mean = (v * usable).sum(1) / count.clamp_min(1.0);
                var value = where(count.gt(0.5), mean, _colMean![j].expand(len));
                var column = filled.select(1, j);
                column.copy_(where(need, value, column));
            }
        }
        return result;
    }

    private void DisposeState()
    {
        _x?.Dispose();
        _observed?.Dispose();
        _sqObs?.Dispose();
        _colMean?.Dispose();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        DisposeState();
        base.Dispose(disposing);
    }
}
