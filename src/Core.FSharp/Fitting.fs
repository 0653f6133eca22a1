/// EMFlow's fitting policy in one function: the start, then iterations of [training phase, re-imputation phase]
/// (Algorithms 1 and 2 of the paper), each scored on held-out observed entries, and the selection of the best
/// iteration. The caller gives settings, a progress sink and a cancellation token and receives one record that owns
/// every tensor of the fit.
namespace EMFlow

open System
open System.Diagnostics
open System.Threading
open TorchSharp
open EMFlow.Tensors

/// Which observed entries a fit holds out to score its iterations and its start's blend.
type HoldOutDraw =
    /// Uniformly among the observed entries.
    | Uniform = 0
    /// In proportion to each column's missing share (<see cref="Selection.holdOutLikeMissingness"/>).
    | LikeMissingness = 1
    /// As LikeMissingness, and the start's blend weighs each held-out entry's error by its odds of being missing given
    /// the rest of its row (<see cref="Selection.oddsWeights"/>), so that it is chosen for rows like the missing ones.
    | ByPropensity = 2
    /// Whole missingness patterns: each drawn row borrows the pattern of a row with gaps, and the cells of it that the
    /// row observes are held out together (<see cref="Selection.holdOutLikePatternsGrouped"/>).
    | LikeMissingPatterns = 3

/// One iteration of an EMFlow fit.
type IterationRecord =
    { /// Iteration number, from 1.
      Iteration: int
      /// Mean L1 loss (−log p_X(x̂)) over the iteration's last epoch.
      MeanL1: float
      /// Mean L2 loss over the iteration's last epoch.
      MeanL2: float
      /// Mean log p_X(x̂) per row after re-imputation, on the [0, 1] scale.
      LatentLogLikelihood: float
      /// RMSE on the held-out observed entries after re-imputation ([0, 1] scale); NaN without a hold-out.
      ValidationRmse: float
      /// Wall-clock seconds the iteration took.
      Seconds: float
      /// True when the iteration was abandoned because the model diverged (non-finite loss or covariance).
      Diverged: bool }

/// One epoch of an EMFlow fit.
type EpochRecord =
    { /// Iteration number, from 1.
      Iteration: int
      /// Epoch within the iteration, from 1.
      Epoch: int
      /// Mean L1 loss over the epoch's batches.
      MeanL1: float
      /// Mean L2 loss over the epoch's batches.
      MeanL2: float
      /// Mean squared reconstruction error of observed entries per row.
      MeanReconstruction: float }

/// Settings of an EMFlow fit, checked by the caller.
type FitSettings =
    { /// Iterations of [training phase, re-imputation phase], at least 1.
      Iterations: int
      /// Passes over the rows in each training phase, at least 1.
      Epochs: int
      /// Rows per mini-batch, at least 2.
      BatchSize: int
      /// Adam learning rate of both flow steps.
      LearningRate: float
      /// Settings of each training-phase step; its Beta is replaced by the iteration's entry of BetaSchedule.
      Step: Training.StepSettings
      /// β of the robust covariance per iteration (eq. 31); iterations past its end use 0.
      BetaSchedule: float[]
      /// Re-anchor the latent Gaussian to f⁻¹(x̂) at the start of each epoch after the first, and refit it by batch EM
      /// after the training phase.
      RefitLatent: bool
      /// Online EM on moments (eq. 7-8) or on average sufficient statistics (eq. 28).
      Form: OnlineEm.UpdateForm
      /// Rows pooled for each M-step (appendix D); 0 pools only the current batch.
      SuperBatch: int
      /// The flow of each iteration; its Seed is replaced by one derived from Seed and the iteration.
      Flow: Flow.FlowConfig
      /// The start.
      Start: StartSettings
      /// Fraction of the observed entries held out to score each iteration, in [0, 0.5); 0 keeps every iteration.
      ValidationFraction: float
      /// How the held-out entries are drawn.
      HoldOut: HoldOutDraw
      /// Hold-out draws the Auto start with candidates is fitted on and averaged over, at least 1: the first is the
      /// fit's own hold-out, and each further one holds out as many other entries on top of it, so that no member
      /// sees the entries that score the iterations (<see cref="Starts.average"/>). Each costs a fit of the start.
      StartDraws: int
      /// Abandoning an iteration that does not help: after every epoch the held-out entries are re-imputed under the
      /// current flow and latent estimate; an iteration that has not beaten the best model so far after this many
      /// epochs in a row without improving on its own best epoch stops there, keeping that epoch's flow (and latent
      /// estimate). One that beats it trains every epoch. 0 trains every epoch. Needs a hold-out.
      Patience: int
      /// End the fit after an iteration whose hold-out error is not below the best so far: the next one would start
      /// from imputations the hold-out already rejected. Needs a hold-out.
      StopAfterWorseIteration: bool
      /// Clamp re-imputed values to the observed range of their feature.
      ClampToObservedRange: bool
      /// Seed of every random choice.
      Seed: int64 }

/// A finished fit; it owns its tensors (<c>Fitting.dispose</c>).
type FitResult =
    { /// The start, which new rows go through first.
      Start: Start
      /// Every iteration completed without diverging, in order.
      Models: Model[]
      /// The iteration kept, 0 … Models.Length: 0 is the start itself.
      Selected: int
      /// One record per iteration run.
      History: IterationRecord[]
      /// One record per epoch run.
      Epochs: EpochRecord[]
      /// Seconds spent before the first iteration (validation, hold-out, start).
      InitialSeconds: float
      /// Hold-out RMSE of the start (iteration 0), [0, 1] scale; NaN without a hold-out.
      InitialValidationRmse: float }

