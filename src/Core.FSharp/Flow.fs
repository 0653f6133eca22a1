/// RealNVP normalizing-flow layers: affine coupling layers and their composition.
///
/// Direction: the flow <c>f</c> maps the latent space Z to the data space X, as in the EMFlow paper
/// (<c>f_psi : Z -> X</c>, <c>z = f^-1(x)</c>). <c>Forward</c> is always latent to data (<c>toData</c>),
/// <c>Inverse</c> is always data to latent (<c>toLatent</c>). Every call returns the mapped rows (B, p) and
/// the log-determinant of the Jacobian of the map it applied, one value per row (B), so
/// <c>log p_X(x) = log p_Z(z) + logDet</c> where <c>(z, logDet) = toLatent x</c>.
///
/// Every flow starts at the exact identity, so the imputer starts as plain Gaussian EM and moves away
/// from it only where the likelihood improves.
module EMFlow.Flow

open System
open System.Collections.Generic
open System.IO
open TorchSharp
open EMFlow.Tensors

/// A learnable tensor owned by a flow layer (TorchSharp's <c>Parameter</c>).
type Parameter = TorchSharp.Modules.Parameter

/// How the coupling layers split the features into kept and transformed ones.
type MaskPattern =
    /// Even and odd feature indices alternate from layer to layer (<see cref="alternatingMask"/>); fits any table.
    /// On images of even width in row-major order this keeps whole pixel columns: stripes.
    | Alternating
    /// Images of this width in row-major order: pixel (r, c) is kept in layer k when r + c + k is even, so each
    /// transformed pixel is conditioned on its four nearest neighbours (RealNVP's checkerboard, Dinh et al. 2017).
    | Checkerboard of width: int

/// What computes a coupling layer's scale s and shift t from its kept features.
type CouplingNetwork =
    /// A fully connected tanh network on the kept features; fits any table.
    | Dense
    /// Images of this width in row-major order: 3 × 3 convolutions over the image, the transformed pixels zeroed
    /// and the kept-pixel mask as a second input channel, so s and t at a pixel depend on its neighbourhood only
    /// (RealNVP's convolutional coupling, Dinh et al. 2017). One network gives s and t as two output channels.
    | Convolutional of width: int

/// Settings of a composite RealNVP flow.
type FlowConfig =
    {
      /// Number of features p of every row; at least 1.
      Features: int
      /// Number of affine coupling layers; 0 gives the identity flow.
      Layers: int
      /// Width of every hidden layer of the s and t networks (channels, for convolutional ones); at least 1.
      Hidden: int
      /// Number of hidden layers of the s and t networks; 0 makes them affine in the kept features.
      Depth: int
      /// Seed of the parameter initialisation: the same seed gives the same parameters.
      Seed: int64
      /// How the layers split the features; <c>Alternating</c> for tables.
      Masks: MaskPattern
      /// What computes s and t; <c>Dense</c> for tables.
      Network: CouplingNetwork }

let private checkRows (name: string) (features: int) (t: Tensor) =
    if isNull (box t) then nullArg name
    if t.dim() <> 2L then
        invalidArg name (sprintf "must be a 2-D tensor (B, p); got %d dimensions" (t.dim()))
    if t.shape[1] <> int64 features then
        invalidArg name (sprintf "Expected %d features, got %d" features t.shape[1])
    if t.dtype <> dtype then
        invalidArg name (sprintf "must be float64; got %O" t.dtype)

