/// The start of an EMFlow fit (section 3.4 of the paper): how missing values are filled before the first
/// iteration, for the training rows and, the same way, for rows imputed later.
namespace EMFlow

open System
open System.Threading
open TorchSharp
open EMFlow.Tensors

/// How EMFlow fills missing values before its first iteration (section 3.4 of the paper).
type InitialImputation =
    /// The Gaussian-EM conditional mean: EMFlow starts where Gaussian EM ends, so it can only move away where that helps.
    | GaussianEm = 0
    /// A random draw from the observed values of the same feature (the paper's choice for tables).
    | RandomDraw = 1
    /// Per-feature mean of the observed values.
    | Mean = 2
    /// Per-feature median of the observed values.
    | Median = 3
    /// Zero on the min-max scale, i.e. each feature's observed minimum. With an image shape (the paper's appendix G.3
    /// comparison) no Gaussian-EM fit is run and new rows start at zero too.
    | Zero = 4
    /// Images: each missing pixel takes the value of the nearest observed pixel of the same image (Euclidean distance
    /// on the pixel grid, ties to the smallest row-major index), the paper's start for MNIST and CIFAR-10 (section
    /// 4.2). Needs an image shape. No Gaussian-EM fit is run (at p = 784 it costs minutes per sweep), and new images
    /// start the same way.
    | NearestPixel = 5
    /// k-nearest-neighbour imputation (nan-Euclidean distance over commonly observed features): donors are the
    /// training rows (a seeded sample of at most a set number), for the training rows and for new rows alike, so the
    /// fitted model keeps those rows.
    | Knn = 6
    /// Per feature, the blend (1 − w)·Gaussian EM + w·kNN whose share w (0, 0.1, …, 1) imputes that feature's
    /// held-out entries best; features without held-out entries take the share best over all of them. Gaussian EM
    /// suits features close to linear in the others, kNN tables of clusters or near-duplicate rows, and a blend of
    /// two different errors is often better than either. Without a hold-out every share is 0: Gaussian EM.
    /// With other candidates (<see cref="StartSettings.Candidates"/>, e.g. EMFlow.Forest's tree ensembles) the blend
    /// is over all of them: per feature, the weights in multiples of 0.1 summing to 1 that are best on its held-out
    /// entries.
    | Auto = 7

/// A start candidate once fitted: it fills new rows as it filled the training rows.
type IFittedStartCandidate =
    inherit IDisposable
    /// Fills scaled rows x (m, p), missing where mask (m, p) is 1.0 (value 0 there); returns (m, p) on the [0, 1]
    /// scale with the observed entries of x unchanged. Checks the token between its own stages.
    abstract Fill: x: Tensor * mask: Tensor * ct: CancellationToken -> Tensor
    /// The fitted state as bytes, for the model file; <see cref="IStartCandidate.Load"/> reads them back.
    abstract Save: unit -> byte[]

/// An imputer from another assembly that joins the Auto start's per-feature blend beside Gaussian EM and kNN, such as
/// EMFlow.Forest's tree ensembles (<c>ForestStart</c>). It never sees the held-out entries, which choose the blend.
/// <remarks>Model files name the implementing type and create it through its parameterless constructor to call
/// <see cref="Load"/>, so an implementation needs one.</remarks>
type IStartCandidate =
    /// Short name in reports and shares, e.g. "forest".
    abstract Name: string
    /// Fits on scaled training rows x (n, p), missing where mask (n, p) is 1.0 (value 0 there), and returns the fitted
    /// candidate with the rows filled (n, p), observed entries unchanged. Same seed, same result.
    /// Its steps go to progress (may be null), whose Phase, Iteration/Iterations and Epoch/Epochs it may use as it
    /// likes; EMFlow shows them inside its "initial imputation" phase.
    /// groups (p, or empty) puts the one-hot indicator columns of each categorical column in one group (see
    /// <see cref="StartSettings.Groups"/>): a candidate that can, predicts such a group as one categorical column.
    abstract Fit: x: Tensor * mask: Tensor * groups: int[] * seed: int64 * progress: IProgress<TrainingProgress> * ct: CancellationToken -> IFittedStartCandidate * Tensor
    /// The fitted candidate that <see cref="IFittedStartCandidate.Save"/> wrote.
    abstract Load: bytes: byte[] -> IFittedStartCandidate

