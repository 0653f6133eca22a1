/// The deep baselines' networks (GAIN, MIWAE, MCFlow's latent network): the core's shared MLP
/// (<see cref="T:EMFlow.CouplingNetworks.Mlp"/>) with the initialisation these baselines were written with,
/// float64 and drawn from an explicit seed, never from torch's global one.
module EMFlow.Networks

open EMFlow.CouplingNetworks

/// A multilayer perceptron dims[0] → dims[1] → … → dims[last], with the activation between layers and none after
/// the last (callers apply their own output map). Weights are Xavier-uniform, output layer included, drawn layer
/// by layer from a generator seeded with <c>seed</c>; biases are zero.
/// <remarks>Not the flow's initialisation (U(±1/sqrt(fan_in)) hidden layers, zero output layer): a baseline's
/// output is not added to an identity map, so a zero output layer would only start it at a constant.</remarks>
/// <param name="name">Module name.</param>
/// <param name="dims">Layer sizes, input first; at least two, each at least 1.</param>
/// <param name="activation">Nonlinearity between layers.</param>
/// <param name="seed">Seed of the weights: the same seed gives the same network.</param>
/// <returns>A network (B, dims[0]) → (B, dims[last]) the caller owns and disposes.</returns>
let mlp (name: string) (dims: int[]) (activation: Activation) (seed: int64) : Mlp =
    // The shared MLP also accepts an input size of 0 (a learned constant); no baseline means that.
    if not (isNull (box dims)) && dims |> Array.exists (fun d -> d < 1) then
        invalidArg "dims" (sprintf "sizes must be at least 1; got %A" dims)
    new Mlp(name, dims, activation, XavierUniform, LikeHidden, seed)
