// Is autograd's bookkeeping what a training step of the demo's flow pays for? The L1 loss of one batch and its gradient
// with respect to every flow parameter, computed twice: by the library (Training.l1Loss, then backward) and by hand
// with the same torch operations and no autograd graph (the chain rule through each coupling written out). Prints the
// largest relative difference between the two gradients and the milliseconds of each, alternating, one torch thread.
// The flow is the library's default for the demo's table (p = 7: six couplings, one ReLU network of 2 x 128 for s and
// t, float32 networks), batch 256, its parameters moved off the identity so that every term is non-zero.
// Run after ./build.sh build:  dotnet fsi bench/step-backward.fsx [rounds, default 3]
#load "LibraryProcess.fsx"
open System
open System.Diagnostics
open TorchSharp
open EMFlow
open EMFlow.Tensors
type Tensor = torch.Tensor

let rounds = fsi.CommandLineArgs |> Array.tryItem 1 |> Option.map int |> Option.defaultValue 3
let p = 7
let settings = EMFlowOptions(Seed = 1L, TorchThreads = 1).ToFitSettings(p)
if settings.Flow.Network <> Flow.CouplingNetwork.DenseJoint || settings.Flow.Activation <> CouplingNetworks.Relu || settings.Flow.Depth <> 2 then
    failwith "written for one joint ReLU network of depth 2 per coupling, the library's default"
let flow = Flow.create { settings.Flow with Features = p }
(use _ = torch.no_grad()
 use gen = new torch.Generator(5UL)
 for q in Flow.parameters flow do
     use noise = torch.randn(q.shape, dtype = q.dtype, generator = gen)
     q.add_(noise, sc 0.05) |> ignore)
let named = dict [ for struct (name, q) in flow.named_parameters() -> name, q ]
let layers = flow.Couplings
let count = layers.Length
let kept = layers |> Array.map (fun l -> torch.tensor(l.Kept, dtype = torch.int64))
let transformed = layers |> Array.map (fun l -> torch.tensor(l.Transformed, dtype = torch.int64))
let x = torch.rand(256L, int64 p, dtype = torch.float64, generator = new torch.Generator(3UL))
let e = GaussianEm.withRidge 1e-6 (Training.initialEstimate flow 1e-6 x)

