/// The optimiser the library trains with. TorchSharp 0.107's own optimisers create temporary Scalars inside
/// step() (β1, 1 − β1, ε, the step size, ...), which a garbage collection on another thread can free while native
/// code still reads them (see Tensors.sc); this one holds every Scalar it passes until the call has returned.
module EMFlow.Optim

open System
open TorchSharp
open TorchSharp.Modules

/// Adam (Kingma and Ba, 2015) without weight decay or AMSGrad. The update is torch.optim.Adam's of TorchSharp
/// 0.107, operation for operation, so parameters come out bit for bit as they would from torch.optim.Adam with
/// the same settings.
[<Sealed>]
type Adam(parameters: seq<Parameter>, learningRate: float, beta1: float, beta2: float, eps: float) =
    let ps = Seq.toArray parameters
    do
        if not (learningRate > 0.0) then
            raise (ArgumentOutOfRangeException("learningRate", learningRate, sprintf "must be positive; got %g" learningRate))
    let state () = ps |> Array.map (fun p -> torch.zeros_like(p).DetachFromDisposeScope())
    let expAvg = state ()
    let expAvgSq = state ()
    let mutable steps = 0L

    /// Adam with β1 = 0.9, β2 = 0.999, ε = 1e-8 (torch's defaults).
    new(parameters: seq<Parameter>, learningRate: float) = new Adam(parameters, learningRate, 0.9, 0.999, 1e-8)

    /// The parameters this optimiser updates.
    member _.Parameters : Parameter[] = ps

    /// Steps taken so far.
    member _.Steps = steps

    /// Sets every parameter's gradient to zero.
    member _.ZeroGrad() =
        for p in ps do
            use g = p.grad
            if not (isNull g) then g.zero_() |> ignore

    /// One update of every parameter that has a gradient.
    member _.Step() =
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
        for i in 0 .. ps.Length - 1 do
            let g = ps[i].grad
            if not (isNull g) then
                expAvg[i].mul_(sBeta1).add_(g, sOneMinusBeta1) |> ignore
                expAvgSq[i].mul_(sBeta2).addcmul_(g, g, sOneMinusBeta2) |> ignore
                let denom = expAvgSq[i].sqrt().div_(sSqrtBias2).add_(sEps, sOne)
                ps[i].addcdiv_(expAvg[i], denom, sNegStepSize) |> ignore

    interface IDisposable with
        member _.Dispose() =
            for t in expAvg do t.Dispose()
            for t in expAvgSq do t.Dispose()
