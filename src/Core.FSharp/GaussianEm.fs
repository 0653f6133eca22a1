/// Gaussian-EM imputation: EMFlow with the identity flow. Fits a full-covariance Gaussian to data with
/// missing values by batch EM (Dempster, Laird and Rubin, 1977) or online EM, and imputes each row by its
/// conditional mean. Every later result is compared with this baseline.
module EMFlow.GaussianEm

open System
open System.Threading
open TorchSharp
open EMFlow.Tensors
open EMFlow.OnlineEm

/// Settings of the Gaussian-EM fit.
type Settings =
    { /// Most EM sweeps (batch) or epochs (online).
      MaxIterations: int
      /// Batch EM stops when the mean per-row observed-data log-likelihood rises by less than this.
      Tolerance: float
      /// Ridge added to Σ's diagonal, relative to its mean diagonal, after each M-step; keeps Σ invertible
      /// when n &lt; p or columns are collinear.
      Ridge: float }

/// 500 sweeps at most, tolerance 1e-7 nats per row, ridge 1e-6.
let defaults = { MaxIterations = 500; Tolerance = 1e-7; Ridge = 1e-6 }

/// A fitted Gaussian and how the fit went.
type Fit =
    { Estimate: Estimate
      /// Sweeps run.
      Iterations: int
      /// True when the tolerance was met before MaxIterations.
      Converged: bool
      /// Mean observed-data log-likelihood per row after each sweep.
      LogLikelihood: float list }

let private validate (x: Tensor) (mask: Tensor) (s: Settings) =
    if x.dim() <> 2L then invalidArg "x" (sprintf "Expected a (n, p) matrix; got %d dimensions." (x.dim()))
    if mask.shape <> x.shape then invalidArg "mask" (sprintf "The mask must have the data's shape (%d, %d)." x.shape[0] x.shape[1])
    if x.shape[0] < 1L then invalidArg "x" "Expected at least one row; got 0."
    if s.MaxIterations < 1 then raise (ArgumentOutOfRangeException("MaxIterations", s.MaxIterations, "must be at least 1"))
    if not (s.Tolerance >= 0.0) then raise (ArgumentOutOfRangeException("Tolerance", s.Tolerance, "must be non-negative"))
    if not (s.Ridge >= 0.0) then raise (ArgumentOutOfRangeException("Ridge", s.Ridge, "must be non-negative"))
    let observedCounts = (oneMinus mask).sum(dim = 0L)
    let empty = observedCounts.eq(sc 0.0).nonzero()
    if empty.shape[0] > 0L then
        invalidArg "x" (sprintf "Column %d has no observed value; drop it before fitting." (empty[0, 0].item<int64>()))

/// Rows per call of the E-step: its temporaries grow as rows · p² (a (rows, K, p) block per row group, and
/// they live until the call returns), so wide data (images, p = 784) go through in slices of about 2^26 / p²
/// rows; tables (p ≤ 90) keep slices of 4096 rows, larger than any training batch.
let eStepRows (p: int64) : int64 = max 1L (min 4096L ((1L <<< 26) / max 1L (p * p)))

