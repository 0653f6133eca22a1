/// MCFlow (Richardson, Ebrahimi and Alahi, CVPR 2020): a RealNVP flow with a standard-normal base is fitted to the
/// current imputations; a feed-forward network then maps each row's latent vector to a likelier embedding whose
/// image in data space reproduces the row's observed entries, and that image re-imputes the missing ones. The
/// flow layers are this project's (<see cref="Flow"/>).
module EMFlow.McFlow

open System
open TorchSharp
open EMFlow.Tensors

/// MCFlow's settings.
type Settings =
    { /// Epochs, each: one pass of flow training, one of latent-network training, then re-imputation. 30.
      Epochs: int
      /// Rows per mini-batch. 256.
      BatchSize: int
      /// Adam learning rate of flow and latent network. 1e-3.
      LearningRate: float
      /// Weight of the latent negative log-likelihood −log N(g(z); 0, I) / p against the squared error on observed
      /// entries in the latent network's loss. 1e-3.
      LikelihoodWeight: float
      /// Coupling layers of the flow (6) and hidden width of flow and latent network (128).
      Layers: int
      Hidden: int }

/// Settings close to the MCFlow paper's tabular experiments on a CPU budget.
let defaults = { Epochs = 30; BatchSize = 256; LearningRate = 1e-3; LikelihoodWeight = 1e-3; Layers = 6; Hidden = 128 }

/// Raises ArgumentOutOfRangeException naming the first invalid setting.
let validate (s: Settings) =
    let fail name (v: obj) rule = raise (ArgumentOutOfRangeException(name, v, sprintf "%s %s; got %O." name rule v))
    if s.Epochs < 1 then fail "Epochs" s.Epochs "must be at least 1"
    if s.BatchSize < 2 then fail "BatchSize" s.BatchSize "must be at least 2"
    if not (s.LearningRate > 0.0 && Double.IsFinite s.LearningRate) then fail "LearningRate" s.LearningRate "must be positive and finite"
    if not (s.LikelihoodWeight >= 0.0 && Double.IsFinite s.LikelihoodWeight) then fail "LikelihoodWeight" s.LikelihoodWeight "must be non-negative and finite"
    if s.Layers < 1 then fail "Layers" s.Layers "must be at least 1"
    if s.Hidden < 1 then fail "Hidden" s.Hidden "must be at least 1"

/// The flow and the latent-to-latent network for p features.
type Model(p: int, s: Settings, seed: int64) =
    let flow = Flow.create { Features = p; Layers = s.Layers; Hidden = s.Hidden; Depth = 2; Seed = deriveSeed seed 0; Masks = Flow.Alternating; Network = Flow.Dense; SingleNetworks = false; Activation = CouplingNetworks.Tanh }
    let net = Networks.mlp "latent" [| p; s.Hidden; s.Hidden; p |] CouplingNetworks.Relu (deriveSeed seed 1)
    /// The flow (data ↔ latent).
    member _.Flow = flow
    /// g(z): a residual map of latent rows (B, p), so it starts near the identity.
    member _.Embed(z: Tensor) = plus z (net.Apply z)
    /// The latent network's parameters.
    member _.NetParameters = net.Parameters
    interface IDisposable with
        member _.Dispose() = flow.Dispose(); net.Dispose()

let private standardLogDensity (z: Tensor) =
    (z * z |> offsetBy (Math.Log(2.0 * Math.PI))).sum(dim = 1L) |> scaleBy -0.5

/// One flow step: maximum likelihood of the current imputations (B, p) under the standard-normal base.
let flowStep (model: Model) (opt: Optim.Adam) (xHat: Tensor) : float =
    use scope = torch.NewDisposeScope()
    let z, logDet = Flow.toLatent model.Flow xHat
    let loss = -((plus (standardLogDensity z) logDet).mean())
    opt.ZeroGrad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(Flow.parameters model.Flow, 10.0) |> ignore
    opt.Step()
    scalar loss

/// One latent-network step: with the flow fixed, x̃ = f(g(f⁻¹(x̂))) should reproduce the observed entries while
/// g(z) stays likely under the base. Returns the loss.
let netStep (s: Settings) (model: Model) (opt: Optim.Adam) (xHat: Tensor) (mask: Tensor) : float =
    use scope = torch.NewDisposeScope()
    let z =
        use _ = torch.no_grad()
        fst (Flow.toLatent model.Flow xHat)
    let e = model.Embed z
    let xTilde, _ = Flow.toData model.Flow e
    let observed = oneMinus mask
    let mse = (((xTilde - xHat) * observed).pow(sc 2.0)).sum(dim = 1L).mean()
    let nll = -(standardLogDensity e).mean() |> divideBy (float xHat.shape[1])
    let loss = plus mse (nll |> scaleBy s.LikelihoodWeight)
    opt.ZeroGrad()
    loss.backward()
    opt.Step()
    scalar loss

/// Re-imputation: x̂_m ← f(g(f⁻¹(x̂)))_m, clamped to [lower, upper]; observed entries untouched.
let reimpute (model: Model) (lower: Tensor) (upper: Tensor) (xHat: Tensor) (mask: Tensor) : Tensor =
    use _ = torch.no_grad()
    use scope = torch.NewDisposeScope()
    let z, _ = Flow.toLatent model.Flow xHat
    let xTilde, _ = Flow.toData model.Flow (model.Embed z)
    (Training.fillMissing lower upper xTilde xHat mask).MoveToOuterDisposeScope()
