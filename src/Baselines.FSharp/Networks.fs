/// Small fully connected networks for the deep baselines (GAIN, MIWAE), float64 and initialised from an
/// explicit generator, never from torch's global seed.
module EMFlow.Networks

open System
open TorchSharp
open EMFlow.Tensors

/// Hidden-layer nonlinearity.
type Activation =
    | Relu
    | Tanh

/// A multilayer perceptron dims[0] → dims[1] → … → dims[last], with `activation` between layers and none after
/// the last (callers apply their own output map). Weights are Xavier-uniform, biases zero.
type Mlp(name: string, dims: int[], activation: Activation, seed: int64) as this =
    inherit torch.nn.Module(name)

    do
        if isNull dims || dims.Length < 2 then invalidArg "dims" "needs an input and an output size"
        if dims |> Array.exists (fun d -> d < 1) then invalidArg "dims" (sprintf "sizes must be at least 1; got %A" dims)

    let weights =
        Array.init (dims.Length - 1) (fun i ->
            new Modules.Parameter(torch.zeros([| int64 dims[i + 1]; int64 dims[i] |], dtype = dtype), true))
    let biases =
        Array.init (dims.Length - 1) (fun i -> new Modules.Parameter(torch.zeros([| int64 dims[i + 1] |], dtype = dtype), true))

    do
        use gen = generator seed
        use _ = torch.no_grad()
        for i in 0 .. weights.Length - 1 do
            let bound = Math.Sqrt(6.0 / float (dims[i] + dims[i + 1]))
            weights[i].uniform_(-bound, bound, gen) |> ignore
        weights |> Array.iteri (fun i w -> this.register_parameter(sprintf "w%d" i, w); w.DetachFromDisposeScope() |> ignore)
        biases |> Array.iteri (fun i b -> this.register_parameter(sprintf "b%d" i, b); b.DetachFromDisposeScope() |> ignore)

    /// (B, dims[0]) → (B, dims[last]).
    member _.Apply(x: Tensor) : Tensor =
        let mutable h = x
        for i in 0 .. weights.Length - 1 do
            let lin = torch.nn.functional.linear(h, weights[i], biases[i])
            h <-
                if i = weights.Length - 1 then lin
                else
                    match activation with
                    | Relu -> torch.nn.functional.relu(lin)
                    | Tanh -> lin.tanh()
        h

    /// The learnable parameters, for an optimiser.
    member _.Parameters : Modules.Parameter[] = Array.append weights biases