/// A table too large for memory, for <see cref="Fitting.fitStreamed"/>: read block by block, once per epoch.
type RowStream =
    { /// One pass over every row of the table, in its order: blocks (x (m, p) on the fit's [0, 1] scale with missing
      /// entries 0, mask (m, p) 1.0 where missing, index of the block's first row in the table). Each call starts
      /// again from the first row; the fit disposes each block's tensors once it has used them.
      Pass: unit -> seq<Tensor * Tensor * int64>
      /// The table's index of each row of the sample held in memory, in increasing order.
      SampleRows: int64[] }

/// The fitting policy and the imputation of rows by a fitted model.
[<RequireQualifiedAccess>]
module Fitting =

    /// Bounds (p) of re-imputed values on the [0, 1] scale: the observed range, or none.
    let bounds (s: FitSettings) (p: int64) : Tensor * Tensor =
        if s.ClampToObservedRange then torch.zeros(p, dtype = dtype), torch.ones(p, dtype = dtype)
        else torch.full(p, sc Double.NegativeInfinity, dtype = dtype), torch.full(p, sc Double.PositiveInfinity, dtype = dtype)

    let private report (progress: IProgress<TrainingProgress>) (p: TrainingProgress) =
        if not (isNull progress) then progress.Report p

    /// <see cref="trainingPhaseUntil"/>, the batches of each epoch drawn from <c>stream</c> when given: one call per
    /// epoch, each block's rows (x̂ (m, p) and its training mask (m, p), disposed here once trained on) shuffled within
    /// the block and cut into batches; after each block <c>afterBlock</c> sees the state and ends the phase by
    /// returning true. x̂ and trainMask then serve only the latent estimate of an epoch that has no L1-pass moments.
    let private trainingPhaseOn (s: FitSettings) (it: int) (flow: Flow.Flow) (optL1: Optim.Adam) (optL2: Optim.Adam)
                                (gen: torch.Generator) (ct: CancellationToken) (onBatch: OnlineEm.State -> Training.StepLosses -> unit)
                                (onEpoch: EpochRecord -> unit) (stopAfter: int -> OnlineEm.State -> bool)
                                (state: OnlineEm.State) (xHat: Tensor) (trainMask: Tensor) (stream: (unit -> seq<Tensor * Tensor>) option)
                                (afterBlock: OnlineEm.State -> bool) : OnlineEm.State =
        let beta = if it - 1 < s.BetaSchedule.Length then s.BetaSchedule[it - 1] else 0.0
        let step = { s.Step with Beta = beta }
        let mutable current = state
        let replace next =
            if not (obj.ReferenceEquals(current, state)) then OnlineEm.release current (Some next)
            current <- next
        let mutable epoch = 1
        let mutable stopped = false
        let p = xHat.shape[1]
        // Sums of the L1 pass's latent vectors over the epoch (LatentFromL1Pass): count, Σ z (p), Σ z zᵀ (p, p).
        let mutable seen = 0L
        use sumZ = torch.zeros(p, dtype = dtype)
        use sumZZ = torch.zeros(p, p, dtype = dtype)
        while not stopped && epoch <= s.Epochs do
            if s.RefitLatent && epoch > 1 then
                // Re-anchor to the latent MLE under the current flow; the step counter keeps running so later online
                // updates stay small. From the L1 passes, the moments are those of every row under the flow of its own
                // batch: the epoch's flows rather than the last one, for no pass of its own.
                let estimate =
                    if seen > 0L then
                        use scope = torch.NewDisposeScope()
                        let e = OnlineEm.ofSufficient { S1 = sumZ |> divideBy (float seen); S2 = sumZZ |> divideBy (float seen) }
                        { OnlineEm.Mu = e.Mu.MoveToOuterDisposeScope(); OnlineEm.Sigma = e.Sigma.MoveToOuterDisposeScope() }
                    else Training.initialEstimate flow 0.0 xHat
                let anchored = OnlineEm.init s.Form s.SuperBatch estimate
                replace { anchored with Step = current.Step }
            seen <- 0L
            // In-place operations return a new handle; the scope releases it.
            (use _ = torch.NewDisposeScope()
             sumZ.zero_() |> ignore
             sumZZ.zero_() |> ignore)
            let mutable sum1, sum2, sumR, batches = 0.0, 0.0, 0.0, 0
            let trainOn (xs: Tensor) (ms: Tensor) =
              let n = xs.shape[0]
              let batch = min (int64 s.BatchSize) n
              use order = torch.randperm(n, generator = gen)
              let mutable start = 0L
              // A lone last row would give a degenerate M-step; it is picked up in the next epoch's order.
              while start + 1L < n do
                ct.ThrowIfCancellationRequested()
                let len = min batch (n - start)
                if len >= 2L then
                    use rows = order.narrow(0L, start, len)
                    use xb = xs.index_select(0L, rows)
                    use mb = ms.index_select(0L, rows)
                    let next, losses, latent = Training.trainStepWithLatent step flow optL1 optL2 current xb mb
                    replace next
                    match latent with
                    | Some z ->
                        use z = z
                        if s.RefitLatent then
                            use _ = torch.no_grad()
                            use _ = torch.NewDisposeScope()
                            sumZ.add_(z.sum(dim = 0L), sc 1.0) |> ignore
                            sumZZ.add_(z.T.matmul(z), sc 1.0) |> ignore
                            seen <- seen + z.shape[0]
                    | None -> ()
                    if not (Double.IsFinite losses.L1) || (s.Step.Second <> Training.Skip && not (Double.IsFinite losses.L2)) then
                        invalidOp (sprintf "Non-finite loss (L1 = %g, L2 = %g)." losses.L1 losses.L2)
                    onBatch current losses
                    sum1 <- sum1 + losses.L1
                    sum2 <- sum2 + losses.L2
                    sumR <- sumR + losses.Reconstruction
                    batches <- batches + 1
                start <- start + batch
            match stream with
            | None -> trainOn xHat trainMask
            | Some blocks ->
                // The rest of the file is not read once afterBlock ends the phase.
                use e = (blocks ()).GetEnumerator()
                while not stopped && e.MoveNext() do
                    let xs, ms = e.Current
                    try trainOn xs ms
                    finally
                        xs.Dispose()
                        ms.Dispose()
                    stopped <- afterBlock current
            onEpoch { Iteration = it; Epoch = epoch; MeanL1 = sum1 / float batches; MeanL2 = sum2 / float batches; MeanReconstruction = sumR / float batches }
            stopped <- stopped || stopAfter epoch current
            epoch <- epoch + 1
        current

    /// Algorithm 1 for one iteration: <c>s.Epochs</c> passes of <see cref="Training.trainStep"/> over shuffled batches of
    /// x̂ (n, p) under trainMask (n, p), starting from the online-EM <c>state</c>, with the β of iteration <c>it</c>.
    /// With <c>s.RefitLatent</c> the latent Gaussian is re-anchored to f⁻¹(x̂) at the start of each epoch after the first.
    /// <c>onBatch</c> sees each new state and the batch's losses, <c>onEpoch</c> each epoch's record. The state passed
    /// in stays the caller's; the intermediate ones are released as they are replaced. <c>stopAfter</c> sees each
    /// epoch's number and state once the epoch is done, and ends the phase by returning true. Raises
    /// InvalidOperationException on a non-finite loss and OperationCanceledException when the token is cancelled.
    let trainingPhaseUntil (s: FitSettings) (it: int) (flow: Flow.Flow) (optL1: Optim.Adam) (optL2: Optim.Adam)
                           (gen: torch.Generator) (ct: CancellationToken) (onBatch: OnlineEm.State -> Training.StepLosses -> unit)
                           (onEpoch: EpochRecord -> unit) (stopAfter: int -> OnlineEm.State -> bool)
                           (state: OnlineEm.State) (xHat: Tensor) (trainMask: Tensor) : OnlineEm.State =
        trainingPhaseOn s it flow optL1 optL2 gen ct onBatch onEpoch stopAfter state xHat trainMask None (fun _ -> false)

    /// <see cref="trainingPhaseUntil"/> for every one of <c>s.Epochs</c> epochs.
    let trainingPhase (s: FitSettings) (it: int) (flow: Flow.Flow) (optL1: Optim.Adam) (optL2: Optim.Adam)
                      (gen: torch.Generator) (ct: CancellationToken) (onBatch: OnlineEm.State -> Training.StepLosses -> unit)
                      (onEpoch: EpochRecord -> unit) (state: OnlineEm.State) (xHat: Tensor) (trainMask: Tensor) : OnlineEm.State =
        trainingPhaseUntil s it flow optL1 optL2 gen ct onBatch onEpoch (fun _ _ -> false) state xHat trainMask

    /// The iteration's training phase and re-imputation: a fresh flow at the identity (appendix D), trained on x̂ while
    /// online EM tracks the latent Gaussian; returns the model, the new x̂ and the losses of the last epoch. With
    /// <c>s.Patience</c> &gt; 0 the held-out entries (hidden, scored against x) are re-imputed after every epoch, only
    /// in the rows that hold one, since re-imputation is row by row, until the iteration beats <c>bestSoFar</c> (the
    /// hold-out error of the best model so far); from then on it trains to its last epoch. An iteration that has not
    /// beaten it after <c>s.Patience</c> epochs in a row without improving on its own best epoch is abandoned, and that
    /// epoch's flow and latent estimate are kept. Raises InvalidOperationException when the model diverges.
    let private iterate (s: FitSettings) (it: int) (gen: torch.Generator) (ct: CancellationToken) (progress: TrainingProgress -> unit)
                        (epochs: ResizeArray<EpochRecord>) (bestSoFar: float) (x: Tensor) (hidden: Tensor) (xHat: Tensor) (trainMask: Tensor) (lower: Tensor) (upper: Tensor)
                        (stream: (unit -> seq<Tensor * Tensor>) option) =
        let p = xHat.shape[1]
        let flow = Flow.create { s.Flow with Features = int p; Seed = deriveSeed s.Seed (100 + it) }
        let mutable latent : OnlineEm.Estimate option = None
        try
            let parameters = Flow.parameters flow
            // Two optimisers: L2's α-scaled reconstruction gradients must not distort L1's moment estimates.
            // One flat buffer per element type: each step updates every parameter in a few calls.
            use flat = new Optim.FlatParameters(parameters)
            use optL1 = new Optim.Adam(flat, s.LearningRate)
            use optL2 = new Optim.Adam(flat, s.LearningRate)
            // The online state keeps Σ without the ridge; each use adds it (GaussianEm.withRidge says why).
            let initial = OnlineEm.init s.Form s.SuperBatch (Training.initialEstimate flow 0.0 xHat)
            let mutable l1, l2 = nan, nan
            let onEpoch (e: EpochRecord) =
                epochs.Add e
                l1 <- e.MeanL1
                l2 <- e.MeanL2
                progress { Phase = "training"; Iteration = it; Iterations = s.Iterations; Epoch = e.Epoch; Epochs = s.Epochs; L1 = e.MeanL1; L2 = e.MeanL2; Elapsed = TimeSpan.Zero }
            let checkRows =
                if s.Patience > 0 then
                    let rows = hidden.sum(dim = 1L).gt(sc 0.0).nonzero().squeeze(1L)
                    if rows.shape[0] > 0L then Some rows else None
                else None
            let mutable bestCheck = Double.PositiveInfinity
            let mutable sinceBest = 0
            let mutable ahead = false
            let mutable snapshot : (Collections.Generic.Dictionary<string, Tensor> * OnlineEm.Estimate) option = None
            let dropSnapshot () =
                snapshot |> Option.iter (fun (values, e) ->
                    for v in values.Values do v.Dispose()
                    OnlineEm.disposeEstimate e)
                snapshot <- None
            // Scores the held-out entries of these rows under the current flow and estimate; a score below the
            // iteration's best so far snapshots both, any other counts one more check without improvement.
            let check (rows: Tensor) (state: OnlineEm.State) =
                let score =
                    use scope = torch.NewDisposeScope()
                    let e = GaussianEm.withRidge s.Step.Ridge state.Estimate
                    let re = Training.reimpute flow e lower upper (xHat.index_select(0L, rows)) (trainMask.index_select(0L, rows))
                    Selection.score (x.index_select(0L, rows)) re (hidden.index_select(0L, rows))
                if score < bestCheck then
                    bestCheck <- score
                    sinceBest <- 0
                    dropSnapshot ()
                    // Copies that outlive the fit's dispose scope until dropped; their intermediates do not.
                    use _ = torch.NewDisposeScope()
                    let values = Flow.state flow
                    for v in values.Values do v.DetachFromDisposeScope() |> ignore
                    snapshot <- Some (values, OnlineEm.keep state.Estimate)
                else sinceBest <- sinceBest + 1
                score
            let stopAfter (_: int) (state: OnlineEm.State) =
                match checkRows with
                | None -> false
                // Ahead of the best model so far: a flow that improves keeps training, since on the tables measured
                // stopping one on a noisy plateau cost more accuracy than the epochs it saved.
                | Some _ when ahead -> false
                | Some rows ->
                    let score = check rows state
                    if score < bestSoFar then
                        ahead <- true
                        dropSnapshot ()
                    not ahead && sinceBest >= s.Patience
            // A streamed epoch is as many steps as the table has batches: at 10^7 rows, a hundred times those of an
            // in-memory epoch of 10^5, and a flow trained that long imputed the hold-out worse than one trained for a
            // few thousand steps. So a streamed iteration scores the hold-out after every block (on at most 4096 of the
            // rows that hold a held-out cell), keeps the best block's flow and latent estimate, and ends once
            // s.Patience blocks in a row have not improved on it.
            let blockRows =
                match stream with
                | Some _ ->
                    let rows = hidden.sum(dim = 1L).gt(sc 0.0).nonzero().squeeze(1L)
                    let count = rows.shape[0]
                    if count = 0L then None
                    elif count <= 4096L then Some rows
                    else Some (rows.index_select(0L, torch.tensor(Array.init 4096 (fun k -> int64 k * count / 4096L))))
                | None -> None
            let afterBlock (state: OnlineEm.State) =
                match blockRows with
                | None -> false
                | Some rows ->
                    check rows state |> ignore
                    s.Patience > 0 && sinceBest >= s.Patience
            let epochCheck = if stream.IsSome then (fun _ _ -> false) else stopAfter
            let trained = trainingPhaseOn s it flow optL1 optL2 gen ct (fun _ _ -> ()) onEpoch epochCheck initial xHat trainMask stream afterBlock
            if not (obj.ReferenceEquals(trained, initial)) then OnlineEm.release initial (Some trained)
            let state =
                match snapshot with
                | Some (values, e) when sinceBest > 0 ->
                    // Abandoned, and a later epoch was worse on the hold-out: go back to the best one.
                    Flow.loadState flow values
                    use _ = torch.no_grad()
                    use _ = torch.NewDisposeScope()
                    trained.Estimate.Mu.copy_(e.Mu) |> ignore
                    trained.Estimate.Sigma.copy_(e.Sigma) |> ignore
                    trained
                | _ -> trained
            dropSnapshot ()
            progress { Phase = "re-imputation"; Iteration = it; Iterations = s.Iterations; Epoch = s.Epochs; Epochs = s.Epochs; L1 = l1; L2 = l2; Elapsed = TimeSpan.Zero }
            let kept =
                if s.RefitLatent then
                    // The batch refit carries its ridge already.
                    OnlineEm.release state None
                    OnlineEm.keep (Training.refitLatentCancellable flow s.Step.Ridge ct xHat trainMask)
                else
                    use scope = torch.NewDisposeScope()
                    let e = OnlineEm.keep (GaussianEm.withRidge s.Step.Ridge state.Estimate)
                    OnlineEm.release state None
                    e
            latent <- Some kept
            let reimputed = Training.reimputeCancellable flow kept lower upper ct xHat trainMask
            if not (reimputed.isfinite().all().item<bool>()) then invalidOp "Re-imputation produced non-finite values."
            { Flow = flow; Latent = kept }, reimputed, l1, l2
        with _ ->
            latent |> Option.iter OnlineEm.disposeEstimate
            flow.Dispose()
            reraise ()

    /// The entries a fit holds out of its rows' observed ones to score iterations: (the mask with them added, the
    /// held-out entries), each (n, p); the same seed and mask draw the same entries.
    let private holdOutWith (s: FitSettings) (seed: int64) (mask: Tensor) : Tensor * Tensor =
        match s.HoldOut with
        // ByPropensity draws as LikeMissingness does; it differs only in how the blend scores the draw (blendScoreOf).
        | HoldOutDraw.LikeMissingness
        | HoldOutDraw.ByPropensity -> Selection.holdOutLikeMissingnessGrouped s.Start.Groups seed s.ValidationFraction mask
        | HoldOutDraw.LikeMissingPatterns -> Selection.holdOutLikePatternsGrouped s.Start.Groups seed s.ValidationFraction mask
        | _ -> Selection.holdOutGrouped s.Start.Groups seed s.ValidationFraction mask

    let private holdOutOf (s: FitSettings) (mask: Tensor) : Tensor * Tensor = holdOutWith s (deriveSeed s.Seed 1) mask

    /// The held-out entries as the start's blend scores them (n, p): 1.0 each, or their odds weights with ByPropensity.
    /// Only the blend is weighted; the iterations are scored on the plain held-out entries.
    let private blendScoreOf (s: FitSettings) (x: Tensor) (mask: Tensor) (hidden: Tensor) : Tensor =
        if s.HoldOut = HoldOutDraw.ByPropensity then Selection.oddsWeights x mask hidden else hidden

    /// The start fitted without the held-out entries (trainMask) and its fill of x (n, p): on the fit's own hold-out,
    /// or with StartDraws > 1 averaged over that many draws (<see cref="Starts.average"/>). Draw k ≥ 2 holds out its
    /// entries among those trainMask observes, with a seed of its own, and its candidates take a seed of their own.
    let private startOf (s: FitSettings) (scaler: Scaler.MinMax) (progress: IProgress<TrainingProgress>) (ct: CancellationToken)
                        (x: Tensor) (mask: Tensor) (trainMask: Tensor) (hidden: Tensor) : Start * Tensor =
        let averaged = s.StartDraws > 1 && s.Start.Kind = InitialImputation.Auto && s.Start.Candidates.Length > 0 && scalar (hidden.sum()) > 0.0
        // The candidates' steps repeat once per draw, so each says which draw it belongs to.
        let progressOf (k: int) =
            if not averaged || isNull progress then progress
            else
                { new IProgress<TrainingProgress> with
                    member _.Report p = progress.Report { p with Phase = sprintf "%s, draw %d/%d" p.Phase k s.StartDraws } }
        let first = Starts.fit s.Start scaler (progressOf 1) ct x trainMask (blendScoreOf s x mask hidden) mask
        if not averaged then first
        else
            let members = ResizeArray [ first ]
            try
                for k in 2 .. s.StartDraws do
                    use scope = torch.NewDisposeScope()
                    let more, drawn = holdOutWith s (deriveSeed s.Seed (60 + k)) trainMask
                    let start, filled = Starts.fit { s.Start with Seed = deriveSeed s.Start.Seed (60 + k) } scaler (progressOf k) ct x more (blendScoreOf s x mask drawn) mask
                    members.Add((start, filled.MoveToOuterDisposeScope()))
            with _ ->
                for start, filled in members do
                    Starts.dispose start
                    filled.Dispose()
                reraise ()
            Starts.average x trainMask (members.ToArray())

    /// Fits EMFlow to scaled rows x (n, p) under mask (n, p), 1.0 = missing.
    /// <param name="settings">The settings; checked by the caller.</param>
    /// <param name="scaler">The scaler of x, for the image starts, which work on the original pixel scale.</param>
    /// <param name="progress">Receives a record per epoch and phase; may be null.</param>
    /// <param name="ct">Checked between batches, and between the start's stages.</param>
    /// <param name="x">(n, p) float64 on [0, 1], missing entries 0.</param>
    /// <param name="mask">(n, p) 1.0 where missing.</param>
    /// <returns>The start, every completed iteration's model, the one kept and the history. An iteration that diverges
    /// ends the fit and keeps what came before; the iteration with the lowest hold-out error is kept (0: the start),
    /// or, without a hold-out, the last one (the paper).</returns>
    /// <exception cref="OperationCanceledException">When the token is cancelled; every tensor made so far is freed.</exception>
    let rec fit (settings: FitSettings) (scaler: Scaler.MinMax) (progress: IProgress<TrainingProgress>) (ct: CancellationToken)
            (x: Tensor) (mask: Tensor) : FitResult =
        fitOn settings scaler progress ct x mask None

    /// A fit whose training steps see every row of a table read block by block (<see cref="RowStream"/>), while
    /// everything else (the hold-out, the start, the latent refits, the choice of iteration) works on a sample of its
    /// rows held in memory. Each epoch reads the table once: every block is started as new rows are (the start's
    /// <c>applyCancellable</c>), re-imputed by each earlier iteration's model in turn, exactly as those rows would be
    /// by <see cref="transformCancellable"/>, and its rows are shuffled within the block and trained on; the sample's
    /// held-out cells are hidden in the blocks too, so the choice of iteration never sees them. After every block the
    /// hold-out is scored: an iteration keeps its best block's flow and ends after <c>Patience</c> blocks without a
    /// better one, since an epoch of a large table is many thousands of steps. Memory is bounded by
    /// the sample, the model and one block, whatever the table's row count. Same settings, same blocks, same sample:
    /// the same result.
    /// <param name="x">(S, p) the sample's rows, scaled as the blocks, missing entries 0.</param>
    /// <param name="mask">(S, p) 1.0 where missing in the sample.</param>
    /// <param name="rows">How to read the table, and where the sample's rows are in it.</param>
    and fitStreamed (settings: FitSettings) (scaler: Scaler.MinMax) (progress: IProgress<TrainingProgress>) (ct: CancellationToken)
                    (x: Tensor) (mask: Tensor) (rows: RowStream) : FitResult =
        if int64 rows.SampleRows.Length <> x.shape[0] then
            raise (ArgumentException(sprintf "Expected the table's row of each of the %d sample rows; got %d." x.shape[0] rows.SampleRows.Length, "rows"))
        fitOn settings scaler progress ct x mask (Some rows)

    and private fitOn (settings: FitSettings) (scaler: Scaler.MinMax) (progress: IProgress<TrainingProgress>) (ct: CancellationToken)
                      (x: Tensor) (mask: Tensor) (rows: RowStream option) : FitResult =
        let s = settings
        let clock = Stopwatch.StartNew()
        let send (p: TrainingProgress) = report progress { p with Elapsed = clock.Elapsed }
        use gen = generator (deriveSeed s.Seed 0)
        send { Phase = "initial imputation"; Iteration = 0; Iterations = s.Iterations; Epoch = 0; Epochs = s.Epochs; L1 = nan; L2 = nan; Elapsed = TimeSpan.Zero }
        use scope = torch.NewDisposeScope()
        let trainMask, hidden = holdOutOf s mask
        // A start candidate's own steps are shown inside the start's phase.
        let startProgress =
            { new IProgress<TrainingProgress> with
                member _.Report p =
                    send { Phase = sprintf "initial imputation (%s %d/%d, %d/%d)" p.Phase p.Iteration p.Iterations p.Epoch p.Epochs
                           Iteration = 0; Iterations = s.Iterations; Epoch = 0; Epochs = s.Epochs; L1 = nan; L2 = nan; Elapsed = TimeSpan.Zero } }
        let mutable start, xHat = startOf s scaler startProgress ct x mask trainMask hidden
        let models = ResizeArray<Model>()
        // One epoch's blocks for the next iteration: each block started and re-imputed as new rows are, with the
        // sample's held-out cells hidden. The blocks are made outside the fit's dispose scope and handed over.
        let streamFor (r: RowStream) (start: Start) (earlier: Model[]) (hidden: Tensor) (lower: Tensor) (upper: Tensor) () : seq<Tensor * Tensor> =
            let sampleRows = r.SampleRows
            seq {
                for xb, mb, first in r.Pass () do
                    let prepared =
                        try
                            use scope = torch.NewDisposeScope()
                            let m = xb.shape[0]
                            let lo = Array.BinarySearch(sampleRows, first) |> fun i -> if i < 0 then ~~~i else i
                            let mutable hi = lo
                            while hi < sampleRows.Length && sampleRows[hi] < first + m do hi <- hi + 1
                            let trainMask =
                                if hi = lo then mb.clone()
                                else
                                    let local = torch.tensor(Array.init (hi - lo) (fun k -> sampleRows[lo + k] - first))
                                    let positions = torch.tensor(Array.init (hi - lo) (fun k -> int64 (lo + k)))
                                    (plus mb (torch.zeros_like(mb).index_copy(0L, local, hidden.index_select(0L, positions)))).clamp_max(sc 1.0)
                            let xs = xb * oneMinus trainMask
                            let mutable filled = Starts.applyCancellable s.Start scaler start ct xs trainMask
                            for model in earlier do
                                filled <- Model.reimputeCancellable model lower upper ct filled trainMask
                            filled.DetachFromDisposeScope(), trainMask.DetachFromDisposeScope()
                        finally
                            xb.Dispose()
                            mb.Dispose()
                    yield prepared
            }
        try
            let lower, upper = bounds s x.shape[1]
            let initialRmse = Selection.score x xHat hidden
            let initialSeconds = clock.Elapsed.TotalSeconds
            let history = ResizeArray<IterationRecord>()
            let epochs = ResizeArray<EpochRecord>()
            let mutable best, bestScore = 0, initialRmse
            let mutable stop = false
            let mutable it = 1
            while not stop && it <= s.Iterations do
                let started = clock.Elapsed
                let stream = rows |> Option.map (fun r -> streamFor r start (models.ToArray()) hidden lower upper)
                let outcome =
                    try Ok (iterate s it gen ct send epochs bestScore x hidden xHat trainMask lower upper stream)
                    with :? InvalidOperationException as e -> Error e
                let seconds () = (clock.Elapsed - started).TotalSeconds
                match outcome with
                | Error _ ->
                    // Divergence (a non-finite loss, or a covariance that stays indefinite): keep what was fitted so far.
                    let last = if epochs.Count > 0 && epochs[epochs.Count - 1].Iteration = it then Some epochs[epochs.Count - 1] else None
                    let l1, l2 = match last with Some e -> e.MeanL1, e.MeanL2 | None -> nan, nan
                    history.Add { Iteration = it; MeanL1 = l1; MeanL2 = l2; LatentLogLikelihood = nan; ValidationRmse = nan; Seconds = seconds (); Diverged = true }
                    stop <- true
                | Ok (model, reimputed, l1, l2) ->
                    xHat <- reimputed
                    models.Add model
                    let score = Selection.score x xHat hidden
                    let ll = Model.meanLogDensity model xHat
                    history.Add { Iteration = it; MeanL1 = l1; MeanL2 = l2; LatentLogLikelihood = ll; ValidationRmse = score; Seconds = seconds (); Diverged = false }
                    // Without a hold-out every completed iteration is kept, as in the paper.
                    if Double.IsNaN score || score < bestScore then
                        if not (Double.IsNaN score) then bestScore <- score
                        best <- it
                    elif s.StopAfterWorseIteration then stop <- true
                it <- it + 1
            if s.ValidationFraction > 0.0 && not (Starts.likeImages s.Start) then
                // New rows start from the Gaussian-EM imputation; now that selection is done, fit it on every
                // observed entry, the held-out ones included.
                let full = OnlineEm.keep (GaussianEm.fitBatchCancellable s.Start.Em ct x mask).Estimate
                OnlineEm.disposeEstimate start.Gaussian
                start <- { start with Gaussian = full }
            { Start = start
              Models = models.ToArray()
              Selected = best
              History = history.ToArray()
              Epochs = epochs.ToArray()
              InitialSeconds = initialSeconds
              InitialValidationRmse = initialRmse }
        with _ ->
            Starts.dispose start
            for m in models do Model.dispose m
            reraise ()

    /// Imputes scaled rows x (m, p) under mask (m, p) with the model as it stood after <c>iterations</c> iterations:
    /// the start, then each of those iterations' re-imputation in turn, exactly as the training rows went through them.
    /// Returns (m, p) on the [0, 1] scale. The token is checked between chunks of rows (OperationCanceledException).
    let transformCancellable (settings: FitSettings) (scaler: Scaler.MinMax) (fit: FitResult) (iterations: int) (ct: CancellationToken) (x: Tensor) (mask: Tensor) : Tensor =
        if iterations < 0 || iterations > fit.Models.Length then
            raise (ArgumentOutOfRangeException("iterations", iterations, sprintf "must be in 0 … %d; got %d" fit.Models.Length iterations))
        let lower, upper = bounds settings x.shape[1]
        let mutable xHat = Starts.applyCancellable settings.Start scaler fit.Start ct x mask
        for k in 0 .. iterations - 1 do
            xHat <- Model.reimputeCancellable fit.Models[k] lower upper ct xHat mask
        xHat

    /// <see cref="transformCancellable"/> without a token.
    let transform (settings: FitSettings) (scaler: Scaler.MinMax) (fit: FitResult) (iterations: int) (x: Tensor) (mask: Tensor) : Tensor =
        transformCancellable settings scaler fit iterations CancellationToken.None x mask

    /// The model a draw or a density uses after <c>iterations</c> iterations: that iteration's, or for 0 the identity
    /// flow with the start's Gaussian. The identity flow is new and the caller disposes it; a fitted one is not.
    let modelAt (fit: FitResult) (iterations: int) : Model * bool =
        if iterations > 0 then fit.Models[iterations - 1], false
        else { Flow = Flow.identity (int fit.Start.Gaussian.Mu.shape[0]); Latent = fit.Start.Gaussian }, true

    /// Proper multiple imputation from the kept model (Rubin 1987; the EM-with-bootstrap of Honaker, King and
    /// Blackwell's Amelia II, in the latent space): each of <c>count</c> draws refits the kept model's latent Gaussian
    /// by batch EM on a bootstrap resample of the fitted rows' latent vectors, then draws the missing latent parts of
    /// x from that Gaussian's conditionals, <c>spread</c> times as far from their means as the Gaussian says (1: as it
    /// says; <see cref="chooseSpread"/>), and pushes them through the kept flow (<see cref="Training.sampleImputation"/>).
    /// At iteration 0 the refit is the start's Gaussian-EM fit. The flow is held fixed: refitting it per draw would
    /// cost a fit per draw.
    /// <param name="fittedX">(n, p) the rows the model was fitted on, scaled as x, missing entries 0; n at least 2.</param>
    /// <param name="fittedMask">(n, p) 1.0 where missing in fittedX.</param>
    /// <param name="x">(m, p) rows to impute on the [0, 1] scale, missing entries 0.</param>
    /// <param name="mask">(m, p) 1.0 where missing in x.</param>
    /// <returns><c>count</c> tensors (m, p): observed entries of x, drawn missing ones.</returns>
    /// The token is checked before each draw and each EM sweep (OperationCanceledException).
    let sampleProper (settings: FitSettings) (scaler: Scaler.MinMax) (fit: FitResult) (seed: int64) (count: int) (spread: float) (ct: CancellationToken)
                     (fittedX: Tensor) (fittedMask: Tensor) (x: Tensor) (mask: Tensor) : Tensor[] =
        let selected = fit.Selected
        let lower, upper = bounds settings x.shape[1]
        // The rows enter the kept model as its iteration received them: imputed by every iteration before it.
        let xHat = transformCancellable settings scaler fit (max (selected - 1) 0) ct x mask
        let model, owned = modelAt fit selected
        try
            // The flow is fixed, so the fitted rows' latent vectors are computed once. Batch EM reads only observed
            // entries, so at iteration 0 the fitted rows need no start of their own.
            let z =
                if selected = 0 then fittedX
                else
                    let fittedHat = transformCancellable settings scaler fit (selected - 1) ct fittedX fittedMask
                    use _ = torch.no_grad()
                    let n = fittedHat.shape[0]
                    torch.cat([| let mutable s = 0L
                                 while s < n do
                                     let len = min 4096L (n - s)
                                     yield fst (Flow.toLatent model.Flow (fittedHat.narrow(0L, s, len)))
                                     s <- s + len |], 0L)
            // EM on each resample starts from the kept Gaussian, near the resample's own maximum; the settings are
            // those of the fit's own refits (Training.refitLatent) and of the start.
            let em = if selected > 0 then { GaussianEm.defaults with MaxIterations = 200; Ridge = settings.Step.Ridge } else settings.Start.Em
            use gen = generator seed
            [| for _ in 1 .. count do
                   ct.ThrowIfCancellationRequested()
                   use scope = torch.NewDisposeScope()
                   let rows = GaussianEm.bootstrapRows gen fittedMask
                   let zb, mb = z.index_select(0L, rows), fittedMask.index_select(0L, rows)
                   let latent =
                       if selected = 0 && Starts.likeImages settings.Start then GaussianEm.initialEstimate zb mb
                       else (GaussianEm.fitBatchFrom em ct model.Latent zb mb).Estimate
                   let widened = Model.widen spread { model with Latent = latent }
                   yield (Model.sample gen widened lower upper xHat mask).MoveToOuterDisposeScope() |]
        finally
            if owned then model.Flow.Dispose()

    /// For <see cref="chooseSpread"/>: the share of the held-out entries (1.0 in hidden) whose true value in x lies
    /// between the smallest and the largest of <c>draws</c> draws of the model, its latent conditional spread scaled
    /// by <c>spread</c>. The generator is seeded afresh for every call, so every spread is scored on the same noise.
    let private heldOutCoverage (model: Model) (seed: int64) (draws: int) (spread: float) (lower: Tensor) (upper: Tensor)
                                (ct: CancellationToken) (x: Tensor) (xHat: Tensor) (trainMask: Tensor) (hidden: Tensor) : float =
        use scope = torch.NewDisposeScope()
        use gen = generator seed
        let widened = Model.widen spread model
        let n, p = xHat.shape[0], xHat.shape[1]
        // Each draw holds (rows, p, p) conditional covariances at once; chunks of rows keep that near 128 MB.
        let rows = max 1L (min n ((1L <<< 24) / (p * p)))
        let mutable covered, cells = 0.0, 0.0
        let mutable s = 0L
        while s < n do
            ct.ThrowIfCancellationRequested()
            use chunkScope = torch.NewDisposeScope()
            let len = min rows (n - s)
            let xr, mr, hr, truth = xHat.narrow(0L, s, len), trainMask.narrow(0L, s, len), hidden.narrow(0L, s, len), x.narrow(0L, s, len)
            let all = torch.stack([| for _ in 1 .. draws -> Model.sample gen widened lower upper xr mr |], 0L)
            let lo, hi = all.amin([| 0L |]), all.amax([| 0L |])
            let inside = (truth.ge(lo).logical_and(truth.le(hi))).to_type(dtype) * hr
            covered <- covered + scalar (inside.sum())
            cells <- cells + scalar (hr.sum())
            s <- s + len
        widened.Latent.Sigma.Dispose()
        if cells = 0.0 then nan else covered / cells

    /// The spread of the kept model's draws calibrated on the entries the fit held out of x (n, p): the factor on the
    /// latent conditional standard deviations for which the smallest and the largest of <c>draws</c> draws enclose the
    /// held-out true values as often as they would enclose a new draw of a calibrated model, (K − 1) / (K + 1) for K
    /// draws (19/21 for 20). No other entries are looked at. The fit's hold-out is drawn again from x's mask with the
    /// fit's seed, the start is fitted again without the held-out entries, and the iterations before the kept one
    /// re-impute its rows as they did in the fit, so the model scored never saw those entries (at iteration 0, the
    /// start's Gaussian as fitted before the held-out entries joined it). The factor is searched by bisection on a
    /// log scale in [1/4, 8]; 1 when nothing was held out.
    /// <param name="x">(n, p) the rows the fit was given, on its [0, 1] scale, missing entries 0.</param>
    /// <param name="mask">(n, p) their mask, 1.0 where missing.</param>
    /// <returns>The factor; the coverage it reaches on the held-out entries.</returns>
    /// The token is checked between chunks of rows (OperationCanceledException).
    let chooseSpread (settings: FitSettings) (scaler: Scaler.MinMax) (fit: FitResult) (draws: int) (ct: CancellationToken) (x: Tensor) (mask: Tensor) : float * float =
        use scope = torch.NewDisposeScope()
        let trainMask, hidden = holdOutOf settings mask
        let rows = hidden.sum(dim = 1L).gt(sc 0.0).nonzero().squeeze(1L)
        if rows.shape[0] = 0L then 1.0, nan
        else
            let start, startHat = startOf settings scaler null ct x mask trainMask hidden
            try
                let lower, upper = bounds settings x.shape[1]
                let mutable xHat = startHat
                for k in 0 .. fit.Selected - 2 do
                    xHat <- Model.reimputeCancellable fit.Models[k] lower upper ct xHat trainMask
                let model, owned = if fit.Selected > 0 then fit.Models[fit.Selected - 1], false else { Flow = Flow.identity (int x.shape[1]); Latent = start.Gaussian }, true
                try
                    let pick (t: Tensor) = t.index_select(0L, rows)
                    let xs, hs, ms, hd = pick x, pick xHat, pick trainMask, pick hidden
                    let target = float (draws - 1) / float (draws + 1)
                    let coverage spread = heldOutCoverage model (deriveSeed settings.Seed 50) draws spread lower upper ct xs hs ms hd
                    let mutable lo, hi = log 0.25, log 8.0
                    let atLo = coverage (exp lo)
                    let mutable atHi = coverage (exp hi)
                    if atLo >= target then exp lo, atLo
                    elif atHi <= target then exp hi, atHi
                    else
                        // Eight halvings pin the factor within 1.4%, finer than the hold-out's sampling error.
                        for _ in 1 .. 8 do
                            let mid = 0.5 * (lo + hi)
                            let atMid = coverage (exp mid)
                            if atMid < target then lo <- mid
                            else
                                hi <- mid
                                atHi <- atMid
                        exp hi, atHi
                finally
                    if owned then model.Flow.Dispose()
            finally
                Starts.dispose start

    /// Releases every tensor of the fit.
    let dispose (fit: FitResult) =
        Starts.dispose fit.Start
        for m in fit.Models do Model.dispose m
