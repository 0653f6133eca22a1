/// Simulated missingness: MCAR, MAR (the paper's appendix E) and MNAR masks on complete data. Every random step
/// takes an explicit seed and its own torch generator, so the same seed gives the same mask and the global torch
/// seed is never used.
module EMFlow.Missingness

open System
open TorchSharp
open EMFlow.Tensors

// Checks shared by the public entry points.

let private checkMatrix = requireMatrix

let private checkComplete (x: Tensor) =
    use nan = x.isnan()
    if nan.any().item<bool>() then
        invalidArg "x" "must be complete data (no NaN): masks are simulated on fully observed values"

let private checkProbability (name: string) (value: float) (upperInclusive: bool) =
    let ok = value >= 0.0 && (if upperInclusive then value <= 1.0 else value < 1.0)
    if not ok then
        let rule = if upperInclusive then "0 <= value <= 1" else "0 <= value < 1"
        raise (ArgumentOutOfRangeException(name, value, sprintf "must satisfy %s; got %g" rule value))

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
    use sd = centred.mul(centred).mean([| 0L |], keepdim = true).sqrt()
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
    use score = q.log() - (oneMinus q).log()
    let meanAt (b: float) =
        use shifted = (score |> offsetBy b).sigmoid()
        scalar (shifted.mean())
    // The mean of sigmoid(score + b) increases with b: bisection on a bracket wide enough for standardised sums.
    let mutable lo, hi = -100.0, 100.0
    for _ in 1 .. 200 do
        let mid = 0.5 * (lo + hi)
        if meanAt mid < rate then lo <- mid else hi <- mid
    use trailing = (score |> offsetBy (0.5 * (lo + hi))).sigmoid().expand([| x.shape[0]; int64 (p - k) |])
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
