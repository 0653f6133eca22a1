/// EMFlow's two phases (Algorithms 1 and 2 of the paper) as steps on one batch: the data density under the
/// flow and the latent Gaussian (eq. 3), the two flow losses (eq. 11-15), one training-phase step on a batch
/// (L1 step, latent E-step and online M-step, L2 step), and re-imputation of any rows.
/// The caller owns the flow, the optimisers and the loop; these functions hold no state of their own.
module EMFlow.Training

open System
open System.Threading
open TorchSharp
open EMFlow.Tensors
open EMFlow.OnlineEm

/// What the second flow step of a training-phase step optimises.
type SecondStep =
    /// L2 as in eq. 15: −log p_X(x̃) + α · reconstruction error of observed entries.
    | Paper
    /// α · reconstruction error only. With ẑ held fixed, the −log p_X(x̃) part of L2 can be lowered by
    /// contracting the flow around x̃, which sharpens the density without fitting the data better.
    | ReconstructionOnly
    /// No second step: only L1 trains the flow.
    | Skip

/// Settings of one training-phase step.
type StepSettings =
    { /// α of eq. 15: weight of the squared reconstruction error on observed entries.
      Alpha: float
      /// ρ_t = C t^(−γ) of the online M-step.
      StepSize: StepSize
      /// β of the robust covariance used in the E-step (eq. 31); 0 for none.
      Beta: float
      /// Largest gradient norm of a flow step; larger gradients are scaled down so that one bad batch
      /// cannot throw the flow far away.
      MaxGradNorm: float
      /// Ridge added to Σ after each M-step, relative to its mean diagonal (keeps Σ invertible when n &lt; p).
      Ridge: float
      /// The second flow step (L2) variant.
      Second: SecondStep
      /// The E-step takes its latent vectors from the L1 pass, computed before the L1 update, instead of a second
      /// pass through the updated flow: one pass through the flow fewer per batch (about a quarter of a step's time),
      /// with the E-step one optimiser step behind the flow. False is the paper's order. The fitting loop then also
      /// re-anchors the latent Gaussian each epoch to the moments of the previous epoch's L1-pass latent vectors
      /// rather than passing every row through the flow again.
      LatentFromL1Pass: bool
      /// γ ≥ 0: each row's term of L1 is weighted by the share of its entries that are observed, to the power γ. A
      /// flow trained on imputed entries as if they were data learns the imputations it is meant to improve; γ > 0
      /// lets the rows that are mostly observed shape it. 0 weights every row alike (the paper's L1).
      ObservedShareWeight: float
      /// With LatentFromL1Pass, L1 and its gradient are computed by <c>FusedL1</c> wherever it supports the flow (the
      /// library's default flow): the same function as autograd's, in far fewer torch calls. False always uses autograd.
      FusedGradient: bool }

/// Losses of one training-phase step (means over the batch).
type StepLosses =
    { /// L1: −mean log p_X(x̂).
      L1: float
      /// L2: −mean [log p_X(x̃) − α · squared error on observed entries].
      L2: float
      /// Mean squared reconstruction error of observed entries, per row (the α term without α).
      Reconstruction: float }

/// log p_X(x) per row (B) from x's latent vectors z = f⁻¹(x) (B, p) and log|det ∂f⁻¹/∂x| (B) (eq. 3).
let private logDensityOfLatent (e: Estimate) (z: Tensor) (logDet: Tensor) : Tensor =
    plus (Gaussian.logDensity e.Mu e.Sigma z) logDet

/// log p_X(x) per row (B) under flow f and latent N(μ, Σ) (eq. 3): log N(f⁻¹(x)) + log|det ∂f⁻¹/∂x|.
let logDensity (flow: Flow.FlowLayer) (e: Estimate) (x: Tensor) : Tensor =
    let z, logDet = Flow.toLatent flow x
    logDensityOfLatent e z logDet

/// L1 (eq. 11): −mean log p_X(x̂) over the batch; differentiable in the flow's parameters.
let l1Loss (flow: Flow.FlowLayer) (e: Estimate) (xHat: Tensor) : Tensor =
    -(logDensity flow e xHat).mean()

/// −Σ w_i log p_i / Σ w_i over the batch with w_i = (observed share of row i)^γ, or the plain mean when γ = 0.
/// <param name="gamma">γ ≥ 0 (<c>StepSettings.ObservedShareWeight</c>).</param>
/// <param name="logP">log p_X of each row (B), differentiable.</param>
/// <param name="mask">(B, p) 1.0 where the entry is missing (imputed).</param>
let weightedNegativeMean (gamma: float) (logP: Tensor) (mask: Tensor) : Tensor =
    if gamma = 0.0 then -logP.mean()
    else
        use observed = (oneMinus mask).mean([| 1L |])
        use w = observed.pow(sc gamma)
        // A batch of rows with nothing observed weighs nothing: its loss is 0 rather than 0 / 0.
        use total = w.sum().clamp_min(sc 1e-12)
        -(logP * w).sum() / total

