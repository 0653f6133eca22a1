/// Online EM for a full-covariance Gaussian (Cappé and Moulines, 2009): the M-step statistics of one batch
/// (eq. 22), the stochastic-approximation update (eq. 7-8, or eq. 28 on sufficient statistics), the
/// step-size schedule, the robust covariance (eq. 31) and the super-batch buffer.
module EMFlow.OnlineEm

open System
open TorchSharp
open EMFlow.Tensors

/// Gaussian parameters: mean (p) and covariance (p, p).
type Estimate = { Mu: Tensor; Sigma: Tensor }

/// A copy of an estimate that belongs to no dispose scope and records no gradient: what a fitted model keeps.
/// <see cref="disposeEstimate"/> releases it.
let keep (e: Estimate) : Estimate =
    { Mu = e.Mu.detach().clone().DetachFromDisposeScope(); Sigma = e.Sigma.detach().clone().DetachFromDisposeScope() }

/// Releases an estimate's tensors.
let disposeEstimate (e: Estimate) =
    e.Mu.Dispose()
    e.Sigma.Dispose()

/// Step-size schedule ρ_t = C · t^(−γ).
type StepSize =
    { /// Scale C, in (0, 1).
      C: float
      /// Decay γ, in (0.5, 1]: the Robbins–Monro conditions need Σρ_t = ∞ and Σρ_t² &lt; ∞.
      Gamma: float
      /// Smallest step size, in [0, 1): ρ_t = max(C t^(−γ), Floor). 0 is the pure Robbins–Monro schedule.
      /// In EMFlow the latent vectors move as the flow trains, so the target the estimate averages over moves
      /// too; a floor keeps μ and Σ tracking it instead of freezing on early, stale batches.
      Floor: float }

/// The paper's schedule for every experiment: ρ_t = 0.99 · t^(−0.8), no floor.
let paperStepSize = { C = 0.99; Gamma = 0.8; Floor = 0.0 }

/// Raises ArgumentOutOfRangeException unless 0 &lt; C &lt; 1, 0.5 &lt; γ ≤ 1 and 0 ≤ Floor &lt; 1.
let validateStepSize (s: StepSize) =
    if not (s.C > 0.0 && s.C < 1.0) then
        raise (ArgumentOutOfRangeException("stepSize.C", s.C, sprintf "The step-size scale C must be in (0, 1); got %g." s.C))
    if not (s.Gamma > 0.5 && s.Gamma <= 1.0) then
        raise (ArgumentOutOfRangeException("stepSize.Gamma", s.Gamma, sprintf "The step-size decay gamma must be in (0.5, 1]; got %g." s.Gamma))
    if not (s.Floor >= 0.0 && s.Floor < 1.0) then
        raise (ArgumentOutOfRangeException("stepSize.Floor", s.Floor, sprintf "The step-size floor must be in [0, 1); got %g." s.Floor))

/// ρ_t for the t-th update (t ≥ 1). Always in (0, 1) for a valid schedule.
let rho (s: StepSize) (t: int) : float =
    if t < 1 then raise (ArgumentOutOfRangeException("t", t, sprintf "The update counter starts at 1; got %d." t))
    max (s.C * Math.Pow(float t, -s.Gamma)) s.Floor

/// The M-step on one batch (eq. 22): μ_local = mean of ẑ_i, Σ_local = mean of (ẑ_i − μ)(ẑ_i − μ)ᵀ + C̃_i.
/// <param name="imputed">(B, p) latent rows with missing parts replaced by conditional means.</param>
/// <param name="covarianceSum">(p, p) Σ_i C̃_i from <see cref="Gaussian.conditional"/>.</param>
let localEstimate (imputed: Tensor) (covarianceSum: Tensor) : Estimate =
    let b = float imputed.shape[0]
    let mu = imputed.mean([| 0L |])
    let d = imputed - mu
    let sigma = plus (d.T.matmul(d)) covarianceSum |> divideBy b
    { Mu = mu; Sigma = plus sigma sigma.T |> scaleBy 0.5 }

/// Sample mean and covariance (divisor n, the maximum-likelihood estimate) of complete rows (n, p).
let sampleEstimate (rows: Tensor) : Estimate =
    let p = rows.shape[1]
    localEstimate rows (torch.zeros(p, p, dtype = dtype))

/// ρ a + (1 − ρ) b.
let private mix (rho: float) (a: Tensor) (b: Tensor) = plus (a |> scaleBy rho) (b |> scaleBy (1.0 - rho))

/// The online update (eq. 7-8): θ ← ρ θ_local + (1 − ρ) θ.
let update (rho: float) (current: Estimate) (local: Estimate) : Estimate =
    { Mu = mix rho local.Mu current.Mu
      Sigma = mix rho local.Sigma current.Sigma }

/// Expected sufficient statistics of a Gaussian: s1 = E[z] (p), s2 = E[z zᵀ] (p, p).
type Sufficient = { S1: Tensor; S2: Tensor }

/// Local sufficient statistics of one batch: s1 = mean ẑ, s2 = mean (ẑ ẑᵀ + C̃).
let localSufficient (imputed: Tensor) (covarianceSum: Tensor) : Sufficient =
    let b = float imputed.shape[0]
    { S1 = imputed.mean([| 0L |]); S2 = plus (imputed.T.matmul(imputed)) covarianceSum |> divideBy b }

/// Sufficient statistics of an estimate: s1 = μ, s2 = Σ + μ μᵀ.
let toSufficient (e: Estimate) : Sufficient =
    { S1 = e.Mu; S2 = plus e.Sigma (e.Mu.outer(e.Mu)) }

