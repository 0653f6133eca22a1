using Microsoft.FSharp.Core;

namespace EMFlow;

/// <summary>How the flow's coupling layers split the features into kept and transformed ones.</summary>
public enum CouplingMask
{
    /// <summary>Even and odd feature indices alternate from layer to layer (default; fits any table). On images of even width this keeps whole pixel columns, a stripe pattern.</summary>
    Alternating,
    /// <summary>Images only (<see cref="EMFlowOptions.ImageWidth"/> set): pixel (r, c) is kept in layer k when r + c + k is even, so every transformed pixel is conditioned on its four neighbours (RealNVP's checkerboard).</summary>
    Checkerboard,
}

/// <summary>What computes each coupling layer's scale and shift from its kept features.</summary>
public enum CouplingNetwork
{
    /// <summary>Two fully connected networks, one for the scale and one for the shift, each of <see cref="EMFlowOptions.HiddenDepth"/> hidden layers of <see cref="EMFlowOptions.HiddenWidth"/> units with <see cref="EMFlowOptions.HiddenActivation"/> between them (the paper's; fits any table).</summary>
    Dense,
    /// <summary>Images only (<see cref="EMFlowOptions.ImageWidth"/> set): 3 × 3 convolutions over the image, <see cref="EMFlowOptions.HiddenDepth"/> hidden layers of <see cref="EMFlowOptions.HiddenWidth"/> channels, so a pixel's scale and shift depend on its neighbourhood only. Run in float32; keep HiddenWidth small (8-16), since each channel costs a pass over every pixel.</summary>
    Convolutional,
    /// <summary>One fully connected tanh network of <see cref="EMFlowOptions.HiddenDepth"/> hidden layers of <see cref="EMFlowOptions.HiddenWidth"/> units gives both the scale and the shift: half the cost of <see cref="Dense"/>'s two networks.</summary>
    DenseJoint,
}

/// <summary>The element type the dense s and t networks compute in.</summary>
public enum FlowPrecision
{
    /// <summary>Everything in float64.</summary>
    Float64,
    /// <summary>The networks' matrix products and activations in float32, about twice as fast on the CPU; the coupling maps, log-determinants and the latent Gaussian stay float64.</summary>
    Float32,
}

/// <summary>The nonlinearity between the hidden layers of the dense s and t networks.</summary>
public enum HiddenActivation
{
    /// <summary>max(0, x): piecewise-linear s and t, so the coupling maps are continuous and piecewise smooth. On the demo's nonlinear table it imputed 17% better than tanh, and a step costs about a tenth less (README.md).</summary>
    Relu,
    /// <summary>tanh: smooth s and t, the library's choice before <see cref="Relu"/> measured better.</summary>
    Tanh,
}

/// <summary>What the second flow step of each batch optimises.</summary>
public enum SecondFlowStep
{
    /// <summary>L2 of eq. 15: −log p_X(x̃) + α · reconstruction error of observed entries, as in the paper.</summary>
    Paper,
    /// <summary>α · reconstruction error only: keeps the flow close to feature-wise where observed entries need it, without L2's pull to contract the flow around x̃.</summary>
    ReconstructionOnly,
    /// <summary>No second step; L1 alone trains the flow.</summary>
    Skip,
}