/// The latent E-step: z = f⁻¹(x̂) with the latent mask equal to the data mask (the paper's assumption 2),
/// then the conditional mean and covariance under N(μ, Σ_E). No gradient is recorded.
/// <param name="sigmaE">(p, p) covariance used for the conditionals (Σ, or the robust Σ of eq. 31).</param>
let latentEStep (flow: Flow.FlowLayer) (mu: Tensor) (sigmaE: Tensor) (xHat: Tensor) (mask: Tensor) : Gaussian.Conditional =
    use _ = torch.no_grad()
    let z, logDet = Flow.toLatent flow xHat
    logDet.Dispose()
    GaussianEm.conditional mu sigmaE z mask

/// L2 (eq. 15): x̃ = f(ẑ); −mean [log p_X(x̃) − α Σ_j (1 − m_j)(x̃_j − x̂_j)²]. Since f⁻¹(x̃) = ẑ exactly,
/// log p_X(x̃) = log N(ẑ) − log|det ∂f/∂z| needs no second pass through the flow.
/// Returns the loss and the mean per-row reconstruction error.
let l2Loss (flow: Flow.FlowLayer) (e: Estimate) (alpha: float) (xHat: Tensor) (mask: Tensor) (zHat: Tensor) : Tensor * Tensor =
    let xTilde, logDet = Flow.toData flow zHat
    let logP = Gaussian.logDensity e.Mu e.Sigma zHat - logDet
    let recon = (((xTilde - xHat) * oneMinus mask).pow(sc 2.0)).sum(dim = 1L)
    -(logP - (recon |> scaleBy alpha)).mean(), recon.mean()

/// The reconstruction part of L2 alone: α · mean squared error of f(ẑ) on observed entries.
let reconstructionLoss (flow: Flow.FlowLayer) (alpha: float) (xHat: Tensor) (mask: Tensor) (zHat: Tensor) : Tensor * Tensor =
    let xTilde, _ = Flow.toData flow zHat
    let recon = (((xTilde - xHat) * oneMinus mask).pow(sc 2.0)).sum(dim = 1L)
    recon.mean() |> scaleBy alpha, recon.mean()

let private clipAndStep (settings: StepSettings) (flow: Flow.FlowLayer) (opt: Optim.Adam) (loss: Tensor) =
    let ps = Flow.parameters flow
    // The identity flow has nothing to train (and no graph to differentiate).
    if ps.Length > 0 then
        opt.ZeroGrad()
        loss.backward()
        // A non-finite gradient would poison every parameter through Adam's moments: ClipAndStep skips the step then.
        opt.ClipAndStep settings.MaxGradNorm |> ignore

/// Keeps an estimate's tensors alive beyond the current dispose scope.
let private keep (e: Estimate) = { Mu = e.Mu.MoveToOuterDisposeScope(); Sigma = e.Sigma.MoveToOuterDisposeScope() }

/// One training-phase step on a batch (Algorithm 1, lines 3-8): an L1 gradient step with `optL1`, the latent
/// E-step and online M-step, and an L2 gradient step with `optL2`. Separate optimisers keep the large
/// α-scaled reconstruction gradients of L2 out of L1's moment estimates.
/// <param name="xHat">(B, p) current imputations (observed entries are data).</param>
/// <param name="mask">(B, p) 1.0 where the entry is missing (imputed) in xHat.</param>
/// <returns>The updated online-EM state (tensors outliving the call; Σ without the ridge, which
/// <c>GaussianEm.withRidge settings.Ridge</c> adds for use) and the step's losses.</returns>
let rec trainStep (settings: StepSettings) (flow: Flow.FlowLayer) (optL1: Optim.Adam) (optL2: Optim.Adam)
                  (state: State) (xHat: Tensor) (mask: Tensor) : State * StepLosses =
    let next, losses, latent = trainStepWithLatent settings flow optL1 optL2 state xHat mask
    latent |> Option.iter (fun z -> z.Dispose())
    next, losses