/// L1 and its gradient by hand. Data to latent runs the layers last to first; with alternating masks each layer keeps
/// what the one before it transformed, so the rows stay split in two parts from layer to layer, as the flow does.
let byHand () : float * (string * Tensor)[] =
    use _ = torch.no_grad()
    let n = float x.shape[0]
    let order = Array.init count (fun i -> count - 1 - i)
    let mutable a = x.index_select(1L, kept[order[0]])
    let mutable b = x.index_select(1L, transformed[order[0]])
    let saved = Array.zeroCreate count
    let scales = ResizeArray()
    for k in order do
        let pre = sprintf "coupling%d.st." k
        let h0 = a.to_type(torch.float32)
        let h1 = torch.nn.functional.relu(torch.nn.functional.linear(h0, named[pre + "w0"], named[pre + "b0"]))
        let h2 = torch.nn.functional.relu(torch.nn.functional.linear(h1, named[pre + "w1"], named[pre + "b1"]))
        let o = torch.nn.functional.linear(h2, named[pre + "w2"], named[pre + "b2"]).to_type(torch.float64)
        let m = int64 layers[k].Transformed.Length
        let th = o.narrow(1L, 0L, m).tanh()
        let s = th * named[sprintf "coupling%d.scale" k]
        let shrink = s.neg().exp()
        let z = (b - o.narrow(1L, m, m)) * shrink
        saved[k] <- (h0, h1, h2, th, shrink, z)
        scales.Add(s.sum(1L))
        if k <> order[count - 1] then
            b <- a
            a <- z
        else b <- z
    let last = order[count - 1]
    let latent = torch.zeros_like(x)
    latent.index_copy_(1L, kept[last], a) |> ignore
    latent.index_copy_(1L, transformed[last], b) |> ignore
    let logDet = torch.stack(scales.ToArray(), 1L).sum(1L).neg()
    let loss = (Gaussian.logDensity e.Mu e.Sigma latent + logDet).mean().neg()
    // d L / d z = Σ⁻¹ (z − μ) / n per row; d L / d s = 1 / n for every entry of every layer's s.
    let gradLatent = torch.cholesky_solve((latent - e.Mu).T, Gaussian.cholesky e.Sigma).T |> divideBy n
    let mutable gradPassed = gradLatent.index_select(1L, kept[last])
    let mutable gradZ = gradLatent.index_select(1L, transformed[last])
    let grads = ResizeArray()
    for position in count - 1 .. -1 .. 0 do
        let k = order[position]
        let pre = sprintf "coupling%d.st." k
        let scale = named[sprintf "coupling%d.scale" k]
        let h0, h1, h2, th, shrink, z = saved[k]
        let gradB = gradZ * shrink
        let gradS = (gradZ * z).neg().add(sc (1.0 / n))
        let gradRaw = gradS * scale * (th * th).neg().add(sc 1.0)
        let gradOut = torch.cat([| gradRaw; gradB.neg() |], 1L).to_type(torch.float32)
        grads.Add(pre + "w2", gradOut.T.mm(h2))
        grads.Add(pre + "b2", gradOut.sum(0L))
        let gradU2 = gradOut.mm(named[pre + "w2"]) * h2.gt(sc 0.0)
        grads.Add(pre + "w1", gradU2.T.mm(h1))
        grads.Add(pre + "b1", gradU2.sum(0L))
        let gradU1 = gradU2.mm(named[pre + "w1"]) * h1.gt(sc 0.0)
        grads.Add(pre + "w0", gradU1.T.mm(h0))
        grads.Add(pre + "b0", gradU1.sum(0L))
        grads.Add(sprintf "coupling%d.scale" k, (gradS * th).sum(0L))
        // This layer's kept input was passed through as the next layer's transformed part, and its output z is the
        // next layer's kept part: in reverse, the gradients swap roles the same way.
        gradZ <- gradPassed + gradU1.mm(named[pre + "w0"]).to_type(torch.float64)
        gradPassed <- gradB
    loss.item<float>(), grads.ToArray()

/// L1 and its gradient through autograd, left in the parameters' gradients as a training step leaves them.
let autogradStep () =
    for q in Flow.parameters flow do
        if not (isNull q.grad) then q.grad.zero_() |> ignore
    let loss = Training.l1Loss flow e x
    loss.backward()
    loss.item<float>()

let byAutograd () =
    let loss = autogradStep ()
    loss, dict [ for struct (name, q) in flow.named_parameters() -> name, q.grad.clone() ]

let lossHand, gradHand = byHand ()
let lossAuto, gradAuto = byAutograd ()
let worst =
    gradHand |> Array.map (fun (name, g) ->
        use r = gradAuto[name].to_type(torch.float64)
        use d = g.to_type(torch.float64) - r
        d.abs().max().item<float>() / (r.abs().max().item<float>() + 1e-300)) |> Array.max
printfn "L1: autograd %.12g, by hand %.12g; largest relative gradient difference %.1e over %d parameters" lossAuto lossHand worst gradHand.Length
let time (f: unit -> unit) =
    for _ in 1 .. 100 do f ()
    let clock = Stopwatch.StartNew()
    for _ in 1 .. 300 do f ()
    clock.Elapsed.TotalMilliseconds / 300.0
printfn "| round | autograd ms | by hand ms |"
printfn "|---|---|---|"
for r in 1 .. rounds do
    let auto = time (fun () -> use _ = torch.NewDisposeScope() in autogradStep () |> ignore)
    let hand = time (fun () -> use _ = torch.NewDisposeScope() in byHand () |> ignore)
    printfn "| %d | %.2f | %.2f |" r auto hand
