module EMFlow.Tests.MissingnessTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Missingness
open EMFlow.Tensors
open EMFlow.Tests.TestUtil

/// Allowed gap between a realised missing rate and its expectation: about five standard deviations
/// of a rate estimated from the ~10 000 Bernoulli draws the tests use (sd at most 0.5 / sqrt 9000).
let rateTol = 0.025

let private config = { FsCheckConfig.defaultConfig with maxTest = 25 }

let private bits (t: Tensor) = toArray t |> Array.map BitConverter.DoubleToInt64Bits

let private missingRate (mask: Tensor) = scalar (mask.mean())

/// Correlated Gaussian data (n, p) from a seed.
let private gaussianData (seed: int64) (n: int) (p: int) =
    use gen = generator seed
    let sigma = randomCovariance gen p
    let mu = torch.randn([| int64 p |], dtype = dtype, generator = gen)
    sampleGaussian gen mu sigma n


let maskTests =
    testList "masks" [
        testCase "MCAR realised rate is close to the requested rate" <| fun () ->
            let m = mcar 11L 0.2 (200, 50)
            Expect.floatClose { absolute = rateTol; relative = 0.0 } (missingRate m) 0.2 "rate 0.2"
            let values = toArray m |> Array.distinct |> Array.sort
            Expect.equal values [| 0.0; 1.0 |] "mask holds only 0 and 1"

        testCase "MCAR rate 0 masks nothing" <| fun () ->
            Expect.equal (missingRate (mcar 3L 0.0 (20, 5))) 0.0 "no entry missing"

        testCase "MCAR: same seed same mask, different seed different mask" <| fun () ->
            Expect.equal (bits (mcar 5L 0.3 (40, 6))) (bits (mcar 5L 0.3 (40, 6))) "same seed"
            Expect.notEqual (bits (mcar 5L 0.3 (40, 6))) (bits (mcar 6L 0.3 (40, 6))) "different seed"

        testCase "mcarLike takes the shape of the data" <| fun () ->
            let m = mcarLike 1L 0.5 (torch.zeros([| 7L; 3L |], dtype = dtype))
            Expect.equal m.shape [| 7L; 3L |] "shape"

        testCase "marObservedFeatures is floor(0.7 p)" <| fun () ->
            Expect.equal (List.map marObservedFeatures [ 1; 2; 3; 9; 10; 13; 60 ]) [ 0; 1; 2; 6; 7; 9; 42 ] "floor(0.7 p)"

        testCase "MAR never masks the first floor(0.7 p) features" <| fun () ->
            let x = gaussianData 21L 3000 10
            let m = mar 22L x
            let leading = m.narrow(1L, 0L, 7L)
            Expect.equal (scalar (leading.sum())) 0.0 "first 7 of 10 features always observed"
            let trailing = m.narrow(1L, 7L, 3L)
            Expect.isGreaterThan (scalar (trailing.sum())) 0.0 "the rest do go missing"

        testCase "MAR realised rate matches the mean sigmoid probability" <| fun () ->
            // 3000 rows × 3 trailing features = 9000 draws.
            let x = gaussianData 31L 3000 10
            let m = mar 32L x
            let realised = scalar (m.narrow(1L, 7L, 3L).mean())
            let expected = marExpectedRate x
            Expect.floatClose { absolute = rateTol; relative = 0.0 } realised expected
                (sprintf "realised %.4f vs expected %.4f" realised expected)
            // Standardised drivers centre the sigmoid's argument at 0, so the rate is near one half.
            Expect.isTrue (expected > 0.3 && expected < 0.7) (sprintf "expected rate %.3f near 0.5" expected)

        testCase "MAR probabilities on a hand example" <| fun () ->
            // p = 3, so k = 2 drivers. Column 0 = [0, 2] has mean 1 and population sd 1: z = [-1, 1].
            // Column 1 = [1, 5] has mean 3 and sd 2: z = [-1, 1]. Row sums -2 and 2.
            let x = ofArray2D (array2D [ [ 0.0; 1.0; 9.0 ]; [ 2.0; 5.0; -9.0 ] ])
            let prob = toArray2D (marProbabilities x)
            let sigmoid v = 1.0 / (1.0 + exp (-v))
            Expect.equal [ prob[0, 0]; prob[0, 1]; prob[1, 0]; prob[1, 1] ] [ 0.0; 0.0; 0.0; 0.0 ] "drivers never missing"
            Expect.floatClose Accuracy.veryHigh prob[0, 2] (sigmoid -2.0) "row 0"
            Expect.floatClose Accuracy.veryHigh prob[1, 2] (sigmoid 2.0) "row 1"
            Expect.floatClose Accuracy.veryHigh (marExpectedRate x) 0.5 "mean of sigmoid(-2) and sigmoid(2)"

        testCase "MAR: a constant driver contributes 0" <| fun () ->
            // p = 2: the only driver is constant, so every probability is sigmoid(0) = 0.5.
            let x = ofArray2D (array2D [ [ 4.0; 1.0 ]; [ 4.0; 2.0 ]; [ 4.0; 3.0 ] ])
            let prob = toArray (marProbabilities x)
            Expect.equal prob [| 0.0; 0.5; 0.0; 0.5; 0.0; 0.5 |] "probabilities"

        testCase "MAR at a set rate hits the rate and keeps the rows' order of probability" <| fun () ->
            let x = gaussianData 51L 2000 10
            for rate in [ 0.1; 0.26; 0.62 ] do
                let prob = marProbabilitiesAtRate rate x
                let trailing = prob.narrow(1L, 7L, 3L)
                Expect.floatClose { absolute = 1e-9; relative = 0.0 } (scalar (trailing.mean())) rate "expected rate"
                Expect.equal (scalar (prob.narrow(1L, 0L, 7L).abs().sum())) 0.0 "drivers never missing"
                // Same ranking of rows as the uncalibrated mechanism.
                let a = (marProbabilities x).narrow(1L, 7L, 1L).squeeze(1L).argsort().to_type(torch.float64)
                let b = trailing.narrow(1L, 0L, 1L).squeeze(1L).argsort().to_type(torch.float64)
                Expect.equal (bits a) (bits b) "order kept"
                let m = marAtRate 52L rate x
                Expect.floatClose { absolute = rateTol; relative = 0.0 } (scalar (m.narrow(1L, 7L, 3L).mean())) rate "realised rate"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> marProbabilitiesAtRate 0.0 x |> ignore) "rate 0"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> marProbabilitiesAtRate 1.0 x |> ignore) "rate 1"

        testCase "MAR: same seed same mask, different seed different mask" <| fun () ->
            let x = gaussianData 41L 200 6
            Expect.equal (bits (mar 1L x)) (bits (mar 1L x)) "same seed"
            Expect.notEqual (bits (mar 1L x)) (bits (mar 2L x)) "different seed"

        testCase "MNAR thresholds interpolate between order statistics" <| fun () ->
            let x = ofArray2D (array2D [ [ 5.0 ]; [ 1.0 ]; [ 4.0 ]; [ 2.0 ]; [ 3.0 ] ])
            Expect.equal (mnarThresholds 0.5 x) [| 3.0 |] "median"
            Expect.floatClose Accuracy.veryHigh (mnarThresholds 0.9 x).[0] 4.6 "0.9 quantile"

        testPropertyWithConfig config "MNAR only masks values above their feature's quantile" <| fun (seed: int) ->
            let x = gaussianData (int64 seed) 60 4
            let m = toArray2D (mnar (int64 seed) 0.7 0.8 x)
            let thr = mnarThresholds 0.7 x
            let a = toArray2D x
            for i in 0 .. 59 do
                for j in 0 .. 3 do
                    if m[i, j] = 1.0 then
                        Expect.isGreaterThan a[i, j] thr[j] (sprintf "masked (%d, %d) is above the threshold" i j)

        testCase "MNAR with prob 1 masks exactly the values above the quantile" <| fun () ->
            let x = gaussianData 51L 50 3
            let m = mnar 52L 0.6 1.0 x
            let thr = ofArray (mnarThresholds 0.6 x)
            let above = x.gt(thr).to_type(dtype)
            Expect.equal (bits m) (bits above) "mask = above threshold"
            Expect.equal (bits (mnar 52L 0.6 0.5 x)) (bits (mnar 52L 0.6 0.5 x)) "same seed same mask"

        testList "bad input" [
            testCase "MCAR rate 1, negative or NaN" <| fun () ->
                for rate in [ 1.0; -0.1; nan ] do
                    let ex = Expect.throwsC (fun () -> mcar 1L rate (3, 3) |> ignore) id
                    Expect.isTrue (ex :? ArgumentOutOfRangeException) (sprintf "rate %g: ArgumentOutOfRangeException" rate)
                    Expect.equal (ex :?> ArgumentOutOfRangeException).ParamName "rate" "names rate"
                    Expect.stringContains ex.Message (sprintf "%g" rate) "states the value"
            testCase "MCAR negative size" <| fun () ->
                Expect.throwsT<ArgumentOutOfRangeException> (fun () -> mcar 1L 0.1 (-1, 3) |> ignore) "n < 0"
            testCase "MAR with one feature" <| fun () ->
                let x = torch.zeros([| 5L; 1L |], dtype = dtype)
                Expect.throwsT<ArgumentException> (fun () -> mar 1L x |> ignore) "p = 1"
            testCase "MAR with NaN" <| fun () ->
                let x = ofArray2D (array2D [ [ 1.0; nan ]; [ 2.0; 3.0 ] ])
                Expect.throwsT<ArgumentException> (fun () -> mar 1L x |> ignore) "NaN"
            testCase "MNAR quantile or prob outside [0, 1]" <| fun () ->
                let x = torch.zeros([| 4L; 2L |], dtype = dtype)
                Expect.throwsT<ArgumentOutOfRangeException> (fun () -> mnar 1L 1.5 0.5 x |> ignore) "quantile"
                Expect.throwsT<ArgumentOutOfRangeException> (fun () -> mnar 1L 0.5 -0.5 x |> ignore) "prob"
        ]
    ]

[<Tests>]
let tests = testList "Missingness" [ maskTests ]
