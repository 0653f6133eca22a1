/// GAIN (Yoon, Jordon and van der Schaar, ICML 2018): a generator fills missing entries, a discriminator guesses
/// which entries were observed, helped by a hint that reveals part of the mask. Works on data scaled to [0, 1].
module EMFlow.Gain

open System
open TorchSharp
open EMFlow.Tensors

/// GAIN's settings; the defaults are the paper's.
type Settings =
    { /// Probability that the hint reveals an entry's observed/missing status to the discriminator. 0.9.
      HintRate: float
      /// Weight of the reconstruction error of observed entries in the generator loss. 100.
      Alpha: float
      /// Rows per mini-batch. 128.
      BatchSize: int
      /// Training iterations (one generator and one discriminator step each). 10000.
      Iterations: int
      /// Adam learning rate of both networks. 1e-3.
      LearningRate: float }

/// The paper's settings: hint rate 0.9, α = 100, batch 128, 10000 iterations, Adam 1e-3.
let defaults = { HintRate = 0.9; Alpha = 100.0; BatchSize = 128; Iterations = 10000; LearningRate = 1e-3 }

/// Raises ArgumentOutOfRangeException naming the first invalid setting.
let validate (s: Settings) =
    let fail name (v: obj) rule = raise (ArgumentOutOfRangeException(name, v, sprintf "%s %s; got %O." name rule v))
    if not (s.HintRate >= 0.0 && s.HintRate <= 1.0) then fail "HintRate" s.HintRate "must be in [0, 1]"
    if not (s.Alpha >= 0.0 && Double.IsFinite s.Alpha) then fail "Alpha" s.Alpha "must be non-negative and finite"
    if s.BatchSize < 1 then fail "BatchSize" s.BatchSize "must be at least 1"
    if s.Iterations < 1 then fail "Iterations" s.Iterations "must be at least 1"
    if not (s.LearningRate > 0.0 && Double.IsFinite s.LearningRate) then fail "LearningRate" s.LearningRate "must be positive and finite"

/// Generator and discriminator for p features: each an MLP (2p → p → p → p) with ReLU and a sigmoid output,
/// as in the paper's code.
type Model(p: int, seed: int64) =
    let g = Networks.mlp "generator" [| 2 * p; p; p; p |] CouplingNetworks.Relu (deriveSeed seed 0)
    let d = Networks.mlp "discriminator" [| 2 * p; p; p; p |] CouplingNetworks.Relu (deriveSeed seed 1)
    /// Number of features p.
    member _.Features = p
    /// G([x̃, m]) in [0, 1], (B, p).
    member _.Generate(xTilde: Tensor, observed: Tensor) = torch.sigmoid(g.Apply(torch.cat([| xTilde; observed |], 1L)))
    /// D([x̂, h]) in (0, 1): the probability that each entry was observed, (B, p).
    member _.Discriminate(xHat: Tensor, hint: Tensor) = torch.sigmoid(d.Apply(torch.cat([| xHat; hint |], 1L)))
    /// The generator's parameters.
    member _.GeneratorParameters = g.Parameters
    /// The discriminator's parameters.
    member _.DiscriminatorParameters = d.Parameters
    interface IDisposable with
        member _.Dispose() = g.Dispose(); d.Dispose()

/// The generator's input: observed values kept, missing ones replaced by U(0, 0.01) noise (the paper's choice).
let private noisy (gen: torch.Generator) (x: Tensor) (observed: Tensor) =
    let z = torch.rand(x.shape, dtype = dtype, generator = gen) |> scaleBy 0.01
    plus (x * observed) (z * oneMinus observed)

// Keeps log away from 0 when the discriminator saturates.
let private eps = 1e-8

/// One GAIN iteration on a batch (x (B, p) on [0, 1], mask (B, p) with 1.0 = missing): a discriminator step,
/// then a generator step. Returns (discriminator loss, generator adversarial loss, reconstruction MSE).
let trainStep (s: Settings) (model: Model) (optD: Optim.Adam) (optG: Optim.Adam)
              (gen: torch.Generator) (x: Tensor) (mask: Tensor) : float * float * float =
    use scope = torch.NewDisposeScope()
    let observed = oneMinus mask
    let xTilde = noisy gen x observed
    let b = torch.rand(x.shape, dtype = dtype, generator = gen).lt(sc s.HintRate).to_type(dtype)
    let hint = observed * b
    // Discriminator: tell observed from generated entries.
    let gSample = model.Generate(xTilde, observed).detach()
    let xHat = plus (x * observed) (gSample * mask)
    let dProb = model.Discriminate(xHat, hint)
    let lossD = -((plus (observed * (dProb |> offsetBy eps).log()) (mask * (oneMinus dProb |> offsetBy eps).log())).mean())
    optD.ZeroGrad()
    lossD.backward()
    optD.Step()
    // Generator: fool the discriminator on missing entries, reconstruct observed ones.
    let gOut = model.Generate(xTilde, observed)
    let xHat2 = plus (x * observed) (gOut * mask)
    let dProb2 = model.Discriminate(xHat2, hint)
    let adversarial = -((mask * (dProb2 |> offsetBy eps).log()).mean())
    let mse = ((observed * x - observed * gOut).pow(sc 2.0)).mean() / (observed.mean() |> offsetBy eps)
    let lossG = plus adversarial (mse |> scaleBy s.Alpha)
    optG.ZeroGrad()
    lossG.backward()
    optG.Step()
    scalar lossD, scalar adversarial, scalar mse

/// Imputes rows (x (B, p) on [0, 1], mask (B, p) 1.0 = missing) with the generator; observed entries kept.
let impute (model: Model) (gen: torch.Generator) (x: Tensor) (mask: Tensor) : Tensor =
    use _ = torch.no_grad()
    use scope = torch.NewDisposeScope()
    let observed = oneMinus mask
    let g = model.Generate(noisy gen x observed, observed)
    (plus (x * observed) (g * mask)).MoveToOuterDisposeScope()
