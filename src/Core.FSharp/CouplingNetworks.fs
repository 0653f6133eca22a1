/// The networks that compute an affine coupling layer's scale s and shift t from its kept features: a fully
/// connected one (<see cref="Mlp"/>) for tables and a convolutional one for images.
///
/// The MLP is public and general (activation, layer sizes and initialisation are settings) because the deep
/// baselines (GAIN, MIWAE, MCFlow's latent network) need the same network; one implementation means one place
/// where drawing from a generator, parameter order and tensor ownership have to be right.
///
/// Every network here is float64 (an MLP may instead keep float32 parameters and compute in float32, for speed) and
/// draws its initial values from an explicit generator, never from torch's
/// global one: the same generator state gives the same parameters.
module EMFlow.CouplingNetworks

open System
open TorchSharp
open EMFlow.Tensors

/// The nonlinearity between the layers of an <see cref="Mlp"/>; none follows the output layer.
type Activation =
    /// max(0, x).
    | Relu
    /// tanh x; smooth, so a flow built on it has a smooth map and log-density.
    | Tanh

/// How <see cref="Mlp.Reset"/> draws the weights and biases of an MLP's layers.
type LayerInit =
    /// Weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default draw for a Linear layer.
    | FanInUniform
    /// Weights U(-b, b) with b = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio 2010), biases zero.
    | XavierUniform

/// How <see cref="Mlp.Reset"/> sets an MLP's output layer.
type OutputInit =
    /// Drawn like the hidden layers.
    | LikeHidden
    /// Zero weights and bias, so the network outputs exactly 0 for every input: a coupling layer whose s and t
    /// networks start this way starts as the exact identity.
    | ZeroOutput