/// The contract every flow layer and every composite flow follows.
/// <remarks>
/// Shapes: input and output rows are (B, p) float64; log-determinants are (B).
/// For every layer, <c>logDet(Forward x) + logDet(Inverse y) = 0</c> when <c>y</c> is the output of
/// <c>Forward x</c>. Layers are TorchSharp modules, so <c>parameters()</c>, <c>named_parameters()</c>,
/// <c>zero_grad()</c> and disposal work as usual. Outputs are new tensors owned by the caller, never
/// aliases that disposing would invalidate the input through.
/// </remarks>
[<AbstractClass>]
type FlowLayer(name: string, features: int) =
    inherit torch.nn.Module(name)

    /// Number of features p of the rows this layer maps.
    member _.Features = features

    /// Maps latent rows to data rows.
    /// <param name="z">Latent rows (B, p), float64.</param>
    /// <returns>The data rows (B, p) and the log-determinant of the forward Jacobian per row (B).</returns>
    abstract Forward: z: Tensor -> Tensor * Tensor

    /// Maps data rows back to latent rows.
    /// <param name="x">Data rows (B, p), float64.</param>
    /// <returns>The latent rows (B, p) and the log-determinant of the inverse Jacobian per row (B).</returns>
    abstract Inverse: x: Tensor -> Tensor * Tensor

    /// Re-initialises every parameter in place, drawing from the generator, so that the layer is the
    /// exact identity again.
    /// <param name="gen">Source of the random hidden-layer weights; consumed in a fixed order.</param>
    abstract Reset: gen: torch.Generator -> unit

/// A fully connected network (in) -> (out) with tanh hidden layers and a zero-initialised output layer.
/// With no input features it is a learned constant: a bias (out) repeated for every row.
/// Weights are plain parameters rather than torch.nn.Linear modules because Linear's constructor draws
/// its initial weights from torch's global generator, a side effect on global state that seeding by
/// generator is meant to avoid.
type internal Mlp(name: string, inFeatures: int, outFeatures: int, hidden: int, depth: int) as this =
    inherit torch.nn.Module(name)

    // With nothing to condition on, hidden layers would only transform a constant; one bias suffices.
    let dims =
        if inFeatures = 0 then [||]
        else Array.concat [ [| inFeatures |]; Array.create depth hidden; [| outFeatures |] ]

    let weights =
        Array.init (max 0 (dims.Length - 1)) (fun i ->
            new Parameter(torch.zeros([| int64 dims[i + 1]; int64 dims[i] |], dtype = dtype), true))

    let biases =
        if inFeatures = 0 then [| new Parameter(torch.zeros([| int64 outFeatures |], dtype = dtype), true) |]
        else Array.init weights.Length (fun i -> new Parameter(torch.zeros([| int64 dims[i + 1] |], dtype = dtype), true))

    do
        weights |> Array.iteri (fun i w -> this.register_parameter(sprintf "w%d" i, w))
        biases |> Array.iteri (fun i b -> this.register_parameter(sprintf "b%d" i, b))

    /// (B, in) -> (B, out).
    member _.Apply(x: Tensor) : Tensor =
        if inFeatures = 0 then
            use zeros = torch.zeros([| x.shape[0]; int64 outFeatures |], dtype = dtype)
            zeros + biases[0]
        else
            let mutable h = x.alias()
            for i in 0 .. weights.Length - 1 do
                let lin = torch.nn.functional.linear(h, weights[i], biases[i])
                h.Dispose()
                if i < weights.Length - 1 then
                    h <- lin.tanh()
                    lin.Dispose()
                else
                    h <- lin
            h

    /// Hidden layers get PyTorch's default Linear draw U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from the
    /// generator; the output layer is zero so the network outputs exactly 0 for every input.
    member _.Reset(gen: torch.Generator) =
        use _ = torch.no_grad()
        let last = weights.Length - 1
        for i in 0 .. last do
            if i < last then
                let bound = 1.0 / sqrt (float dims[i])
                // Tensor.uniform_, not torch.nn.init.uniform_: in TorchSharp 0.107 the latter ignores its
                // generator argument and draws from the global one, which breaks same seed, same parameters.
                weights[i].uniform_(-bound, bound, gen) |> ignore
                biases[i].uniform_(-bound, bound, gen) |> ignore
            else
                torch.nn.init.zeros_(weights[i]) |> ignore
                torch.nn.init.zeros_(biases[i]) |> ignore
        if inFeatures = 0 then torch.nn.init.zeros_(biases[0]) |> ignore

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
/// <c>keptIndex</c> and <c>transformedIndex</c> are the owning coupling's index tensors (kept and transformed
/// features), used here, not owned.
type internal ConvNet(name: string, features: int, width: int, kept: bool[], keptIndex: Tensor, transformedIndex: Tensor,
                      channels: int, depth: int) as this =
    inherit torch.nn.Module(name)

    let height = features / width
    let inChannels = Array.concat [ [| 2 |]; Array.create depth channels ]
    let outChannels = Array.concat [ Array.create depth channels; [| 2 |] ]

    let weights =
        Array.init (depth + 1) (fun i ->
            new Parameter(torch.zeros([| int64 outChannels[i]; int64 inChannels[i]; 3L; 3L |], dtype = dtype), true))

    let biases = Array.init (depth + 1) (fun i -> new Parameter(torch.zeros([| int64 outChannels[i] |], dtype = dtype), true))

    let maskImage =
        torch.tensor((kept |> Array.map (fun k -> if k then 1.0f else 0.0f) : float32[]), ReadOnlySpan<int64>([| 1L; 1L; int64 height; int64 width |]), dtype = torch.float32)

    do
        weights |> Array.iteri (fun i w -> this.register_parameter(sprintf "w%d" i, w))
        biases |> Array.iteri (fun i b -> this.register_parameter(sprintf "b%d" i, b))
        maskImage.DetachFromDisposeScope() |> ignore
        this.register_buffer("maskImage", maskImage, false)

    /// (B, |A|) kept features -> raw s (B, |B|) and t (B, |B|).
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
    /// channels, from the generator; the output layer is zero.
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

