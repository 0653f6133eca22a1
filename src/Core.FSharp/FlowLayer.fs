/// The contract every flow layer and every composite flow follows (<see cref="FlowLayer"/>).
///
/// Direction: the flow <c>f</c> maps the latent space Z to the data space X, as in the EMFlow paper
/// (<c>f_psi : Z -> X</c>, <c>z = f^-1(x)</c>). <c>Forward</c> is always latent to data (<c>Flow.toData</c>),
/// <c>Inverse</c> is always data to latent (<c>Flow.toLatent</c>). Every call returns the mapped rows (B, p) and
/// the log-determinant of the Jacobian of the map it applied, one value per row (B), so
/// <c>log p_X(x) = log p_Z(z) + logDet</c> where <c>(z, logDet) = toLatent x</c>.
/// <remarks>
/// The contract has a file of its own, ahead of the layers, because both the coupling layer (Coupling.fs) and the
/// composite flow (Flow.fs) derive from it. F# code also reaches it as <c>Flow.FlowLayer</c>.
/// </remarks>
module EMFlow.FlowLayer

open TorchSharp
open EMFlow.Tensors

/// Checks that <c>t</c> is a float64 matrix (B, p) of <c>features</c> columns, raising ArgumentException
/// (ArgumentNullException for null) that names <c>name</c>.
let internal checkRows (name: string) (features: int) (t: Tensor) =
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
/// <param name="name">Module name.</param>
/// <param name="features">p, the number of features of the rows the layer maps.</param>
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
