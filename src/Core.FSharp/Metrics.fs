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

/// Root-mean-square error over the missing entries: sqrt(Σ m_ij (x̂_ij − x_ij)² / Σ m_ij).
/// <param name="truth">Complete data (n, p); its observed entries are not used.</param>
/// <param name="imputed">Imputed data (n, p).</param>
/// <param name="mask">Mask (n, p), 1.0 = missing (scored), 0.0 = observed (ignored).</param>
/// <exception cref="System.ArgumentException">A tensor is not 2-D, the shapes differ, or the mask
/// has no missing entry.</exception>
/// <example><c>Metrics.rmse truth imputed mask</c></example>
let rmse (truth: Tensor) (imputed: Tensor) (mask: Tensor) : float =
    let d, m = missingDiffs truth imputed mask
    use d = d
    use m = m
    let count = scalar (m.sum())
    requireMissing count
    use sq = d.square()
    sqrt (scalar (sq.sum()) / count)

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
    use sq = d.square()
    let sums = toArray (sq.sum(0L))
    Array.map2 (fun s c -> if c = 0.0 then nan else sqrt (s / c)) sums counts
