module EMFlow.Tests.OnlineEmTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors
open EMFlow.OnlineEm
open EMFlow.Tests.TestUtil

[<Tests>]
let tests =
    testList "OnlineEm" [
        testProperty "the M-step on complete data is the sample mean and covariance" <| fun (seed: int) ->
            let gen = generator (int64 seed)
            let x = torch.randn([| 50L; 4L |], dtype = dtype, generator = gen)
            let e = localEstimate x (torch.zeros(4L, 4L, dtype = dtype))
            Expect.isLessThan (maxAbs e.Mu (x.mean([| 0L |]))) 1e-12 "mean"
            Expect.isLessThan (maxAbs e.Sigma (torch.cov(x.T, correction = 0L))) 1e-12 "covariance (divisor n)"

        test "the M-step adds the conditional-covariance term divided by the batch size" {
            let x = torch.tensor([| 1.0; 2.0; 3.0; 5.0 |], dtype = dtype).reshape(2L, 2L)
            let c = torch.tensor([| 2.0; 0.0; 0.0; 4.0 |], dtype = dtype).reshape(2L, 2L)
            let e = localEstimate x c
            let plain = localEstimate x (torch.zeros(2L, 2L, dtype = dtype))
            Expect.isLessThan (maxAbs (e.Sigma - plain.Sigma) (c / 2.0)) 1e-15 "C / B"
        }

        test "robust covariance is Sigma + beta Diag(Sigma)" {
            let s = torch.tensor([| 2.0; 0.5; 0.5; 3.0 |], dtype = dtype).reshape(2L, 2L)
            let r = robust 0.1 s
            let expected = torch.tensor([| 2.2; 0.5; 0.5; 3.3 |], dtype = dtype).reshape(2L, 2L)
            Expect.isLessThan (maxAbs r expected) 1e-15 "eq. 31"
            Expect.isTrue (Object.ReferenceEquals(robust 0.0 s, s)) "beta = 0 leaves Sigma as it is"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> robust -1.0 s |> ignore) "negative beta"
        }

        test "the paper's beta schedule" {
            Expect.equal [ for i in 1 .. 6 -> paperBeta i ] [ 1e-2; 1e-2; 1e-3; 1e-3; 0.0; 0.0 ] "1e-2, 1e-3, 0"
        }

        testProperty "step sizes stay in (0, 1) and decrease" <| fun (t: FsCheck.PositiveInt) ->
            let r1 = rho paperStepSize t.Get
            let r2 = rho paperStepSize (t.Get + 1)
            Expect.isTrue (r1 > 0.0 && r1 < 1.0 && r2 < r1) "0 < rho_(t+1) < rho_t < 1"

        test "invalid step-size schedules are rejected, naming the parameter" {
            for bad in [ { C = 0.0; Gamma = 0.8; Floor = 0.0 }; { C = 1.0; Gamma = 0.8; Floor = 0.0 }; { C = 0.5; Gamma = 0.5; Floor = 0.0 }; { C = 0.5; Gamma = 1.2; Floor = 0.0 }; { C = 0.5; Gamma = 0.8; Floor = 1.0 } ] do
                let ex = Expect.throwsC (fun () -> validateStepSize bad) id
                Expect.isTrue (ex :? ArgumentOutOfRangeException) "type"
                Expect.stringStarts (ex :?> ArgumentException).ParamName "stepSize." "names the parameter"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> rho paperStepSize 0 |> ignore) "t = 0"
        }

        test "a floor bounds the step size from below" {
            let s = { paperStepSize with Floor = 0.05 }
            Expect.equal (rho s 1) 0.99 "C at t = 1"
            Expect.equal (rho s 100000) 0.05 "the floor late on"
        }

        test "the online update is the convex combination of eq. 7-8" {
            let cur = { Mu = torch.zeros(2L, dtype = dtype); Sigma = torch.eye(2L, dtype = dtype) }
            let loc = { Mu = torch.ones(2L, dtype = dtype); Sigma = torch.eye(2L, dtype = dtype) * 3.0 }
            let u = update 0.25 cur loc
            Expect.isLessThan (maxAbs u.Mu (torch.full(2L, sc 0.25, dtype = dtype))) 1e-15 "mu"
            Expect.isLessThan (maxAbs u.Sigma (torch.eye(2L, dtype = dtype) * 1.5)) 1e-15 "Sigma"
        }

        test "sufficient statistics round-trip to the estimate" {
            let gen = generator 1L
            let e = { Mu = torch.randn(3L, dtype = dtype, generator = gen); Sigma = randomCovariance gen 3 }
            let back = ofSufficient (toSufficient e)
            Expect.isLessThan (maxAbs back.Mu e.Mu) 1e-14 "mu"
            Expect.isLessThan (maxAbs back.Sigma e.Sigma) 1e-12 "Sigma"
        }

        test "the super-batch keeps whole recent batches up to its capacity" {
            let batch k = torch.full([| 4L; 2L |], sc (float k), dtype = dtype), torch.zeros(2L, 2L, dtype = dtype)
            let mutable buf = emptySuperBatch 10
            for k in 1 .. 5 do
                let x, c = batch k
                let b, e = pushSuperBatch buf x c
                buf <- b
                if k = 5 then
                    // Capacity 10 with batches of 4: the two newest batches (5 and 4) are pooled.
                    Expect.equal buf.Batches.Length 2 "two batches kept"
                    Expect.floatClose Accuracy.high (scalar (e.Mu[0])) 4.5 "mean over batches 4 and 5"
        }

        test "a step with capacity 0 uses only the current batch" {
            let gen = generator 2L
            let x = torch.randn([| 8L; 3L |], dtype = dtype, generator = gen)
            let s0 = init Moments 0 (sampleEstimate x)
            let c : Gaussian.Conditional = { Imputed = x + 1.0; CovarianceSum = torch.zeros(3L, 3L, dtype = dtype); LogLikelihood = torch.zeros(8L, dtype = dtype) }
            let s1 = step paperStepSize s0 c
            let expectedMu = (x.mean([| 0L |]) + 1.0) * 0.99 + x.mean([| 0L |]) * 0.01
            Expect.isLessThan (maxAbs s1.Estimate.Mu expectedMu) 1e-12 "rho_1 = 0.99"
            Expect.equal s1.Step 1 "counter"
        }
    ]
