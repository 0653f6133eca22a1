/// The optimiser the library trains with. TorchSharp 0.107's own optimisers create temporary Scalars inside
/// step() (β1, 1 − β1, ε, the step size, ...), which a garbage collection on another thread can free while native
/// code still reads them (see Tensors.sc); this one holds every Scalar it passes until the call has returned.
module EMFlow.Optim

open System
open TorchSharp
open TorchSharp.Modules

/// Parameters moved into one flat buffer per element type, each parameter a view of its buffer: an optimiser then
/// updates all of them in a handful of operations instead of several per parameter, which at the flow's sizes are
/// dominated by the cost of each call rather than its arithmetic. The parameters keep their objects, shapes and
/// values; only their storage moves. Disposing this releases the buffers' own handles (the parameters keep the
/// storage alive).
[<Sealed>]
type FlatParameters(parameters: seq<Parameter>) =
    let ps = Seq.toArray parameters
    let groups =
        ps
        |> Array.groupBy (fun p -> p.dtype)
        |> Array.map (fun (kind, members) ->
            let total = members |> Array.sumBy (fun p -> p.numel())
            let buffer = torch.zeros(total, dtype = kind).DetachFromDisposeScope()
            use _ = torch.no_grad()
            use _ = torch.NewDisposeScope()
            let mutable offset = 0L
            for p in members do
                let n = p.numel()
                let view = buffer.narrow(0L, offset, n)
                view.copy_(p.reshape(-1L)) |> ignore
                p.set_(view.view(p.shape)) |> ignore
                offset <- offset + n
            buffer, members)

    // Gradient buffers laid out like the parameter buffers, each parameter's gradient a view of its own: backward then
    // accumulates into them in place, so zeroing and reading every gradient is one call per buffer, not one per
    // parameter plus a concatenation.
    let gradients = groups |> Array.map (fun (buffer, _) -> torch.zeros_like(buffer).DetachFromDisposeScope())
    let gradientViews =
        use _ = torch.no_grad()
        [| for (_, members), g in Array.zip groups gradients do
             let mutable offset = 0L
             for p in members do
                 let n = p.numel()
                 yield p, g.narrow(0L, offset, n).view(p.shape).DetachFromDisposeScope()
                 offset <- offset + n |]

    do
        use _ = torch.no_grad()
        use _ = torch.NewDisposeScope()
        for p, view in gradientViews do
            // A gradient the parameter already holds carries over.
            use existing = p.grad
            if not (isNull existing) then view.copy_(existing) |> ignore
            p.grad <- view

    /// The parameters, in the order given.
    member _.Parameters = ps

    /// (buffer, its parameters in buffer order) per element type.
    member internal _.Groups = groups

    /// The gradient buffers, one per element type, each holding its parameters' gradients in buffer order: new handles
    /// (aliases) in the caller's dispose scope; scaling one in place scales those gradients. A parameter that received no
    /// gradient since the last <c>ZeroGradients</c> contributes zeros, which leaves Adam's update of it as torch's would
    /// be after a zero gradient; the separate form skips it, but the flow's parameters always have one.
    member internal _.Gradients() : torch.Tensor[] = gradients |> Array.map (fun g -> g.alias())

    /// Points every parameter's gradient at its view of the gradient buffers and zeroes the buffers. Pointing them
    /// again each time keeps the buffers right even after someone else has set a gradient to null or to a new tensor.
    member internal _.ZeroGradients() =
        for p, view in gradientViews do p.grad <- view
        use _ = torch.no_grad()
        use _ = torch.NewDisposeScope()
        for g in gradients do g.zero_() |> ignore

    interface IDisposable with
        member _.Dispose() =
            for buffer, _ in groups do buffer.Dispose()
            for _, view in gradientViews do view.Dispose()
            for g in gradients do g.Dispose()