/// Settings of the start.
type StartSettings =
    { /// Which start.
      Kind: InitialImputation
      /// The Gaussian-EM fit behind the GaussianEm and Auto starts (and the iteration-0 Gaussian of the others).
      Em: GaussianEm.Settings
      /// Donors averaged by the kNN start, at least 1.
      KnnNeighbours: int
      /// Most training rows kept as kNN donors (a seeded sample of larger tables), at least 1.
      KnnMaxDonors: int
      /// (width, height) when each row is one image in row-major order.
      Image: (int * int) option
      /// Seed of the donor sample and of the random-draw start.
      Seed: int64
      /// Imputers from other assemblies that join the Auto blend (empty: Gaussian EM and kNN only).
      Candidates: IStartCandidate[]
      /// Per column (p), its group, 0 … G − 1, or empty: the one-hot indicator columns of one categorical column share
      /// a group (<c>MixedImputer</c> sets them). The Auto blend then weighs a group's columns alike, the hold-out
      /// hides a group's entries of a row together, and candidates are told.
      Groups: int[] }

/// What a fitted start keeps so that new rows start as the training rows did.
type Start =
    { /// The start that was run.
      Kind: InitialImputation
      /// The Gaussian-EM fit ((p), (p, p)); for images, the per-pixel mean and variance. Iteration 0's latent Gaussian.
      Gaussian: OnlineEm.Estimate
      /// (p) share of the kNN imputation in each feature's start (1 for Knn, chosen for Auto, absent otherwise).
      KnnShare: Tensor option
      /// The kNN donor rows, when some feature's start uses kNN.
      Donors: Knn.Donors option
      /// The Auto blend's other candidates, fitted (empty unless <see cref="StartSettings.Candidates"/> was given).
      Extra: (IStartCandidate * IFittedStartCandidate)[]
      /// (p, 2 + Extra.Length) weights of Gaussian EM, kNN and each extra candidate per feature, rows summing to 1;
      /// present with extra candidates (KnnShare is then its second column).
      Weights: Tensor option
      /// Hold-out draws the start was fitted on and averaged over (<see cref="Starts.average"/>), at least 1: Extra
      /// holds that many fits of the candidates one after another, each fitted without its own draw's entries.
      Draws: int }

