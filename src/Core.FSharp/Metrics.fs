/// Imputation error over the missing entries only, as the paper reports it (RMSE on the [0, 1]
/// scale, section 4). Observed entries are copied from the data, so counting them would only
/// dilute the error.
module EMFlow.Metrics

open TorchSharp
open EMFlow.Tensors

let private checkMatrix = requireMatrix

let private checkShapes (truth: Tensor) (imputed: Tensor) (mask: Tensor) =
    checkMatrix "truth" truth
    checkMatrix "imputed" imputed
    checkMatrix "mask" mask
    let shape (t: Tensor) = sprintf "(%d, %d)" t.shape[0] t.shape[1]
    if imputed.shape[0] <> truth.shape[0] || imputed.shape[1] <> truth.shape[1] then
        invalidArg "imputed" (sprintf "must have the shape of truth %s; got %s" (shape truth) (shape imputed))
    if mask.shape[0] <> truth.shape[0] || mask.shape[1] <> truth.shape[1] then
        invalidArg "mask" (sprintf "must have the shape of truth %s; got %s" (shape truth) (shape mask))

/// The differences imputed − truth at missing entries and 0 elsewhere, with the missing count.
/// Observed entries are zeroed by selection, not multiplication, so a NaN there cannot leak.
let private missingDiffs (truth: Tensor) (imputed: Tensor) (mask: Tensor) : Tensor * Tensor =
    checkShapes truth imputed mask
    use missing = mask.to_type(dtype).gt(torch.tensor(0.5, dtype = dtype))
    use diff = imputed.to_type(dtype).sub(truth.to_type(dtype))
    let d = torch.where(missing, diff, torch.zeros_like(diff))
    d, missing.to_type(dtype)

let private requireMissing (count: float) =
    if count = 0.0 then invalidArg "mask" "has no missing entry (no 1.0), so the error is undefined"

/// Σ m_ij (x̂_ij − x_ij)² and Σ m_ij, summed by torch over the whole (n, p) tensor.
let private squaredErrors (truth: Tensor) (imputed: Tensor) (mask: Tensor) : float * float =
    let d, m = missingDiffs truth imputed mask
    use d = d
    use m = m
    use sq = d.mul(d)
    scalar (sq.sum()), scalar (m.sum())

/// Root-mean-square error over the missing entries: sqrt(Σ m_ij (x̂_ij − x_ij)² / Σ m_ij).
/// <param name="truth">Complete data (n, p); its observed entries are not used.</param>
/// <param name="imputed">Imputed data (n, p).</param>
/// <param name="mask">Mask (n, p), 1.0 = missing (scored), 0.0 = observed (ignored).</param>
/// <exception cref="System.ArgumentException">A tensor is not 2-D, the shapes differ, or the mask
/// has no missing entry.</exception>
/// <example><c>Metrics.rmse truth imputed mask</c></example>
let rmse (truth: Tensor) (imputed: Tensor) (mask: Tensor) : float =
    let sumOfSquares, count = squaredErrors truth imputed mask
    requireMissing count
    sqrt (sumOfSquares / count)

/// Like <see cref="rmse"/>, but NaN instead of an exception when the mask has no missing entry: what a score over
/// held-out entries wants, where holding out nothing is allowed (Selection.score).
/// <exception cref="System.ArgumentException">A tensor is not 2-D or the shapes differ.</exception>
let rmseOrNaN (truth: Tensor) (imputed: Tensor) (mask: Tensor) : float =
    let sumOfSquares, count = squaredErrors truth imputed mask
    if count = 0.0 then nan else sqrt (sumOfSquares / count)

/// Mean absolute error over the missing entries: Σ m_ij |x̂_ij − x_ij| / Σ m_ij.
/// <param name="truth">Complete data (n, p); its observed entries are not used.</param>
/// <param name="imputed">Imputed data (n, p).</param>
/// <param name="mask">Mask (n, p), 1.0 = missing (scored), 0.0 = observed (ignored).</param>
/// <exception cref="System.ArgumentException">A tensor is not 2-D, the shapes differ, or the mask
/// has no missing entry.</exception>
let mae (truth: Tensor) (imputed: Tensor) (mask: Tensor) : float =
    let d, m = missingDiffs truth imputed mask
    use d = d
    use m = m
    let count = scalar (m.sum())
    requireMissing count
    use a = d.abs()
    scalar (a.sum()) / count