/// Adam (Kingma and Ba, 2015) without weight decay or AMSGrad. The update is torch.optim.Adam's of TorchSharp
/// 0.107, operation for operation, so parameters come out bit for bit as they would from torch.optim.Adam with
/// the same settings. Over <see cref="FlatParameters"/> the same arithmetic runs on whole buffers at once.
[<Sealed>]
type Adam private (parameters: Parameter[], flat: FlatParameters option, learningRate: float, beta1: float, beta2: float, eps: float) =
    let ps = parameters
    do
        if not (learningRate > 0.0) then
            raise (ArgumentOutOfRangeException("learningRate", learningRate, sprintf "must be positive; got %g" learningRate))
    let targets =
        match flat with
        | Some f -> f.Groups |> Array.map fst
        | None -> ps |> Array.map (fun p -> p :> torch.Tensor)
    let state () = targets |> Array.map (fun p -> torch.zeros_like(p).DetachFromDisposeScope())
    let expAvg = state ()
    let expAvgSq = state ()
    let mutable steps = 0L

    /// Adam with the given β1, β2 and ε over separate parameters.
    new(parameters: seq<Parameter>, learningRate: float, beta1: float, beta2: float, eps: float) =
        new Adam(Seq.toArray parameters, None, learningRate, beta1, beta2, eps)

    /// Adam with β1 = 0.9, β2 = 0.999, ε = 1e-8 (torch's defaults).
    new(parameters: seq<Parameter>, learningRate: float) = new Adam(Seq.toArray parameters, None, learningRate, 0.9, 0.999, 1e-8)

    /// Adam with torch's defaults over parameters in flat buffers; several optimisers may share them.
    new(parameters: FlatParameters, learningRate: float) = new Adam(parameters.Parameters, Some parameters, learningRate, 0.9, 0.999, 1e-8)

    /// The parameters this optimiser updates.
    member _.Parameters : Parameter[] = ps

    /// Steps taken so far.
    member _.Steps = steps

    /// Sets every parameter's gradient to zero.
    member _.ZeroGrad() =
        match flat with
        | Some f -> f.ZeroGradients()
        | None ->
            for p in ps do
                use g = p.grad
                if not (isNull g) then g.zero_() |> ignore

    /// One update of every parameter that has a gradient.
    member this.Step() = this.StepGradients None

    /// Scales the gradients down to a total norm of at most maxNorm, as torch.nn.utils.clip_grad_norm_ does, and takes a
    /// step; a non-finite norm takes none and zeroes the gradients instead, since it would poison every parameter
    /// through the moments. Returns the norm before scaling.
    member this.ClipAndStep(maxNorm: float) : float =
        match flat with
        | None ->
            let norm = torch.nn.utils.clip_grad_norm_(ps, maxNorm)
            if Double.IsFinite norm then this.Step() else this.ZeroGrad()
            norm
        | Some f ->
            use _ = torch.no_grad()
            use _ = torch.NewDisposeScope()
            let grads = f.Gradients()
            let squares = grads |> Array.sumBy (fun g -> let n = g.to_type(torch.float64).norm().item<float>() in n * n)
            let norm = sqrt squares
            if Double.IsFinite norm then
                let coefficient = maxNorm / (norm + 1e-6)
                if coefficient < 1.0 then
                    use c = Scalar.op_Implicit coefficient
                    for g in grads do g.mul_(c) |> ignore
                this.StepGradients (Some grads)
            else this.ZeroGrad()
            norm

    member private _.StepGradients(flatGrads: torch.Tensor[] option) =
        steps <- steps + 1L
        let biasCorrection1 = 1.0 - Math.Pow(beta1, float steps)
        let biasCorrection2 = 1.0 - Math.Pow(beta2, float steps)
        use sBeta1 = Scalar.op_Implicit beta1
        use sOneMinusBeta1 = Scalar.op_Implicit (1.0 - beta1)
        use sBeta2 = Scalar.op_Implicit beta2
        use sOneMinusBeta2 = Scalar.op_Implicit (1.0 - beta2)
        use sEps = Scalar.op_Implicit eps
        use sOne = Scalar.op_Implicit 1L
        use sSqrtBias2 = Scalar.op_Implicit (Math.Sqrt biasCorrection2)
        use sNegStepSize = Scalar.op_Implicit (-(learningRate / biasCorrection1))
        use _ = torch.no_grad()
        use _ = torch.NewDisposeScope()
        let grads =
            match flatGrads, flat with
            | Some g, _ -> g
            | None, Some f -> f.Gradients()
            | None, None -> ps |> Array.map (fun p -> p.grad)
        for i in 0 .. targets.Length - 1 do
            let g = grads[i]
            if not (isNull g) then
                expAvg[i].mul_(sBeta1).add_(g, sOneMinusBeta1) |> ignore
                expAvgSq[i].mul_(sBeta2).addcmul_(g, g, sOneMinusBeta2) |> ignore
                let denom = expAvgSq[i].sqrt().div_(sSqrtBias2).add_(sEps, sOne)
                targets[i].addcdiv_(expAvg[i], denom, sNegStepSize) |> ignore

    interface IDisposable with
        member _.Dispose() =
            for t in expAvg do t.Dispose()
            for t in expAvgSq do t.Dispose()
