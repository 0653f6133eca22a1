/// MIWAE (Mattei and Frellsen, ICML 2019): a deep latent variable model trained on the importance-weighted
/// bound of the observed data, with zero-filled inputs to the encoder. Missing entries are imputed by
/// self-normalised importance sampling (the conditional-mean estimate) and drawn by importance resampling.
module EMFlow.Miwae

open System
open TorchSharp
open EMFlow.Tensors

/// MIWAE's settings.
type Settings =
    { /// Latent dimension d. 10 in the paper's UCI experiments; at most p is sensible.
      Latent: int
      /// Hidden width of encoder and decoder (two hidden layers each, tanh). 128.
      Hidden: int
      /// Importance samples K per row in the training bound. 20.
      Samples: int
      /// Importance samples per row when imputing. 1000 in the paper; 200 by default here.
      ImputeSamples: int
      /// Rows per mini-batch. 64.
      BatchSize: int
      /// Passes over the data. 200.
      Epochs: int
      /// Adam learning rate. 1e-3.
      LearningRate: float }

/// Settings close to the paper's UCI experiments, with fewer imputation samples.
let defaults = { Latent = 10; Hidden = 128; Samples = 20; ImputeSamples = 200; BatchSize = 64; Epochs = 200; LearningRate = 1e-3 }

/// Raises ArgumentOutOfRangeException naming the first invalid setting.
let validate (s: Settings) =
    let fail name (v: obj) rule = raise (ArgumentOutOfRangeException(name, v, sprintf "%s %s; got %O." name rule v))
    if s.Latent < 1 then fail "Latent" s.Latent "must be at least 1"
    if s.Hidden < 1 then fail "Hidden" s.Hidden "must be at least 1"
    if s.Samples < 1 then fail "Samples" s.Samples "must be at least 1"
    if s.ImputeSamples < 1 then fail "ImputeSamples" s.ImputeSamples "must be at least 1"
    if s.BatchSize < 1 then fail "BatchSize" s.BatchSize "must be at least 1"
    if s.Epochs < 1 then fail "Epochs" s.Epochs "must be at least 1"
    if not (s.LearningRate > 0.0 && Double.IsFinite s.LearningRate) then fail "LearningRate" s.LearningRate "must be positive and finite"

let private log2Pi = Math.Log(2.0 * Math.PI)

/// Encoder q(z | x_o) and decoder p(x | z) for p features. The decoder is Gaussian with a learned per-row mean and
/// scale (the paper's UCI model uses a Student t; a Gaussian keeps the conditional mean well defined).
type Model(p: int, s: Settings, seed: int64) =
    let enc = Networks.mlp "encoder" [| p; s.Hidden; s.Hidden; 2 * s.Latent |] CouplingNetworks.Tanh (deriveSeed seed 0)
    let dec = Networks.mlp "decoder" [| s.Latent; s.Hidden; s.Hidden; 2 * p |] CouplingNetworks.Tanh (deriveSeed seed 1)
    /// Number of features p.
    member _.Features = p
    /// The settings.
    member _.Settings = s
    /// Encodes zero-filled rows (B, p) into the mean and log-scale of q(z | x_o), each (B, d).
    member _.Encode(x: Tensor) =
        let h = enc.Apply x
        h.narrow(1L, 0L, int64 s.Latent), h.narrow(1L, int64 s.Latent, int64 s.Latent).clamp(sc -8.0, sc 8.0)
    /// Decodes latent samples (..., d) into the mean and log-scale of p(x | z), each (..., p).
    member _.Decode(z: Tensor) =
        let h = dec.Apply z
        let last = h.dim() - 1L
        h.narrow(last, 0L, int64 p), h.narrow(last, int64 p, int64 p).clamp(sc -8.0, sc 4.0)
    /// All parameters, for an optimiser.
    member _.Parameters = Array.append enc.Parameters dec.Parameters
    interface IDisposable with
        member _.Dispose() = enc.Dispose(); dec.Dispose()

let private normalLogPdf (x: Tensor) (mean: Tensor) (logScale: Tensor) =
    let d = (x - mean) / logScale.exp()
    (d * d |> offsetBy log2Pi |> scaleBy -0.5) - logScale

/// Log importance weights (K, B) of K latent samples per row, and the decoder means and log-scales (K, B, p).
let private weights (model: Model) (gen: torch.Generator) (k: int) (x: Tensor) (mask: Tensor) =
    let observed = oneMinus mask
    let xz = x * observed
    let qMean, qLogScale = model.Encode xz
    let eps = torch.randn([| int64 k; x.shape[0]; qMean.shape[1] |], dtype = dtype, generator = gen)
    let z = plus qMean (qLogScale.exp() * eps)
    let pMean, pLogScale = model.Decode z
    let logPx = (normalLogPdf xz pMean pLogScale * observed).sum(dim = 2L)
    let logPz = (normalLogPdf z (torch.zeros_like(z)) (torch.zeros_like(z))).sum(dim = 2L)
    let logQz = (normalLogPdf z qMean qLogScale).sum(dim = 2L)
    plus logPx logPz - logQz, pMean, pLogScale

/// The importance-weighted bound per row, averaged over the batch: mean_i log (1/K Σ_k w_ik). Differentiable.
let bound (model: Model) (gen: torch.Generator) (x: Tensor) (mask: Tensor) : Tensor =
    let logW, _, _ = weights model gen model.Settings.Samples x mask
    (torch.logsumexp(logW, 0) |> offsetBy (-Math.Log(float model.Settings.Samples))).mean()

/// One Adam step on a batch (x (B, p), mask (B, p) 1.0 = missing) maximising the bound; returns the bound.
let trainStep (model: Model) (opt: Optim.Adam) (gen: torch.Generator) (x: Tensor) (mask: Tensor) : float =
    use scope = torch.NewDisposeScope()
    let b = bound model gen x mask
    opt.ZeroGrad()
    (-b).backward()
    opt.Step()
    scalar b

/// Conditional-mean imputation by self-normalised importance sampling: x̂_m = Σ_k w̃_k E[x_m | z_k].
let impute (model: Model) (gen: torch.Generator) (x: Tensor) (mask: Tensor) : Tensor =
    use _ = torch.no_grad()
    use scope = torch.NewDisposeScope()
    let logW, pMean, _ = weights model gen model.Settings.ImputeSamples x mask
    let w = torch.softmax(logW, 0).unsqueeze(2)
    let mean = (w * pMean).sum(dim = 0L)
    (plus (x * oneMinus mask) (mean * mask)).MoveToOuterDisposeScope()

/// One multiple-imputation draw per row by importance resampling: pick z_k with probability w̃_k, then draw the
/// missing entries from p(x_m | z_k).
let sample (model: Model) (gen: torch.Generator) (x: Tensor) (mask: Tensor) : Tensor =
    use _ = torch.no_grad()
    use scope = torch.NewDisposeScope()
    let logW, pMean, pLogScale = weights model gen model.Settings.ImputeSamples x mask
    let pick = torch.multinomial(torch.softmax(logW, 0).T, 1L, generator = gen).squeeze(1)
    let index = pick.reshape(1L, x.shape[0], 1L).expand(1L, x.shape[0], x.shape[1])
    let chosenMean = pMean.gather(0L, index).squeeze(0L)
    let chosenScale = pLogScale.gather(0L, index).squeeze(0L).exp()
    let draw = plus chosenMean (chosenScale * torch.randn(x.shape, dtype = dtype, generator = gen))
    (plus (x * oneMinus mask) (draw * mask)).MoveToOuterDisposeScope()
