/// Choosing between iterations without touching test data: a small share of the training table's observed
/// entries is hidden during training and each iteration's imputations are scored on them.
module EMFlow.Selection

open System
open TorchSharp
open EMFlow.Tensors

/// Column groups as a (p, G) 0/1 matrix, entry (c, g) = 1 when column c is in group g: None when `groups` is empty
/// or puts every column in a group of its own. `groups` (p) gives each column's group, 0 … G − 1; the one-hot
/// indicator columns of one categorical column form a group.
let groupMatrix (groups: int[]) (p: int64) : Tensor option =
    if groups.Length = 0 || (groups |> Array.distinct).Length = groups.Length then None
    else
        if int64 groups.Length <> p then
            raise (ArgumentException(sprintf "Expected %d column groups, one per column; got %d." p groups.Length, "groups"))
        let count = Array.max groups + 1
        if Array.min groups < 0 || (groups |> Array.distinct).Length <> count then
            raise (ArgumentException(sprintf "Column groups must number 0 to G - 1 with none skipped; got %A." groups, "groups"))
        let a = torch.zeros(p, int64 count, dtype = dtype)
        for c in 0 .. groups.Length - 1 do a[int64 c, int64 groups[c]] <- torch.tensor(1.0, dtype = dtype)
        Some a

/// Every row's entries of a group set to 1.0 where any of them is 1.0 in `entries` (n, p).
let private spreadToGroups (groups: Tensor option) (entries: Tensor) =
    match groups with
    | None -> entries
    | Some a -> entries.matmul(a).matmul(a.t()).gt(sc 0.0).to_type(dtype)

/// Gives back one hidden entry per column that would otherwise lose every observed value (with its group's other
/// entries in that row); returns the training mask and the hidden entries.
let private withEveryColumnKept (groups: Tensor option) (mask: Tensor) (draw: Tensor) =
    let observed = oneMinus mask
    let left = (observed - draw).sum(dim = 0L)
    let emptied = left.eq(sc 0.0).to_type(dtype)
    use rows = Scalar.op_Implicit mask.shape[0]
    let firstHidden = (draw * (torch.arange(rows, scInt 0L, scInt -1L, dtype = dtype).unsqueeze(1))).argmax(dim = 0L)
    let restore = torch.zeros_like(draw).scatter(0L, firstHidden.unsqueeze(0), emptied.unsqueeze(0)) |> spreadToGroups groups
    let hidden = draw - restore * draw
    plus mask hidden, hidden

/// Hides round(fraction · count) observed entries of `mask`, chosen by `pick gen positions k` (k indices into the
/// observed positions), then keeps every column learnable. With column groups the draw is over cells instead: each
/// observed cell weighs `weight` (p) of its group's first column, k is round(fraction · observed cells), and a
/// drawn cell hides all its group's entries in that row, so that no group is held out in part (an observed
/// indicator would give a held-out sibling away).
let private hide (seed: int64) (fraction: float) (groups: int[]) (weight: Tensor -> Tensor) (mask: Tensor) (pick: torch.Generator -> Tensor -> int64 -> Tensor) =
    if not (fraction >= 0.0 && fraction < 1.0) then
        raise (ArgumentOutOfRangeException("fraction", fraction, sprintf "must be in [0, 1); got %g" fraction))
    use gen = generator seed
    let positions = (oneMinus mask).flatten().nonzero().squeeze(1L)
    match groupMatrix groups mask.shape[1] with
    | None ->
        let k = int64 (Math.Round(fraction * float positions.shape[0]))
        let chosen = positions.index_select(0L, pick gen positions k)
        let draw = torch.zeros(mask.numel(), dtype = dtype).index_fill(0L, chosen, sc 1.0).reshape(mask.shape)
        withEveryColumnKept None mask draw
    | Some a ->
        // A cell is drawn at its group's first column, so that no two draws land on one cell.
        let first = torch.tensor(groups |> Array.mapi (fun c g -> if Array.IndexOf(groups, g) = c then 1.0 else 0.0), dtype = dtype)
        let weights = (weight mask * first).expand(mask.shape).flatten().index_select(0L, positions)
        let cells = scalar (first.expand(mask.shape).flatten().index_select(0L, positions).sum())
        let k = int64 (Math.Round(fraction * cells))
        let chosen = if k = 0L then torch.zeros(0L, dtype = torch.int64) else positions.index_select(0L, torch.multinomial(weights, k, replacement = false, generator = gen))
        let draw = torch.zeros(mask.numel(), dtype = dtype).index_fill(0L, chosen, sc 1.0).reshape(mask.shape)
        withEveryColumnKept (Some a) mask (spreadToGroups (Some a) draw * oneMinus mask)