/// One RealNVP affine coupling layer (Dinh et al. 2017, eq. 4-5; EMFlow appendix A, eq. 16).
/// <remarks>
/// A binary mask splits the features into a kept part A and a transformed part B:
/// <c>y_A = z_A</c>, <c>y_B = z_B * exp(s(z_A)) + t(z_A)</c>, <c>logDet = sum_j s_j(z_A)</c>, and the
/// inverse <c>z_B = (y_B - t(y_A)) * exp(-s(y_A))</c>. The scale is bounded,
/// <c>s = scale * tanh(raw_s(z_A))</c> with a learned per-feature <c>scale</c> (initially 1), so a single
/// optimiser step cannot make <c>exp(s)</c> overflow. The s and t networks have tanh hidden layers so the
/// map and its log-density are smooth, and zero output layers so the layer starts as the exact identity.
/// When A is empty (the only choice for p = 1) s and t depend on nothing but a learned bias, and the layer
/// is a learned elementwise affine map.
/// Dinh, Sohl-Dickstein, Bengio (2017), "Density estimation using Real NVP", ICLR.
/// </remarks>
/// <param name="features">p, the number of features of every row; at least 1.</param>
/// <param name="kept">Mask (p): true for the features in A, kept unchanged; at least one must be false.</param>
/// <param name="hidden">Width of the hidden layers of s and t; at least 1.</param>
/// <param name="depth">Number of hidden layers of s and t; 0 makes them affine in z_A.</param>
/// <param name="seed">Seed of the hidden-layer initialisation.</param>
/// <param name="network">What computes s and t: <c>Dense</c>, or <c>Convolutional width</c> for images whose width
/// divides p (then <c>hidden</c> counts channels).</param>
/// <example><c>use layer = new AffineCoupling(5, alternatingMask 5 0, 128, 2, 1L, Dense)</c></example>
type AffineCoupling(features: int, kept: bool[], hidden: int, depth: int, seed: int64, network: CouplingNetwork) as this =
    inherit FlowLayer("AffineCoupling", features)

    do
        if features < 1 then invalidArg "features" (sprintf "must be at least 1; got %d" features)
        if isNull kept then nullArg "kept"
        if kept.Length <> features then
            invalidArg "kept" (sprintf "Expected a mask of %d entries, got %d" features kept.Length)
        if Array.forall id kept then invalidArg "kept" "must leave at least one feature to transform; all are kept"
        if hidden < 1 then invalidArg "hidden" (sprintf "must be at least 1; got %d" hidden)
        if depth < 0 then invalidArg "depth" (sprintf "must be at least 0; got %d" depth)
        match network with
        | Convolutional w when w < 1 || features % w <> 0 ->
            invalidArg "network" (sprintf "Convolutional width must be at least 1 and divide the %d features; got %d" features w)
        | _ -> ()

    let idxOf flag =
        [| for j in 0 .. features - 1 do if kept[j] = flag then int64 j |]

    let keptIdx, transIdx = idxOf true, idxOf false
    let keptT = torch.tensor(keptIdx, dtype = torch.int64)
    let transT = torch.tensor(transIdx, dtype = torch.int64)
    // Rows are rebuilt as cat(A, B), then put back in feature order with the inverse permutation.
    let unpermute =
        let order = Array.append keptIdx transIdx
        let inv = Array.zeroCreate<int64> features
        order |> Array.iteri (fun pos j -> inv[int j] <- int64 pos)
        torch.tensor(inv, dtype = torch.int64)

    // Dense layers keep separate s and t networks (their parameter names are part of saved models); a convolutional
    // one computes both in one pass, which halves the cost of the convolutions that dominate it.
    let nets =
        match network with
        | Dense ->
            Choice1Of2(new Mlp("s", keptIdx.Length, transIdx.Length, hidden, depth), new Mlp("t", keptIdx.Length, transIdx.Length, hidden, depth))
        | Convolutional w -> Choice2Of2(new ConvNet("st", features, w, kept, keptT, transT, hidden, depth))

    let scale = new Parameter(torch.ones([| int64 transIdx.Length |], dtype = dtype), true)

    let resetParameters (gen: torch.Generator) =
        match nets with
        | Choice1Of2(sNet, tNet) ->
            sNet.Reset gen
            tNet.Reset gen
        | Choice2Of2 st -> st.Reset gen
        use _ = torch.no_grad()
        torch.nn.init.ones_(scale) |> ignore

    do
        match nets with
        | Choice1Of2(sNet, tNet) ->
            this.register_module("s", sNet)
            this.register_module("t", tNet)
        | Choice2Of2 st -> this.register_module("st", st)
        this.register_parameter("scale", scale)
        // Non-persistent buffers: disposed with the module, but derived from the mask, so kept out of the
        // saved state. Overriding Dispose instead is unsafe: a constructor that throws leaves a finaliser
        // that would run the override on a half-built F# object.
        // Index tensors belong to the layer, not to a dispose scope open while the layer is built.
        for t in [ keptT; transT; unpermute ] do t.DetachFromDisposeScope() |> ignore
        this.register_buffer("keptIndex", keptT, false)
        this.register_buffer("transformedIndex", transT, false)
        this.register_buffer("unpermute", unpermute, false)
        // Not this.Reset: F# forbids calling the type's own members before construction completes.
        use gen = generator seed
        resetParameters gen

    let scaleShift (a: Tensor) =
        let raw, t =
            match nets with
            | Choice1Of2(sNet, tNet) -> sNet.Apply a, tNet.Apply a
            | Choice2Of2 st -> st.Apply a
        use raw = raw
        use bounded = raw.tanh()
        bounded * scale, t


    let assemble (a: Tensor) (b: Tensor) =
        use joined = torch.cat([| a; b |], 1L)
        joined.index_select(1L, unpermute)

    /// A layer with dense s and t networks.
    new(features: int, kept: bool[], hidden: int, depth: int, seed: int64) = new AffineCoupling(features, kept, hidden, depth, seed, Dense)

    /// The features kept unchanged (part A), in ascending order.
    member _.Kept = Array.copy keptIdx

    /// The features transformed (part B), in ascending order.
    member _.Transformed = Array.copy transIdx

    /// <inheritdoc />
    override _.Forward(z: Tensor) =
        checkRows "z" features z
        use a = z.index_select(1L, keptT)
        use b = z.index_select(1L, transT)
        let s, t = scaleShift a
        use _s = s
        use _t = t
        use es = s.exp()
        use scaled = b * es
        use y = scaled + t
        assemble a y, s.sum(1L)

    /// <inheritdoc />
    override _.Inverse(x: Tensor) =
        checkRows "x" features x
        use a = x.index_select(1L, keptT)
        use b = x.index_select(1L, transT)
        let s, t = scaleShift a
        use _s = s
        use _t = t
        use shifted = b - t
        use negS = s.neg()
        use ens = negS.exp()
        use z = shifted * ens
        assemble a z, negS.sum(1L)

    /// <inheritdoc />
    override _.Reset(gen: torch.Generator) = resetParameters gen


