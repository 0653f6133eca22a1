/// RealNVP normalizing flows: a stack of affine coupling layers (Coupling.fs) with their masks and s, t networks
/// chosen by a configuration, and the functions that map, train, reset, copy, save and load any flow layer.
///
/// Direction: the flow <c>f</c> maps the latent space Z to the data space X, as in the EMFlow paper
/// (<c>f_psi : Z -> X</c>, <c>z = f^-1(x)</c>). <c>Forward</c> is always latent to data (<c>toData</c>),
/// <c>Inverse</c> is always data to latent (<c>toLatent</c>). Every call returns the mapped rows (B, p) and
/// the log-determinant of the Jacobian of the map it applied, one value per row (B), so
/// <c>log p_X(x) = log p_Z(z) + logDet</c> where <c>(z, logDet) = toLatent x</c>.
///
/// Every flow starts at the exact identity, so the imputer starts as plain Gaussian EM and moves away
/// from it only where the likelihood improves.
/// <remarks>
/// The configuration's unions and the composite flow are defined here, not earlier, because C# names them as
/// <c>Flow.MaskPattern</c>, <c>Flow.CouplingNetwork</c>, <c>Flow.FlowConfig</c> and <c>Flow.Flow</c>, and C#
/// sees only types, not F# abbreviations. The contract and the coupling layer live in files of their own, which
/// compile first; <c>FlowLayer</c> and <c>AffineCoupling</c> below are abbreviations so that F# code keeps
/// writing <c>Flow.FlowLayer</c> and <c>Flow.AffineCoupling</c> (C# code names them
/// <c>FlowLayer.FlowLayer</c> and <c>Coupling.AffineCoupling</c>).
/// </remarks>
module EMFlow.Flow

open System
open System.Collections.Generic
open System.IO
open TorchSharp
open EMFlow.Tensors
open EMFlow.FlowLayer
open EMFlow.Coupling

/// A learnable tensor owned by a flow layer (TorchSharp's <c>Parameter</c>).
type Parameter = TorchSharp.Modules.Parameter

/// The contract every flow layer and every composite flow follows: <see cref="T:EMFlow.FlowLayer.FlowLayer"/>.
type FlowLayer = EMFlow.FlowLayer.FlowLayer

/// One RealNVP affine coupling layer: <see cref="T:EMFlow.Coupling.AffineCoupling"/>.
type AffineCoupling = EMFlow.Coupling.AffineCoupling

/// How the coupling layers split the features into kept and transformed ones.
type MaskPattern =
    /// Even and odd feature indices alternate from layer to layer (<c>Coupling.alternatingMask</c>); fits any
    /// table. On images of even width in row-major order this keeps whole pixel columns: stripes.
    | Alternating
    /// Images of this width in row-major order: pixel (r, c) is kept in layer k when r + c + k is even, so each
    /// transformed pixel is conditioned on its four nearest neighbours (RealNVP's checkerboard, Dinh et al. 2017;
    /// <c>Coupling.checkerboardMask</c>).
    | Checkerboard of width: int

/// What computes a coupling layer's scale s and shift t from its kept features.
type CouplingNetwork =
    /// A fully connected tanh network on the kept features (<c>CouplingNetworks.Mlp</c>); fits any table.
    | Dense
    /// One fully connected tanh network gives both s and t (output 2 |B|): half the cost of <c>Dense</c>'s two.
    | DenseJoint
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
      Network: CouplingNetwork
      /// Dense s and t networks keep float32 parameters and compute in float32 (about twice as fast on the CPU); the
      /// affine maps, log-determinants and everything downstream stay float64. False computes everything in float64.
      SingleNetworks: bool
      /// The nonlinearity between the hidden layers of dense s and t networks (convolutional ones keep tanh).
      Activation: CouplingNetworks.Activation }

/// The mask of coupling layer k under a pattern.
/// <param name="pattern">Alternating, or checkerboard of an image width dividing p.</param>
/// <param name="features">p, at least 1.</param>
/// <param name="k">Layer index, from 0.</param>
/// <returns>A mask (p): true where the feature is kept.</returns>
let maskOf (pattern: MaskPattern) (features: int) (k: int) : bool[] =
    match pattern with
    | Alternating -> alternatingMask features k
    | Checkerboard width -> checkerboardMask width features k

