/// Simulated missingness (MCAR, MAR, MNAR masks) and the naive initial imputations that start
/// EMFlow's inference loop. Every random step takes an explicit seed and its own torch generator,
/// so the same seed gives the same mask or imputation and the global torch seed is never used.
module EMFlow.Missingness

open System
open TorchSharp
open EMFlow.Tensors

// ---------------------------------------------------------------------------------------------
// Checks shared by the public entry points.

let private checkMatrix = requireMatrix

let private checkSameShape (x: Tensor) (mask: Tensor) =
    checkMatrix "x" x
    checkMatrix "mask" mask
    if x.shape[0] <> mask.shape[0] || x.shape[1] <> mask.shape[1] then
        invalidArg "mask" (sprintf "must have the shape of x (%d, %d); got (%d, %d)"
                               x.shape[0] x.shape[1] mask.shape[0] mask.shape[1])

let private checkComplete (x: Tensor) =
    use nan = x.isnan()
    if nan.any().item<bool>() then
        invalidArg "x" "must be complete data (no NaN): masks are simulated on fully observed values"

let private checkProbability (name: string) (value: float) (upperInclusive: bool) =
    let ok = value >= 0.0 && (if upperInclusive then value <= 1.0 else value < 1.0)
    if not ok then
        let rule = if upperInclusive then "0 <= value <= 1" else "0 <= value < 1"
        raise (ArgumentOutOfRangeException(name, value, sprintf "must satisfy %s; got %g" rule value))

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
// Masks.

/// An MCAR mask (n, p): each entry missing independently with probability rate.
/// <param name="seed">Seed of the generator; the same seed gives the same mask.</param>
/// <param name="rate">Missing probability, 0 &lt;= rate &lt; 1 (the paper uses 0.2 for tables).</param>
/// <param name="n">Number of rows.</param>
/// <param name="p">Number of features.</param>
/// <returns>A float64 mask (n, p), 1.0 = missing.</returns>
/// <exception cref="System.ArgumentOutOfRangeException">rate outside [0, 1), or n or p negative.</exception>
/// <example><c>let m = Missingness.mcar 42L 0.2 (1000, 8)</c></example>
let mcar (seed: int64) (rate: float) (n: int, p: int) : Tensor =
    checkProbability "rate" rate false
    if n < 0 then raise (ArgumentOutOfRangeException("n", n, sprintf "must be non-negative; got %d" n))
    if p < 0 then raise (ArgumentOutOfRangeException("p", p, sprintf "must be non-negative; got %d" p))
    use gen = generator seed
    use u = torch.rand([| int64 n; int64 p |], dtype = dtype, generator = gen)
    use hit = u.lt(torch.tensor(rate, dtype = dtype))
    hit.to_type(dtype)

/// An MCAR mask of the shape of x (n, p); see <see cref="mcar"/>.
/// <exception cref="System.ArgumentOutOfRangeException">rate outside [0, 1).</exception>
/// <exception cref="System.ArgumentException">x is not 2-D.</exception>
let mcarLike (seed: int64) (rate: float) (x: Tensor) : Tensor =
    checkMatrix "x" x
    mcar seed rate (int x.shape[0], int x.shape[1])

/// Number of leading features the MAR mechanism keeps always observed: floor(0.7 p).
/// Integer arithmetic, so 0.7 · p never rounds below an exact integer.
let marObservedFeatures (p: int) : int = 7 * p / 10

