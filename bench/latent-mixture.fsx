// A Gaussian mixture in the flow's latent space: does a RealNVP flow trained under a K-component latent mixture impute
// better than the mixture alone (the identity flow)? Per fold of the tables protocol (MCAR 0.2 unless told, seed 0):
//   start      the Gaussian mixture fitted by EM with missing entries on the training rows (K chosen on held-out
//              entries, MixtureStart), which is what a latent mixture imputes under the identity flow;
//   iteration  a fresh flow (the library's default architecture) trained for EPOCHS epochs on the current imputations
//              x̂ under the latent mixture, L1 = −mean[log Σ_k π_k N(f⁻¹(x̂); μ_k, Σ_k) + log|det ∂f⁻¹/∂x̂|], the mixture
//              refitted on f⁻¹(x̂) with the data's mask (the paper's assumption 2) every REFIT epochs; then
//              re-imputation: z = f⁻¹(x̂), missing latent entries from the mixture's responsibilities and conditional
//              means, x̃ = f(ẑ), clamped to the training range.
// Each model is scored on 5% of the training rows' observed entries held out from every fit (what a hold-out would keep)
// and on the test fold's hidden entries, which nothing here chooses from.
// WEIGHT γ > 0 weights each row's term of L1 by its observed share to the power γ, so that the flow learns less from
// its own imputations ("complete" trains on fully observed rows only); 0, the default, weights every row alike.
// WIDTH and LAYERS size the flow (the library's defaults, 128 and 6, unless given).
// Run after ./build.sh build:  dotnet fsi bench/latent-mixture.fsx TABLE FOLDS [ITERATIONS] [EPOCHS] [REFIT] [mcar|mar] [WEIGHT] [WIDTH] [LAYERS]
//   e.g. dotnet fsi bench/latent-mixture.fsx concrete 0,1,2,3,4   (tables from ../shared/data or EMFLOW_DATA)
#r "EMFlow.Bench/bin/Release/net10.0/TorchSharp.dll"
#r "EMFlow.Bench/bin/Release/net10.0/EMFlow.Core.dll"
#r "EMFlow.Bench/bin/Release/net10.0/EMFlow.dll"
#r "EMFlow.Bench/bin/Release/net10.0/EMFlow.Evaluation.dll"
#load "BenchTable.fsx"
open System
open System.IO
open TorchSharp
open EMFlow
open EMFlow.Evaluation
type Tensor = torch.Tensor

NativeHeap.ReuseFreedBlocks() |> ignore
torch.set_num_threads 1
let args = fsi.CommandLineArgs
let name = args[1]
let folds = args[2].Split(',') |> Array.map int
let iterations = if args.Length > 3 then int args[3] else 2
let epochs = if args.Length > 4 then int args[4] else 20
let refitEvery = if args.Length > 5 then int args[5] else 5
let mechanism = if args.Length > 6 && args[6] = "mar" then Mechanism.Mar() else Mechanism.Mcar(0.2)
let weighting = if args.Length > 7 then args[7] else "0"
let width = if args.Length > 8 then Some (int args[8]) else None
let layers = if args.Length > 9 then Some (int args[9]) else None
let table, foldIds = BenchTable.load name mechanism
let p = table.Values.GetLength 1
let f64 = torch.float64

/// NaN-marked rows to (values with missing entries 0, mask 1.0 where missing).
let split (x: float[,]) =
    let n = x.GetLength 0
    let v = Array2D.init n p (fun i j -> if Double.IsNaN x[i, j] then 0.0 else x[i, j])
    let m = Array2D.init n p (fun i j -> if Double.IsNaN x[i, j] then 1.0 else 0.0)
    Tensors.ofArray2D v, Tensors.ofArray2D m

/// A fitted mixture as tensors: log weights (K), means (K, p), Cholesky factors (K, p, p), half log-determinants (K).
type Mix = { LogPi: Tensor; Mu: Tensor; L: Tensor; HalfLogDet: Tensor; K: int }

