/// The simple fills that start an imputation: per-feature mean, median, a random observed value, zero, and for
/// images the nearest observed pixel. Each returns a new (n, p) tensor whose observed entries are those of x,
/// bit for bit, and whose missing entries are filled; the inputs are not modified. Random fills take an explicit
/// seed and their own generator.
module EMFlow.Fill

open System
open TorchSharp
open EMFlow.Tensors

// Checks shared by the public entry points.

let private checkMatrix = requireMatrix

let private checkSameShape (x: Tensor) (mask: Tensor) =
    checkMatrix "x" x
    checkMatrix "mask" mask
    if x.shape[0] <> mask.shape[0] || x.shape[1] <> mask.shape[1] then
        invalidArg "mask" (sprintf "must have the shape of x (%d, %d); got (%d, %d)"
                               x.shape[0] x.shape[1] mask.shape[0] mask.shape[1])

/// Boolean (n, p) view of a float mask: true where missing.
let private missingOf (mask: Tensor) = mask.to_type(dtype).gt(torch.tensor(0.5, dtype = dtype))

/// Validates x and mask for an imputation: same 2-D shape, mask holding only 0 and 1,
/// and no NaN at observed entries (an observed NaN would leak into the filled values).
let private checkImputationInput (x: Tensor) (mask: Tensor) =
    checkSameShape x mask
    use m = mask.to_type(dtype)
    use zero = torch.tensor(0.0, dtype = dtype)
    use one = torch.tensor(1.0, dtype = dtype)
    use notBinary = m.ne(zero).logical_and(m.ne(one))
    if notBinary.any().item<bool>() then
        invalidArg "mask" "must hold only 0.0 (observed) and 1.0 (missing)"
    use missing = m.gt(torch.tensor(0.5, dtype = dtype))
    use observedNaN = x.isnan().logical_and(missing.logical_not())
    if observedNaN.any().item<bool>() then
        invalidArg "x" "observed entries (mask 0) must not be NaN"

/// Observed entry count per column; raises naming the first column that has none.
let private requireObservedPerColumn (missing: Tensor) =
    use obs = missing.logical_not()
    let counts = toArray (obs.sum(0L))
    match Array.tryFindIndex (fun c -> c = 0.0) counts with
    | Some j -> invalidArg "x" (sprintf "column %d has no observed value, so it cannot be imputed from its own values" j)
    | None -> counts

/// Keeps observed entries of x exactly (bit-for-bit) and takes the missing ones from fill.
let private merge (x: Tensor) (missing: Tensor) (fill: Tensor) : Tensor =
    use xd = x.to_type(dtype)
    torch.where(missing, fill, xd)

// ---------------------------------------------------------------------------------------------
// Initial imputations. Each returns a new (n, p) tensor whose observed entries are those of x,
// bit-for-bit, and whose missing entries are filled; the inputs are not modified.

/// Fills each missing entry with the mean of the observed values of its feature.
/// <param name="x">Data (n, p); missing entries may hold anything, NaN included.</param>
/// <param name="mask">Mask (n, p), 1.0 = missing, 0.0 = observed.</param>
/// <exception cref="System.ArgumentException">Shapes differ, the mask is not 0/1, an observed entry
/// is NaN, or a column has no observed value (the message names the column index).</exception>
let meanImpute (x: Tensor) (mask: Tensor) : Tensor =
    checkImputationInput x mask
    use missing = missingOf mask
    let counts = requireObservedPerColumn missing
    use xd = x.to_type(dtype)
    use zeros = torch.zeros_like(xd)
    use zeroed = torch.where(missing, zeros, xd)
    use sums = zeroed.sum(0L)
    use n = ofArray counts
    use means = sums.div(n)
    use fill = means.expand(xd.shape)
    merge x missing fill

/// The median of values (averaging the two middle values for an even count).
let private median (values: float[]) =
    let s = Array.sort values
    let k = s.Length
    if k % 2 = 1 then s[k / 2] else 0.5 * (s[k / 2 - 1] + s[k / 2])

