/// Seeded synthetic tables made in code, for tests, the demo and the notebooks: no file to ship or fetch.
module EMFlow.Synthetic

open System
open TorchSharp
open EMFlow.Tensors

/// Column names of <see cref="nonlinear"/>.
let nonlinearColumns = [| "x1"; "x2"; "exp_x1"; "x2_cubed"; "tanh_2x1"; "softplus_sum"; "log_ratio" |]

// TorchSharp 0.107's public softplus turns β and the threshold into temporary Scalars (Tensors.sc says why that is
// unsafe), and log1p(exp x) differs from its fused kernel in the last bit of 4% of values, which would change every
// table made here. Its private overload takes Scalars: the cached ones go through the same kernel.
let private softplusKernel =
    typeof<Tensor>.GetMethod("softplus1", Reflection.BindingFlags.NonPublic ||| Reflection.BindingFlags.Instance, [| typeof<Scalar>; typeof<Scalar> |])

/// softplus(t) = log(1 + exp t), β 1 and threshold 20 as torch's defaults, by torch's own kernel.
let private softplus (t: Tensor) : Tensor =
    if isNull softplusKernel then invalidOp "TorchSharp's Tensor.softplus1(Scalar, Scalar) was not found; this library is built for TorchSharp 0.107."
    softplusKernel.Invoke(t, [| box (sc 1.0); box (sc 20.0) |]) :?> Tensor

/// A non-Gaussian table (n, 7): two correlated Gaussian drivers x1, x2 and five features that are noisy
/// monotone nonlinear functions of them (exp x1, x2³, tanh 2x1, softplus(x1 + x2), and a log-ratio), so
/// marginals are skewed or bounded and dependence is nonlinear: a Gaussian model sees only its linear part.
/// Noise standard deviation `noise` (0.1 is a good default).
/// Raises ArgumentOutOfRangeException for n &lt; 1 or negative noise.
let nonlinear (seed: int64) (n: int) (noise: float) : Tensor =
    if n < 1 then raise (ArgumentOutOfRangeException("n", n, sprintf "must be at least 1; got %d" n))
    if not (noise >= 0.0) then raise (ArgumentOutOfRangeException("noise", noise, sprintf "must be non-negative; got %g" noise))
    use gen = generator seed
    use scope = torch.NewDisposeScope()
    let e = torch.randn([| int64 n; 7L |], dtype = dtype, generator = gen)
    let col (k: int64) = e.select(1L, k)
    let x1 = col 0L
    let x2 = plus (x1 |> scaleBy 0.6) (col 1L |> scaleBy 0.8)
    let eps k = col k |> scaleBy noise
    let cols =
        [| x1; x2
           plus (x1.exp()) (eps 2L)
           plus (x2.pow(sc 3.0)) (eps 3L)
           plus ((x1 |> scaleBy 2.0).tanh()) (eps 4L)
           plus (softplus (plus x1 x2)) (eps 5L)
           plus ((x1.exp() / (x2.exp() |> offsetBy 1.0)).log1p()) (eps 6L) |]
    torch.stack(cols, 1L).MoveToOuterDisposeScope()

/// n draws (n, p) of a Gaussian with mean 0 and a random, well-conditioned covariance drawn from `seed`.
let gaussian (seed: int64) (n: int) (p: int) : Tensor =
    if n < 1 then raise (ArgumentOutOfRangeException("n", n, sprintf "must be at least 1; got %d" n))
    if p < 1 then raise (ArgumentOutOfRangeException("p", p, sprintf "must be at least 1; got %d" p))
    use gen = generator seed
    use scope = torch.NewDisposeScope()
    let a = torch.randn([| int64 p; int64 p |], dtype = dtype, generator = gen)
    let sigma = plus (a.matmul(a.T) |> divideBy (float p)) (torch.eye(int64 p, dtype = dtype) |> scaleBy 0.5)
    let l = torch.linalg.cholesky(sigma)
    torch.randn([| int64 n; int64 p |], dtype = dtype, generator = gen).matmul(l.T).MoveToOuterDisposeScope()