/// <summary>
/// Settings of <see cref="EMFlowImputer"/>. Construction stores them; <see cref="Imputer.Fit"/> checks them and
/// throws <see cref="ArgumentOutOfRangeException"/> naming the setting and the value received.
/// </summary>
/// <remarks>
/// The paper's UCI settings are α = 1e6, ρ_t = 0.99 t^-0.8, batch 256, learning rate 1e-4, six coupling layers;
/// <see cref="Paper"/> returns them. The defaults here differ where a measured choice did better on held-out
/// observed entries: see README.md.
/// </remarks>
public sealed record EMFlowOptions
{
    /// <summary>Iterations of [training phase, re-imputation phase]. Default 2: from a Gaussian-EM or kNN start, later iterations rarely improved the hold-out error in our measurements (the paper reports convergence within three).</summary>
    public int Iterations { get; init; } = 2;
    /// <summary>Passes over the data in each training phase. Default 40.</summary>
    public int EpochsPerIteration { get; init; } = 40;
    /// <summary>Rows per mini-batch. Default 256; must be at least 2.</summary>
    public int BatchSize { get; init; } = 256;
    /// <summary>Adam learning rate of both flow steps. Default 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>α: weight of the reconstruction error of observed entries in L2 (eq. 15). Default 1e3.</summary>
    public double Alpha { get; init; } = 1e3;
    /// <summary>The second flow step of each batch. Default <see cref="SecondFlowStep.Skip"/>: on held-out entries the paper's L2 step made imputations worse at every α we measured (README.md).</summary>
    public SecondFlowStep SecondStep { get; init; } = SecondFlowStep.Skip;
    /// <summary>C of the step size ρ_t = C t^-γ, in (0, 1). Default 0.99.</summary>
    public double StepSizeC { get; init; } = 0.99;
    /// <summary>γ of the step size ρ_t = C t^-γ, in (0.5, 1]. Default 0.8.</summary>
    public double StepSizeGamma { get; init; } = 0.8;
    /// <summary>Smallest step size ρ of the online M-step, in [0, 1): the latent vectors move while the flow trains, and a floor keeps μ, Σ tracking them. 0 is the paper's schedule (default).</summary>
    public double StepSizeFloor { get; init; }
    /// <summary>
    /// Re-anchor the latent Gaussian to the flow as it trains: at the start of each epoch (after the first) μ, Σ are
    /// reset to the sample statistics of f⁻¹(x̂), the maximiser of L1 for the current flow, and after the training
    /// phase they are refitted by batch EM over all rows with the flow fixed, before re-imputing. Online EM still runs
    /// between. The paper relies on online EM alone, whose estimate lags the moving latent space. Default true.
    /// </summary>
    public bool RefitLatentGaussian { get; init; } = true;
    /// <summary>Average sufficient statistics (eq. 28) instead of μ and Σ (eq. 7-8). Default false, as in the paper.</summary>
    public bool SufficientStatisticsUpdate { get; init; }
    /// <summary>β of the robust covariance per iteration (eq. 31); iterations past the end use 0. Default: none (the paper uses 1e-2, 1e-2, 1e-3, 1e-3 under MAR only; <see cref="PaperMarBeta"/>).</summary>
    public IReadOnlyList<double> BetaSchedule { get; init; } = Array.Empty<double>();
    /// <summary>The paper's robust-Σ schedule for MAR data: β = 1e-2, 1e-2, 1e-3, 1e-3, then 0.</summary>
    public static IReadOnlyList<double> PaperMarBeta { get; } = Array.AsReadOnly((double[])OnlineEm.paperMarBeta.Clone());
    /// <summary>Rows pooled for each M-step (super-batch, appendix D); 0 pools only the current batch. Default 0.</summary>
    public int SuperBatchSize { get; init; }
    /// <summary>Affine coupling layers of the RealNVP flow. Default 6, as in the paper; 0 gives Gaussian EM run online.</summary>
    public int CouplingLayers { get; init; } = 6;
    /// <summary>Width of the hidden layers of each coupling's s and t networks. Default 128.</summary>
    public int HiddenWidth { get; init; } = 128;
    /// <summary>Hidden layers of each coupling's s and t networks. Default 2.</summary>
    public int HiddenDepth { get; init; } = 2;
    /// <summary>How the coupling layers split the features. Default <see cref="EMFlow.CouplingMask.Alternating"/>; <see cref="EMFlow.CouplingMask.Checkerboard"/> needs <see cref="ImageWidth"/>.</summary>
    public CouplingMask CouplingMask { get; init; } = CouplingMask.Alternating;
    /// <summary>What computes the couplings' s and t. Default <see cref="EMFlow.CouplingNetwork.DenseJoint"/> (one network for both); <see cref="EMFlow.CouplingNetwork.Convolutional"/> needs <see cref="ImageWidth"/>.</summary>
    public CouplingNetwork CouplingNetwork { get; init; } = CouplingNetwork.DenseJoint;
    /// <summary>What the dense s and t networks compute in. Default <see cref="EMFlow.FlowPrecision.Float32"/>; model files
    /// saved before this option existed load as <see cref="EMFlow.FlowPrecision.Float64"/>, what they were fitted with.</summary>
    public FlowPrecision FlowPrecision { get; init; } = FlowPrecision.Float32;
    /// <summary>The nonlinearity between the hidden layers of the dense s and t networks (convolutional ones keep tanh).
    /// Default <see cref="EMFlow.HiddenActivation.Relu"/>; model files saved before this option existed load as
    /// <see cref="EMFlow.HiddenActivation.Tanh"/>, what they were fitted with.</summary>
    public HiddenActivation HiddenActivation { get; init; } = HiddenActivation.Relu;
    /// <summary>Largest gradient norm of a flow step; larger ones are scaled down. Default 10.</summary>
    public double MaxGradNorm { get; init; } = 10;
    /// <summary>How missing values are filled before the first iteration. Default <see cref="EMFlow.InitialImputation.Auto"/>: per feature, the blend of Gaussian EM and kNN that is best on the held-out entries.</summary>
    public InitialImputation InitialImputation { get; init; } = InitialImputation.Auto;
    /// <summary>Most sweeps of the Gaussian-EM fit behind the <see cref="EMFlow.InitialImputation.GaussianEm"/> and
    /// <see cref="EMFlow.InitialImputation.Auto"/> starts; the fit also stops at Gaussian EM's tolerance. Default 500. Each
    /// sweep is an E-step over every row, which at p in the hundreds (images) costs as much as a training epoch, so
    /// images want a few.</summary>
    public int StartSweeps { get; init; } = 500;
    /// <summary>Ridge added to every covariance (the start's Gaussian EM and the latent Gaussian) after each M-step,
    /// relative to its mean diagonal. Default 1e-6, which only keeps Σ invertible. Rows imputed after the fit (new rows,
    /// a test set) can call for more when n is not many times p: a direction of almost no variance in the fitted rows
    /// amplifies whatever a new row shows along it.</summary>
    public double Ridge { get; init; } = 1e-6;
    /// <summary>Donors averaged by the <see cref="EMFlow.InitialImputation.Knn"/> start. Default 5.</summary>
    public int KnnNeighbours { get; init; } = 5;
    /// <summary>Most training rows the kNN start takes as donors; larger tables use a seeded sample of this many, which
    /// bounds the start's cost to O(n · KnnMaxDonors) distances and the model's kept rows to KnnMaxDonors. Default 20000.</summary>
    public int KnnMaxDonors { get; init; } = 20000;
    /// <summary>
    /// Fraction of the observed entries held out (hidden) during training to score each iteration; the
    /// iteration with the lowest error on them (iteration 0 being the initial imputation) is kept. 0 keeps the
    /// last iteration, as the paper does. Default 0.05. Never uses anything but the training data.
    /// </summary>
    public double ValidationFraction { get; init; } = 0.05;
    /// <summary>How the held-out entries of <see cref="ValidationFraction"/> are drawn: uniformly (the default), in
    /// proportion to each column's missing share (<see cref="HoldOutDraw.LikeMissingness"/>), so that under MAR the
    /// selection scores the features that are actually missing, or that and, within a column, in proportion to each
    /// entry's odds of being missing given the rest of its row (<see cref="HoldOutDraw.ByPropensity"/>), so that it
    /// scores rows like the ones that are missing, or in whole missingness patterns, each lent by a row with gaps to
    /// another row (<see cref="HoldOutDraw.LikeMissingPatterns"/>), so that cells that go missing together are held
    /// out together.</summary>
    public HoldOutDraw HoldOut { get; init; } = HoldOutDraw.Uniform;
    /// <summary>Hold-out draws the <see cref="InitialImputation.Auto"/> start with candidates (such as EMFlow.Forest's
    /// <c>ForestStart</c>) is fitted on and averaged over, at least 1. The blend is chosen on a few hundred held-out
    /// cells per feature and moves with which cells those are; with k draws the start's candidates are fitted k times,
    /// each without its own draw's cells (and without the fit's own hold-out, which still scores the iterations), and
    /// new rows get the mean of the k blends. Costs about k fits of the start. Default 1; ignored by other starts and
    /// without a hold-out.</summary>
    public int StartDraws { get; init; } = 1;
    /// <summary>The E-step of each batch takes its latent vectors from the L1 pass, computed before the L1 update, instead of
    /// a second pass through the updated flow: about a quarter of a training step's time saved, with the E-step one
    /// optimiser step behind the flow; each epoch's re-anchoring of the latent Gaussian then also uses the L1 pass's
    /// latent vectors. Default true; false is the paper's order.</summary>
    public bool LatentFromL1Pass { get; init; } = true;
    /// <summary>γ ≥ 0: the flow's loss L1 weights each row by the share of its entries that are observed, to the power γ
    /// (a row with 2 of 9 entries imputed weighs (7/9)^γ). A flow trained on its imputations as if they were data learns
    /// them; with γ &gt; 0 the mostly observed rows shape it. The latent Gaussian's EM is unchanged. Default 0: every
    /// row alike, the paper's L1.</summary>
    public double ObservedShareWeight { get; init; }
    /// <summary>With <see cref="LatentFromL1Pass"/>, the flow's loss L1 and its gradient are computed by hand
    /// (<c>FusedL1</c>) where the flow is the default kind (alternating masks, one dense float32 ReLU network for s and
    /// t): the same gradient as autograd's to rounding, in a dozen torch calls per coupling instead of about forty, which
    /// on tables of a few columns is most of a training step's time. Default true; false always uses autograd.</summary>
    public bool FusedFlowGradient { get; init; } = true;
    /// <summary>Abandoning iterations that do not help, on the hold-out of <see cref="ValidationFraction"/>: after every
    /// epoch the held-out entries are re-imputed under the current flow; an iteration that has not beaten the best model
    /// so far (the start, or an earlier iteration) after this many epochs in a row without improving on its own best
    /// epoch stops there and keeps that epoch's flow. An iteration that beats it trains all of
    /// <see cref="EpochsPerIteration"/>. 0 trains every epoch. Default 10: a new iteration's flow starts at the identity and
    /// on the demo's table took up to 13 epochs to overtake the iteration before it. Ignored without a hold-out.</summary>
    public int Patience { get; init; } = 10;
    /// <summary>End the fit after an iteration whose hold-out error is not below the best so far (the start's included):
    /// the next iteration would start from imputations the hold-out already rejected. Default true. Ignored without a
    /// hold-out.</summary>
    public bool StopAfterWorseIteration { get; init; } = true;
    /// <summary>Clamp every re-imputed value to the range of its feature's observed values at Fit, so that a region the flow models poorly cannot send an imputation far outside anything seen. Default true; false leaves the conditional means as they are.</summary>
    public bool ClampToObservedRange { get; init; } = true;
    /// <summary>Width of the images when each row is one image in row-major order (pixel (r, c) at column r · width + c); required by <see cref="EMFlow.InitialImputation.NearestPixel"/>, and width · height must equal the number of columns p. Default null (not images).</summary>
    public int? ImageWidth { get; init; }
    /// <summary>Height of the images; see <see cref="ImageWidth"/>. Default null.</summary>
    public int? ImageHeight { get; init; }
    /// <summary>Seed of every random choice (batches, flow initialisation, held-out entries). Same seed, same result.</summary>
    public long Seed { get; init; }
    /// <summary>Torch intra-op threads during Fit and Transform; null leaves torch's setting alone. Default 1: with
    /// other work on the machine, OpenMP's spinning threads made the demo's fit 3x slower with 2 threads than with 1
    /// (README, "Platform notes"); ask for more on an idle machine with cores to spare.</summary>
    public int? TorchThreads { get; init; } = 1;