/// Fills each missing entry with the median of the observed values of its feature; for an even
/// number of observed values the two middle values are averaged.
/// <param name="x">Data (n, p); missing entries may hold anything, NaN included.</param>
/// <param name="mask">Mask (n, p), 1.0 = missing, 0.0 = observed.</param>
/// <exception cref="System.ArgumentException">Shapes differ, the mask is not 0/1, an observed entry
/// is NaN, or a column has no observed value (the message names the column index).</exception>
let medianImpute (x: Tensor) (mask: Tensor) : Tensor =
    checkImputationInput x mask
    use missing = missingOf mask
    requireObservedPerColumn missing |> ignore
    use xd = x.to_type(dtype)
    let p = int xd.shape[1]
    let medians =
        Array.init p (fun j ->
            use col = xd.select(1L, int64 j)
            use obs = missing.select(1L, int64 j).logical_not()
            use values = col.masked_select(obs)
            median (toArray values))
    use m = ofArray medians
    use fill = m.expand(xd.shape)
    merge x missing fill

/// Fills each missing entry with a value drawn uniformly, with replacement, from the observed
/// values of the same feature (the paper's initial imputation for tables, section 4.1).
/// <param name="seed">Seed of the generator; the same seed, x and mask give the same result.</param>
/// <param name="x">Data (n, p); missing entries may hold anything, NaN included.</param>
/// <param name="mask">Mask (n, p), 1.0 = missing, 0.0 = observed.</param>
/// <exception cref="System.ArgumentException">Shapes differ, the mask is not 0/1, an observed entry
/// is NaN, or a column has no observed value (the message names the column index).</exception>
let randomDrawImpute (seed: int64) (x: Tensor) (mask: Tensor) : Tensor =
    checkImputationInput x mask
    use missing = missingOf mask
    requireObservedPerColumn missing |> ignore
    use xd = x.to_type(dtype)
    let n, p = xd.shape[0], int xd.shape[1]
    use gen = generator seed
    // One draw per row of every column, missing or not: the draws then depend on the seed and the
    // observed values only, and a column is filled by one vectorised gather.
    let columns =
        Array.init p (fun j ->
            use col = xd.select(1L, int64 j)
            use obs = missing.select(1L, int64 j).logical_not()
            use values = col.masked_select(obs)
            use idx = torch.randint(values.shape[0], [| n |], dtype = torch.int64, generator = gen)
            values.index_select(0L, idx))
    use fill = torch.stack(columns, 1L)
    for c in columns do c.Dispose()
    merge x missing fill

/// Fills each missing entry with 0 (the paper's appendix G.3 finds this nearly as good as the
/// nearest-neighbour start for images). A column with no observed value is accepted.
/// <param name="x">Data (n, p).</param>
/// <param name="mask">Mask (n, p), 1.0 = missing, 0.0 = observed.</param>
/// <exception cref="System.ArgumentException">Shapes differ, the mask is not 0/1, or an observed entry is NaN.</exception>
let zeroImpute (x: Tensor) (mask: Tensor) : Tensor =
    checkImputationInput x mask
    use missing = missingOf mask
    use xd = x.to_type(dtype)
    use fill = torch.zeros_like(xd)
    merge x missing fill

/// Fills one image in place: each missing pixel takes the value of the observed pixel at the
/// smallest Euclidean distance, ties going to the smallest row-major index. The search walks
/// square rings of growing radius r and stops once r² exceeds the best squared distance, since
/// every pixel on ring r is at least r away; cost grows with the gap, not the image size.
let private fillImage (width: int) (height: int) (values: float[]) (missing: bool[]) (offset: int) =
    let p = width * height
    let anyObserved =
        let mutable found = false
        let mutable q = 0
        while not found && q < p do
            if not missing[offset + q] then found <- true
            q <- q + 1
        found
    let source = Array.sub values offset p
    for q in 0 .. p - 1 do
        if missing[offset + q] then
            if not anyObserved then values[offset + q] <- 0.0
            else
                let r0, c0 = q / width, q % width
                let mutable best = -1
                let mutable bestD2 = Int32.MaxValue
                let mutable radius = 1
                let maxRadius = max width height
                while radius <= maxRadius && radius * radius <= bestD2 do
                    for r in max 0 (r0 - radius) .. min (height - 1) (r0 + radius) do
                        let dr = r - r0
                        // On ring `radius`, interior rows hold only the two edge columns.
                        let onEdgeRow = abs dr = radius
                        let step = if onEdgeRow then 1 else 2 * radius
                        let mutable c = c0 - radius
                        while c <= c0 + radius do
                            if c >= 0 && c < width then
                                let idx = r * width + c
                                if not missing[offset + idx] then
                                    let dc = c - c0
                                    let d2 = dr * dr + dc * dc
                                    if d2 < bestD2 || (d2 = bestD2 && idx < best) then
                                        best <- idx
                                        bestD2 <- d2
                            c <- c + step
                    radius <- radius + 1
                values[offset + q] <- source[best]

