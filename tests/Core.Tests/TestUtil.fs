/// Shared helpers for the core tests: seeded synthetic data and tolerances.
module EMFlow.Tests.TestUtil

open TorchSharp
open EMFlow.Tensors

/// Named tolerances, so a loosened bound shows in review.
let tightTol = 1e-9
let looseTol = 1e-5

/// A random symmetric positive-definite (p, p) covariance with unit-scale eigenvalues.
let randomCovariance (gen: torch.Generator) (p: int) : Tensor =
    let a = torch.randn([| int64 p; int64 p |], dtype = dtype, generator = gen)
    a.matmul(a.T) / float p + torch.eye(int64 p, dtype = dtype) * 0.5

/// n draws (n, p) from N(mu, sigma).
let sampleGaussian (gen: torch.Generator) (mu: Tensor) (sigma: Tensor) (n: int) : Tensor =
    let p = mu.shape[0]
    let l = torch.linalg.cholesky(sigma)
    let e = torch.randn([| int64 n; p |], dtype = dtype, generator = gen)
    e.matmul(l.T) + mu

/// Largest absolute entry-wise difference of two tensors.
let maxAbs (a: Tensor) (b: Tensor) = scalar ((a - b).abs().max())

/// A Gaussian problem from one seed: mean (p), covariance (p, p), n draws (n, p) and an MCAR mask (n, p).
let gaussianProblem (seed: int64) (n: int) (p: int) (rate: float) =
    let gen = generator seed
    let sigma = randomCovariance gen p
    let mu = torch.randn(int64 p, dtype = dtype, generator = gen)
    let x = sampleGaussian gen mu sigma n
    let mask = torch.rand([| int64 n; int64 p |], dtype = dtype, generator = gen).lt(sc rate).to_type(dtype)
    mu, sigma, x, mask