let mixOf (bytes: byte[]) =
    use r = new BinaryReader(new MemoryStream(bytes))
    let k, q = r.ReadInt32(), r.ReadInt32()
    let w = Array.zeroCreate k
    let mu = Array2D.zeroCreate k q
    let sigma = Array.zeroCreate<float> (k * q * q)
    for c in 0 .. k - 1 do
        w[c] <- r.ReadDouble()
        for a in 0 .. q - 1 do mu[c, a] <- r.ReadDouble()
        for a in 0 .. q * q - 1 do sigma[c * q * q + a] <- r.ReadDouble()
    let s = torch.tensor(sigma, dtype = f64).reshape(int64 k, int64 q, int64 q)
    let l = torch.linalg.cholesky(s)
    { LogPi = torch.tensor(w |> Array.map (fun v -> log (max v 1e-300)), dtype = f64); Mu = Tensors.ofArray2D mu; L = l
      HalfLogDet = l.diagonal(dim1 = -2L, dim2 = -1L).log().sum(-1L); K = k }

/// log Σ_k π_k N(z; μ_k, Σ_k) per row (B) of z (B, p); differentiable in z.
let logMix (m: Mix) (z: Tensor) =
    let d = z.unsqueeze(0L) - m.Mu.unsqueeze(1L)
    let y = torch.linalg.solve_triangular(m.L, d.transpose(1L, 2L), upper = false)
    let logN = (y.pow(Tensors.sc 2.0).sum(1L) * Tensors.sc -0.5) - m.HalfLogDet.unsqueeze(1L) - Tensors.sc (0.5 * float p * log (2.0 * Math.PI))
    torch.logsumexp(logN + m.LogPi.unsqueeze(1L), 0L)

let fitMixture (x: Tensor) (mask: Tensor) (seed: int64) =
    let fitted, filled = (MixtureStart() :> IStartCandidate).Fit(x, mask, Array.zeroCreate p, seed, null, Threading.CancellationToken.None)
    fitted, filled

let rmseOn (truth: float[,]) (hidden: bool[,]) (rows: int[]) (imputed: float[,]) =
    let mutable s, c = 0.0, 0
    for r in 0 .. rows.Length - 1 do
        for j in 0 .. p - 1 do
            if hidden[rows[r], j] then
                let d = imputed[r, j] - truth[rows[r], j]
                s <- s + d * d
                c <- c + 1
    sqrt (s / float (max c 1))