/// <see cref="trainStep"/>, also returning the batch's latent vectors f⁻¹(x̂) (B, p) of the L1 pass, detached, when
/// <c>settings.LatentFromL1Pass</c> (None otherwise): the caller can average them over an epoch instead of passing every
/// row through the flow again. The caller owns them.
and trainStepWithLatent (settings: StepSettings) (flow: Flow.FlowLayer) (optL1: Optim.Adam) (optL2: Optim.Adam)
                        (state: State) (xHat: Tensor) (mask: Tensor) : State * StepLosses * Tensor option =
    use scope = torch.NewDisposeScope()
    // The state keeps Σ without the ridge (GaussianEm.withRidge says why); it is added where Σ is used.
    let e = GaussianEm.withRidge settings.Ridge state.Estimate
    let l1, c, latent =
        if settings.LatentFromL1Pass then
            let l1, z =
                match flow with
                | :? Flow.Flow as f when settings.FusedGradient && FusedL1.supports f ->
                    optL1.ZeroGrad()
                    let l1, z = FusedL1.lossAndGradient f e settings.ObservedShareWeight xHat mask
                    // A non-finite gradient would poison every parameter through Adam's moments: ClipAndStep skips the step then.
                    optL1.ClipAndStep settings.MaxGradNorm |> ignore
                    l1, z
                | _ ->
                    let z, logDet = Flow.toLatent flow xHat
                    let l1 = weightedNegativeMean settings.ObservedShareWeight (logDensityOfLatent e z logDet) mask
                    clipAndStep settings flow optL1 l1
                    scalar l1, z.detach()
            use _ = torch.no_grad()
            l1, GaussianEm.conditionalStatistics e.Mu (robust settings.Beta e.Sigma) z mask, Some z
        else
            let l1 = weightedNegativeMean settings.ObservedShareWeight (logDensity flow e xHat) mask
            clipAndStep settings flow optL1 l1
            let c = latentEStep flow e.Mu (robust settings.Beta e.Sigma) xHat mask
            scalar l1, (c.Imputed, c.CovarianceSum), None
    let zHat, covarianceSum = c
    let next = stepWith settings.StepSize state zHat covarianceSum
    let estimate = GaussianEm.withRidge settings.Ridge next.Estimate
    let l2, recon =
        match settings.Second with
        | Paper -> l2Loss flow estimate settings.Alpha xHat mask zHat
        | ReconstructionOnly -> reconstructionLoss flow settings.Alpha xHat mask zHat
        | Skip -> torch.tensor(nan, dtype = dtype), torch.tensor(nan, dtype = dtype)
    if settings.Second <> Skip then clipAndStep settings flow optL2 l2
    let kept = keep next.Estimate
    let buffer = { next.Buffer with Batches = next.Buffer.Batches |> List.map (fun (x, s) -> x.MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope()) }
    let suff = next.Sufficient |> Option.map (fun s -> { S1 = s.S1.MoveToOuterDisposeScope(); S2 = s.S2.MoveToOuterDisposeScope() })
    { next with Estimate = kept; Buffer = buffer; Sufficient = suff },
    { L1 = l1; L2 = scalar l2; Reconstruction = scalar recon },
    latent |> Option.map (fun z -> z.MoveToOuterDisposeScope())

// Rows per chunk when a pass over the whole table goes through the flow: a dispose scope keeps every coupling's
// intermediates until it closes, so one scope per chunk bounds memory for large tables (60000 images: about 20 GB
// at once) without changing any result.
let private chunk = 4096L

/// The rows 0 … n − 1 in chunks: f start len gives each chunk's (len, k) result inside a dispose scope of its own,
/// without gradients; the results are concatenated, (n, k). The token is checked before each chunk.
let private byChunksCancellable (ct: CancellationToken) (n: int64) (f: int64 -> int64 -> Tensor) : Tensor =
    use _ = torch.no_grad()
    use outer = torch.NewDisposeScope()
    let parts =
        [| let mutable s = 0L
           while s < n do
               ct.ThrowIfCancellationRequested()
               let len = min chunk (n - s)
               use scope = torch.NewDisposeScope()
               yield (f s len).MoveToOuterDisposeScope()
               s <- s + len |]
    (if parts.Length = 1 then parts[0] else torch.cat(parts, 0L)).MoveToOuterDisposeScope()

let private byChunks (n: int64) (f: int64 -> int64 -> Tensor) : Tensor = byChunksCancellable CancellationToken.None n f

/// f⁻¹(x̂) of every row (n, p), in chunks and without gradients.
let private latentOf (flow: Flow.FlowLayer) (xHat: Tensor) : Tensor =
    byChunks xHat.shape[0] (fun s len -> fst (Flow.toLatent flow (xHat.narrow(0L, s, len))))

/// Latent statistics that start the base distribution of an iteration: the sample mean and covariance
/// of f⁻¹(x̂) over the rows given, plus a ridge.
let initialEstimate (flow: Flow.FlowLayer) (ridgeFraction: float) (xHat: Tensor) : Estimate =
    use scope = torch.NewDisposeScope()
    use _ = torch.no_grad()
    let z = latentOf flow xHat
    let e = sampleEstimate z
    keep { e with Sigma = GaussianEm.ridge ridgeFraction e.Sigma }