/// A fully connected network dims[0] → dims[1] → … → dims[last], the activation between layers and none after
/// the last (callers apply their own output map). A new network is all zeros until <see cref="Mlp.Reset"/>
/// draws its parameters, or is built with a seed.
/// <remarks>
/// With <c>dims[0] = 0</c> there is nothing to condition on, so hidden layers would only transform a constant:
/// the network is then a learned constant, a single bias (dims[last]) named <c>b0</c> repeated for every row, and
/// the hidden sizes are ignored. Otherwise the parameters are <c>w0 … w(n-1)</c> (dims[i+1], dims[i]) and
/// <c>b0 … b(n-1)</c> (dims[i+1]), registered in that order; the names are part of saved flows.
/// Weights are plain parameters rather than torch.nn.Linear modules because Linear's constructor draws its initial
/// weights from torch's global generator, a side effect on global state that seeding by generator is meant to
/// avoid. The parameters are taken out of any dispose scope open while the network is built: they live as long
/// as the network.
/// </remarks>
/// <param name="name">Module name.</param>
/// <param name="dims">Layer sizes, input first: dims[0] ≥ 0, every other ≥ 1, at least two entries.</param>
/// <param name="activation">Nonlinearity between layers.</param>
/// <param name="init">How hidden layers (and the output layer, under <c>LikeHidden</c>) are drawn.</param>
/// <param name="output">Whether the output layer is drawn or zero.</param>
/// <param name="compute">The element type of the parameters and of the layers' arithmetic: float64, or float32 for
/// speed. Inputs and outputs are float64 either way; under float32 each call casts the input down and the output back
/// (differentiably, so gradients reach the parameters).</param>
/// <example><c>use net = new Mlp("s", [| 3; 16; 16; 2 |], Tanh, FanInUniform, ZeroOutput, 1L)</c></example>
type Mlp(name: string, dims: int[], activation: Activation, init: LayerInit, output: OutputInit, compute: torch.ScalarType) as this =
    inherit torch.nn.Module(name)

    do
        if isNull (box dims) then nullArg "dims"
        if dims.Length < 2 then invalidArg "dims" "needs an input and an output size"
        if dims[0] < 0 || dims |> Array.skip 1 |> Array.exists (fun d -> d < 1) then
            invalidArg "dims" (sprintf "the input size must be at least 0 and the others at least 1; got %A" dims)

    do
        if compute <> torch.float64 && compute <> torch.float32 then
            invalidArg "compute" (sprintf "must be float64 or float32; got %A" compute)

    let constant = dims[0] = 0
    let single = compute = torch.float32
    let outFeatures = dims[dims.Length - 1]

    // Created as zeros, all weights before all biases: creation draws nothing, so the order of the draws is
    // Reset's alone.
    let weights =
        if constant then [||]
        else
            Array.init (dims.Length - 1) (fun i ->
                new Modules.Parameter(torch.zeros([| int64 dims[i + 1]; int64 dims[i] |], dtype = compute), true))

    let biases =
        if constant then [| new Modules.Parameter(torch.zeros([| int64 outFeatures |], dtype = compute), true) |]
        else Array.init weights.Length (fun i -> new Modules.Parameter(torch.zeros([| int64 dims[i + 1] |], dtype = compute), true))

    do
        weights |> Array.iteri (fun i w -> this.register_parameter(sprintf "w%d" i, w))
        biases |> Array.iteri (fun i b -> this.register_parameter(sprintf "b%d" i, b))
        for p in Array.append weights biases do p.DetachFromDisposeScope() |> ignore

    let activate (t: Tensor) =
        match activation with
        | Relu -> torch.nn.functional.relu(t)
        | Tanh -> t.tanh()

    /// A float64 network, all zeros until <see cref="Mlp.Reset"/>.
    new(name: string, dims: int[], activation: Activation, init: LayerInit, output: OutputInit) =
        new Mlp(name, dims, activation, init, output, torch.float64)

    /// A float64 network whose parameters are drawn by <see cref="Mlp.Reset"/> from a generator seeded with <c>seed</c>.
    /// <param name="seed">Seed of the initial draw: the same seed gives the same parameters.</param>
    new(name: string, dims: int[], activation: Activation, init: LayerInit, output: OutputInit, seed: int64) as this =
        new Mlp(name, dims, activation, init, output, torch.float64)
        then
            use gen = generator seed
            this.Reset gen

    /// The layer sizes, input first.
    member _.Dims = Array.copy dims

    /// The element type the layers compute in (float64 or float32).
    member _.Compute = compute

    /// The nonlinearity between the layers.
    member _.Activation = activation

    /// The learnable parameters, for an optimiser: every weight, then every bias (just the bias when dims[0] = 0).
    member _.Parameters : Modules.Parameter[] = Array.append weights biases

    /// Applies the network to the last dimension.
    /// <param name="x">Inputs (…, dims[0]), float64; for example rows (B, dims[0]).</param>
    /// <returns>Outputs (…, dims[last]), a new tensor the caller owns.</returns>
    member _.Apply(x: Tensor) : Tensor =
        if constant then
            use zeros = torch.zeros(Array.append x.shape[.. x.shape.Length - 2] [| int64 outFeatures |], dtype = x.dtype)
            use b = biases[0].to_type(x.dtype)
            plus zeros b
        else
            // Matrix products and tanh in float32 run about twice as fast on the CPU as in float64; float32 parameters
            // mean only the input and the output are cast (both differentiably). Intermediates are disposed as soon as
            // the next layer has read them: the network runs inside long fits, where waiting for a dispose scope would
            // hold a batch's activations per layer.
            let mutable h = if single then x.to_type(compute) else x.alias()
            for i in 0 .. weights.Length - 1 do
                let lin = torch.nn.functional.linear(h, weights[i], biases[i])
                h.Dispose()
                if i < weights.Length - 1 then
                    h <- activate lin
                    lin.Dispose()
                else
                    h <- lin
            if single then
                let result = h.to_type(x.dtype)
                h.Dispose()
                result
            else h

    /// Re-initialises every parameter in place, drawing from the generator layer by layer (under
    /// <c>FanInUniform</c> a layer's weight, then its bias; under <c>XavierUniform</c> its weight only), so the
    /// same generator state gives the same parameters. The parameter objects stay the same. A constant network
    /// (dims[0] = 0) gets a zero bias and draws nothing.
    /// <param name="gen">Source of the random values.</param>
    member _.Reset(gen: torch.Generator) =
        use _ = torch.no_grad()
        let last = weights.Length - 1
        for i in 0 .. last do
            if i < last || output = LikeHidden then
                match init with
                | FanInUniform ->
                    let bound = 1.0 / sqrt (float dims[i])
                    // Tensor.uniform_, not torch.nn.init.uniform_: in TorchSharp 0.107 the latter ignores its
                    // generator argument and draws from the global one, which breaks same seed, same parameters.
                    weights[i].uniform_(-bound, bound, gen) |> ignore
                    biases[i].uniform_(-bound, bound, gen) |> ignore
                | XavierUniform ->
                    let bound = Math.Sqrt(6.0 / float (dims[i] + dims[i + 1]))
                    weights[i].uniform_(-bound, bound, gen) |> ignore
                    torch.nn.init.zeros_(biases[i]) |> ignore
            else
                torch.nn.init.zeros_(weights[i]) |> ignore
                torch.nn.init.zeros_(biases[i]) |> ignore
        if constant then torch.nn.init.zeros_(biases[0]) |> ignore