/// Per column (p), the weight of an entry in the missingness-shaped hold-out: the column's missing share plus a floor
/// that keeps columns without missing cells drawable, so k entries always exist.
let private missingShare (mask: Tensor) = mask.mean(dimensions = [| 0L |]) |> offsetBy 1e-3

/// <see cref="holdOut"/> with column groups (see <see cref="groupMatrix"/>): observed cells, not entries, are drawn
/// uniformly, and a drawn cell hides every entry of its group in that row. Without groups (empty, or every column
/// alone) the draw is <see cref="holdOut"/>'s, entry for entry.
let holdOutGrouped (groups: int[]) (seed: int64) (fraction: float) (mask: Tensor) : Tensor * Tensor =
    hide seed fraction groups (fun m -> torch.ones(m.shape[1], dtype = dtype)) mask (fun gen positions k ->
        torch.randperm(positions.shape[0], generator = gen).narrow(0L, 0L, k))

/// Hides round(fraction · count) of the observed entries of (n, p) `mask`, a uniformly random subset drawn with
/// `seed`, never the last observed entry of a column (so every column stays learnable).
/// Returns (training mask (n, p) with the hidden entries marked missing, hidden entries (n, p) as 1.0).
/// Raises ArgumentOutOfRangeException unless 0 ≤ fraction &lt; 1.
/// <remarks>The subset is a permutation of the observed entries' positions, not a threshold on fresh uniforms:
/// a mask drawn as "uniform &lt; rate" with the same seed would otherwise leave no observed entry below the
/// hold-out threshold.</remarks>
let holdOut (seed: int64) (fraction: float) (mask: Tensor) : Tensor * Tensor = holdOutGrouped [||] seed fraction mask

/// <see cref="holdOutLikeMissingness"/> with column groups, as <see cref="holdOutGrouped"/> is <see cref="holdOut"/>'s.
let holdOutLikeMissingnessGrouped (groups: int[]) (seed: int64) (fraction: float) (mask: Tensor) : Tensor * Tensor =
    hide seed fraction groups missingShare mask (fun gen positions k ->
        if k = 0L then torch.zeros(0L, dtype = torch.int64)
        else
            let weights = (missingShare mask).expand(mask.shape).flatten().index_select(0L, positions)
            torch.multinomial(weights, k, replacement = false, generator = gen))

/// Widest table whose missingness <see cref="missingOdds"/> models: its Newton steps cost O(n · p³).
[<Literal>]
let MaxOddsColumns = 64

/// Most rows <see cref="missingOdds"/> fits its regressions on; a longer table is thinned to every k-th row for the
/// fit (about 12 s at 64 columns on one core).
[<Literal>]
let MaxOddsRows = 20000

/// Largest weight one held-out entry takes relative to its column's average in <see cref="oddsWeights"/>.
[<Literal>]
let MaxOddsRatio = 20.0

/// The 0.999 quantile of the chi-square distribution with df degrees of freedom (Wilson and Hilferty's cube-root
/// approximation, within 1% for df ≥ 3).
let private chiSquareUpper (df: int) =
    let k = float (max df 1)
    let c = 2.0 / (9.0 * k)
    k * Math.Pow(1.0 - c + 3.0902 * sqrt c, 3.0)

