module EMFlow.Tests.FusedL1Tests

open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors

/// The library's default flow for p features (one float32 ReLU network for s and t per coupling) of the given width,
/// moved off the identity so that every term of the gradient is non-zero.
let private movedFlow (p: int) (width: int) (seed: uint64) =
    let config = { Flow.defaultConfig p 1L with Network = Flow.DenseJoint; SingleNetworks = true; Activation = CouplingNetworks.Relu; Hidden = width }
    let flow = Flow.create config
    use _ = torch.no_grad()
    use gen = new torch.Generator(seed)
    for q in Flow.parameters flow do
        use noise = torch.randn(q.shape, dtype = q.dtype, generator = gen)
        q.add_(noise, sc 0.2) |> ignore
    flow

let private zeroGradients (flow: Flow.Flow) =
    for q in Flow.parameters flow do
        use g = q.grad
        if not (isNull g) then g.zero_() |> ignore

[<Tests>]
let tests =
    testSequenced <| testList "FusedL1" [
        // Odd and even p (parts of unequal and equal size), p = 2 (one feature a part), widths that are and are not a
        // multiple of the vector width, with and without row weights.
        for p, width, gamma in [ 7, 24, 0.0; 8, 19, 2.0; 2, 16, 0.0; 5, 33, 1.5 ] do
            test $"L1, the latent vectors and every parameter's gradient are autograd's (p = {p}, width {width}, γ = {gamma})" {
                use flow = movedFlow p width (uint64 p)
                use x = torch.rand(100L, int64 p, dtype = dtype, generator = new torch.Generator(3UL))
                use mask = torch.rand(100L, int64 p, dtype = dtype, generator = new torch.Generator(4UL)).lt(sc 0.3).to_type(dtype)
                let e = GaussianEm.withRidge 1e-6 (Training.initialEstimate flow 1e-6 x)
                let ps = Flow.parameters flow
                zeroGradients flow
                let loss, z = FusedL1.lossAndGradient flow e gamma x mask
                use z = z
                let fused = ps |> Array.map (fun q -> q.grad.to_type(dtype).clone())
                zeroGradients flow
                let zRef, logDet = Flow.toLatent flow x
                use reference = Training.weightedNegativeMean gamma (Gaussian.logDensity e.Mu e.Sigma zRef + logDet) mask
                reference.backward()
                Expect.floatClose Accuracy.veryHigh loss (scalar reference) "L1"
                Expect.isLessThan (TestUtil.maxAbs z (zRef.detach())) 1e-12 "f⁻¹(x̂)"
                for q, g in Array.zip ps fused do
                    use r = q.grad.to_type(dtype)
                    // The networks compute in float32, so their gradients agree to float32 rounding of sums over rows.
                    let scale = max (scalar (r.abs().max())) 1e-12
                    Expect.isLessThan (TestUtil.maxAbs g r / scale) 1e-4 "gradient, relative to its largest entry"
            }

        test "the flows it is written for: the default kind, not tanh, float64, separate networks or one coupling" {
            let base' = { Flow.defaultConfig 6 1L with Network = Flow.DenseJoint; SingleNetworks = true; Activation = CouplingNetworks.Relu }
            use ok = Flow.create base'
            Expect.isTrue (FusedL1.supports ok) "the library's default"
            for config in [ { base' with Activation = CouplingNetworks.Tanh }; { base' with SingleNetworks = false }
                            { base' with Network = Flow.Dense }; { base' with Layers = 1 }; { base' with Features = 1 } ] do
                use flow = Flow.create config
                Expect.isFalse (FusedL1.supports flow) (sprintf "%A" config)
        }

        test "a training step takes the same step through either gradient" {
            let p = 5
            let settings = (EMFlowOptions(Seed = 3L, TorchThreads = 1)).ToFitSettings(p).Step
            let run fused =
                use flow = movedFlow p 32 9UL
                use flat = new Optim.FlatParameters(Flow.parameters flow)
                use opt1 = new Optim.Adam(flat, 1e-3)
                use opt2 = new Optim.Adam(flat, 1e-3)
                use x = torch.rand(64L, int64 p, dtype = dtype, generator = new torch.Generator(5UL))
                use mask = torch.rand(64L, int64 p, dtype = dtype, generator = new torch.Generator(6UL)).lt(sc 0.2).to_type(dtype)
                let state = OnlineEm.init OnlineEm.Moments 0 (Training.initialEstimate flow 1e-6 x)
                let next, losses, z = Training.trainStepWithLatent { settings with FusedGradient = fused } flow opt1 opt2 state x mask
                z |> Option.iter (fun t -> t.Dispose())
                let values = Flow.state flow
                let mu = next.Estimate.Mu.clone()
                OnlineEm.release next None
                losses.L1, values, mu
            let l1Fused, fused, muFused = run true
            let l1Auto, auto, muAuto = run false
            Expect.floatClose Accuracy.veryHigh l1Fused l1Auto "L1"
            Expect.isLessThan (TestUtil.maxAbs muFused muAuto) 1e-12 "the online M-step's μ"
            for KeyValue(name, v) in auto do
                // One Adam step moves each parameter by about the learning rate, whatever the gradient's size.
                Expect.isLessThan (TestUtil.maxAbs (fused[name].to_type(dtype)) (v.to_type(dtype))) 1e-6 name
        }
    ]