/// Fitting and applying the start.
[<RequireQualifiedAccess>]
module Starts =

    /// Shares tried by the Auto start: coarse enough that a few hundred held-out cells per feature can rank them.
    let shareGrid = [| 0.0; 0.1; 0.2; 0.3; 0.4; 0.5; 0.6; 0.7; 0.8; 0.9; 1.0 |]

    /// Steps of the weight grid when other candidates join the blend: weights in multiples of 0.1, as the shares.
    let shareSteps = 10

    /// Pseudo-entries at the table-wide error that each feature's own held-out entries must outweigh when other
    /// candidates join the blend (<see cref="Selection.blendWeights"/>): a feature with 100 held-out entries weighs
    /// its own evidence and the table's equally. Chosen by that reasoning, not tuned on any benchmark's folds.
    let sharePrior = 100.0

    /// Images (nearest-pixel start, or zero start with an image shape): no Gaussian-EM fit, and new rows start
    /// exactly as the training rows did.
    let likeImages (s: StartSettings) =
        s.Kind = InitialImputation.NearestPixel || (s.Kind = InitialImputation.Zero && s.Image.IsSome)

    let private image (s: StartSettings) =
        s.Image |> Option.defaultWith (fun () -> invalidArg "settings" (sprintf "the %A start needs an image shape" s.Kind))

    /// Nearest observed pixel of scaled rows (n, p): pixels are copied on the original scale, since each column has
    /// its own min-max range, then scaled back.
    let nearestPixel (scaler: Scaler.MinMax) (width: int, height: int) (x: Tensor) (mask: Tensor) : Tensor =
        let original = Scaler.inverseTransform scaler x
        Scaler.transform scaler (Fill.nearestNeighbourImpute (width, height) original mask)

    /// Rows of the training table that serve as kNN donors: all of them, or a seeded sample of KnnMaxDonors, so that
    /// the start costs O(n · cap) rather than O(n²).
    let private donorRows (s: StartSettings) (n: int64) =
        if n <= int64 s.KnnMaxDonors then range n
        else
            use gen = generator (deriveSeed s.Seed 3)
            use order = torch.randperm(n, generator = gen)
            let struct (sorted, _) = order.narrow(0L, 0L, int64 s.KnnMaxDonors).sort()
            sorted

    let private fitInto (extra: ResizeArray<IStartCandidate * IFittedStartCandidate>) (s: StartSettings) (scaler: Scaler.MinMax) (progress: IProgress<TrainingProgress>) (ct: CancellationToken)
                        (x: Tensor) (trainMask: Tensor) (hidden: Tensor) (mask: Tensor) : Start * Tensor =
        let n, p = x.shape[0], x.shape[1]
        use scope = torch.NewDisposeScope()
        ct.ThrowIfCancellationRequested()
        // Images skip the Gaussian-EM fit (minutes per sweep at p = 784); the per-pixel moments stand in for the
        // unused iteration-0 Gaussian.
        let gaussian =
            if likeImages s then GaussianEm.initialEstimate x trainMask
            else (GaussianEm.fitBatchCancellable s.Em ct x trainMask).Estimate
        ct.ThrowIfCancellationRequested()
        let noHoldOut = scalar (hidden.sum()) = 0.0
        let mutable weights : Tensor option = None
        let knnStart () =
            let rows = donorRows s n
            let pool = Knn.donors (x.index_select(0L, rows)) (trainMask.index_select(0L, rows))
            let filled = try Knn.imputeCancellable s.KnnNeighbours pool ct x trainMask finally Knn.dispose pool
            let keepDonors () = Knn.donors (x.index_select(0L, rows)) (mask.index_select(0L, rows))
            filled, keepDonors
        let xHat, share, donors =
            match s.Kind with
            | InitialImputation.Auto when noHoldOut ->
                // Nothing is held out to compare the two on, so the blend is all Gaussian EM; kNN is not run.
                GaussianEm.impute gaussian x trainMask, Some (torch.zeros(p, dtype = dtype)), None
            | InitialImputation.Knn ->
                let filled, keepDonors = knnStart ()
                filled, Some (torch.ones(p, dtype = dtype)), Some (keepDonors ())
            | InitialImputation.Auto when s.Candidates.Length > 0 ->
                let knn, keepDonors = knnStart ()
                let gem = GaussianEm.impute gaussian x trainMask
                let others =
                    s.Candidates |> Array.mapi (fun c candidate ->
                        ct.ThrowIfCancellationRequested()
                        let fitted, filled = candidate.Fit(x, trainMask, s.Groups, deriveSeed s.Seed (10 + c), progress, ct)
                        extra.Add((candidate, fitted))
                        filled)
                let all = Array.append [| gem; knn |] others
                let w = Selection.blendWeightsGrouped s.Groups (Selection.simplexGrid all.Length shareSteps) sharePrior x all hidden
                weights <- Some w
                let share = w.select(1L, 1L).contiguous()
                let donors = if share.gt(sc 0.0).any().item<bool>() then Some (keepDonors ()) else None
                Selection.blendAll w all, Some share, donors
            | InitialImputation.Auto ->
                let knn, keepDonors = knnStart ()
                let gem = GaussianEm.impute gaussian x trainMask
                let share = Selection.blendSharesGrouped s.Groups shareGrid x gem knn hidden
                let donors = if share.gt(sc 0.0).any().item<bool>() then Some (keepDonors ()) else None
                Selection.blend share gem knn, Some share, donors
            | InitialImputation.NearestPixel -> nearestPixel scaler (image s) x trainMask, None, None
            | InitialImputation.GaussianEm -> GaussianEm.impute gaussian x trainMask, None, None
            | InitialImputation.RandomDraw -> Fill.randomDrawImpute (deriveSeed s.Seed 2) x trainMask, None, None
            | InitialImputation.Mean -> Fill.meanImpute x trainMask, None, None
            | InitialImputation.Median -> Fill.medianImpute x trainMask, None, None
            | InitialImputation.Zero -> Fill.zeroImpute x trainMask, None, None
            | k -> invalidArg "settings" (sprintf "unknown start %A" k)
        let start =
            { Kind = s.Kind
              Gaussian = OnlineEm.keep gaussian
              KnnShare = share |> Option.map (fun t -> t.DetachFromDisposeScope())
              Donors = donors |> Option.map Knn.keep
              Extra = extra.ToArray()
              Weights = weights |> Option.map (fun t -> t.DetachFromDisposeScope())
              Draws = 1 }
        start, xHat.MoveToOuterDisposeScope()

    /// Fits the start on scaled rows x (n, p) and fills them.
    /// <param name="scaler">The scaler of x, for image starts, which copy pixels on the original scale.</param>
    /// <param name="progress">Receives the start candidates' steps; may be null.</param>
    /// <param name="x">(n, p) training rows on [0, 1], missing entries 0.</param>
    /// <param name="trainMask">(n, p) 1.0 where missing or held out: what the start may not look at.</param>
    /// <param name="hidden">(n, p) 1.0 at the held-out entries, which choose the Auto shares, or their weights
    /// (<see cref="Selection.oddsWeights"/>); 0 elsewhere.</param>
    /// <param name="mask">(n, p) 1.0 where missing: the donors kept for new rows observe the held-out entries too.</param>
    /// <returns>The start, owning its tensors (<see cref="dispose"/>), and the filled rows x̂ (n, p).</returns>
    /// <remarks>The work happens in a dispose scope of its own: its temporaries are several (n, p) tensors, which
    /// for 60000 images are gigabytes, and are freed here rather than when the fit ends.</remarks>
    let fit (s: StartSettings) (scaler: Scaler.MinMax) (progress: IProgress<TrainingProgress>) (ct: CancellationToken) (x: Tensor) (trainMask: Tensor) (hidden: Tensor) (mask: Tensor) : Start * Tensor =
        let extra = ResizeArray<IStartCandidate * IFittedStartCandidate>()
        try fitInto extra s scaler progress ct x trainMask hidden mask
        with _ ->
            for _, fitted in extra do fitted.Dispose()
            reraise ()

    /// One start from several fitted on other hold-out draws of the same rows x (n, p): per feature, Gaussian EM's and
    /// kNN's weights are the members' mean, and each member's other candidates join the blend with their weights
    /// divided by the member count, so new rows get the mean of the members' blends (Gaussian EM and kNN being the same
    /// fit in each member once the fit ends: the Gaussian is refitted on every entry and the donors keep every row).
    /// A blend chosen on one draw of a few hundred cells per feature moves with the draw; the mean of blends whose
    /// candidates each missed other cells moves less and errs less (bagging).
    /// <param name="x">(n, p) the rows, missing entries 0.</param>
    /// <param name="trainMask">(n, p) 1.0 where missing or held out by the first member's draw: the entries the
    /// returned fill x̂ imputes. Every member must have been fitted without them.</param>
    /// <param name="members">The fitted members, each with its fill of the rows, (n, p); the first one's Gaussian is
    /// kept. Each needs Weights (a start with candidates). The function takes ownership of them.</param>
    /// <returns>The averaged start and x̂ (n, p): observed entries of x (under trainMask) unchanged, the others the
    /// members' mean.</returns>
    let average (x: Tensor) (trainMask: Tensor) (members: (Start * Tensor)[]) : Start * Tensor =
        if members.Length = 0 then invalidArg "members" "needs at least one member"
        if members |> Array.exists (fun (m, _) -> m.Weights.IsNone) then invalidArg "members" "every member needs blend weights (a start with candidates)"
        let first = fst members[0]
        try
            use scope = torch.NewDisposeScope()
            let k = float members.Length
            let weights = members |> Array.map (fun (m, _) -> m.Weights.Value)
            let meanOf (column: int64) = (torch.stack([| for w in weights -> w.select(1L, column) |], 1L).mean([| 1L |], keepdim = true))
            let others = [| for w in weights -> w.narrow(1L, 2L, w.shape[1] - 2L) / sc k |]
            let w = torch.cat(Array.append [| meanOf 0L; meanOf 1L |] others, 1L).contiguous()
            let observed = x * oneMinus trainMask
            let mutable sum = torch.zeros_like(x)
            for _, filled in members do sum <- plus sum (filled * trainMask)
            let xHat = plus observed (sum / sc k)
            let donors = members |> Array.tryPick (fun (m, _) -> m.Donors)
            let start =
                { first with
                    KnnShare = Some (w.select(1L, 1L).contiguous().DetachFromDisposeScope())
                    Donors = donors
                    Extra = members |> Array.collect (fun (m, _) -> m.Extra)
                    Weights = Some (w.DetachFromDisposeScope())
                    Draws = members |> Array.sumBy (fun (m, _) -> m.Draws) }
            for m, _ in members do
                if not (obj.ReferenceEquals(m, first)) then OnlineEm.disposeEstimate m.Gaussian
                m.KnnShare |> Option.iter (fun t -> t.Dispose())
                m.Weights |> Option.iter (fun t -> t.Dispose())
                m.Donors |> Option.iter (fun d -> if not (donors |> Option.exists (fun kept -> obj.ReferenceEquals(kept, d))) then Knn.dispose d)
            start, xHat.MoveToOuterDisposeScope()
        finally
            for _, filled in members do filled.Dispose()

    /// Fills new scaled rows x (m, p) under mask (m, p) as the training rows were: nearest pixels (or zero) for
    /// images, kNN from the kept training rows or its blend with Gaussian EM when that was the start, else the
    /// Gaussian-EM conditional mean (the simple table starts too: a mean or a random draw has nothing to learn from
    /// a new row's observed cells).
    /// The token is checked between chunks of the kNN imputation (OperationCanceledException).
    let applyCancellable (s: StartSettings) (scaler: Scaler.MinMax) (start: Start) (ct: CancellationToken) (x: Tensor) (mask: Tensor) : Tensor =
        ct.ThrowIfCancellationRequested()
        match start.Kind, start.Donors, start.KnnShare with
        | InitialImputation.Knn, Some donors, _ -> Knn.imputeCancellable s.KnnNeighbours donors ct x mask
        | InitialImputation.Auto, _, _ when start.Weights.IsSome ->
            use scope = torch.NewDisposeScope()
            let gem = GaussianEm.impute start.Gaussian x mask
            // Without donors kNN's weight is 0 everywhere, so any stand-in of the right shape will do.
            let knn = match start.Donors with Some donors -> Knn.imputeCancellable s.KnnNeighbours donors ct x mask | None -> gem
            let others = start.Extra |> Array.map (fun (_, fitted) -> fitted.Fill(x, mask, ct))
            (Selection.blendAll start.Weights.Value (Array.append [| gem; knn |] others)).MoveToOuterDisposeScope()
        | InitialImputation.Auto, Some donors, Some share ->
            Selection.blend share (GaussianEm.impute start.Gaussian x mask) (Knn.imputeCancellable s.KnnNeighbours donors ct x mask)
        | InitialImputation.NearestPixel, _, _ -> nearestPixel scaler (image s) x mask
        | InitialImputation.Zero, _, _ when likeImages s -> Fill.zeroImpute x mask
        | _ -> GaussianEm.impute start.Gaussian x mask

    /// <see cref="applyCancellable"/> without a token.
    let apply (s: StartSettings) (scaler: Scaler.MinMax) (start: Start) (x: Tensor) (mask: Tensor) : Tensor =
        applyCancellable s scaler start CancellationToken.None x mask

    /// Releases the start's tensors.
    let dispose (start: Start) =
        OnlineEm.disposeEstimate start.Gaussian
        start.KnnShare |> Option.iter (fun t -> t.Dispose())
        start.Donors |> Option.iter Knn.dispose
        start.Weights |> Option.iter (fun t -> t.Dispose())
        for _, fitted in start.Extra do fitted.Dispose()