/// Per entry (n, p), the odds that the entry is missing given the other cells of its row, from one ridge-penalised
/// logistic regression per column of its missingness (`mask`'s column) on every other column, standardised, with
/// missing cells at the column's observed mean. Columns with no missing or no observed entry get odds 1, and so do
/// columns whose regression does not beat the intercept alone by a likelihood-ratio test at level 0.001 (missing
/// completely at random, as far as the data tell), and every column of a table wider than
/// <see cref="MaxOddsColumns"/>. On more than <see cref="MaxOddsRows"/> rows the regressions are fitted on every k-th
/// row, k = ⌈n / MaxOddsRows⌉, and give every row its odds. x and mask are (n, p), mask 1.0 = missing.
/// <remarks>Under MAR whether a cell is missing depends on the row's observed cells; the observed entries with high
/// odds are the ones most like the missing ones, which is what a hold-out should score.</remarks>
let missingOdds (x: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let n, p = x.shape[0], x.shape[1]
    let odds = torch.ones(n, p, dtype = dtype)
    if p <= int64 MaxOddsColumns && n > 1L then
        let observed = oneMinus mask
        let counts = observed.sum(dim = 0L).clamp_min(sc 1.0)
        let mean = (x * observed).sum(dim = 0L) / counts
        let centred = (x - mean) * observed
        let sd = (centred.pow(sc 2.0).sum(dim = 0L) / counts).sqrt()
        let z = centred / torch.where(sd.gt(sc 1e-12), sd, torch.ones_like(sd))
        let design = torch.cat([| z; torch.ones(n, 1L, dtype = dtype) |], dim = 1L) // (n, p + 1)
        // A mild ridge keeps the Newton steps finite when a column's missingness is perfectly predictable.
        let ridge = torch.eye(p + 1L, dtype = dtype) |> scaleBy 1e-2
        // Every stride-th row fits the regressions on a table of more than MaxOddsRows rows, so that their cost stays
        // bounded; every row then gets its odds from the fitted coefficients.
        let stride = (n + int64 MaxOddsRows - 1L) / int64 MaxOddsRows
        let fitRows =
            if stride = 1L then None
            else
                use stop = Scalar.op_Implicit n
                use step = Scalar.op_Implicit stride
                Some (torch.arange(scInt 0L, stop, step, dtype = torch.int64))
        let fitMask = match fitRows with Some r -> mask.index_select(0L, r) | None -> mask
        let nFit = fitMask.shape[0]
        let missing = fitMask.sum(dim = 0L)
        for j in 0L .. p - 1L do
            let m = scalar missing[j]
            if m > 0.0 && m < float nFit then
                use inner = torch.NewDisposeScope()
                // Every row's predictors of column j's missingness: the design without column j.
                let others = design.clone()
                others.select(1L, j).zero_() |> ignore
                let a = match fitRows with Some r -> others.index_select(0L, r) | None -> others
                let y = fitMask.select(1L, j)
                let mutable beta = torch.zeros(p + 1L, dtype = dtype)
                for _ in 1 .. 12 do
                    let mu = a.mv(beta).sigmoid()
                    let g = plus (a.t().mv(mu - y) |> scaleBy (1.0 / float nFit)) (ridge.mv(beta))
                    let w = mu * oneMinus mu
                    let h = plus (a.t().matmul(a * w.unsqueeze(1L)) |> scaleBy (1.0 / float nFit)) ridge
                    beta <- beta - torch.linalg.solve(h, g)
                let eta = a.mv(beta).clamp(sc -30.0, sc 30.0)
                // Likelihood-ratio test against the intercept alone: where the rest of the row does not detectably
                // predict the column's missingness (MCAR, the usual case), its odds stay 1 rather than fitted noise.
                // log(1 + e^η) as max(η, 0) + log(1 + e^−|η|), which never overflows.
                let softplus = plus (eta.clamp_min(sc 0.0)) (eta.abs().neg().exp().log1p())
                let logLik = scalar ((y * eta - softplus).sum())
                let rate = m / float nFit
                let nullLogLik = m * log rate + (float nFit - m) * log (1.0 - rate)
                let gain = 2.0 * (logLik - nullLogLik)
                if gain > chiSquareUpper (int p - 1) then
                    let every = match fitRows with None -> eta | Some _ -> others.mv(beta).clamp(sc -30.0, sc 30.0)
                    odds.select(1L, j).copy_(every.exp()) |> ignore
    odds.MoveToOuterDisposeScope()

/// Weights (n, p) for the held-out entries of `hidden` (n, p, 1.0 = held out; x and mask as for
/// <see cref="missingOdds"/>): each held-out entry's odds of being missing given the rest of its row, relative to the
/// average of its column's held-out entries, capped at <see cref="MaxOddsRatio"/> times it and scaled so that a
/// column's weights average 1; 0 elsewhere. Scoring held-out entries with these weights (<see cref="blendWeights"/>
/// takes them in place of the 0/1 entries) estimates the error on the missing entries rather than on entries like the
/// observed ones: under MAR the two differ, since the missing cells sit in rows unlike the observed ones. The cap
/// keeps a few rows of extreme odds from deciding a column alone.
let oddsWeights (x: Tensor) (mask: Tensor) (hidden: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let count = hidden.sum(dim = 0L).clamp_min(sc 1.0)
    let relativeTo (w: Tensor) = w / (w.sum(dim = 0L) / count).clamp_min(sc 1e-300)
    let odds = missingOdds x mask * hidden
    let capped = (relativeTo odds).clamp_max(sc MaxOddsRatio)
    (relativeTo capped).MoveToOuterDisposeScope()

/// Like <see cref="holdOut"/>, but each observed entry is drawn with probability proportional to its column's
/// missing share (plus a small floor), so the hidden entries sit where the data are actually missing: under MAR
/// a uniform hold-out mostly hides cells of the always-observed features, and scores the wrong thing. With equal
/// missing shares (MCAR) the draw is uniform in expectation. Same returns and rules as <see cref="holdOut"/>.
let holdOutLikeMissingness (seed: int64) (fraction: float) (mask: Tensor) : Tensor * Tensor =
    holdOutLikeMissingnessGrouped [||] seed fraction mask

/// Hides observed entries of (n, p) `mask` in whole missingness patterns: rows taken in a seeded random order each
/// borrow the pattern of a row drawn (seeded, uniformly) from those with a missing entry, and the pattern's entries
/// that the row observes are held out, until round(fraction · observed entries) are. A row never loses its last
/// observed entry and a column never its last observed entry; a column group (see <see cref="groupMatrix"/>) is held
/// out whole or not at all. Without a missing entry anywhere there is no pattern to borrow, and the draw is
/// <see cref="holdOutGrouped"/>'s. Same returns and rules as <see cref="holdOut"/>.
/// <remarks>Cells that go missing together are held out together, so each candidate of the start predicts a held-out
/// cell from the same kind of partial row as it predicts a real gap. Under MAR whole blocks of a row go missing at
/// once; a cell-by-cell draw leaves the rest of the block observed, where an imputer that feeds its own imputations
/// back into its predictors (the forest) looks better than on the real gaps.</remarks>
let holdOutLikePatternsGrouped (groups: int[]) (seed: int64) (fraction: float) (mask: Tensor) : Tensor * Tensor =
    if not (fraction >= 0.0 && fraction < 1.0) then
        raise (ArgumentOutOfRangeException("fraction", fraction, sprintf "must be in [0, 1); got %g" fraction))
    let n, p = int mask.shape[0], int mask.shape[1]
    let m = mask.to_type(dtype).contiguous().data<float>().ToArray()
    let missingAt i j = m[i * p + j] > 0.5
    let donors = [| for i in 0 .. n - 1 do if Seq.exists (missingAt i) (seq { 0 .. p - 1 }) then i |]
    if donors.Length = 0 then holdOutGrouped groups seed fraction mask
    else
        let group = if groups.Length = p then groups else Array.init p id
        let groupSize = group |> Array.countBy id |> dict
        let left = Array.init p (fun j -> Seq.sumBy (fun i -> if missingAt i j then 0 else 1) (seq { 0 .. n - 1 }))
        let target = int (Math.Round(fraction * float (Array.sum left)))
        let rng = Random(int (deriveSeed seed 0 &&& 0x7fffffffL))
        let order = Array.init n id
        for k in n - 1 .. -1 .. 1 do
            let r = rng.Next(k + 1)
            let t = order[k]
            order[k] <- order[r]
            order[r] <- t
        let hidden = Array.zeroCreate<float> (n * p)
        let mutable count = 0
        let mutable k = 0
        while count < target && k < n do
            let i = order[k]
            let d = donors[rng.Next donors.Length]
            let observedInRow = Seq.sumBy (fun j -> if missingAt i j then 0 else 1) (seq { 0 .. p - 1 })
            let borrowed = [| for j in 0 .. p - 1 do if missingAt d j && not (missingAt i j) then j |]
            if borrowed.Length > 0 && borrowed.Length < observedInRow then
                for g in borrowed |> Array.map (fun j -> group[j]) |> Array.distinct do
                    let cells = borrowed |> Array.filter (fun j -> group[j] = g)
                    let whole = cells.Length = groupSize[g]
                    if whole && cells |> Array.forall (fun j -> left[j] > 1) then
                        for j in cells do
                            hidden[i * p + j] <- 1.0
                            left[j] <- left[j] - 1
                            count <- count + 1
            k <- k + 1
        let h = torch.tensor(hidden, dtype = dtype).reshape(int64 n, int64 p)
        plus mask h, h

/// RMSE over the hidden entries (1.0 in `hidden`), or NaN when nothing is hidden.
let score (truth: Tensor) (imputed: Tensor) (hidden: Tensor) : float = Metrics.rmseOrNaN truth imputed hidden

/// Errors (g, p) per column summed over each column's group, so that columns of one group compare their group's total.
let private perGroup (groups: Tensor option) (errors: Tensor) =
    match groups with
    | None -> errors
    | Some a -> errors.matmul(a).matmul(a.t())

/// blendShares with column groups (see <see cref="groupMatrix"/>): every column of a group takes the
/// share best for the group's hidden entries together, so a categorical column's indicators blend alike.
let blendSharesGrouped (groups: int[]) (grid: float[]) (truth: Tensor) (a: Tensor) (b: Tensor) (hidden: Tensor) : Tensor =
    if grid.Length = 0 then raise (ArgumentException("grid must hold at least one share.", "grid"))
    use scope = torch.NewDisposeScope()
    let g = groupMatrix groups truth.shape[1]
    let diff = b - a
    let raw = torch.stack([| for w in grid -> ((plus a (diff |> scaleBy w) - truth).pow(sc 2.0) * hidden).sum(dim = 0L) |]) // (g, p)
    let errors = raw |> perGroup g
    let shares = torch.tensor(grid, dtype = dtype)
    let perFeature = shares.index_select(0L, errors.argmin(dim = 0L))
    let overall = shares[raw.sum(dim = 1L).argmin()]
    let counted = hidden.sum(dim = 0L).unsqueeze(0L) |> perGroup g |> fun c -> c.squeeze(0L).gt(sc 0.0)
    let chosen = if scalar (hidden.sum()) = 0.0 then torch.zeros_like(perFeature) else torch.where(counted, perFeature, overall)
    chosen.MoveToOuterDisposeScope()

/// Per feature, the share w in `grid` of imputation b in the blend (1 − w)·a + w·b that has the lowest squared error
/// on that feature's hidden entries; truth, a, b and hidden are (n, p), hidden 1.0 at a held-out entry, or its weight
/// (<see cref="oddsWeights"/>), 0 elsewhere. A feature without hidden entries takes the share that is best over all
/// hidden entries, and with nothing hidden every share is 0 (all a). Ties go to the
/// smaller share. Returns (p).
let blendShares (grid: float[]) (truth: Tensor) (a: Tensor) (b: Tensor) (hidden: Tensor) : Tensor =
    blendSharesGrouped [||] grid truth a b hidden

/// (1 − shares)·a + shares·b, shares (p) broadcast over the rows of a and b (n, p).
let blend (shares: Tensor) (a: Tensor) (b: Tensor) : Tensor = plus a (shares.unsqueeze(0L) * (b - a))

/// The weight vectors tried by <see cref="blendWeights"/> for k candidates: every vector of multiples of 1/steps
/// that sums to 1, the first candidate's weight varying slowest and largest first, so that earlier vectors favour
/// the earlier candidates. Returns (g, k), g = C(steps + k − 1, k − 1).
let simplexGrid (k: int) (steps: int) : float[][] =
    if k < 1 then raise (ArgumentOutOfRangeException("k", k, sprintf "must be at least 1; got %d" k))
    if steps < 1 then raise (ArgumentOutOfRangeException("steps", steps, sprintf "must be at least 1; got %d" steps))
    let rec go (k: int) (left: int) : int list list =
        if k = 1 then [ [ left ] ]
        else [ for first in left .. -1 .. 0 do for rest in go (k - 1) (left - first) -> first :: rest ]
    [| for v in go k steps -> [| for c in v -> float c / float steps |] |]

/// blendWeights with column groups (see <see cref="groupMatrix"/>): every column of a group takes the
/// weights best for the group's hidden entries together, so a categorical column's indicators blend alike.
let blendWeightsGrouped (groups: int[]) (grid: float[][]) (prior: float) (truth: Tensor) (candidates: Tensor[]) (hidden: Tensor) : Tensor =
    if candidates.Length = 0 then raise (ArgumentException("at least one candidate is needed.", "candidates"))
    if grid.Length = 0 || grid |> Array.exists (fun w -> w.Length <> candidates.Length) then
        raise (ArgumentException(sprintf "grid must hold rows of %d weights." candidates.Length, "grid"))
    use scope = torch.NewDisposeScope()
    let k = int64 candidates.Length
    let root = hidden.sqrt()
    let residuals = torch.stack([| for c in candidates -> (c - truth) * root |], dim = 2L) // (n, p, k)
    let gram = torch.einsum("npk,npl->pkl", residuals, residuals) // (p, k, k)
    let w = torch.tensor(Array.concat grid, dtype = dtype).reshape(int64 grid.Length, k) // (g, k)
    let raw = torch.einsum("gk,pkl,gl->gp", w, gram, w) // (g, p) sums of squares
    let errors = raw |> perGroup (groupMatrix groups truth.shape[1])
    let total = scalar (hidden.sum())
    if total = 0.0 then
        torch.zeros(hidden.shape[1], k, dtype = dtype).index_fill(1L, torch.tensor([| 0L |]), sc 1.0).MoveToOuterDisposeScope()
    else
        // The pooled mean error stands in for `prior` entries; a feature with none of its own takes the pooled best
        // (the prior is floored so that it still breaks those ties).
        let pooled = raw.sum(dim = 1L, keepdim = true) |> scaleBy (max prior 1e-9 / total)
        let chosen = w.index_select(0L, (plus errors pooled).argmin(dim = 0L))
        chosen.contiguous().MoveToOuterDisposeScope()

/// Per feature, the weights w (k) in `grid` (g, k) of the blend Σ_c w_c·candidates[c] with the lowest squared error
/// on that feature's hidden entries plus `prior` pseudo-entries at the mean squared error over all features' hidden
/// entries; truth, each candidate and hidden are (n, p), hidden 1.0 at a held-out entry, or its weight
/// (<see cref="oddsWeights"/>: an entry's squared error counts that many times), 0 elsewhere. With prior = 0 each feature is on its own; a feature without
/// hidden entries takes the weights best over all of them, and with nothing hidden every feature takes the first
/// candidate. Ties go to the earlier grid row. Returns (p, k).
/// <remarks>With three candidates the grid has 66 rows, and a feature with a few dozen hidden entries would pick
/// among them mostly by chance; the pooled error is the prior that a feature's own entries must outweigh, as in an
/// empirical-Bayes shrinkage toward the weights best for the whole table. Each feature's error is wᵀ G w with G
/// (k, k) the Gram matrix of the candidates' residuals on its hidden entries, so the grid costs O(g·k²·p) after one
/// pass over the rows, whatever n is.</remarks>
let blendWeights (grid: float[][]) (prior: float) (truth: Tensor) (candidates: Tensor[]) (hidden: Tensor) : Tensor =
    blendWeightsGrouped [||] grid prior truth candidates hidden

/// Σ_c weights[:, c]·candidates[c]: weights (p, k) broadcast over the rows of each candidate (n, p).
let blendAll (weights: Tensor) (candidates: Tensor[]) : Tensor =
    use scope = torch.NewDisposeScope()
    let mutable sum = candidates[0] * weights.select(1L, 0L).unsqueeze(0L)
    for c in 1 .. candidates.Length - 1 do
        sum <- plus sum (candidates[c] * weights.select(1L, int64 c).unsqueeze(0L))
    sum.MoveToOuterDisposeScope()
