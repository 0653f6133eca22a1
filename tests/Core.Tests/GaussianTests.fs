module EMFlow.Tests.GaussianTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors
open EMFlow.Tests.TestUtil

/// A random mask (n, p) with missing rate `rate`, plus one fully missing and one fully observed row.
let private randomMask (gen: torch.Generator) (n: int) (p: int) (rate: float) =
    let m = torch.rand([| int64 n; int64 p |], dtype = dtype, generator = gen).lt(sc rate).to_type(dtype)
    m[0] <- torch.ones(int64 p, dtype = dtype)
    m[1] <- torch.zeros(int64 p, dtype = dtype)
    m

/// Reference: one explicit solve per row, straight from eq. 6.
let private perRowReference (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) =
    let n, p = int z.shape[0], int z.shape[1]
    let m = toArray2D mask
    let out = z.clone()
    let covs = torch.zeros(int64 n, int64 p, int64 p, dtype = dtype)
    for i in 0 .. n - 1 do
        let mis = [| for j in 0 .. p - 1 do if m[i, j] > 0.5 then int64 j |]
        let obs = [| for j in 0 .. p - 1 do if m[i, j] <= 0.5 then int64 j |]
        if mis.Length > 0 then
            let mi = torch.tensor(mis)
            let smm = sigma.index_select(0L, mi).index_select(1L, mi)
            if obs.Length = 0 then
                out[i] <- mu
                covs[i] <- sigma
            else
                let oi = torch.tensor(obs)
                let soo = sigma.index_select(0L, oi).index_select(1L, oi)
                let smo = sigma.index_select(0L, mi).index_select(1L, oi)
                let d = z[i].index_select(0L, oi) - mu.index_select(0L, oi)
                let w = torch.linalg.solve(soo, d)
                let zm = mu.index_select(0L, mi) + smo.matmul(w)
                let c = smm - smo.matmul(torch.linalg.solve(soo, smo.T))
                let row = z[i].clone()
                row.index_copy_(0L, mi, zm) |> ignore
                out[i] <- row
                let rowsOfC = torch.zeros(int64 mis.Length, int64 p, dtype = dtype).index_copy_(1L, mi, c)
                covs[i] <- torch.zeros(int64 p, int64 p, dtype = dtype).index_copy_(0L, mi, rowsOfC)
    out, covs

let private config = { FsCheckConfig.defaultConfig with maxTest = 20 }

/// A (n, p) mask whose rows alternate between missing rates near 0.1 and 0.9 (plus one fully missing and one
/// fully observed row), so that at p ≥ 120 both block forms run in the same batch.
let private mixedMask (gen: torch.Generator) (n: int) (p: int) =
    let rates = torch.tensor([| for i in 0 .. n - 1 do if i % 2 = 0 then 0.1 else 0.9 |], dtype = dtype)
    let m = torch.rand([| int64 n; int64 p |], dtype = dtype, generator = gen).lt(rates.unsqueeze(1)).to_type(dtype)
    m[0] <- torch.ones(int64 p, dtype = dtype)
    m[1] <- torch.zeros(int64 p, dtype = dtype)
    m

let private setup seed n p rate =
    let mu, sigma, z, _ = gaussianProblem seed n p rate
    // Same draws, plus one fully missing and one fully observed row.
    let mask = randomMask (generator (seed + 1000L)) n p rate
    mu, sigma, z, mask

