module EMFlow.Tests.EMFlowTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors
open EMFlow.OnlineEm
open EMFlow.Tests.TestUtil

let private problem seed n p rate =
    let mu, sigma, x, mask = gaussianProblem seed n p rate
    { Mu = mu; Sigma = sigma }, x, mask

let private settings : Training.StepSettings =
    { Alpha = 1e3; StepSize = paperStepSize; Beta = 0.0; MaxGradNorm = 10.0; Ridge = 0.0; Second = Training.Paper; LatentFromL1Pass = false; ObservedShareWeight = 0.0; FusedGradient = true }

let private wide p = torch.full(int64 p, sc -1e9, dtype = dtype), torch.full(int64 p, sc 1e9, dtype = dtype)

[<Tests>]
let tests =
    testSequenced <| testList "EMFlow phases" [
        test "with the identity flow the data density is the latent Gaussian density" {
            let e, x, _ = problem 1L 20 4 0.0
            use flow = Flow.identity 4
            Expect.isLessThan (maxAbs (Training.logDensity flow e x) (Gaussian.logDensity e.Mu e.Sigma x)) 1e-12 "eq. 3 with f = id"
        }

        test "L1's row weights follow each row's observed share, and γ = 0 is the plain mean" {
            // Rows with 0, 1 and 4 of 4 entries missing: observed shares 1, 3/4 and 0.
            use logP = torch.tensor([| -1.0; -2.0; -7.0 |], dtype = dtype)
            use mask = torch.tensor([| 0.0; 0.0; 0.0; 0.0; 1.0; 0.0; 0.0; 0.0; 1.0; 1.0; 1.0; 1.0 |], dtype = dtype).reshape(3L, 4L)
            Expect.floatClose Accuracy.veryHigh (scalar (Training.weightedNegativeMean 0.0 logP mask)) (10.0 / 3.0) "γ = 0: the plain mean"
            let w = 0.75 ** 2.0
            Expect.floatClose Accuracy.veryHigh (scalar (Training.weightedNegativeMean 2.0 logP mask)) ((1.0 + 2.0 * w) / (1.0 + w)) "γ = 2"
            use none = torch.ones(3L, 4L, dtype = dtype)
            Expect.equal (scalar (Training.weightedNegativeMean 2.0 logP none)) 0.0 "nothing observed weighs nothing"
        }

        test "with the identity flow re-imputation is the Gaussian conditional mean" {
            let e, x, mask = problem 2L 50 5 0.3
            use flow = Flow.identity 5
            let lo, hi = wide 5
            let got = Training.reimpute flow e lo hi x mask
            Expect.isLessThan (maxAbs got (GaussianEm.impute e x mask)) 1e-12 "Algorithm 2 with f = id"
        }

        test "with the identity flow the training phase reduces to online Gaussian EM" {
            let e0, x, mask = problem 3L 256 4 0.25
            use flow = Flow.identity 4
            use opt1 = new Optim.Adam([| new Flow.Parameter(torch.zeros(1L)) |], 0.1)
            use opt2 = new Optim.Adam([| new Flow.Parameter(torch.zeros(1L)) |], 0.1)
            let mutable viaFlow = init Moments 0 e0
            let mutable direct = init Moments 0 e0
            for b in 0 .. 7 do
                let xb, mb = x.narrow(0L, int64 (b * 32), 32L), mask.narrow(0L, int64 (b * 32), 32L)
                let next, _ = Training.trainStep settings flow opt1 opt2 viaFlow xb mb
                viaFlow <- next
                direct <- step paperStepSize direct (Gaussian.conditional direct.Estimate.Mu direct.Estimate.Sigma xb mb)
            Expect.isLessThan (maxAbs viaFlow.Estimate.Mu direct.Estimate.Mu) 1e-12 "mu"
            Expect.isLessThan (maxAbs viaFlow.Estimate.Sigma direct.Estimate.Sigma) 1e-12 "Sigma"
            Expect.equal viaFlow.Step 8 "eight updates"
        }

        test "the ridge is added where Σ is used, not stored: it does not compound over online steps" {
            let e0, x, mask = problem 3L 256 4 0.25
            use flow = Flow.identity 4
            use opt1 = new Optim.Adam([| new Flow.Parameter(torch.zeros(1L)) |], 0.1)
            use opt2 = new Optim.Adam([| new Flow.Parameter(torch.zeros(1L)) |], 0.1)
            let meanDiagonalAfter (r: float) =
                let mutable state = init Moments 0 e0
                for b in 0 .. 7 do
                    let xb, mb = x.narrow(0L, int64 (b * 32), 32L), mask.narrow(0L, int64 (b * 32), 32L)
                    let next, _ = Training.trainStep { settings with Ridge = r; Second = Training.Skip } flow opt1 opt2 state xb mb
                    state <- next
                scalar (state.Estimate.Sigma.diagonal().mean())
            let plain, ridged = meanDiagonalAfter 0.0, meanDiagonalAfter 0.05
            // Stored with Σ, a ridge of 5% would be added at each of the 8 steps and decay only by (1 - ρ_t),
            // leaving about 5% / ρ_8 ≈ 26% on the diagonal; added on use it only shifts the E-step slightly.
            Expect.isLessThan (abs (ridged - plain)) (0.05 * plain) "less than one ridge apart"
        }

        test "re-imputation never touches observed entries and stays within bounds" {
            let e, x, mask = problem 4L 64 6 0.3
            use flow = Flow.create { Flow.defaultConfig 6 5L with Hidden = 16 }
            // Move the flow away from the identity so the test means something.
            use _ = torch.no_grad()
            for p in Flow.parameters flow do p.add_(torch.randn_like(p) * 0.1) |> ignore
            let lo, hi = torch.full(6L, sc -0.5, dtype = dtype), torch.full(6L, sc 0.5, dtype = dtype)
            let got = Training.reimpute flow e lo hi x mask
            let obs = mask.lt(sc 0.5)
            Expect.isTrue (got.masked_select(obs).eq(x.masked_select(obs)).all().item<bool>()) "observed bit for bit"
            let imputed = got.masked_select(obs.logical_not())
            Expect.isTrue (imputed.ge(sc -0.5).all().item<bool>() && imputed.le(sc 0.5).all().item<bool>()) "clamped"
        }

        test "a training step lowers L1 on a non-Gaussian batch and keeps Sigma positive definite" {
            let x0 = Synthetic.nonlinear 6L 256 0.1
            let x = Scaler.transform (Scaler.fit x0 (torch.zeros_like(x0))) x0
            let mask = Missingness.mcarLike 7L 0.2 x
            let xHat = GaussianEm.impute (GaussianEm.fitBatch GaussianEm.defaults x mask).Estimate x mask
            use flow = Flow.create { Flow.defaultConfig 7 8L with Hidden = 32 }
            use opt1 = new Optim.Adam(Flow.parameters flow, 1e-3)
            use opt2 = new Optim.Adam(Flow.parameters flow, 1e-3)
            let mutable state = init Moments 0 (Training.initialEstimate flow 1e-6 xHat)
            let first = ref nan
            let mutable last = nan
            for k in 1 .. 60 do
                let next, losses = Training.trainStep { settings with Second = Training.Skip } flow opt1 opt2 state xHat mask
                state <- next
                if k = 1 then first.Value <- losses.L1
                last <- losses.L1
            Expect.isLessThan last first.Value "L1 decreases"
            Expect.isGreaterThan (scalar (torch.linalg.eigvalsh(state.Estimate.Sigma).min())) 0.0 "Sigma positive definite"
        }

        test "multiple imputation draws differ, keep observed entries, and repeat with the seed" {
            let e, x, mask = problem 9L 30 4 0.4
            use flow = Flow.identity 4
            let lo, hi = wide 4
            let draw seed = Training.sampleImputation (generator seed) flow e lo hi x mask
            let a, b, a2 = draw 1L, draw 2L, draw 1L
            Expect.isTrue (a.eq(a2).all().item<bool>()) "same seed"
            Expect.isGreaterThan (maxAbs a b) 1e-6 "different seeds differ"
            let obs = mask.lt(sc 0.5)
            Expect.isTrue (a.masked_select(obs).eq(x.masked_select(obs)).all().item<bool>()) "observed kept"
        }

        test "from the L1 pass, the E-step sees the flow as it was before the L1 update" {
            let e0, x, mask = problem 11L 128 5 0.25
            use flow = Flow.create { Flow.defaultConfig 5 3L with Hidden = 16 }
            use opt1 = new Optim.Adam(Flow.parameters flow, 1e-2)
            use opt2 = new Optim.Adam(Flow.parameters flow, 1e-2)
            let skip = { settings with Second = Training.Skip }
            let mutable state = init Moments 0 e0
            // A few ordinary steps first, so the flow is no longer the identity.
            for _ in 1 .. 3 do
                let next, _ = Training.trainStep skip flow opt1 opt2 state x mask
                state <- next
            let zBefore = (use _ = torch.no_grad() in fst (Flow.toLatent flow x))
            let expected = step paperStepSize state (Gaussian.conditional state.Estimate.Mu state.Estimate.Sigma zBefore mask)
            let next, _, latent = Training.trainStepWithLatent { skip with LatentFromL1Pass = true } flow opt1 opt2 state x mask
            let zAfter = (use _ = torch.no_grad() in fst (Flow.toLatent flow x))
            Expect.isGreaterThan (maxAbs zAfter zBefore) 1e-8 "the L1 update moved the flow"
            Expect.isLessThan (maxAbs latent.Value zBefore) 1e-12 "the latent vectors returned are the L1 pass's"
            Expect.isLessThan (maxAbs next.Estimate.Mu expected.Estimate.Mu) 1e-12 "mu from the pre-update latent vectors"
            Expect.isLessThan (maxAbs next.Estimate.Sigma expected.Estimate.Sigma) 1e-12 "Sigma from the pre-update latent vectors"
            let _, _, none = Training.trainStepWithLatent skip flow opt1 opt2 next x mask
            Expect.isNone none "the paper's order returns no latent vectors"
        }

        test "the latent refit equals batch EM on the latent vectors" {
            let e, x, mask = problem 10L 200 4 0.2
            use flow = Flow.identity 4
            let refit = Training.refitLatent flow GaussianEm.defaults.Ridge x mask
            let direct = GaussianEm.fitBatch { GaussianEm.defaults with MaxIterations = 200 } x mask
            Expect.isLessThan (maxAbs refit.Sigma direct.Estimate.Sigma) 1e-12 "same EM"
        }
    ]