/// RMSE over the missing entries of each feature, length p. A feature with no missing entry has
/// no error to report and gets NaN, so it cannot be mistaken for a perfect imputation.
/// <param name="truth">Complete data (n, p); its observed entries are not used.</param>
/// <param name="imputed">Imputed data (n, p).</param>
/// <param name="mask">Mask (n, p), 1.0 = missing (scored), 0.0 = observed (ignored).</param>
/// <exception cref="System.ArgumentException">A tensor is not 2-D, the shapes differ, or the mask
/// has no missing entry at all.</exception>
let perFeatureRmse (truth: Tensor) (imputed: Tensor) (mask: Tensor) : float[] =
    let d, m = missingDiffs truth imputed mask
    use d = d
    use m = m
    let counts = toArray (m.sum(0L))
    requireMissing (Array.sum counts)
    use sq = d.mul(d)
    let sums = toArray (sq.sum(0L))
    Array.map2 (fun s c -> if c = 0.0 then nan else sqrt (s / c)) sums counts

// The same error on .NET arrays, for callers that hold their tables as arrays (the evaluation protocols, the
// settings search, the benchmarks). The sum runs row by row, left to right, in double precision, so a caller that
// looped the same way before gets the same bits; torch's reduction above sums in another order, which can differ in
// the last bits, so the tensor functions keep their own sum.

let private requireSameShape (truth: float[,]) (name: string) (rows: int) (columns: int) =
    if rows <> Array2D.length1 truth || columns <> Array2D.length2 truth then
        invalidArg name (sprintf "must have the shape of truth (%d, %d); got (%d, %d)"
                             (Array2D.length1 truth) (Array2D.length2 truth) rows columns)

/// Σ and count of the squared errors (imputed − truth) / scale_j over the entries marked in `hidden`, in row-major
/// order; no scale divides by nothing.
let private squaredErrorsOf (scale: float[] voption) (truth: float[,]) (imputed: float[,]) (hidden: bool[,]) : float * int =
    if isNull truth then nullArg "truth"
    if isNull imputed then nullArg "imputed"
    if isNull hidden then nullArg "hidden"
    requireSameShape truth "imputed" (Array2D.length1 imputed) (Array2D.length2 imputed)
    requireSameShape truth "hidden" (Array2D.length1 hidden) (Array2D.length2 hidden)
    let n, p = Array2D.length1 truth, Array2D.length2 truth
    let mutable sum = 0.0
    let mutable count = 0
    match scale with
    | ValueNone ->
        for i in 0 .. n - 1 do
            for j in 0 .. p - 1 do
                if hidden[i, j] then
                    let d = imputed[i, j] - truth[i, j]
                    sum <- sum + d * d
                    count <- count + 1
    | ValueSome s ->
        if isNull s then nullArg "scale"
        if s.Length <> p then invalidArg "scale" (sprintf "must hold one value per column (%d); got %d" p s.Length)
        for i in 0 .. n - 1 do
            for j in 0 .. p - 1 do
                if hidden[i, j] then
                    let d = (imputed[i, j] - truth[i, j]) / s[j]
                    sum <- sum + d * d
                    count <- count + 1
    sum, count

let private rootMean (sum: float, count: int) : struct (float * int) =
    struct ((if count = 0 then nan else sqrt (sum / float count)), count)

/// RMSE over the entries where `hidden` is true, sqrt(Σ_hidden (x̂_ij − x_ij)² / count), with that count; the RMSE
/// is NaN when nothing is hidden. Entries outside `hidden` are never read, so NaN there (unknown truth) is harmless.
/// <param name="truth">(n, p) true values.</param>
/// <param name="imputed">(n, p) imputed values.</param>
/// <param name="hidden">(n, p) true where an entry is scored.</param>
/// <exception cref="System.ArgumentNullException">An array is null.</exception>
/// <exception cref="System.ArgumentException">The shapes differ.</exception>
/// <example><c>var (rmse, scored) = Metrics.rmseAndCountOf(truth, imputed, hidden);</c></example>
let rmseAndCountOf (truth: float[,]) (imputed: float[,]) (hidden: bool[,]) : struct (float * int) =
    rootMean (squaredErrorsOf ValueNone truth imputed hidden)

/// <see cref="rmseAndCountOf"/> without the count: the RMSE over the entries where `hidden` is true, NaN when none.
/// <example><c>double rmse = Metrics.rmseOf(truth, imputed, hidden);</c></example>
let rmseOf (truth: float[,]) (imputed: float[,]) (hidden: bool[,]) : float =
    let struct (r, _) = rmseAndCountOf truth imputed hidden
    r

/// Like <see cref="rmseAndCountOf"/> with each column's error divided by `scale[j]` first, ((x̂_ij − x_ij) / s_j)²:
/// with a column's range as its scale, the error of data on their own scale is the error on [0, 1].
/// <param name="scale">(p) divisor per column.</param>
/// <exception cref="System.ArgumentException">The shapes differ, or scale does not hold p values.</exception>
let scaledRmseAndCountOf (scale: float[]) (truth: float[,]) (imputed: float[,]) (hidden: bool[,]) : struct (float * int) =
    rootMean (squaredErrorsOf (ValueSome scale) truth imputed hidden)