[<Tests>]
let tests =
    testList "Gaussian" [
        testProperty "batched conditional mean equals a per-row solve" <| fun (seed: int) (pp: FsCheck.PositiveInt) (r: FsCheck.NormalFloat) ->
            let p = 1 + pp.Get % 9
            let rate = abs (float r) % 1.0
            let mu, sigma, z, mask = setup (int64 seed) 12 p rate
            let expected, _ = perRowReference mu sigma z mask
            let got = Gaussian.conditionalMean mu sigma z mask
            Expect.isLessThan (maxAbs got expected) 1e-9 "batched = per row"

        testProperty "conditional covariances equal the per-row formula and their sum" <| fun (seed: int) (pp: FsCheck.PositiveInt) ->
            let p = 1 + pp.Get % 7
            let mu, sigma, z, mask = setup (int64 seed) 10 p 0.4
            let _, expected = perRowReference mu sigma z mask
            let got = Gaussian.conditionalCovariances mu sigma mask
            Expect.isLessThan (maxAbs got expected) 1e-9 "per-row covariances"
            let c = Gaussian.conditional mu sigma z mask
            Expect.isLessThan (maxAbs c.CovarianceSum (expected.sum(dim = 0L))) 1e-9 "sum of covariances"

        test "both block forms are exercised and agree with the reference at p = 40" {
            // Rates of 0.2 and 0.8 send rows to the missing-block and observed-block forms respectively; at p = 40 the
            // batched forms run, not the per-pattern E-step of narrower tables.
            for rate in [ 0.2; 0.8 ] do
                let mu, sigma, z, mask = setup 7L 64 40 rate
                let expected, covs = perRowReference mu sigma z mask
                let c = Gaussian.conditional mu sigma z mask
                Expect.isLessThan (maxAbs c.Imputed expected) 1e-9 (sprintf "means at rate %g" rate)
                Expect.isLessThan (maxAbs c.CovarianceSum (covs.sum(dim = 0L))) 1e-9 (sprintf "covariances at rate %g" rate)
        }

        testPropertyWithConfig config "wide rows at low and high missing rates in one batch agree with a per-row solve" <| fun (seed: int) (pp: FsCheck.PositiveInt) ->
            let p = 120 + pp.Get % 60
            let mu, sigma, z, _ = gaussianProblem (int64 seed) 32 p 0.0
            let mask = mixedMask (generator (int64 seed + 2000L)) 32 p
            let expected, covs = perRowReference mu sigma z mask
            let c = Gaussian.conditional mu sigma z mask
            Expect.isLessThan (maxAbs c.Imputed expected) 1e-9 "means"
            Expect.isLessThan (maxAbs c.CovarianceSum (covs.sum(dim = 0L))) 1e-9 "sum of covariances"
            Expect.isLessThan (maxAbs (Gaussian.conditionalCovariances mu sigma mask) covs) 1e-9 "per-row covariances"
            Expect.isLessThan (maxAbs c.LogLikelihood (Gaussian.marginalLogDensity mu sigma z mask)) 1e-8 "log-likelihood"

        test "a fully observed row imputes to itself, bit for bit" {
            let mu, sigma, z, _ = setup 3L 5 4 0.0
            let mask = torch.zeros_like(z)
            let got = Gaussian.conditional mu sigma z mask
            Expect.isTrue (got.Imputed.eq(z).all().item<bool>()) "unchanged"
            Expect.isLessThan (scalar (got.CovarianceSum.abs().max())) 1e-15 "no conditional covariance"
        }

        test "a fully missing row imputes to mu with covariance Sigma" {
            let mu, sigma, z, _ = setup 4L 3 5 0.0
            let mask = torch.ones_like(z)
            let got = Gaussian.conditional mu sigma (torch.full_like(z, sc nan)) mask
            Expect.isLessThan (maxAbs got.Imputed (mu.expand(3L, 5L))) 1e-12 "mu"
            Expect.isLessThan (maxAbs got.CovarianceSum (sigma * 3.0)) 1e-12 "3 Sigma"
        }

        testProperty "conditional covariances are symmetric positive semi-definite" <| fun (seed: int) ->
            let mu, sigma, _, mask = setup (int64 seed) 16 6 0.5
            let covs = Gaussian.conditionalCovariances mu sigma mask
            Expect.isLessThan (maxAbs covs (covs.transpose(1L, 2L))) 1e-12 "symmetric"
            let eig = torch.linalg.eigvalsh(covs)
            Expect.isGreaterThan (scalar (eig.min())) -1e-10 "eigenvalues >= 0"

        test "log-density matches the textbook formula" {
            let mu, sigma, z, _ = setup 5L 6 4 0.0
            let got = Gaussian.logDensity mu sigma z
            let d = z - mu
            let maha = (d.matmul(torch.linalg.inv(sigma)) * d).sum(dim = 1L)
            let expected = (maha + torch.logdet(sigma) + 4.0 * Math.Log(2.0 * Math.PI)) * -0.5
            Expect.isLessThan (maxAbs got expected) 1e-10 "log N"
        }

        test "marginal log-density uses each row's observed block" {
            let mu, sigma, z, mask = setup 6L 9 5 0.4
            let got = toArray (Gaussian.marginalLogDensity mu sigma z mask)
            let m = toArray2D mask
            for i in 0 .. 8 do
                let obs = [| for j in 0 .. 4 do if m[i, j] <= 0.5 then int64 j |]
                let expected =
                    if obs.Length = 0 then 0.0
                    else
                        let oi = torch.tensor(obs)
                        let s = sigma.index_select(0L, oi).index_select(1L, oi)
                        scalar (Gaussian.logDensity (mu.index_select(0L, oi)) s (z[i].index_select(0L, oi).unsqueeze(0)))
                Expect.floatClose Accuracy.high got[i] expected (sprintf "row %d" i)
        }

        test "the E-step's log-likelihood is the marginal density of each row's observed entries" {
            for rate in [ 0.2; 0.8 ] do
                let mu, sigma, z, mask = setup 12L 40 6 rate
                let c = Gaussian.conditional mu sigma z mask
                let expected = Gaussian.marginalLogDensity mu sigma z mask
                Expect.isLessThan (maxAbs c.LogLikelihood expected) 1e-9 (sprintf "rate %g" rate)
        }

        test "cholesky adds jitter to a singular covariance" {
            let v = torch.tensor([| 1.0; 2.0; 3.0 |], dtype = dtype)
            let singular = v.outer(v)
            let l = Gaussian.cholesky singular
            Expect.isLessThan (maxAbs (l.matmul(l.T)) singular) 1e-3 "close to the matrix"
        }

        test "cholesky rejects an indefinite matrix with a clear error" {
            let a = torch.tensor([| 1.0; 0.0; 0.0; -5.0 |], dtype = dtype).reshape(2L, 2L)
            Expect.throwsT<InvalidOperationException> (fun () -> Gaussian.cholesky a |> ignore) "indefinite"
        }

        test "cholesky rejects NaN with a clear error" {
            let a = torch.tensor([| 1.0; nan; nan; 1.0 |], dtype = dtype).reshape(2L, 2L)
            Expect.throwsT<InvalidOperationException> (fun () -> Gaussian.cholesky a |> ignore) "NaN"
        }

        test "narrow tables: a pattern whose observed block of Σ is singular falls back to the batched form's jitter" {
            let v = torch.tensor([| 1.0; 2.0; 3.0 |], dtype = dtype)
            let singular = v.outer(v)
            let mu = torch.zeros(3L, dtype = dtype)
            let z = torch.tensor([| 1.0; 2.0; 0.0; 0.5; 0.0; 0.0 |], dtype = dtype).reshape(2L, 3L)
            let mask = torch.tensor([| 0.0; 0.0; 1.0; 0.0; 1.0; 1.0 |], dtype = dtype).reshape(2L, 3L)
            let c = Gaussian.conditional mu singular z mask
            Expect.isTrue (c.Imputed.isfinite().all().item<bool>()) "finite imputations"
            // On the line through v: z_2 = 1.5 z_0 once z_0 = 1, z_1 = 2 are seen.
            Expect.floatClose Accuracy.low (scalar c.Imputed[0, 2]) 3.0 "the line's value"
        }

        test "narrow tables: NaN in Σ raises the same clear error as wide ones" {
            let mu = torch.zeros(2L, dtype = dtype)
            let a = torch.tensor([| 1.0; nan; nan; 1.0 |], dtype = dtype).reshape(2L, 2L)
            let z = torch.ones(1L, 2L, dtype = dtype)
            let mask = torch.tensor([| 0.0; 1.0 |], dtype = dtype).reshape(1L, 2L)
            Expect.throwsT<InvalidOperationException> (fun () -> Gaussian.conditionalMean mu a z mask |> ignore) "NaN"
        }

        test "large batches are chunked without changing the result" {
            let mu, sigma, z, mask = setup 8L 300 40 0.7
            let c = Gaussian.conditional mu sigma z mask
            let expected, _ = perRowReference mu sigma (z.narrow(0L, 0L, 20L)) (mask.narrow(0L, 0L, 20L))
            Expect.isLessThan (maxAbs (c.Imputed.narrow(0L, 0L, 20L)) expected) 1e-9 "first rows"
        }
    ]