/// The kept-feature mask of coupling layer <c>k</c> of a p-feature flow.
/// <remarks>
/// Layers alternate even and odd features (a checkerboard over features), so with p ≥ 2 every feature is
/// transformed by every other layer and conditions the next one; odd p is fine. With p = 1 there is nothing
/// to condition on, so every layer keeps nothing and is a learned elementwise affine map.
/// </remarks>
/// <param name="features">p, at least 1.</param>
/// <param name="k">Layer index, from 0.</param>
/// <returns>A mask (p): true where the feature is kept.</returns>
let alternatingMask (features: int) (k: int) : bool[] =
    if features < 1 then invalidArg "features" (sprintf "must be at least 1; got %d" features)
    if k < 0 then invalidArg "k" (sprintf "must be at least 0; got %d" k)
    if features = 1 then [| false |]
    else Array.init features (fun j -> (j + k) % 2 = 0)

/// The kept-pixel mask of coupling layer <c>k</c> for images of the given width in row-major order: pixel
/// (r, c) = column r · width + c is kept when r + c + k is even.
/// <param name="width">Image width, at least 1, dividing p.</param>
/// <param name="features">p, the number of pixels.</param>
/// <param name="k">Layer index, from 0.</param>
/// <returns>A mask (p): true where the pixel is kept.</returns>
let checkerboardMask (width: int) (features: int) (k: int) : bool[] =
    if width < 1 || features % width <> 0 then
        invalidArg "width" (sprintf "must be at least 1 and divide the %d features; got %d" features width)
    if k < 0 then invalidArg "k" (sprintf "must be at least 0; got %d" k)
    if features = 1 then [| false |]
    else Array.init features (fun j -> (j / width + j % width + k) % 2 = 0)