/// A convolutional network from the kept pixels of an image to (raw s, t) at its transformed pixels: 3 × 3
/// convolutions with zero padding and tanh between them, the last one zero-initialised so the layer starts as the
/// exact identity. The input has two channels, the image with its transformed pixels zeroed and the kept-pixel
/// mask, so the network can tell a kept dark pixel from a transformed one.
/// <remarks>
/// Parameters are float64 like every other one, but the convolutions run in float32: TorchSharp's CPU float64
/// convolution takes the slow unfold path, about 9x the time of float32 at 8 channels on a batch of 512 images.
/// Invertibility does not suffer: both directions compute s and t from the same kept pixels by the same float32
/// arithmetic, and the affine map itself stays float64.
/// </remarks>
/// <param name="features">p, the number of pixels, a multiple of <c>width</c>.</param>
/// <param name="width">Image width; images are rows of p pixels in row-major order.</param>
/// <param name="kept">Mask (p): true for the kept pixels.</param>
/// <param name="keptIndex">The owning coupling's kept-feature indices (|A|), int64; used here, not owned.</param>
/// <param name="transformedIndex">The owning coupling's transformed-feature indices (|B|), int64; used, not owned.</param>
/// <param name="channels">Channels of every hidden convolution.</param>
/// <param name="depth">Number of hidden convolutions.</param>
type internal ConvNet(name: string, features: int, width: int, kept: bool[], keptIndex: Tensor, transformedIndex: Tensor,
                      channels: int, depth: int) as this =
    inherit torch.nn.Module(name)

    let height = features / width
    let inChannels = Array.concat [ [| 2 |]; Array.create depth channels ]
    let outChannels = Array.concat [ Array.create depth channels; [| 2 |] ]

    let weights =
        Array.init (depth + 1) (fun i ->
            new Modules.Parameter(torch.zeros([| int64 outChannels[i]; int64 inChannels[i]; 3L; 3L |], dtype = dtype), true))

    let biases = Array.init (depth + 1) (fun i -> new Modules.Parameter(torch.zeros([| int64 outChannels[i] |], dtype = dtype), true))

    let maskImage =
        torch.tensor((kept |> Array.map (fun k -> if k then 1.0f else 0.0f) : float32[]), ReadOnlySpan<int64>([| 1L; 1L; int64 height; int64 width |]), dtype = torch.float32)

    do
        weights |> Array.iteri (fun i w -> this.register_parameter(sprintf "w%d" i, w))
        biases |> Array.iteri (fun i b -> this.register_parameter(sprintf "b%d" i, b))
        maskImage.DetachFromDisposeScope() |> ignore
        this.register_buffer("maskImage", maskImage, false)

    /// Kept features (B, |A|) → raw s (B, |B|) and t (B, |B|), new tensors the caller owns.
    member _.Apply(a: Tensor) : Tensor * Tensor =
        let b = a.shape[0]
        use zeros = torch.zeros([| b; int64 features |], dtype = dtype)
        use placed = zeros.index_copy(1L, keptIndex, a)
        use single = placed.to_type(torch.float32)
        use image = single.reshape(b, 1L, int64 height, int64 width)
        use mask = maskImage.expand(b, 1L, int64 height, int64 width)
        let mutable h = torch.cat([| image; mask |], 1L)
        for i in 0 .. depth do
            use w = weights[i].to_type(torch.float32)
            use bias = biases[i].to_type(torch.float32)
            let conv = torch.nn.functional.conv2d(h, w, bias, padding = [| 1L; 1L |])
            h.Dispose()
            if i < depth then
                h <- conv.tanh()
                conv.Dispose()
            else
                h <- conv
        use out = h
        use flat = out.reshape(b, 2L, int64 features)
        use atTransformed = flat.index_select(2L, transformedIndex)
        use double = atTransformed.to_type(dtype)
        double.select(1L, 0L).contiguous(), double.select(1L, 1L).contiguous()

    /// Hidden layers get PyTorch's default convolution draw U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 9 · in
    /// channels, from the generator, a layer's weight then its bias; the output layer is zero.
    member _.Reset(gen: torch.Generator) =
        use _ = torch.no_grad()
        for i in 0 .. depth do
            if i < depth then
                let bound = 1.0 / sqrt (float (9 * inChannels[i]))
                weights[i].uniform_(-bound, bound, gen) |> ignore
                biases[i].uniform_(-bound, bound, gen) |> ignore
            else
                torch.nn.init.zeros_(weights[i]) |> ignore
                torch.nn.init.zeros_(biases[i]) |> ignore