    /// <summary>The paper's UCI settings (appendix F): α = 1e6, learning rate 1e-4, random-draw initial imputation, every iteration kept, separate tanh s and t networks, the E-step through the updated flow.</summary>
    public static EMFlowOptions Paper => new()
    {
        CouplingNetwork = CouplingNetwork.Dense,
        HiddenActivation = HiddenActivation.Tanh,
        LatentFromL1Pass = false,
        Iterations = 3,
        EpochsPerIteration = 40,
        Alpha = 1e6,
        LearningRate = 1e-4,
        SecondStep = SecondFlowStep.Paper,
        BetaSchedule = Array.Empty<double>(),
        StepSizeFloor = 0,
        RefitLatentGaussian = false,
        InitialImputation = InitialImputation.RandomDraw,
        ValidationFraction = 0,
    };

    /// <summary>The settings of the start's Gaussian-EM fit.</summary>
    internal GaussianEm.Settings StartEm => new(StartSweeps, GaussianEm.defaults.Tolerance, Ridge);

    /// <summary>The flow these settings describe for p features, its parameters drawn from the seed.</summary>
    internal Flow.FlowConfig FlowConfig(int features, long seed) => new(
        features, CouplingLayers, HiddenWidth, HiddenDepth, seed,
        CouplingMask == CouplingMask.Checkerboard ? Flow.MaskPattern.NewCheckerboard(ImageWidth!.Value) : Flow.MaskPattern.Alternating,
        CouplingNetwork switch
        {
            CouplingNetwork.Convolutional => Flow.CouplingNetwork.NewConvolutional(ImageWidth!.Value),
            CouplingNetwork.DenseJoint => Flow.CouplingNetwork.DenseJoint,
            _ => Flow.CouplingNetwork.Dense,
        },
        FlowPrecision == FlowPrecision.Float32,
        HiddenActivation == HiddenActivation.Tanh ? CouplingNetworks.Activation.Tanh : CouplingNetworks.Activation.Relu);