/// The MAR missing probabilities (n, p) of the paper's appendix E, on complete data x.
/// The first k = floor(0.7 p) features get probability 0; every other feature of row i gets
/// sigmoid(Σ_{j &lt; k} z_ij), where z is x standardised per feature (minus the column mean,
/// divided by the population standard deviation); a zero-variance column contributes 0.
/// <remarks>The paper leaves the scale of x in the sum open; on the [0, 1] scale every
/// probability is at least 0.5, far above its reported rates, so the standardised scale is
/// used (see ALGORITHM.md, evaluation protocol).</remarks>
/// <param name="x">Complete data (n, p), no NaN.</param>
/// <exception cref="System.ArgumentException">x is not 2-D, holds NaN, or p &lt; 2 (then no feature
/// would drive the mechanism).</exception>
let marProbabilities (x: Tensor) : Tensor =
    checkMatrix "x" x
    checkComplete x
    let p = int x.shape[1]
    let k = marObservedFeatures p
    if k < 1 then
        invalidArg "x" (sprintf "MAR needs at least 2 features (floor(0.7 p) >= 1); got p = %d" p)
    use xd = x.to_type(dtype)
    use drivers = xd.narrow(1L, 0L, int64 k)
    use mean = drivers.mean([| 0L |], keepdim = true)
    use centred = drivers.sub(mean)
    use sd = centred.square().mean([| 0L |], keepdim = true).sqrt()
    // A constant column has sd 0; dividing by 1 instead leaves its centred values, all 0.
    use zeroSd = sd.eq(torch.tensor(0.0, dtype = dtype))
    use ones = torch.ones_like(sd)
    use safeSd = torch.where(zeroSd, ones, sd)
    use z = centred.div(safeSd)
    use score = z.sum(1L, keepdim = true)
    use prob = score.sigmoid()
    use leading = torch.zeros([| x.shape[0]; int64 k |], dtype = dtype)
    use trailing = prob.expand([| x.shape[0]; int64 (p - k) |])
    torch.cat([| leading; trailing |], 1L)

/// The expected MAR missing rate over the last p − floor(0.7 p) features: the mean of their
/// probabilities from <see cref="marProbabilities"/>; the realised rate of a large sample
/// approaches it. Report it next to MAR results, as the rate depends on the data.
/// <exception cref="System.ArgumentException">As for <see cref="marProbabilities"/>.</exception>
let marExpectedRate (x: Tensor) : float =
    use prob = marProbabilities x
    let k = marObservedFeatures (int x.shape[1])
    use trailing = prob.narrow(1L, int64 k, prob.shape[1] - int64 k)
    scalar (trailing.mean())

/// The MAR probabilities (n, p) of <see cref="marProbabilities"/> with an intercept b inside the sigmoid,
/// sigmoid(Σ_{j &lt; k} z_ij + b), b chosen by bisection so that the expected rate over the last
/// p − floor(0.7 p) features is `rate`. The ordering of rows by their chance of going missing is the paper's;
/// only the overall rate is set, so results can be compared at the rates the paper reports (its Table 4).
/// <param name="rate">Target expected rate over the trailing features, in (0, 1).</param>
/// <param name="x">Complete data (n, p), no NaN, p &gt;= 2.</param>
/// <exception cref="System.ArgumentOutOfRangeException">rate outside (0, 1).</exception>
/// <exception cref="System.ArgumentException">As for <see cref="marProbabilities"/>.</exception>
let marProbabilitiesAtRate (rate: float) (x: Tensor) : Tensor =
    if not (rate > 0.0 && rate < 1.0) then
        raise (ArgumentOutOfRangeException("rate", rate, sprintf "must be in (0, 1); got %g" rate))
    use prob = marProbabilities x
    let p = int x.shape[1]
    let k = marObservedFeatures p
    // Recover each row's score from its trailing probability; clamping keeps logit finite for saturated rows.
    use q = prob.narrow(1L, int64 k, 1L).clamp(sc 1e-300, sc (1.0 - 1e-16))
    use score = q.log() - (q.neg() + 1.0).log()
    let meanAt (b: float) =
        use shifted = (score + b).sigmoid()
        scalar (shifted.mean())
    // The mean of sigmoid(score + b) increases with b: bisection on a bracket wide enough for standardised sums.
    let mutable lo, hi = -100.0, 100.0
    for _ in 1 .. 200 do
        let mid = 0.5 * (lo + hi)
        if meanAt mid < rate then lo <- mid else hi <- mid
    use trailing = (score + 0.5 * (lo + hi)).sigmoid().expand([| x.shape[0]; int64 (p - k) |])
    use leading = torch.zeros([| x.shape[0]; int64 k |], dtype = dtype)
    torch.cat([| leading; trailing |], 1L)

/// A MAR mask (n, p) at the probabilities of <see cref="marProbabilitiesAtRate"/>: appendix E's mechanism with its
/// expected rate over the trailing features set to `rate`.
/// <param name="seed">Seed of the generator.</param>
/// <param name="rate">Target expected rate over the trailing features, in (0, 1).</param>
/// <param name="x">Complete data (n, p), no NaN, p &gt;= 2.</param>
let marAtRate (seed: int64) (rate: float) (x: Tensor) : Tensor =
    use prob = marProbabilitiesAtRate rate x
    use gen = generator seed
    use u = torch.rand(prob.shape, dtype = dtype, generator = gen)
    use hit = u.lt(prob)
    hit.to_type(dtype)