/// <see cref="Gaussian.conditional"/> over (n, p) rows in slices of <see cref="eStepRows"/> rows: the same
/// conditional means and log-likelihoods, and the covariance sum added slice by slice, with memory bounded
/// whatever n is.
let conditional (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Gaussian.Conditional =
    let n, p = z.shape[0], z.shape[1]
    let step = eStepRows p
    if n <= step then Gaussian.conditional mu sigma z mask
    else
        use scope = torch.NewDisposeScope()
        let imputed = ResizeArray<Tensor>()
        let logLik = ResizeArray<Tensor>()
        let mutable covSum = torch.zeros(p, p, dtype = dtype)
        let mutable s = 0L
        while s < n do
            let len = min step (n - s)
            let c = Gaussian.conditional mu sigma (z.narrow(0L, s, len)) (mask.narrow(0L, s, len))
            imputed.Add c.Imputed
            logLik.Add c.LogLikelihood
            covSum.add_(c.CovarianceSum, scInt 1L) |> ignore
            c.CovarianceSum.Dispose()
            s <- s + len
        { Imputed = torch.cat(imputed.ToArray(), 0L).MoveToOuterDisposeScope()
          CovarianceSum = covSum.MoveToOuterDisposeScope()
          LogLikelihood = torch.cat(logLik.ToArray(), 0L).MoveToOuterDisposeScope() }

/// The conditional mean only, in slices (see <see cref="conditional"/>): (n, p) rows with missing entries imputed.
let conditionalMean (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Tensor =
    let n, p = z.shape[0], z.shape[1]
    let step = eStepRows p
    if n <= step then Gaussian.conditionalMean mu sigma z mask
    else
        use scope = torch.NewDisposeScope()
        let parts =
            [| let mutable s = 0L
               while s < n do
                   let len = min step (n - s)
                   yield Gaussian.conditionalMean mu sigma (z.narrow(0L, s, len)) (mask.narrow(0L, s, len))
                   s <- s + len |]
        torch.cat(parts, 0L).MoveToOuterDisposeScope()

/// What online EM needs of the E-step, in slices (see <see cref="conditional"/>): (n, p) rows with missing entries
/// imputed and the (p, p) sum of their conditional covariances, without the likelihood.
let conditionalStatistics (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Tensor * Tensor =
    let n, p = z.shape[0], z.shape[1]
    if n <= eStepRows p then Gaussian.conditionalStatistics mu sigma z mask
    else
        let c = conditional mu sigma z mask
        c.LogLikelihood.Dispose()
        c.Imputed, c.CovarianceSum

/// Σ + r · mean(diag Σ) · I, (p, p): keeps Σ invertible when n &lt; p or columns are collinear; r = 0 returns Σ.
let ridge (r: float) (sigma: Tensor) =
    if r = 0.0 then sigma
    else
        let p = sigma.shape[0]
        plus sigma (torch.eye(p, dtype = dtype) |> scaleBy (r * max (scalar (sigma.diagonal().mean())) 1e-12))

/// The estimate as an E-step uses it, Σ plus <c>ridge r</c>; new tensors (aliases where r = 0) the caller disposes.
/// Online EM keeps Σ without the ridge and adds it only here, on use: each online update starts from the previous Σ,
/// so a ridge stored with it would be added again at every step and grow towards r / ρ_t of the mean diagonal.
let withRidge (r: float) (e: Estimate) : Estimate =
    { Mu = e.Mu.alias(); Sigma = (if r = 0.0 then e.Sigma.alias() else ridge r e.Sigma) }

/// Starting point: per-feature mean and variance of the observed values, no correlation; robust to any
/// missing pattern.
let initialEstimate (x: Tensor) (mask: Tensor) : Estimate =
    let observed = oneMinus mask
    let xx = torch.where(mask.gt(sc 0.5), torch.zeros_like(x), x)
    let counts = observed.sum(dim = 0L)
    let mu = xx.sum(dim = 0L) / counts
    let var = (((xx - mu) * observed).pow(sc 2.0)).sum(dim = 0L) / counts
    let var = torch.where(var.gt(sc 0.0), var, torch.ones_like(var))
    { Mu = mu; Sigma = torch.diag(var) }

/// Mean per-row observed-data log-likelihood.
let logLikelihood (e: Estimate) (x: Tensor) (mask: Tensor) : float =
    use _ = torch.NewDisposeScope()
    scalar ((conditional e.Mu e.Sigma x mask).LogLikelihood.mean())

/// Batch EM to convergence on (n, p) data with a (n, p) mask (1 = missing), checking <c>ct</c> before each sweep.
/// Raises ArgumentException for a column with no observed value or mismatched shapes, and
/// OperationCanceledException when the token is cancelled (every tensor made so far is freed).
let rec fitBatchCancellable (settings: Settings) (ct: CancellationToken) (x: Tensor) (mask: Tensor) : Fit =
    validate x mask settings
    use scope = torch.NewDisposeScope()
    let fit = fitFrom settings ct (initialEstimate x mask) x mask
    { fit with Estimate = { Mu = fit.Estimate.Mu.MoveToOuterDisposeScope(); Sigma = fit.Estimate.Sigma.MoveToOuterDisposeScope() } }

/// <see cref="fitBatchCancellable"/> from a given estimate instead of the diagonal one of the observed moments, such
/// as the fit to all rows for a bootstrap resample of them: on Concrete's resamples a third fewer sweeps to the same
/// tolerance (on Breast cancer's, whose slow phase dominates, as many). The start is copied, not consumed.
and fitBatchFrom (settings: Settings) (ct: CancellationToken) (start: Estimate) (x: Tensor) (mask: Tensor) : Fit =
    validate x mask settings
    use scope = torch.NewDisposeScope()
    let fit = fitFrom settings ct { Mu = start.Mu.clone(); Sigma = start.Sigma.clone() } x mask
    { fit with Estimate = { Mu = fit.Estimate.Mu.MoveToOuterDisposeScope(); Sigma = fit.Estimate.Sigma.MoveToOuterDisposeScope() } }

/// Batch EM from the estimate <c>start</c>, which it owns and releases as it moves on; inputs already checked.
and private fitFrom (settings: Settings) (ct: CancellationToken) (start: Estimate) (x: Tensor) (mask: Tensor) : Fit =
    // Each E-step yields the log-likelihood of the parameters it used, so convergence is judged one sweep
    // behind at no extra cost; the estimate returned is the one whose likelihood was measured last.
    use outer = torch.NewDisposeScope()
    let mutable e = start
    let history = ResizeArray<float>()
    let mutable finished = false
    let mutable converged = false
    while not finished do
        ct.ThrowIfCancellationRequested()
        use scope = torch.NewDisposeScope()
        let c = conditional e.Mu e.Sigma x mask
        let ll = scalar (c.LogLikelihood.mean())
        if Double.IsNaN ll then
            raise (InvalidOperationException "The observed-data log-likelihood became NaN; the data may hold extreme values.")
        converged <- history.Count > 0 && abs (ll - history[history.Count - 1]) < settings.Tolerance
        history.Add ll
        if converged || history.Count > settings.MaxIterations then finished <- true
        else
            let local = localEstimate c.Imputed c.CovarianceSum
            let next = { Mu = local.Mu.MoveToOuterDisposeScope(); Sigma = (ridge settings.Ridge local.Sigma).MoveToOuterDisposeScope() }
            e.Mu.Dispose()
            e.Sigma.Dispose()
            e <- next
    { Estimate = { Mu = e.Mu.MoveToOuterDisposeScope(); Sigma = e.Sigma.MoveToOuterDisposeScope() }
      Iterations = history.Count - 1; Converged = converged; LogLikelihood = List.ofSeq history }

/// Batch EM to convergence on (n, p) data with a (n, p) mask (1 = missing); <see cref="fitBatchCancellable"/>
/// without a token. Raises ArgumentException for a column with no observed value or mismatched shapes.
let fitBatch (settings: Settings) (x: Tensor) (mask: Tensor) : Fit =
    fitBatchCancellable settings CancellationToken.None x mask

/// Online EM: `epochs` passes over shuffled mini-batches of `batchSize` rows, one update each (eq. 7-8 or 28).
/// The first batch's sample statistics (after a mean fill) start the estimate, as in the paper.
let fitOnline (schedule: StepSize) (form: UpdateForm) (batchSize: int) (epochs: int) (seed: int64) (x: Tensor) (mask: Tensor) : Fit =
    validate x mask { defaults with MaxIterations = max 1 epochs }
    validateStepSize schedule
    if batchSize < 2 then raise (ArgumentOutOfRangeException("batchSize", batchSize, "must be at least 2"))
    let n = x.shape[0]
    let gen = generator seed
    let start = initialEstimate x mask
    let filled = conditionalMean start.Mu start.Sigma x mask
    let b0 = min (int64 batchSize) n
    let first = sampleEstimate (filled.narrow(0L, 0L, b0))
    let mutable state = init form 0 first
    let history = ResizeArray()
    for _ in 1 .. epochs do
        let order = torch.randperm(n, generator = gen)
        let mutable s = 0L
        while s < n do
            let len = min (int64 batchSize) (n - s)
            use scope = torch.NewDisposeScope()
            let rows = order.narrow(0L, s, len)
            let used = withRidge defaults.Ridge state.Estimate
            let c = conditional used.Mu used.Sigma (x.index_select(0L, rows)) (mask.index_select(0L, rows))
            let next = step schedule state c
            let e = { Mu = next.Estimate.Mu.MoveToOuterDisposeScope(); Sigma = next.Estimate.Sigma.MoveToOuterDisposeScope() }
            let suff = next.Sufficient |> Option.map (fun q -> { S1 = q.S1.MoveToOuterDisposeScope(); S2 = q.S2.MoveToOuterDisposeScope() })
            state <- { next with Estimate = e; Sufficient = suff; Buffer = emptySuperBatch 0 }
            s <- s + len
        use scope = torch.NewDisposeScope()
        history.Add(logLikelihood (withRidge defaults.Ridge state.Estimate) x mask)
    { Estimate = { Mu = state.Estimate.Mu; Sigma = ridge defaults.Ridge state.Estimate.Sigma }
      Iterations = epochs; Converged = true; LogLikelihood = List.ofSeq history }

/// Imputes (B, p) rows by their conditional mean under the fitted Gaussian; observed entries are copied
/// back exactly, so they can never change.
let impute (e: Estimate) (x: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let imputed = conditionalMean e.Mu e.Sigma x mask
    torch.where(mask.gt(sc 0.5), imputed, x).MoveToOuterDisposeScope()

/// Row indices (n) of a bootstrap resample of the n rows of a (n, p) mask (1 = missing): n rows drawn with
/// replacement. A resample in which some column has no observed value cannot be fitted, so such a resample is drawn
/// again (up to 100 times; a table that rarely observes a column then fails in the fit, naming the column).
let bootstrapRows (gen: torch.Generator) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let n = mask.shape[0]
    let observed = oneMinus mask
    let rec draw attempt =
        let rows = torch.randint(n, [| n |], dtype = torch.int64, generator = gen)
        if attempt >= 100 || observed.index_select(0L, rows).sum(dim = 0L).gt(sc 0.0).all().item<bool>() then rows
        else draw (attempt + 1)
    (draw 1).MoveToOuterDisposeScope()

/// One proper draw of the missing entries of x (m, p) under mask (m, p) (Rubin 1987; the EM-with-bootstrap of
/// Honaker, King and Blackwell's Amelia II): the Gaussian is refitted by batch EM on a bootstrap resample of the
/// fitted rows (n, p) under fittedMask, then each row's missing entries are drawn from that Gaussian's conditional
/// distribution given its observed ones. Over many draws the spread carries the uncertainty of μ and Σ as well as
/// the conditional variance, which matters where a row lies far from the rows that observe what it misses.
/// <c>fitted</c> is the Gaussian fitted to all the rows, where EM on the resample starts.
/// Observed entries are copied through; returns (m, p). The token is checked before each EM sweep.
let sampleBootstrap (settings: Settings) (gen: torch.Generator) (ct: CancellationToken) (fitted: Estimate) (fittedX: Tensor) (fittedMask: Tensor) (x: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let rows = bootstrapRows gen fittedMask
    // EM on the resample starts from the fit to all rows, near the resample's own maximum.
    let fit = fitBatchFrom settings ct fitted (fittedX.index_select(0L, rows)) (fittedMask.index_select(0L, rows))
    let draw = Gaussian.sampleConditional gen fit.Estimate.Mu fit.Estimate.Sigma x mask
    torch.where(mask.gt(sc 0.5), draw, x).MoveToOuterDisposeScope()