/// The mask of layer k under a pattern.
let maskOf (pattern: MaskPattern) (features: int) (k: int) : bool[] =
    match pattern with
    | Alternating -> alternatingMask features k
    | Checkerboard width -> checkerboardMask width features k

/// A RealNVP flow: a stack of affine coupling layers with alternating or checkerboard masks and dense or
/// convolutional s and t networks (Dinh et al. 2017).
/// <remarks>
/// <c>Forward</c> (latent to data) runs the layers in order and sums their log-determinants;
/// <c>Inverse</c> (data to latent) runs them in reverse. With zero layers it is the identity flow, under
/// which EMFlow reduces to Gaussian EM. All parameters are float64 and drawn from a generator seeded by
/// <c>config.Seed</c>, never from torch's global generator; a fresh flow is the exact identity.
/// </remarks>
/// <param name="config">Architecture and seed; checked here.</param>
type Flow(config: FlowConfig) as this =
    inherit FlowLayer("Flow", config.Features)

    do
        if config.Features < 1 then invalidArg "config" (sprintf "Features must be at least 1; got %d" config.Features)
        if config.Layers < 0 then invalidArg "config" (sprintf "Layers must be at least 0; got %d" config.Layers)
        if config.Hidden < 1 then invalidArg "config" (sprintf "Hidden must be at least 1; got %d" config.Hidden)
        if config.Depth < 0 then invalidArg "config" (sprintf "Depth must be at least 0; got %d" config.Depth)
        match config.Masks with
        | Checkerboard w when w < 1 || config.Features % w <> 0 ->
            invalidArg "config" (sprintf "Checkerboard width must be at least 1 and divide the %d features; got %d" config.Features w)
        | _ -> ()
        match config.Network with
        | Convolutional w when w < 1 || config.Features % w <> 0 ->
            invalidArg "config" (sprintf "Convolutional width must be at least 1 and divide the %d features; got %d" config.Features w)
        | _ -> ()

    let layers =
        Array.init config.Layers (fun k ->
            // Each layer's own seed is overwritten by the Reset below, which draws all layers from one generator.
            new AffineCoupling(config.Features, maskOf config.Masks config.Features k, config.Hidden, config.Depth, config.Seed, config.Network))

    do
        layers |> Array.iteri (fun k l -> this.register_module(sprintf "coupling%d" k, l))
        use gen = generator config.Seed
        for l in layers do l.Reset gen

    let run (order: AffineCoupling seq) (step: AffineCoupling -> Tensor -> Tensor * Tensor) (input: Tensor) =
        let mutable cur = input.alias()
        let mutable total = torch.zeros([| input.shape[0] |], dtype = dtype)
        for l in order do
            let next, ld = step l cur
            cur.Dispose()
            cur <- next
            let sum = total + ld
            total.Dispose()
            ld.Dispose()
            total <- sum
        cur, total

    /// The settings this flow was built from.
    member _.Config = config

    /// The coupling layers, in forward (latent to data) order.
    member _.Couplings: AffineCoupling[] = Array.copy layers

    /// <inheritdoc />
    override _.Forward(z: Tensor) =
        checkRows "z" config.Features z
        run layers (fun l t -> l.Forward t) z

    /// <inheritdoc />
    override _.Inverse(x: Tensor) =
        checkRows "x" config.Features x
        run (Array.rev layers) (fun l t -> l.Inverse t) x

    /// <inheritdoc />
    override _.Reset(gen: torch.Generator) =
        for l in layers do l.Reset gen