    /// <summary>The settings <see cref="Fitting.fit"/> runs with for a table of <paramref name="features"/> columns:
    /// the same fit as <see cref="EMFlowImputer"/>'s, for stepping through it from F# (notebook 05).</summary>
    /// <param name="features">p, the table's column count.</param>
    /// <param name="startCandidates">Imputers that join the <see cref="InitialImputation.Auto"/> blend (none when null).</param>
    /// <param name="columnGroups">Per column (p), its group, 0 … G − 1: the one-hot indicator columns of one
    /// categorical column share a group (<see cref="StartSettings.Groups"/>); null when every column stands alone.</param>
    public FitSettings ToFitSettings(int features, IReadOnlyList<IStartCandidate>? startCandidates = null, IReadOnlyList<int>? columnGroups = null) => new(
        Iterations, EpochsPerIteration, BatchSize, LearningRate,
        new Training.StepSettings(Alpha, new OnlineEm.StepSize(StepSizeC, StepSizeGamma, StepSizeFloor), 0.0, MaxGradNorm, Ridge, SecondStep switch
        {
            SecondFlowStep.Paper => Training.SecondStep.Paper,
            SecondFlowStep.ReconstructionOnly => Training.SecondStep.ReconstructionOnly,
            _ => Training.SecondStep.Skip,
        }, LatentFromL1Pass, ObservedShareWeight, FusedFlowGradient),
        BetaSchedule.ToArray(), RefitLatentGaussian,
        SufficientStatisticsUpdate ? OnlineEm.UpdateForm.SufficientStatistics : OnlineEm.UpdateForm.Moments,
        SuperBatchSize, FlowConfig(features, Seed),
        new StartSettings(InitialImputation, StartEm, KnnNeighbours, KnnMaxDonors,
            ImageWidth is int w && ImageHeight is int h ? FSharpOption<Tuple<int, int>>.Some(Tuple.Create(w, h)) : FSharpOption<Tuple<int, int>>.None,
            Seed, (startCandidates ?? Array.Empty<IStartCandidate>()).ToArray(), (columnGroups ?? Array.Empty<int>()).ToArray()),
        ValidationFraction, HoldOut, StartDraws, Patience, StopAfterWorseIteration, ClampToObservedRange, Seed);