/// The latent Gaussian refitted by batch EM over all rows once the flow is trained: z = f⁻¹(x̂) with the
/// data's mask, EM to convergence. Online EM tracked μ and Σ while the flow moved under it; with the flow now
/// fixed, the exact maximum-likelihood latent Gaussian is cheap to compute for a table that fits in memory.
/// <c>ridgeFraction</c> is added to Σ's diagonal, relative to its mean, after each M-step.
/// The token is checked before each chunk and each EM sweep.
let refitLatentCancellable (flow: Flow.FlowLayer) (ridgeFraction: float) (ct: CancellationToken) (xHat: Tensor) (mask: Tensor) : Estimate =
    use scope = torch.NewDisposeScope()
    let z = byChunksCancellable ct xHat.shape[0] (fun s len -> fst (Flow.toLatent flow (xHat.narrow(0L, s, len))))
    let fit = GaussianEm.fitBatchCancellable { GaussianEm.defaults with MaxIterations = 200; Ridge = ridgeFraction } ct z mask
    keep fit.Estimate

/// <see cref="refitLatentCancellable"/> without a token.
let refitLatent (flow: Flow.FlowLayer) (ridgeFraction: float) (xHat: Tensor) (mask: Tensor) : Estimate =
    refitLatentCancellable flow ridgeFraction CancellationToken.None xHat mask

/// x̂ with its missing entries (mask 1.0) replaced by x̃ clamped to [lower, upper] and its observed entries kept:
/// the last step of every re-imputation.
let fillMissing (lower: Tensor) (upper: Tensor) (xTilde: Tensor) (xHat: Tensor) (mask: Tensor) : Tensor =
    torch.where(mask.gt(sc 0.5), torch.minimum(torch.maximum(xTilde, lower), upper), xHat)

/// Re-imputation (Algorithm 2): with every parameter fixed, z = f⁻¹(x̂), ẑ = latent conditional mean,
/// x̃ = f(ẑ), and x̂ ← x̂ ⊙ (1 − m) + clamp(x̃) ⊙ m. Observed entries are copied through untouched.
/// <param name="lower">(p) smallest value an imputation may take (for min-max scaled data, 0).</param>
/// <param name="upper">(p) largest value an imputation may take (for min-max scaled data, 1).</param>
/// <param name="xHat">(n, p) current imputations.</param>
/// <param name="mask">(n, p) 1.0 where missing.</param>
/// <returns>(n, p) new imputations.</returns>
/// <remarks>Clamping to the training range keeps one poorly modelled region of the flow from sending an
/// imputation far outside anything observed.</remarks>
/// The token is checked before each chunk of 4096 rows (OperationCanceledException).
let reimputeCancellable (flow: Flow.FlowLayer) (e: Estimate) (lower: Tensor) (upper: Tensor) (ct: CancellationToken) (xHat: Tensor) (mask: Tensor) : Tensor =
    byChunksCancellable ct xHat.shape[0] (fun s len ->
        let x = xHat.narrow(0L, s, len)
        let m = mask.narrow(0L, s, len)
        let z, _ = Flow.toLatent flow x
        let zHat = GaussianEm.conditionalMean e.Mu e.Sigma z m
        let xTilde, _ = Flow.toData flow zHat
        fillMissing lower upper xTilde x m)

/// <see cref="reimputeCancellable"/> without a token.
let reimpute (flow: Flow.FlowLayer) (e: Estimate) (lower: Tensor) (upper: Tensor) (xHat: Tensor) (mask: Tensor) : Tensor =
    reimputeCancellable flow e lower upper CancellationToken.None xHat mask

/// Mean log p_X(x̂) per row over all rows, in chunks and without gradients: the history's latent fit.
let meanLogDensity (flow: Flow.FlowLayer) (e: Estimate) (xHat: Tensor) : float =
    use _ = torch.no_grad()
    let n = xHat.shape[0]
    let mutable total = 0.0
    let mutable s = 0L
    while s < n do
        let len = min chunk (n - s)
        use scope = torch.NewDisposeScope()
        total <- total + scalar ((logDensity flow e (xHat.narrow(0L, s, len))).sum())
        s <- s + len
    total / float n

/// Draws of the missing entries (Multiple imputation): latent missing parts drawn from N(ẑ_m, C) of each
/// row, pushed through the flow; observed entries untouched. Not in the paper; what users of mice and
/// Amelia expect.
let sampleImputation (gen: torch.Generator) (flow: Flow.FlowLayer) (e: Estimate) (lower: Tensor) (upper: Tensor) (xHat: Tensor) (mask: Tensor) : Tensor =
    use _ = torch.no_grad()
    use scope = torch.NewDisposeScope()
    let z, _ = Flow.toLatent flow xHat
    let draw = Gaussian.sampleConditional gen e.Mu e.Sigma z mask
    let xTilde, _ = Flow.toData flow draw
    (fillMissing lower upper xTilde xHat mask).MoveToOuterDisposeScope()