/// The paper's architecture for p features: six coupling layers, s and t networks of two hidden layers
/// of 128 units.
/// <param name="features">p, at least 1.</param>
/// <param name="seed">Seed of the parameter initialisation.</param>
let defaultConfig (features: int) (seed: int64) : FlowConfig =
    { Features = features; Layers = 6; Hidden = 128; Depth = 2; Seed = seed; Masks = Alternating; Network = Dense }

/// A new flow built from the configuration; it starts as the exact identity.
/// <param name="config">Architecture and seed; checked here.</param>
/// <returns>A flow the caller owns and disposes.</returns>
/// <example><c>use flow = Flow.create (Flow.defaultConfig 5 42L)</c></example>
let create (config: FlowConfig) : Flow =
    let flow = new Flow(config)
    // A flow lives as long as its owner, not as long as whatever dispose scope happens to be open when it is
    // built (a fit, say), so its tensors are taken out of that scope.
    for struct (_, b) in flow.named_buffers() do b.DetachFromDisposeScope() |> ignore
    for p in flow.parameters() do p.DetachFromDisposeScope() |> ignore
    flow

/// The identity flow on p features: no layers, no parameters, <c>toData z = (z, 0)</c>.
/// <param name="features">p, at least 1.</param>
let identity (features: int) : Flow = create { defaultConfig features 0L with Layers = 0 }

/// Maps latent rows to data rows, <c>x = f(z)</c>.
/// <param name="flow">Any flow layer.</param>
/// <param name="z">Latent rows (B, p), float64.</param>
/// <returns><c>(x, logDet)</c>: data rows (B, p) and <c>log|det df/dz|</c> per row (B).</returns>
let toData (flow: FlowLayer) (z: Tensor) : Tensor * Tensor = flow.Forward z

