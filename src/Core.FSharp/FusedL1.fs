/// The flow's loss L1 (eq. 11) and its gradient for the library's default flow, computed by hand instead of through
/// autograd: the matrix products stay torch's, and each coupling's element-wise work (the affine map, its
/// log-determinant, the ReLU masks, the bias gradients) runs in one pass over the rows' memory.
/// <remarks>
/// A training step of the default flow on a few hundred rows is dominated by the cost of each torch call rather than by
/// its arithmetic: about 240 calls for L1 and its gradient, a few to tens of microseconds each, against about 1.5 ms of
/// matrix products (bench/README.md, "Where a step's time goes"). Writing the same chain rule with torch calls alone
/// saved 5%, so the saving has to come from fewer calls: here about a dozen per coupling. The gradient is the same
/// function as autograd's: the loss and the latent vectors agree to float64 rounding, and each parameter's gradient to
/// 1e-4 of its largest entry (sums over rows in float32 in another order), on random flows and batches (tests).
/// </remarks>
module EMFlow.FusedL1

#nowarn "9" // NativePtr over tensors' memory

open System
open System.Numerics
open Microsoft.FSharp.NativeInterop
open TorchSharp
open EMFlow.Tensors
open EMFlow.CouplingNetworks

/// The parameter's gradient, created as zeros when it has none yet; a new handle the caller disposes.
let private gradientOf (p: Modules.Parameter) : Tensor =
    let g = p.grad
    if isNull g then
        use _ = torch.no_grad()
        let zeros = torch.zeros_like(p).DetachFromDisposeScope()
        p.grad <- zeros
        p.grad
    else g

/// True when <see cref="lossAndGradient"/> computes this flow's L1: a RealNVP flow of at least two couplings that keep
/// what the one before transformed (alternating masks, p ≥ 2), each with one dense float32 network for s and t with
/// ReLU between at least one hidden layer. The library's default flow for tables is one.
let supports (flow: FlowLayer.FlowLayer) : bool =
    match flow with
    | :? Flow.Flow as f ->
        let c = f.Config
        f.CarriesParts && c.Network = Flow.DenseJoint && c.SingleNetworks && c.Activation = Relu && c.Depth >= 1
        && f.Couplings |> Array.forall (fun l ->
            match l.JointNetwork with
            | Some net -> net.Compute = torch.float32 && net.Activation = Relu
            | None -> false)
    | _ -> false

/// One coupling's tensors and values kept from the pass for the gradient.
type private Saved =
    { /// The network's input and each hidden layer's output after ReLU, float32 (B, width).
      Hidden: Tensor[]
      /// tanh of the raw scale (B, |B|), row-major.
      Tanh: float[]
      /// exp(−s) (B, |B|), row-major.
      Shrink: float[]
      /// The layer's output z_B (B, |B|), float64.
      Z: Tensor }