/// The estimate of sufficient statistics: μ = s1, Σ = s2 − s1 s1ᵀ.
let ofSufficient (s: Sufficient) : Estimate =
    let sigma = s.S2 - s.S1.outer(s.S1)
    { Mu = s.S1; Sigma = plus sigma sigma.T |> scaleBy 0.5 }

/// Cappé and Moulines' update on sufficient statistics (eq. 28): s ← ρ s_local + (1 − ρ) s.
let updateSufficient (rho: float) (current: Sufficient) (local: Sufficient) : Sufficient =
    { S1 = mix rho local.S1 current.S1
      S2 = mix rho local.S2 current.S2 }

/// Robust covariance (eq. 31): Σ + β · Diag(Σ). Keeps conditionals well posed while Σ is still poor.
/// Raises ArgumentOutOfRangeException for β &lt; 0.
let robust (beta: float) (sigma: Tensor) : Tensor =
    if not (beta >= 0.0) then raise (ArgumentOutOfRangeException("beta", beta, sprintf "beta must be non-negative; got %g." beta))
    if beta = 0.0 then sigma else plus sigma (torch.diag(sigma.diagonal()) |> scaleBy beta)

/// The paper's robust-Σ schedule for UCI data under MAR, one β per iteration from 1: 1e-2, 1e-2, 1e-3, 1e-3, then 0.
let paperMarBeta : float[] = [| 1e-2; 1e-2; 1e-3; 1e-3 |]

/// β of iteration <c>iteration</c> (from 1) in <see cref="paperMarBeta"/>: 0 past its end.
let paperBeta (iteration: int) : float =
    if iteration >= 1 && iteration <= paperMarBeta.Length then paperMarBeta[iteration - 1] else 0.0

/// Which form of the online update to apply.
type UpdateForm =
    /// Average μ and Σ directly (eq. 7-8), as the paper's experiments do.
    | Moments
    /// Average the sufficient statistics (eq. 28), Cappé and Moulines' general form.
    | SufficientStatistics

/// The latest batches' E-step results kept for the M-step when batches are small next to p (appendix D).
/// Whole batches are dropped oldest first once more than Capacity rows are held.
type SuperBatch =
    { Capacity: int
      Batches: (Tensor * Tensor) list }

/// An empty buffer holding at most `capacity` rows (capacity ≤ 0 means: only the current batch).
let emptySuperBatch (capacity: int) = { Capacity = capacity; Batches = [] }

/// Adds a batch (imputed (B, p), covariance sum (p, p)) and returns the trimmed buffer and the pooled
/// local estimate over everything it holds.
let pushSuperBatch (buffer: SuperBatch) (imputed: Tensor) (covarianceSum: Tensor) : SuperBatch * Estimate =
    let rec trim (kept: (Tensor * Tensor) list) rows acc =
        match kept with
        | [] -> List.rev acc
        | (x, c) :: rest ->
            let r = rows + int x.shape[0]
            if r > buffer.Capacity && not acc.IsEmpty then List.rev acc else trim rest r ((x, c) :: acc)
    let batches = trim ((imputed, covarianceSum) :: buffer.Batches) 0 []
    let all = torch.cat(batches |> List.map fst |> List.toArray, 0L)
    let cov = batches |> List.map snd |> List.reduce plus
    { buffer with Batches = batches }, localEstimate all cov

/// State of online EM between batches.
type State =
    { Estimate: Estimate
      /// Number of updates applied so far; the next uses ρ_(Step+1).
      Step: int
      Sufficient: Sufficient option
      Buffer: SuperBatch }

/// A state whose parameters start at `initial` (the paper: mean and covariance of the first latent batch).
let init (form: UpdateForm) (superBatch: int) (initial: Estimate) : State =
    { Estimate = initial
      Step = 0
      Sufficient = (match form with SufficientStatistics -> Some (toSufficient initial) | Moments -> None)
      Buffer = emptySuperBatch superBatch }

/// One online-EM update from a batch's E-step, its imputed rows (B, p) and the (p, p) sum of their conditional
/// covariances: pools the super-batch, steps the counter and averages.
let stepWith (schedule: StepSize) (state: State) (imputed: Tensor) (covarianceSum: Tensor) : State =
    let buffer, local = pushSuperBatch state.Buffer imputed covarianceSum
    let t = state.Step + 1
    let r = rho schedule t
    match state.Sufficient with
    | Some s ->
        let s' = updateSufficient r s (toSufficient local)
        { state with Estimate = ofSufficient s'; Step = t; Sufficient = Some s'; Buffer = buffer }
    | None -> { state with Estimate = update r state.Estimate local; Step = t; Buffer = buffer }

/// <see cref="stepWith"/> from a batch's <see cref="Gaussian.conditional"/>.
let step (schedule: StepSize) (state: State) (e: Gaussian.Conditional) : State =
    stepWith schedule state e.Imputed e.CovarianceSum

/// The tensors a state holds: its estimate, its sufficient statistics and its super-batch.
let private tensorsOf (s: State) : Tensor seq =
    seq {
        yield s.Estimate.Mu
        yield s.Estimate.Sigma
        match s.Sufficient with
        | Some suff -> yield suff.S1; yield suff.S2
        | None -> ()
        for a, b in s.Buffer.Batches do yield a; yield b }

/// Disposes the tensors of <c>old</c> that <c>next</c> (if any) does not share, so that memory stays flat over
/// thousands of updates whose states share some tensors with their predecessors.
let release (old: State) (next: State option) =
    let kept = Collections.Generic.HashSet<nativeint>()
    next |> Option.iter (fun n -> for t in tensorsOf n do kept.Add t.Handle |> ignore)
    for t in tensorsOf old do
        if not (kept.Contains t.Handle) then t.Dispose()