/// A RealNVP flow: a stack of affine coupling layers with alternating or checkerboard masks and dense or
/// convolutional s and t networks (Dinh et al. 2017).
/// <remarks>
/// <c>Forward</c> (latent to data) runs the layers in order and sums their log-determinants;
/// <c>Inverse</c> (data to latent) runs them in reverse. With zero layers it is the identity flow, under
/// which EMFlow reduces to Gaussian EM. All parameters are float64 (the s and t networks' float32 under
/// <c>SingleNetworks</c>) and drawn from a generator seeded by
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

    let convolutionWidth =
        match config.Network with
        | Dense | DenseJoint -> None
        | Convolutional w -> Some w

    let layers =
        Array.init config.Layers (fun k ->
            // Each layer's own seed is overwritten by the Reset below, which draws all layers from one generator.
            new AffineCoupling(config.Features, maskOf config.Masks config.Features k, config.Hidden, config.Depth, config.Seed, convolutionWidth,
                               (if config.SingleNetworks then torch.float32 else torch.float64), (config.Network = DenseJoint), config.Activation))

    do
        layers |> Array.iteri (fun k l -> this.register_module(sprintf "coupling%d" k, l))
        use gen = generator config.Seed
        for l in layers do l.Reset gen

    // Consecutive layers that swap kept and transformed features (alternating masks with p ≥ 2, checkerboards) let a
    // pass carry the two parts from layer to layer: the rows are split once and rebuilt once, and the log-determinant
    // is one sum over every layer's s, instead of a split, a rebuild and a sum per layer. At six layers that is about a
    // quarter of the autograd nodes of a training step.
    let swapping =
        layers.Length >= 2
        && layers |> Array.pairwise |> Array.forall (fun (l, m) -> l.Kept = m.Transformed && l.Transformed = m.Kept)

    /// Runs the layers in the given order on the parts: step layer a b gives (new b, its per-feature log-determinant).
    let runParts (order: AffineCoupling[]) (step: AffineCoupling -> Tensor -> Tensor -> Tensor * Tensor) (input: Tensor) =
        let first = order[0]
        let keptIdx, transIdx = first.PartIndices
        let mutable a = input.index_select(1L, keptIdx)
        let mutable b = input.index_select(1L, transIdx)
        let pieces = ResizeArray<Tensor>(order.Length)
        try
            for k in 0 .. order.Length - 1 do
                let next, ld = step order[k] a b
                pieces.Add ld
                b.Dispose()
                if k < order.Length - 1 then
                    // The next layer keeps what this one transformed and transforms what it kept.
                    b <- a
                    a <- next
                else
                    b <- next
            use all = torch.cat(pieces.ToArray(), 1L)
            order[order.Length - 1].Assemble(a, b), all.sum(1L)
        finally
            a.Dispose()
            b.Dispose()
            for t in pieces do t.Dispose()

    let run (order: AffineCoupling seq) (step: AffineCoupling -> Tensor -> Tensor * Tensor) (input: Tensor) =
        let mutable cur = input.alias()
        let mutable total = torch.zeros([| input.shape[0] |], dtype = dtype)
        for l in order do
            let next, ld = step l cur
            cur.Dispose()
            cur <- next
            let sum = plus total ld
            total.Dispose()
            ld.Dispose()
            total <- sum
        cur, total

    /// The settings this flow was built from.
    member _.Config = config

    /// The coupling layers, in forward (latent to data) order.
    member _.Couplings: AffineCoupling[] = Array.copy layers

    /// True when each layer keeps what the one before it transformed, so a pass carries the two parts of the rows
    /// from layer to layer.
    member internal _.CarriesParts = swapping

    /// <inheritdoc />
    override _.Forward(z: Tensor) =
        checkRows "z" config.Features z
        if swapping then runParts layers (fun l a b -> l.ForwardParts(a, b)) z
        else run layers (fun l t -> l.Forward t) z

    /// <inheritdoc />
    override _.Inverse(x: Tensor) =
        checkRows "x" config.Features x
        if swapping then runParts (Array.rev layers) (fun l a b -> l.InverseParts(a, b)) x
        else run (Array.rev layers) (fun l t -> l.Inverse t) x

    /// <inheritdoc />
    override _.Reset(gen: torch.Generator) =
        for l in layers do l.Reset gen

/// The paper's architecture for p features: six coupling layers, s and t networks of two hidden tanh layers
/// of 128 units.
/// <param name="features">p, at least 1.</param>
/// <param name="seed">Seed of the parameter initialisation.</param>
let defaultConfig (features: int) (seed: int64) : FlowConfig =
    { Features = features; Layers = 6; Hidden = 128; Depth = 2; Seed = seed; Masks = Alternating; Network = Dense; SingleNetworks = false
      Activation = CouplingNetworks.Tanh }

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
            use converted = v.to_type(p.dtype)
            p.copy_(converted) |> ignore

/// Writes every parameter to a stream in TorchSharp's module format; the stream is left open.
/// <param name="flow">Any flow layer.</param>
/// <param name="stream">A writable stream.</param>
let save (flow: FlowLayer) (stream: Stream) : unit =
    if isNull (box stream) then nullArg "stream"
    use w = new BinaryWriter(stream, Text.Encoding.UTF8, true)
    flow.save(w) |> ignore

/// Reads parameters written by <c>save</c> into a flow of the same configuration, in place; the stream
/// is left open.
/// <param name="flow">A flow of the same configuration as the saved one.</param>
/// <param name="stream">A readable stream positioned at the saved flow.</param>
let load (flow: FlowLayer) (stream: Stream) : unit =
    if isNull (box stream) then nullArg "stream"
    use r = new BinaryReader(stream, Text.Encoding.UTF8, true)
    flow.load(r, true) |> ignore