/// A MAR mask (n, p) for complete data x (appendix E): the first floor(0.7 p) features are never
/// missing; each remaining entry of row i goes missing with the row's probability from
/// <see cref="marProbabilities"/>, independently. Rows may end up with all trailing features missing.
/// <param name="seed">Seed of the generator; the same seed and x give the same mask.</param>
/// <param name="x">Complete data (n, p), no NaN, p &gt;= 2.</param>
/// <returns>A float64 mask (n, p), 1.0 = missing.</returns>
/// <exception cref="System.ArgumentException">x is not 2-D, holds NaN, or p &lt; 2.</exception>
let mar (seed: int64) (x: Tensor) : Tensor =
    use prob = marProbabilities x
    use gen = generator seed
    use u = torch.rand(prob.shape, dtype = dtype, generator = gen)
    // u ~ U[0, 1) is never below probability 0, so the leading features stay observed.
    use hit = u.lt(prob)
    hit.to_type(dtype)

/// The quantile of each feature of x (linear interpolation between order statistics, as numpy's
/// default), length p.
let private columnQuantiles (q: float) (x: Tensor) : float[] =
    let a = toArray2D x
    let n, p = Array2D.length1 a, Array2D.length2 a
    Array.init p (fun j ->
        let col = Array.init n (fun i -> a[i, j]) |> Array.sort
        let pos = q * float (n - 1)
        let lo = int (floor pos)
        let hi = min (lo + 1) (n - 1)
        col[lo] + (pos - float lo) * (col[hi] - col[lo]))

/// The per-feature thresholds used by <see cref="mnar"/>: the quantile of each column of x, length p.
/// <exception cref="System.ArgumentOutOfRangeException">quantile outside [0, 1].</exception>
/// <exception cref="System.ArgumentException">x is not 2-D, has no row, or holds NaN.</exception>
let mnarThresholds (quantile: float) (x: Tensor) : float[] =
    checkProbability "quantile" quantile true
    checkMatrix "x" x
    checkComplete x
    if x.shape[0] < 1L then invalidArg "x" "must have at least one row"
    columnQuantiles quantile x

/// A self-masking MNAR mask (n, p): an entry strictly above its feature's quantile goes missing
/// with probability prob, independently; entries at or below it are never missing.
/// <param name="seed">Seed of the generator.</param>
/// <param name="quantile">Threshold quantile per feature, in [0, 1] (e.g. 0.5 to 0.9).</param>
/// <param name="prob">Missing probability of an entry above the threshold, in [0, 1].</param>
/// <param name="x">Complete data (n, p), no NaN, n &gt;= 1.</param>
/// <returns>A float64 mask (n, p), 1.0 = missing.</returns>
/// <exception cref="System.ArgumentOutOfRangeException">quantile or prob outside [0, 1].</exception>
/// <exception cref="System.ArgumentException">x is not 2-D, has no row, or holds NaN.</exception>
let mnar (seed: int64) (quantile: float) (prob: float) (x: Tensor) : Tensor =
    checkProbability "prob" prob true
    let thresholds = mnarThresholds quantile x
    use thr = ofArray thresholds
    use xd = x.to_type(dtype)
    use above = xd.gt(thr)
    use gen = generator seed
    use u = torch.rand(xd.shape, dtype = dtype, generator = gen)
    use draw = u.lt(torch.tensor(prob, dtype = dtype))
    use hit = above.logical_and(draw)
    hit.to_type(dtype)

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

/// The initial imputation that starts the inference loop (section 3.4).
type InitialImputation =
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
let impute (kind: InitialImputation) (seed: int64) (x: Tensor) (mask: Tensor) : Tensor =
    match kind with
    | Mean -> meanImpute x mask
    | Median -> medianImpute x mask
    | RandomDraw -> randomDrawImpute seed x mask
    | Zero -> zeroImpute x mask
    | NearestNeighbour(w, h) -> nearestNeighbourImpute (w, h) x mask