for f in folds do
    let fold = Protocol.Split(table, foldIds, f)
    let train = fold.TrainRows
    let n = train.GetLength 0
    // 5% of the training rows' observed entries, never a row's last one, held out from every fit.
    let rng = Random(1000 + f)
    let heldTrain = Array2D.copy train
    let held = Array2D.zeroCreate<bool> n p
    for i in 0 .. n - 1 do
        let mutable observed = Seq.sum (seq { for j in 0 .. p - 1 -> if Double.IsNaN train[i, j] then 0 else 1 })
        for j in 0 .. p - 1 do
            if not (Double.IsNaN train[i, j]) && observed > 1 && rng.NextDouble() < 0.05 then
                heldTrain[i, j] <- nan
                held[i, j] <- true
                observed <- observed - 1
    let allRows = Array.init n id
    let lower = torch.tensor(Array.init p (fun j -> seq { for i in 0 .. n - 1 do if not (Double.IsNaN heldTrain[i, j]) then yield heldTrain[i, j] } |> Seq.min), dtype = f64)
    let upper = torch.tensor(Array.init p (fun j -> seq { for i in 0 .. n - 1 do if not (Double.IsNaN heldTrain[i, j]) then yield heldTrain[i, j] } |> Seq.max), dtype = f64)
    let xTrain, mTrain = split heldTrain
    let xTest, mTest = split fold.TestRows
    let clock = Diagnostics.Stopwatch.StartNew()
    let startFit, startTrain = fitMixture xTrain mTrain (Tensors.deriveSeed 0L (10 + f))
    let startTest = startFit.Fill(xTest, mTest, Threading.CancellationToken.None)
    let heldScore (x: Tensor) = rmseOn train held allRows (Tensors.toArray2D x)
    let testScore (x: Tensor) = rmseOn table.Values table.Hidden fold.TestRowIds (Tensors.toArray2D x)
    let line = Text.StringBuilder()
    line.AppendFormat("{0} fold {1}: start K={2} hold-out {3:F4} test {4:F4} ({5:F0} s)", name, f, (mixOf (startFit.Save())).K, heldScore startTrain, testScore startTest, clock.Elapsed.TotalSeconds) |> ignore
    let mutable xHat = startTrain
    let mutable xHatTest = startTest
    let mutable mixFit = startFit
    let settings = EMFlowOptions(Seed = 0L).ToFitSettings(p)
    // Per-row weights of L1 (n): the observed share to the power γ, or 1 for complete rows and 0 for the others.
    let rowWeights =
        use observed = (Tensors.oneMinus mTrain).mean([| 1L |])
        match weighting with
        | "complete" -> observed.ge(Tensors.sc 0.999).to_type(f64)
        | g when float g > 0.0 -> observed.pow(Tensors.sc (float g))
        | _ -> torch.ones_like(observed)
    for it in 1 .. iterations do
        let flow = Flow.create { settings.Flow with Seed = Tensors.deriveSeed 0L (100 + it); Hidden = defaultArg width settings.Flow.Hidden; Layers = defaultArg layers settings.Flow.Layers }
        use flat = new Optim.FlatParameters(Flow.parameters flow)
        use opt = new Optim.Adam(flat, settings.LearningRate)
        // Under the identity flow the latent vectors are x̂ itself: the mixture fitted on the data starts it.
        let mutable mix = mixOf (mixFit.Save())
        use gen = new torch.Generator(uint64 (1000 * f + it))
        let mutable lastL1 = nan
        for epoch in 1 .. epochs do
            let perm = torch.randperm(int64 n, generator = gen)
            let mutable s = 0L
            let mutable sum, count = 0.0, 0
            while s < int64 n do
                use scope = torch.NewDisposeScope()
                let len = min 256L (int64 n - s)
                let idx = perm.narrow(0L, s, len)
                let batch = xHat.index_select(0L, idx)
                let w = rowWeights.index_select(0L, idx)
                let z, logDet = Flow.toLatent flow batch
                let loss = -((logMix mix z + logDet) * w).sum() / (w.sum() + Tensors.sc 1e-12)
                opt.ZeroGrad()
                loss.backward()
                opt.ClipAndStep settings.Step.MaxGradNorm |> ignore
                sum <- sum + loss.item<float>()
                count <- count + 1
                s <- s + len
            lastL1 <- sum / float count
            if epoch % refitEvery = 0 || epoch = epochs then
                use _ = torch.no_grad()
                let z, _ = Flow.toLatent flow xHat
                let fitted, _ = fitMixture (z.detach()) mTrain (Tensors.deriveSeed 0L (1000 * f + 10 * it + epoch))
                mixFit <- fitted
                mix <- mixOf (fitted.Save())
        // Re-imputation of the training rows and of the test rows under the trained flow and the refitted mixture.
        let reimpute (x: Tensor) (m: Tensor) =
            use _ = torch.no_grad()
            let z, _ = Flow.toLatent flow x
            let zHat = mixFit.Fill(z.detach(), m, Threading.CancellationToken.None)
            let xTilde, _ = Flow.toData flow zHat
            Training.fillMissing lower upper xTilde x m
        xHat <- reimpute xHat mTrain
        xHatTest <- reimpute xHatTest mTest
        line.AppendFormat(" | it{0} K={1} L1 {2:F2} hold-out {3:F4} test {4:F4} ({5:F0} s)", it, mix.K, lastL1, heldScore xHat, testScore xHatTest, clock.Elapsed.TotalSeconds) |> ignore
    printfn "%s" (line.ToString())
    Console.Out.Flush()