/// Maps data rows to latent rows, <c>z = f^-1(x)</c>.
/// <param name="flow">Any flow layer.</param>
/// <param name="x">Data rows (B, p), float64.</param>
/// <returns><c>(z, logDet)</c>: latent rows (B, p) and <c>log|det df^-1/dx|</c> per row (B), the term
/// added to the latent log-density to get the data log-density.</returns>
let toLatent (flow: FlowLayer) (x: Tensor) : Tensor * Tensor = flow.Inverse x

/// The learnable parameters of the flow, for an optimiser; empty for the identity flow.
/// <param name="flow">Any flow layer.</param>
let parameters (flow: FlowLayer) : Parameter[] = flow.parameters() |> Seq.toArray

/// Re-initialises every parameter in place from a new seed: the flow becomes the exact identity again.
/// The parameter objects stay the same, so an optimiser holding them keeps working (its moment
/// estimates, though, refer to the old values).
/// <param name="seed">Seed of the new initialisation.</param>
/// <param name="flow">The flow to reset.</param>
let reset (seed: int64) (flow: FlowLayer) : unit =
    use gen = generator seed
    flow.Reset gen

/// Freezes (false) or unfreezes (true) every parameter: a frozen flow builds no gradient graph for
/// its parameters.
/// <param name="trainable">Whether gradients are computed for the parameters.</param>
/// <param name="flow">The flow to change.</param>
let setTrainable (trainable: bool) (flow: FlowLayer) : unit =
    for p in flow.parameters() do p.requires_grad <- trainable

/// A copy of every parameter by name (for example <c>coupling0.s.w0</c>), detached and independent
/// of the flow, so it stays valid after the flow is changed or disposed.
/// <param name="flow">Any flow layer.</param>
/// <returns>Name to tensor; the caller owns and disposes the tensors.</returns>
let state (flow: FlowLayer) : Dictionary<string, Tensor> =
    let d = Dictionary<string, Tensor>()
    for struct (name, p) in flow.named_parameters() do
        d[name] <- p.detach().clone()
    d

/// Copies parameters by name into the flow, in place.
/// <param name="flow">A flow of the same configuration as the one the state came from.</param>
/// <param name="values">Name to tensor, as returned by <c>state</c>: exactly the flow's parameter
/// names, each of its parameter's shape.</param>
let loadState (flow: FlowLayer) (values: IReadOnlyDictionary<string, Tensor>) : unit =
    if isNull (box values) then nullArg "values"
    let named = flow.named_parameters() |> Seq.map (fun struct (n, p) -> n, p) |> Seq.toArray
    let known = named |> Array.map fst |> Set.ofArray
    for k in values.Keys do
        if not (known.Contains k) then invalidArg "values" (sprintf "Unexpected parameter '%s'" k)
    for name, p in named do
        match values.TryGetValue name with
        | false, _ -> invalidArg "values" (sprintf "Missing parameter '%s'" name)
        | true, v when v.shape <> p.shape ->
            invalidArg "values" (sprintf "Parameter '%s': expected shape %A, got %A" name p.shape v.shape)
        | true, v ->
            use _ = torch.no_grad()
            use converted = v.to_type(dtype)
            p.copy_(converted) |> ignore

/// Writes every parameter to a stream in TorchSharp's module format; the stream is left open.
/// <param name="flow">Any flow layer.</param>
/// <param name="stream">A writable stream.</param>
let save (flow: FlowLayer) (stream: Stream) : unit =
    if isNull stream then nullArg "stream"
    use w = new BinaryWriter(stream, Text.Encoding.UTF8, true)
    flow.save(w) |> ignore

/// Reads parameters written by <c>save</c> into a flow of the same configuration, in place; the stream
/// is left open.
/// <param name="flow">A flow of the same configuration as the saved one.</param>
/// <param name="stream">A readable stream positioned at the saved flow.</param>
let load (flow: FlowLayer) (stream: Stream) : unit =
    if isNull stream then nullArg "stream"
    use r = new BinaryReader(stream, Text.Encoding.UTF8, true)
    flow.load(r, true) |> ignore
