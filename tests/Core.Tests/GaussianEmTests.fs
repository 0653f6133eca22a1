module EMFlow.Tests.GaussianEmTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors
open EMFlow.Tests.TestUtil

/// n rows of p features, 20% MCAR, from a Gaussian drawn with the seed.
let private sample (seed: int64) (n: int) (p: int) =
    let gen = generator seed
    let sigma = randomCovariance gen p
    let mu = torch.randn(int64 p, dtype = dtype, generator = gen)
    let x = sampleGaussian gen mu sigma n
    let mask = torch.rand([| int64 n; int64 p |], dtype = dtype, generator = gen).lt(sc 0.2).to_type(dtype)
    mu, sigma, x, mask

/// p = 8, n = 5000, 20% MCAR from a known Gaussian.
let private problem () = sample 11L 5000 8

[<Tests>]
let tests =
    testSequenced <| testList "GaussianEm" [
        test "eStepRows keeps tables in one slice and slices wide data" {
            Expect.equal (GaussianEm.eStepRows 16L) 4096L "p = 16: one slice up to 4096 rows"
            Expect.equal (GaussianEm.eStepRows 784L) 109L "p = 784: 2^26 / 784^2 rows"
        }

        test "the sliced E-step equals one Gaussian.conditional call (p = 400, n = 500, two slices)" {
            let p = 400
            let mu, sigma, x, mask = sample 5L 500 p
            Expect.isLessThan (GaussianEm.eStepRows (int64 p)) 500L "more than one slice"
            let whole = Gaussian.conditional mu sigma x mask
            let sliced = GaussianEm.conditional mu sigma x mask
            Expect.isLessThan (maxAbs sliced.Imputed whole.Imputed) 1e-9 "same conditional means"
            Expect.isLessThan (maxAbs sliced.LogLikelihood whole.LogLikelihood) 1e-7 "same log-likelihoods"
            Expect.isLessThan (maxAbs sliced.CovarianceSum whole.CovarianceSum) 1e-7 "same covariance sum"
        }

        test "batch EM recovers mu and Sigma of a synthetic Gaussian (p = 8, n = 5000, 20% MCAR)" {
            let mu, sigma, x, mask = problem ()
            let fit = GaussianEm.fitBatch GaussianEm.defaults (torch.where(mask.gt(sc 0.5), torch.full_like(x, sc nan), x)) mask
            Expect.isTrue fit.Converged "converged"
            // Sampling error at n = 5000 is about sqrt(2/n) ~ 0.02 on unit-scale entries; 0.1 leaves room for
            // the 20% information loss without hiding a wrong E-step (which misses by far more).
            Expect.isLessThan (maxAbs fit.Estimate.Mu mu) 0.1 "mu within 0.1"
            Expect.isLessThan (maxAbs fit.Estimate.Sigma sigma) 0.1 "Sigma within 0.1"
            let ll = fit.LogLikelihood
            Expect.isTrue (List.pairwise ll |> List.forall (fun (a, b) -> b >= a - 1e-9)) "EM never lowers the observed-data likelihood"
        }

        test "batch EM beats mean imputation on correlated data" {
            let _, _, x, mask = problem ()
            let fit = GaussianEm.fitBatch GaussianEm.defaults x mask
            let imputed = GaussianEm.impute fit.Estimate x mask
            let meanFill = GaussianEm.initialEstimate x mask
            let err (t: Tensor) = scalar ((((t - x) * mask).pow(sc 2.0)).sum() / mask.sum())
            Expect.isLessThan (err imputed) (err (torch.where(mask.gt(sc 0.5), meanFill.Mu.expand(x.shape), x))) "EM < mean"
        }

        test "online EM approaches the batch estimate" {
            let _, _, x, mask = problem ()
            let batch = GaussianEm.fitBatch GaussianEm.defaults x mask
            let online = GaussianEm.fitOnline OnlineEm.paperStepSize OnlineEm.Moments 256 8 3L x mask
            Expect.isLessThan (maxAbs online.Estimate.Mu batch.Estimate.Mu) 0.05 "mu"
            Expect.isLessThan (maxAbs online.Estimate.Sigma batch.Estimate.Sigma) 0.1 "Sigma"
            let suff = GaussianEm.fitOnline OnlineEm.paperStepSize OnlineEm.SufficientStatistics 256 8 3L x mask
            Expect.isLessThan (maxAbs suff.Estimate.Sigma batch.Estimate.Sigma) 0.1 "Sigma, eq. 28 form"
        }

        test "observed entries come back bit for bit and no NaN is left" {
            let _, _, x, mask = problem ()
            let withNan = torch.where(mask.gt(sc 0.5), torch.full_like(x, sc nan), x)
            let fit = GaussianEm.fitBatch GaussianEm.defaults withNan mask
            let imputed = GaussianEm.impute fit.Estimate withNan mask
            Expect.isFalse (imputed.isnan().any().item<bool>()) "no NaN"
            let obs = mask.lt(sc 0.5)
            Expect.isTrue (imputed.masked_select(obs).eq(x.masked_select(obs)).all().item<bool>()) "observed unchanged"
        }

        test "n < p still fits thanks to the ridge" {
            let gen = generator 5L
            let x = torch.randn([| 6L; 10L |], dtype = dtype, generator = gen)
            let mask = torch.rand([| 6L; 10L |], dtype = dtype, generator = gen).lt(sc 0.2).to_type(dtype)
            mask[0, 0] <- torch.tensor(0.0, dtype = dtype)
            let fit = GaussianEm.fitBatch { GaussianEm.defaults with MaxIterations = 50 } x mask
            Expect.isFalse ((GaussianEm.impute fit.Estimate x mask).isnan().any().item<bool>()) "finite"
        }

        test "bad input throws the documented exception" {
            let x = torch.zeros(4L, 2L, dtype = dtype)
            let allMissingColumn = torch.tensor([| 0.0; 1.0; 0.0; 1.0; 0.0; 1.0; 0.0; 1.0 |], dtype = dtype).reshape(4L, 2L)
            let ex = Expect.throwsC (fun () -> GaussianEm.fitBatch GaussianEm.defaults x allMissingColumn |> ignore) id
            Expect.isTrue (ex :? ArgumentException && ex.Message.Contains "Column 1") "names the column"
            Expect.throwsT<ArgumentException> (fun () -> GaussianEm.fitBatch GaussianEm.defaults x (torch.zeros(3L, 2L, dtype = dtype)) |> ignore) "shape"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> GaussianEm.fitBatch { GaussianEm.defaults with MaxIterations = 0 } x (torch.zeros_like(x)) |> ignore) "iterations"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> GaussianEm.fitOnline OnlineEm.paperStepSize OnlineEm.Moments 1 1 0L x (torch.zeros_like(x)) |> ignore) "batch size"
        }
    ]