/// L1 = −Σ_i w_i log p_X(x̂_i) / Σ_i w_i over the batch (w_i = 1, or the row's observed share to the power γ as in
/// <c>Training.weightedNegativeMean</c>) under the flow and the latent N(μ, Σ), and its gradient with respect to every
/// parameter of the flow, added to the parameters' gradients (the caller zeroes them first, as before a backward pass).
/// Nothing is recorded for autograd.
/// <param name="flow">A flow that <see cref="supports"/> accepts.</param>
/// <param name="e">The latent Gaussian as used (ridge added): μ (p), Σ (p, p).</param>
/// <param name="gamma">γ ≥ 0 of the row weights.</param>
/// <param name="xHat">(B, p) float64 rows, the current imputations.</param>
/// <param name="mask">(B, p) 1.0 where the entry is imputed.</param>
/// <returns>L1, and the rows' latent vectors f⁻¹(x̂) (B, p) float64, detached, which the caller owns.</returns>
let lossAndGradient (flow: Flow.Flow) (e: OnlineEm.Estimate) (gamma: float) (xHat: Tensor) (mask: Tensor) : float * Tensor =
    if not (supports flow) then invalidArg "flow" "is not a flow this gradient is written for (FusedL1.supports)"
    use _ = torch.no_grad()
    use scope = torch.NewDisposeScope()
    let layers = flow.Couplings
    let count = layers.Length
    let rows = int xHat.shape[0]
    let p = int xHat.shape[1]
    let x = xHat.to_type(dtype).contiguous()
    // Data to latent runs the layers last to first; each keeps what the one before it transformed.
    let order = Array.init count (fun i -> count - 1 - i)
    let keptIdx0, transIdx0 = layers[order[0]].PartIndices
    let mutable a = x.index_select(1L, keptIdx0)
    let mutable b = x.index_select(1L, transIdx0)
    let sumS = Array.zeroCreate<float> rows
    let saved = Array.zeroCreate<Saved> count
    for k in order do
        let layer = layers[k]
        let net = layer.JointNetwork.Value
        let depth = net.Dims.Length - 2
        let ps = net.Parameters
        let m = layer.Transformed.Length
        let hidden = Array.zeroCreate<Tensor> (depth + 1)
        hidden[0] <- a.to_type(torch.float32)
        for i in 0 .. depth - 1 do
            let u = torch.nn.functional.linear(hidden[i], ps[i], ps[depth + 1 + i])
            u.relu_() |> ignore
            hidden[i + 1] <- u
        let out = torch.nn.functional.linear(hidden[depth], ps[depth], ps[2 * depth + 1])
        let z = torch.empty(int64 rows, int64 m, dtype = dtype)
        let th = Array.zeroCreate<float> (rows * m)
        let shrink = Array.zeroCreate<float> (rows * m)
        let po = address<float32> out
        let pb = address<float> b
        let pz = address<float> z
        let pscale = address<float> layer.Scale
        for r in 0 .. rows - 1 do
            let mutable sum = 0.0
            for j in 0 .. m - 1 do
                let t = tanh (float (NativePtr.get po (r * 2 * m + j)))
                let s = t * NativePtr.get pscale j
                let sh = exp (-s)
                let at = r * m + j
                th[at] <- t
                shrink[at] <- sh
                NativePtr.set pz at ((NativePtr.get pb at - float (NativePtr.get po (r * 2 * m + m + j))) * sh)
                sum <- sum + s
            sumS[r] <- sumS[r] + sum
        saved[k] <- { Hidden = hidden; Tanh = th; Shrink = shrink; Z = z }
        if k <> order[count - 1] then
            b <- a
            a <- z
        else b <- z
    let last = layers[order[count - 1]]
    let keptLast, transLast = last.Kept, last.Transformed
    let latent = torch.empty(int64 rows, int64 p, dtype = dtype)
    (let pl = address<float> latent
     let pa = address<float> a
     let pb = address<float> b
     for r in 0 .. rows - 1 do
         for j in 0 .. keptLast.Length - 1 do NativePtr.set pl (r * p + int keptLast[j]) (NativePtr.get pa (r * keptLast.Length + j))
         for j in 0 .. transLast.Length - 1 do NativePtr.set pl (r * p + int transLast[j]) (NativePtr.get pb (r * transLast.Length + j)))
    // log N(z; μ, Σ) and its gradient Σ⁻¹ (z − μ), both from one Cholesky factor.
    let chol = (Gaussian.cholesky e.Sigma).contiguous()
    let centred = (latent - e.Mu).T
    let solved = torch.linalg.solve_triangular(chol, centred, upper = false).contiguous()
    let precisionTimes = torch.linalg.solve_triangular(chol.T, solved, upper = true).contiguous()
    let pc = address<float> chol
    let mutable logDetSigma = 0.0
    for i in 0 .. p - 1 do logDetSigma <- logDetSigma + 2.0 * log (NativePtr.get pc (i * p + i))
    let constant = -0.5 * logDetSigma - 0.5 * float p * log (2.0 * Math.PI)
    let weights =
        if gamma = 0.0 then Array.create rows 1.0
        else
            let m = mask.to_type(dtype).contiguous()
            let pm = address<float> m
            Array.init rows (fun r ->
                let mutable missing = 0.0
                for j in 0 .. p - 1 do missing <- missing + NativePtr.get pm (r * p + j)
                Math.Pow((float p - missing) / float p, gamma))
    let total = max (Array.sum weights) 1e-12
    let py = address<float> solved
    let pg = address<float> precisionTimes
    let mutable loss = 0.0
    let rowWeight = Array.zeroCreate<float> rows
    let gradPassed = Array.zeroCreate<float> (rows * keptLast.Length)
    let gradZ = Array.zeroCreate<float> (rows * transLast.Length)
    for r in 0 .. rows - 1 do
        let mutable maha = 0.0
        for i in 0 .. p - 1 do
            let y = NativePtr.get py (i * rows + r)
            maha <- maha + y * y
        // log p_X = log N(z) + log|det ∂f⁻¹/∂x|, and the inverse's log-determinant is −Σ s.
        let logP = -0.5 * maha + constant - sumS[r]
        let c = weights[r] / total
        loss <- loss - c * logP
        rowWeight[r] <- c
        for j in 0 .. keptLast.Length - 1 do gradPassed[r * keptLast.Length + j] <- c * NativePtr.get pg (int keptLast[j] * rows + r)
        for j in 0 .. transLast.Length - 1 do gradZ[r * transLast.Length + j] <- c * NativePtr.get pg (int transLast[j] * rows + r)
    // Back through the layers, first to last. A layer's output z is the next layer's kept part and its kept input is
    // passed on as the next layer's transformed part, so in reverse the two gradients swap roles the same way.
    let mutable gz = gradZ
    let mutable gPassed = gradPassed
    for position in count - 1 .. -1 .. 0 do
        let k = order[position]
        let layer = layers[k]
        let net = layer.JointNetwork.Value
        let depth = net.Dims.Length - 2
        let ps = net.Parameters
        let m = layer.Transformed.Length
        let keptCount = layer.Kept.Length
        let s = saved[k]
        let gradB = Array.zeroCreate<float> (rows * m)
        let gradScale = Array.zeroCreate<float> m
        let biasOut = Array.zeroCreate<float> (2 * m)
        let gradOut = torch.empty(int64 rows, int64 (2 * m), dtype = torch.float32)
        let pgo = address<float32> gradOut
        let pz = address<float> s.Z
        let pscale = address<float> layer.Scale
        for r in 0 .. rows - 1 do
            for j in 0 .. m - 1 do
                let at = r * m + j
                let g = gz[at]
                let gb = g * s.Shrink[at]
                // z = (b − t) exp(−s): ∂z/∂b = exp(−s), ∂z/∂t = −exp(−s), ∂z/∂s = −z; and L holds +Σ s per row.
                let gs = rowWeight[r] - g * NativePtr.get pz at
                let t = s.Tanh[at]
                gradScale[j] <- gradScale[j] + gs * t
                let raw = float32 (gs * NativePtr.get pscale j * (1.0 - t * t))
                let shift = float32 (-gb)
                gradB[at] <- gb
                NativePtr.set pgo (r * 2 * m + j) raw
                NativePtr.set pgo (r * 2 * m + m + j) shift
                biasOut[j] <- biasOut[j] + float raw
                biasOut[m + j] <- biasOut[m + j] + float shift
        (use g = gradientOf ps[depth]
         g.addmm_(gradOut.T, s.Hidden[depth]) |> ignore)
        (use g = gradientOf ps[2 * depth + 1]
         let pgb = address<float32> g
         for j in 0 .. 2 * m - 1 do NativePtr.set pgb j (NativePtr.get pgb j + float32 biasOut[j]))
        (use g = gradientOf layer.Scale
         let pgs = address<float> g
         for j in 0 .. m - 1 do NativePtr.set pgs j (NativePtr.get pgs j + gradScale[j]))
        let mutable dh = gradOut.mm(ps[depth])
        for i in depth - 1 .. -1 .. 0 do
            // ReLU passes the gradient where its output was positive (torch's rule, 0 at 0); the bias's gradient is
            // the column sum of what passes.
            let h = s.Hidden[i + 1]
            let width = int h.shape[1]
            let ph = address<float32> h
            let pd = address<float32> dh
            let bias = Array.zeroCreate<float32> width
            // Branch-free: about half the units are active, so a branch per entry would be mispredicted half the time.
            let lanes = Vector<float32>.Count
            let whole = width / lanes * lanes
            let sums = Array.create (whole / lanes) Vector<float32>.Zero
            for r in 0 .. rows - 1 do
                let hr = NativePtr.add ph (r * width)
                let dr = NativePtr.add pd (r * width)
                for v in 0 .. sums.Length - 1 do
                    let hv = Vector.Load(NativePtr.add hr (v * lanes))
                    let dv = Vector.Load(NativePtr.add dr (v * lanes))
                    let passed = Vector.ConditionalSelect(Vector.GreaterThan(hv, Vector<float32>.Zero), dv, Vector<float32>.Zero)
                    passed.Store(NativePtr.add dr (v * lanes))
                    sums[v] <- sums[v] + passed
                for c in whole .. width - 1 do
                    let passed = if NativePtr.get hr c > 0.0f then NativePtr.get dr c else 0.0f
                    NativePtr.set dr c passed
                    bias[c] <- bias[c] + passed
            for v in 0 .. sums.Length - 1 do
                for l in 0 .. lanes - 1 do bias[v * lanes + l] <- sums[v][l]
            (use g = gradientOf ps[depth + 1 + i]
             let pgb = address<float32> g
             for c in 0 .. width - 1 do NativePtr.set pgb c (NativePtr.get pgb c + bias[c]))
            (use g = gradientOf ps[i]
             g.addmm_(dh.T, s.Hidden[i]) |> ignore)
            dh <- dh.mm(ps[i])
        let pd = address<float32> dh
        let gradA = Array.init (rows * keptCount) (fun at -> gPassed[at] + float (NativePtr.get pd at))
        gz <- gradA
        gPassed <- gradB
    loss, latent.MoveToOuterDisposeScope()
