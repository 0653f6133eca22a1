namespace EMFlow

open System.Threading
open TorchSharp
open EMFlow.Tensors

/// One fitted EMFlow model: a flow f from the latent space to the data and the latent Gaussian N(μ, Σ), so that
/// p_X(x) = N(f⁻¹(x); μ, Σ) · |det ∂f⁻¹/∂x| (eq. 3). One value to pass around, as nflows' Flow(transform,
/// distribution), rather than a flow and an estimate side by side.
type Model =
    { /// The flow f: Z → X.
      Flow: Flow.Flow
      /// The latent Gaussian: μ (p) and Σ (p, p), the ridge included.
      Latent: OnlineEm.Estimate }

/// The model's densities, re-imputation and draws; every function works on rows (n, p) on the fitted [0, 1] scale.
[<RequireQualifiedAccess>]
module Model =

    /// log p_X(x) per row, (n), under the model (eq. 3).
    let logDensity (m: Model) (x: Tensor) : Tensor = Training.logDensity m.Flow m.Latent x

    /// Mean log p_X(x̂) per row over all rows of x̂ (n, p), in chunks and without gradients.
    let meanLogDensity (m: Model) (xHat: Tensor) : float = Training.meanLogDensity m.Flow m.Latent xHat

    /// Re-imputation (Algorithm 2): missing entries of x̂ (n, p) replaced by f(conditional mean of f⁻¹(x̂)), clamped
    /// to [lower, upper] (each (p)); observed entries copied through. Returns a new (n, p) tensor.
    let reimpute (m: Model) (lower: Tensor) (upper: Tensor) (xHat: Tensor) (mask: Tensor) : Tensor =
        Training.reimpute m.Flow m.Latent lower upper xHat mask

    /// <see cref="reimpute"/>, checking the token before each chunk of rows (OperationCanceledException).
    let reimputeCancellable (m: Model) (lower: Tensor) (upper: Tensor) (ct: CancellationToken) (xHat: Tensor) (mask: Tensor) : Tensor =
        Training.reimputeCancellable m.Flow m.Latent lower upper ct xHat mask

    /// One draw of the missing entries of x̂ (n, p) from the model's conditional distribution (multiple imputation).
    let sample (gen: torch.Generator) (m: Model) (lower: Tensor) (upper: Tensor) (xHat: Tensor) (mask: Tensor) : Tensor =
        Training.sampleImputation gen m.Flow m.Latent lower upper xHat mask

    /// The model with its latent covariance scaled by spread²: the same conditional means, and conditional draws
    /// `spread` times as far from them in the latent space. Shares the flow and μ; the new Σ is the caller's to dispose.
    let widen (spread: float) (m: Model) : Model =
        { m with Latent = { m.Latent with Sigma = m.Latent.Sigma |> scaleBy (spread * spread) } }

    /// Releases the flow and the latent Gaussian.
    let dispose (m: Model) =
        m.Flow.Dispose()
        OnlineEm.disposeEstimate m.Latent
