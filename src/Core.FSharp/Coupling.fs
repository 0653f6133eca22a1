/// RealNVP's affine coupling layer and the masks that choose which features it keeps
/// (Dinh, Sohl-Dickstein, Bengio 2017, "Density estimation using Real NVP", ICLR).
/// <remarks>
/// The layer takes its s, t network as a plain setting (an optional convolution width) rather than
/// <c>Flow.CouplingNetwork</c>: that union must stay in module <c>EMFlow.Flow</c>, where C# callers name it, and
/// Flow.fs compiles after this file. F# code also reaches the layer as <c>Flow.AffineCoupling</c>.
/// </remarks>
module EMFlow.Coupling

open TorchSharp
open EMFlow.Tensors
open EMFlow.FlowLayer
open EMFlow.CouplingNetworks

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
/// </remarks>
/// <param name="features">p, the number of features of every row; at least 1.</param>
/// <param name="kept">Mask (p): true for the features in A, kept unchanged; at least one must be false.</param>
/// <param name="hidden">Width of the hidden layers of s and t (channels, for convolutional ones); at least 1.</param>
/// <param name="depth">Number of hidden layers of s and t; 0 makes them affine in z_A.</param>
/// <param name="seed">Seed of the hidden-layer initialisation.</param>
/// <param name="convolutionWidth">None: dense s and t networks, separate (parameters <c>s.*</c> and <c>t.*</c>).
/// Some width: images of that width, dividing p, in row-major order; one convolutional network gives s and t
/// (parameters <c>st.*</c>).</param>
/// <param name="compute">What dense s and t networks compute in: float64 (default) or float32 (<see cref="Mlp"/>).
/// Both directions compute s and t from the same kept features by the same network, so the layer stays exactly
/// invertible in either; the affine map itself is float64.</param>
/// <param name="joint">Dense only: one network gives s and t (parameters <c>st.*</c>, output 2 |B|) instead of two,
/// which halves the networks' cost; default false.</param>
/// <param name="activation">Dense only: the nonlinearity between the hidden layers of s and t; default tanh.
/// Convolutional networks keep tanh.</param>
/// <example><c>use layer = new AffineCoupling(5, alternatingMask 5 0, 128, 2, 1L)</c></example>
type AffineCoupling(features: int, kept: bool[], hidden: int, depth: int, seed: int64, convolutionWidth: int option, ?compute: torch.ScalarType, ?joint: bool, ?activation: Activation) as this =
    inherit FlowLayer("AffineCoupling", features)

    do
        if features < 1 then invalidArg "features" (sprintf "must be at least 1; got %d" features)
        if isNull (box kept) then nullArg "kept"
        if kept.Length <> features then
            invalidArg "kept" (sprintf "Expected a mask of %d entries, got %d" features kept.Length)
        if Array.forall id kept then invalidArg "kept" "must leave at least one feature to transform; all are kept"
        if hidden < 1 then invalidArg "hidden" (sprintf "must be at least 1; got %d" hidden)
        if depth < 0 then invalidArg "depth" (sprintf "must be at least 0; got %d" depth)
        match convolutionWidth with
        | Some w when w < 1 || features % w <> 0 ->
            invalidArg "convolutionWidth" (sprintf "Convolutional width must be at least 1 and divide the %d features; got %d" features w)
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
        let compute = defaultArg compute torch.float64
        let act = defaultArg activation Tanh
        match convolutionWidth with
        | None when defaultArg joint false ->
            let dims = Array.concat [ [| keptIdx.Length |]; Array.create depth hidden; [| 2 * transIdx.Length |] ]
            Choice2Of3(new Mlp("st", dims, act, FanInUniform, ZeroOutput, compute))
        | None ->
            let dims = Array.concat [ [| keptIdx.Length |]; Array.create depth hidden; [| transIdx.Length |] ]
            Choice1Of3(new Mlp("s", dims, act, FanInUniform, ZeroOutput, compute), new Mlp("t", dims, act, FanInUniform, ZeroOutput, compute))
        | Some w -> Choice3Of3(new ConvNet("st", features, w, kept, keptT, transT, hidden, depth))

    let scale = new Modules.Parameter(torch.ones([| int64 transIdx.Length |], dtype = dtype), true)

    let resetParameters (gen: torch.Generator) =
        match nets with
        | Choice1Of3(sNet, tNet) ->
            sNet.Reset gen
            tNet.Reset gen
        | Choice2Of3 st -> st.Reset gen
        | Choice3Of3 st -> st.Reset gen
        use _ = torch.no_grad()
        torch.nn.init.ones_(scale) |> ignore

    do
        match nets with
        | Choice1Of3(sNet, tNet) ->
            this.register_module("s", sNet)
            this.register_module("t", tNet)
        | Choice2Of3 st -> this.register_module("st", st)
        | Choice3Of3 st -> this.register_module("st", st)
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
            | Choice1Of3(sNet, tNet) -> sNet.Apply a, tNet.Apply a
            | Choice2Of3 st ->
                use both = st.Apply a
                let k = int64 transIdx.Length
                both.narrow(1L, 0L, k), both.narrow(1L, k, k)
            | Choice3Of3 st -> st.Apply a
        use raw = raw
        use bounded = raw.tanh()
        bounded * scale, t


    let assemble (a: Tensor) (b: Tensor) =
        use joined = torch.cat([| a; b |], 1L)
        joined.index_select(1L, unpermute)

    /// A layer with dense s and t networks.
    /// <param name="features">p, the number of features of every row; at least 1.</param>
    /// <param name="kept">Mask (p): true for the features in A, kept unchanged; at least one must be false.</param>
    /// <param name="hidden">Width of the hidden layers of s and t; at least 1.</param>
    /// <param name="depth">Number of hidden layers of s and t; 0 makes them affine in z_A.</param>
    /// <param name="seed">Seed of the hidden-layer initialisation.</param>
    new(features: int, kept: bool[], hidden: int, depth: int, seed: int64) = new AffineCoupling(features, kept, hidden, depth, seed, None)

    /// The features kept unchanged (part A), in ascending order.
    member _.Kept = Array.copy keptIdx

    /// The features transformed (part B), in ascending order.
    member _.Transformed = Array.copy transIdx

    /// The forward map on a row split: the kept part a (B, |A|) and the transformed part b (B, |B|), each in
    /// ascending feature order, give y_B = b ⊙ exp(s(a)) + t(a) (B, |B|) and s(a) (B, |B|), whose row sums are the
    /// log-determinant. A flow whose consecutive layers swap A and B chains these without rebuilding full rows.
    member internal _.ForwardParts(a: Tensor, b: Tensor) : Tensor * Tensor =
        let s, t = scaleShift a
        use _t = t
        use es = s.exp()
        use scaled = b * es
        plus scaled t, s

    /// The inverse map on a row split (see <c>ForwardParts</c>): z_B = (b − t(a)) ⊙ exp(−s(a)) (B, |B|) and −s(a)
    /// (B, |B|), whose row sums are the log-determinant of the inverse.
    member internal _.InverseParts(a: Tensor, b: Tensor) : Tensor * Tensor =
        let s, t = scaleShift a
        use _s = s
        use _t = t
        use shifted = b - t
        let negS = s.neg()
        use ens = negS.exp()
        shifted * ens, negS

    /// Rows (B, p) in feature order from their kept part a (B, |A|) and transformed part b (B, |B|).
    member internal _.Assemble(a: Tensor, b: Tensor) : Tensor = assemble a b

    /// The index tensors of part A and part B (int64, ascending); owned by the layer.
    member internal _.PartIndices : Tensor * Tensor = keptT, transT

    /// The one dense network that gives s and t (output: raw s, then t, each |B|), when the layer has one.
    member internal _.JointNetwork : Mlp option =
        match nets with
        | Choice2Of3 st -> Some st
        | _ -> None

    /// The learned per-feature bound of s (|B|), float64.
    member internal _.Scale : Modules.Parameter = scale

    /// <inheritdoc />
    override this.Forward(z: Tensor) =
        checkRows "z" features z
        use a = z.index_select(1L, keptT)
        use b = z.index_select(1L, transT)
        let y, s = this.ForwardParts(a, b)
        use _y = y
        use _s = s
        assemble a y, s.sum(1L)

    /// <inheritdoc />
    override this.Inverse(x: Tensor) =
        checkRows "x" features x
        use a = x.index_select(1L, keptT)
        use b = x.index_select(1L, transT)
        let z, negS = this.InverseParts(a, b)
        use _z = z
        use _n = negS
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
