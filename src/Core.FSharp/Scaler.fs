/// Min-max scaling of each feature to [0, 1], fitted on observed entries only.
/// The paper evaluates imputation (and RMSE) on this scale; fitting on observed values keeps
/// the missing entries, whose true values the imputer must not see, out of the scale.
module EMFlow.Scaler

open System
open TorchSharp
open EMFlow.Tensors

/// Per-feature minimum and maximum of the observed values, as fitted by <see cref="fit"/>.
/// Treat the arrays as read-only: the functions of this module never modify them.
type MinMax =
    { /// Observed minimum of each feature, length p.
      Min: float[]
      /// Observed maximum of each feature, length p.
      Max: float[] }

    /// Number of features p.
    member s.Features = s.Min.Length

    /// Divisor of each feature: max − min, or 1 for a constant feature so that it maps to 0
    /// and back to its value exactly instead of dividing by zero.
    member s.Range =
        Array.map2 (fun (lo: float) hi -> if hi - lo = 0.0 then 1.0 else hi - lo) s.Min s.Max

let private checkMatrix = requireMatrix

let private checkFeatures (s: MinMax) (x: Tensor) =
    if int x.shape[1] <> s.Features then
        invalidArg "x" (sprintf "Expected %d features, got %d" s.Features (int x.shape[1]))

/// Fits a min-max scaler on the observed entries of x.
/// <param name="x">Data (n, p); entries where the mask is 1 are ignored and may hold NaN.</param>
/// <param name="mask">Mask (n, p), 1.0 = missing, 0.0 = observed.</param>
/// <returns>The per-feature observed minimum and maximum.</returns>
/// <exception cref="System.ArgumentException">x is not 2-D, mask has another shape, an observed
/// entry is NaN, a column has no observed value, or a column's range max − min overflows a double (e.g. −1e308 and
/// 1e308), so that it cannot be min-max scaled (the messages name the column index).</exception>
/// <example><c>let s = Scaler.fit x (Tensors.nanMask x)</c></example>
let fit (x: Tensor) (mask: Tensor) : MinMax =
    checkMatrix "x" x
    checkMatrix "mask" mask
    if x.shape[0] <> mask.shape[0] || x.shape[1] <> mask.shape[1] then
        invalidArg "mask" (sprintf "must have the shape of x (%d, %d); got (%d, %d)"
                               x.shape[0] x.shape[1] mask.shape[0] mask.shape[1])
    use xd = x.to_type(dtype)
    use missing = mask.to_type(dtype).gt(torch.tensor(0.5, dtype = dtype))
    use observed = missing.logical_not()
    use observedNaN = xd.isnan().logical_and(observed)
    if observedNaN.any().item<bool>() then
        invalidArg "x" "observed entries (mask 0) must not be NaN"
    let counts = toArray (observed.sum(0L))
    match Array.tryFindIndex (fun c -> c = 0.0) counts with
    | Some j -> invalidArg "x" (sprintf "column %d has no observed value, so its range is undefined" j)
    | None -> ()
    // Missing entries are replaced by ±inf so they can never be the minimum or the maximum.
    use posInf = torch.tensor(Double.PositiveInfinity, dtype = dtype)
    use negInf = torch.tensor(Double.NegativeInfinity, dtype = dtype)
    use forMin = torch.where(missing, posInf, xd)
    use forMax = torch.where(missing, negInf, xd)
    let lo, hi = toArray (forMin.amin([| 0L |])), toArray (forMax.amax([| 0L |]))
    match Array.tryFindIndex (fun j -> Double.IsInfinity(hi[j] - lo[j])) [| 0 .. lo.Length - 1 |] with
    | Some j ->
        invalidArg "x" (sprintf "column %d ranges from %g to %g: max − min overflows a double, so it cannot be min-max scaled; rescale the column (e.g. divide it by 1e10)" j lo[j] hi[j])
    | None -> ()
    { Min = lo; Max = hi }

/// Scales x (n, p) to the fitted [0, 1] range: (x − min) / range, elementwise.
/// Missing entries holding NaN stay NaN in their own cell and affect no other entry.
/// Values outside the fitted range map outside [0, 1]; they are not clipped.
/// <exception cref="System.ArgumentException">x is not 2-D or its feature count differs from the scaler's.</exception>
let transform (s: MinMax) (x: Tensor) : Tensor =
    checkMatrix "x" x
    checkFeatures s x
    use lo = ofArray s.Min
    use range = ofArray s.Range
    use xd = x.to_type(dtype)
    use shifted = xd.sub(lo)
    shifted.div(range)

/// Maps scaled values (n, p) back to the original units: x · (max − min) + min, elementwise, so a constant
/// feature maps back to its constant whatever its scaled value;
/// inverseTransform s (transform s x) equals x up to rounding.
/// <exception cref="System.ArgumentException">x is not 2-D or its feature count differs from the scaler's.</exception>
let inverseTransform (s: MinMax) (x: Tensor) : Tensor =
    checkMatrix "x" x
    checkFeatures s x
    use lo = ofArray s.Min
    // A constant feature takes only its one value: whatever an imputer put on the scaled axis maps back to it.
    use range = ofArray (Array.map2 (fun (lo: float) hi -> if hi - lo = 0.0 then 0.0 else hi - lo) s.Min s.Max)
    use xd = x.to_type(dtype)
    use stretched = xd.mul(range)
    plus stretched lo

/// Fits on the observed entries of x and returns the scaler with the scaled data (n, p).
/// <exception cref="System.ArgumentException">As for <see cref="fit"/>.</exception>
let fitTransform (x: Tensor) (mask: Tensor) : MinMax * Tensor =
    let s = fit x mask
    s, transform s x

/// Scales one row (length p) of plain values; NaN stays NaN.
/// <exception cref="System.ArgumentException">The row length differs from the scaler's feature count.</exception>
let transformRow (s: MinMax) (row: float[]) : float[] =
    if isNull (box row) then nullArg "row"
    if row.Length <> s.Features then
        invalidArg "row" (sprintf "Expected %d features, got %d" s.Features row.Length)
    let range = s.Range
    Array.init row.Length (fun j -> (row[j] - s.Min[j]) / range[j])

/// Maps one scaled row (length p) back to the original units.
/// <exception cref="System.ArgumentException">The row length differs from the scaler's feature count.</exception>
let inverseTransformRow (s: MinMax) (row: float[]) : float[] =
    if isNull (box row) then nullArg "row"
    if row.Length <> s.Features then
        invalidArg "row" (sprintf "Expected %d features, got %d" s.Features row.Length)
    Array.init row.Length (fun j -> if s.Max[j] - s.Min[j] = 0.0 then s.Min[j] else row[j] * (s.Max[j] - s.Min[j]) + s.Min[j])