/// Nearest-neighbour imputation for images (the paper's initial imputation for MNIST and CIFAR-10):
/// each missing pixel takes the value of the nearest observed pixel of the same image, by
/// Euclidean distance on the pixel grid; among equally near pixels the one with the smallest
/// row-major index wins, so the result is deterministic. An image with no observed pixel is
/// filled with 0. A pixel column missing in every image is accepted.
/// <param name="width">Image width in pixels.</param>
/// <param name="height">Image height in pixels.</param>
/// <param name="x">Images (n, width · height), each row one image in row-major order
/// (pixel (r, c) at column r · width + c); one channel.</param>
/// <param name="mask">Mask (n, width · height), 1.0 = missing, 0.0 = observed.</param>
/// <exception cref="System.ArgumentOutOfRangeException">width or height below 1.</exception>
/// <exception cref="System.ArgumentException">Shapes differ, p ≠ width · height, the mask is not 0/1,
/// or an observed entry is NaN.</exception>
let nearestNeighbourImpute (width: int, height: int) (x: Tensor) (mask: Tensor) : Tensor =
    if width < 1 then raise (ArgumentOutOfRangeException("width", width, sprintf "must be at least 1; got %d" width))
    if height < 1 then raise (ArgumentOutOfRangeException("height", height, sprintf "must be at least 1; got %d" height))
    checkImputationInput x mask
    let n, p = int x.shape[0], int x.shape[1]
    if p <> width * height then
        invalidArg "x" (sprintf "Expected %d features (width %d × height %d), got %d" (width * height) width height p)
    use missing = missingOf mask
    let values = toArray x
    let isMissing = (toArray mask) |> Array.map (fun m -> m > 0.5)
    for i in 0 .. n - 1 do
        fillImage width height values isMissing (i * p)
    use flat = ofArray values
    use fill = flat.reshape(int64 n, int64 p)
    merge x missing fill

/// A simple fill, for <see cref="impute"/>.
type Kind =
    /// Per-feature mean of the observed values.
    | Mean
    /// Per-feature median of the observed values.
    | Median
    /// A random draw from the observed values of the same feature (the paper's choice for tables).
    | RandomDraw
    /// Zero.
    | Zero
    /// The nearest observed pixel of the same image (the paper's choice for images).
    | NearestNeighbour of width: int * height: int

/// Applies the chosen initial imputation to x (n, p) under mask (n, p); seed is used by
/// RandomDraw only. Observed entries are returned bit-for-bit.
/// <exception cref="System.ArgumentException">As for the chosen imputation: see
/// <see cref="meanImpute"/>, <see cref="medianImpute"/>, <see cref="randomDrawImpute"/>,
/// <see cref="zeroImpute"/>, <see cref="nearestNeighbourImpute"/>.</exception>
let impute (kind: Kind) (seed: int64) (x: Tensor) (mask: Tensor) : Tensor =
    match kind with
    | Mean -> meanImpute x mask
    | Median -> medianImpute x mask
    | RandomDraw -> randomDrawImpute seed x mask
    | Zero -> zeroImpute x mask
    | NearestNeighbour(w, h) -> nearestNeighbourImpute (w, h) x mask