    internal void Validate(int rows, int columns)
    {
        static void Require(bool ok, string name, object value, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"{name} {rule}; got {value}.");
        }
        Require(Iterations >= 1, nameof(Iterations), Iterations, "must be at least 1");
        Require(Patience >= 0, nameof(Patience), Patience, "must be non-negative");
        Require(EpochsPerIteration >= 1, nameof(EpochsPerIteration), EpochsPerIteration, "must be at least 1");
        Require(BatchSize >= 2, nameof(BatchSize), BatchSize, "must be at least 2");
        Require(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), LearningRate, "must be positive and finite");
        Require(Alpha >= 0 && double.IsFinite(Alpha), nameof(Alpha), Alpha, "must be non-negative and finite");
        Require(StepSizeC > 0 && StepSizeC < 1, nameof(StepSizeC), StepSizeC, "must be in (0, 1)");
        Require(StepSizeGamma > 0.5 && StepSizeGamma <= 1, nameof(StepSizeGamma), StepSizeGamma, "must be in (0.5, 1]");
        Require(StepSizeFloor >= 0 && StepSizeFloor < 1, nameof(StepSizeFloor), StepSizeFloor, "must be in [0, 1)");
        if (BetaSchedule is null) throw new ArgumentNullException(nameof(BetaSchedule));
        foreach (var b in BetaSchedule) Require(b >= 0 && double.IsFinite(b), nameof(BetaSchedule), b, "entries must be non-negative and finite");
        Require(SuperBatchSize >= 0, nameof(SuperBatchSize), SuperBatchSize, "must be non-negative");
        Require(CouplingLayers >= 0, nameof(CouplingLayers), CouplingLayers, "must be non-negative");
        Require(HiddenWidth >= 1, nameof(HiddenWidth), HiddenWidth, "must be at least 1");
        Require(HiddenDepth >= 0, nameof(HiddenDepth), HiddenDepth, "must be non-negative");
        Require(MaxGradNorm > 0, nameof(MaxGradNorm), MaxGradNorm, "must be positive");
        Require(Enum.IsDefined(SecondStep), nameof(SecondStep), SecondStep, "must be a defined value");
        Require(Enum.IsDefined(InitialImputation), nameof(InitialImputation), InitialImputation, "must be a defined value");
        Require(Enum.IsDefined(HoldOut), nameof(HoldOut), HoldOut, "must be a defined value");
        Require(StartDraws >= 1, nameof(StartDraws), StartDraws, "must be at least 1");
        Require(StartSweeps >= 1, nameof(StartSweeps), StartSweeps, "must be at least 1");
        Require(Ridge >= 0 && double.IsFinite(Ridge), nameof(Ridge), Ridge, "must be non-negative and finite");
        Require(KnnNeighbours >= 1, nameof(KnnNeighbours), KnnNeighbours, "must be at least 1");
        Require(KnnMaxDonors >= 1, nameof(KnnMaxDonors), KnnMaxDonors, "must be at least 1");
        Require(ValidationFraction >= 0 && ValidationFraction < 0.5, nameof(ValidationFraction), ValidationFraction, "must be in [0, 0.5)");
        Require(ImageWidth is null or >= 1, nameof(ImageWidth), ImageWidth!, "must be at least 1 when given");
        Require(ImageHeight is null or >= 1, nameof(ImageHeight), ImageHeight!, "must be at least 1 when given");
        if (InitialImputation == InitialImputation.NearestPixel && (ImageWidth is null || ImageHeight is null))
            throw new ArgumentException($"InitialImputation.NearestPixel needs ImageWidth and ImageHeight; got {ImageWidth?.ToString() ?? "null"} and {ImageHeight?.ToString() ?? "null"}.", nameof(ImageWidth));
        Require(Enum.IsDefined(CouplingMask), nameof(CouplingMask), CouplingMask, "must be a defined value");
        if (CouplingMask == CouplingMask.Checkerboard && ImageWidth is null)
            throw new ArgumentException("CouplingMask.Checkerboard needs ImageWidth and ImageHeight; got null.", nameof(CouplingMask));
        Require(Enum.IsDefined(CouplingNetwork), nameof(CouplingNetwork), CouplingNetwork, "must be a defined value");
        Require(Enum.IsDefined(FlowPrecision), nameof(FlowPrecision), FlowPrecision, "must be a defined value");
        Require(Enum.IsDefined(HiddenActivation), nameof(HiddenActivation), HiddenActivation, "must be a defined value");
        if (CouplingNetwork == CouplingNetwork.Convolutional && ImageWidth is null)
            throw new ArgumentException("CouplingNetwork.Convolutional needs ImageWidth and ImageHeight; got null.", nameof(CouplingNetwork));
        if ((ImageWidth is null) != (ImageHeight is null))
            throw new ArgumentException($"ImageWidth and ImageHeight go together; got {ImageWidth?.ToString() ?? "null"} and {ImageHeight?.ToString() ?? "null"}.", nameof(ImageWidth));
        if (ImageWidth is not null)
        {
            if ((long)ImageWidth * ImageHeight!.Value != columns)
                throw new ArgumentException($"ImageWidth × ImageHeight must equal the {columns} columns of the data; got {ImageWidth} × {ImageHeight} = {(long)ImageWidth * ImageHeight}.", nameof(ImageWidth));
        }
        Require(TorchThreads is null or >= 1, nameof(TorchThreads), TorchThreads!, "must be at least 1 when given");
        Require(ObservedShareWeight >= 0 && double.IsFinite(ObservedShareWeight), nameof(ObservedShareWeight), ObservedShareWeight, "must be non-negative and finite");
    }
}
