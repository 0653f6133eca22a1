module EMFlow.Tests.MetricsTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors
open EMFlow.Tests.TestUtil

let private config = { FsCheckConfig.defaultConfig with maxTest = 30 }

// truth − imputed is 0.5 at (0, 0) and −2 at (1, 1), both missing; observed entries differ
// wildly (and one is NaN) to show they are not scored.
let private truth = ofArray2D (array2D [ [ 1.0; 2.0; 7.0 ]; [ 3.0; 4.0; nan ] ])
let private imputed = ofArray2D (array2D [ [ 1.5; 200.0; 7.0 ]; [ -50.0; 2.0; 1.0 ] ])
let private mask = ofArray2D (array2D [ [ 1.0; 0.0; 0.0 ]; [ 0.0; 1.0; 0.0 ] ])

[<Tests>]
let tests =
    testList "Metrics" [
        testCase "RMSE over missing entries on a hand example" <| fun () ->
            Expect.floatClose Accuracy.veryHigh (Metrics.rmse truth imputed mask) (sqrt ((0.25 + 4.0) / 2.0)) "sqrt(2.125)"

        testCase "MAE over missing entries on a hand example" <| fun () ->
            Expect.floatClose Accuracy.veryHigh (Metrics.mae truth imputed mask) 1.25 "(0.5 + 2) / 2"

        testCase "per-feature RMSE, NaN for a feature with no missing entry" <| fun () ->
            let r = Metrics.perFeatureRmse truth imputed mask
            Expect.equal r.Length 3 "one value per feature"
            Expect.floatClose Accuracy.veryHigh r[0] 0.5 "feature 0"
            Expect.floatClose Accuracy.veryHigh r[1] 2.0 "feature 1"
            Expect.isTrue (Double.IsNaN r[2]) "feature 2 has no missing entry"

        testPropertyWithConfig config "RMSE >= MAE >= 0, and both are 0 for a perfect imputation" <| fun (seed: int) ->
            use gen = generator (int64 seed)
            let t = torch.randn([| 10L; 3L |], dtype = dtype, generator = gen)
            let i = torch.randn([| 10L; 3L |], dtype = dtype, generator = gen)
            let m = torch.rand([| 10L; 3L |], dtype = dtype, generator = gen).lt(torch.tensor(0.5, dtype = dtype)).to_type(dtype)
            m[0, 0] <- torch.tensor(1.0, dtype = dtype)
            let rmse, mae = Metrics.rmse t i m, Metrics.mae t i m
            Expect.isGreaterThanOrEqual (rmse + tightTol) mae "RMSE >= MAE"
            Expect.isGreaterThanOrEqual mae 0.0 "MAE >= 0"
            Expect.equal (Metrics.rmse t t m) 0.0 "perfect RMSE"
            Expect.equal (Metrics.mae t t m) 0.0 "perfect MAE"
            // The overall RMSE is the count-weighted root mean of the per-feature squares.
            let counts = toArray (m.sum(0L))
            let perFeature = Metrics.perFeatureRmse t i m
            let pooled =
                Array.map2 (fun r c -> if c = 0.0 then 0.0 else r * r * c) perFeature counts
                |> Array.sum
            Expect.floatClose Accuracy.high (sqrt (pooled / Array.sum counts)) rmse "pooled per-feature RMSE"

        testCase "rmseOrNaN is the RMSE, and NaN where rmse would throw" <| fun () ->
            Expect.equal (Metrics.rmseOrNaN truth imputed mask) (Metrics.rmse truth imputed mask) "same value"
            Expect.isTrue (Double.IsNaN (Metrics.rmseOrNaN truth imputed (torch.zeros([| 2L; 3L |], dtype = dtype)))) "nothing missing"

        testList "arrays" [
            // The hand example above as arrays: scored at (0, 0) and (1, 1); the NaN truth at (1, 2) is not read.
            let truthA = array2D [ [ 1.0; 2.0; 7.0 ]; [ 3.0; 4.0; nan ] ]
            let imputedA = array2D [ [ 1.5; 200.0; 7.0 ]; [ -50.0; 2.0; 1.0 ] ]
            let hiddenA = array2D [ [ true; false; false ]; [ false; true; false ] ]

            testCase "RMSE and count over the hidden entries on a hand example" <| fun () ->
                let struct (r, count) = Metrics.rmseAndCountOf truthA imputedA hiddenA
                Expect.equal count 2 "two hidden entries"
                Expect.equal r (sqrt ((0.25 + 4.0) / 2.0)) "sqrt(2.125), to the bit"
                Expect.equal (Metrics.rmseOf truthA imputedA hiddenA) r "rmseOf is the same RMSE"

            testCase "scaled RMSE divides each column's error by its scale" <| fun () ->
                // (1.5 − 1) / 0.5 = 1 and (2 − 4) / 4 = −0.5: sqrt((1 + 0.25) / 2).
                let struct (r, count) = Metrics.scaledRmseAndCountOf [| 0.5; 4.0; 1.0 |] truthA imputedA hiddenA
                Expect.equal count 2 "two hidden entries"
                Expect.equal r (sqrt 0.625) "sqrt(0.625)"
                let struct (ones, _) = Metrics.scaledRmseAndCountOf [| 1.0; 1.0; 1.0 |] truthA imputedA hiddenA
                Expect.equal ones (Metrics.rmseOf truthA imputedA hiddenA) "unit scale changes nothing"

            testCase "NaN and 0 when nothing is hidden" <| fun () ->
                let struct (r, count) = Metrics.rmseAndCountOf truthA imputedA (Array2D.zeroCreate 2 3)
                Expect.isTrue (Double.IsNaN r) "no error to report"
                Expect.equal count 0 "nothing scored"

            testCase "sums row by row, left to right, as a plain loop does" <| fun () ->
                let rng = Random(5)
                let t = Array2D.init 40 7 (fun _ _ -> rng.NextDouble())
                let i = Array2D.init 40 7 (fun _ _ -> rng.NextDouble() * 3.0)
                let h = Array2D.init 40 7 (fun _ _ -> rng.NextDouble() < 0.3)
                let mutable s = 0.0
                let mutable c = 0
                for a in 0 .. 39 do
                    for b in 0 .. 6 do
                        if h[a, b] then
                            let d = i[a, b] - t[a, b]
                            s <- s + d * d
                            c <- c + 1
                Expect.equal (Metrics.rmseOf t i h) (sqrt (s / float c)) "the same bits"

            testPropertyWithConfig config "agrees with the tensor RMSE" <| fun (seed: int) ->
                use gen = generator (int64 seed)
                let t = torch.randn([| 12L; 4L |], dtype = dtype, generator = gen)
                let i = torch.randn([| 12L; 4L |], dtype = dtype, generator = gen)
                let m = torch.rand([| 12L; 4L |], dtype = dtype, generator = gen).lt(torch.tensor(0.5, dtype = dtype)).to_type(dtype)
                m[0, 0] <- torch.tensor(1.0, dtype = dtype)
                Expect.floatClose Accuracy.veryHigh (Metrics.rmseOf (toArray2D t) (toArray2D i) (toMask2D m)) (Metrics.rmse t i m) "same RMSE"

            testCase "bad input" <| fun () ->
                Expect.throwsT<ArgumentException> (fun () -> Metrics.rmseOf truthA (Array2D.zeroCreate 2 2) hiddenA |> ignore) "imputed shape"
                Expect.throwsT<ArgumentException> (fun () -> Metrics.rmseOf truthA imputedA (Array2D.zeroCreate 3 3) |> ignore) "hidden shape"
                Expect.throwsT<ArgumentException> (fun () -> Metrics.scaledRmseAndCountOf [| 1.0 |] truthA imputedA hiddenA |> ignore) "scale length"
                Expect.throwsT<ArgumentNullException> (fun () -> Metrics.rmseOf null imputedA hiddenA |> ignore) "null truth"
        ]

        testList "bad input" [
            let fns : (string * (Tensor -> Tensor -> Tensor -> unit)) list =
                [ "rmse", (fun a b c -> Metrics.rmse a b c |> ignore)
                  "mae", (fun a b c -> Metrics.mae a b c |> ignore)
                  "perFeatureRmse", (fun a b c -> Metrics.perFeatureRmse a b c |> ignore) ]
            for name, f in fns do
                yield testCase (sprintf "%s: imputed of another shape" name) <| fun () ->
                    let other = torch.zeros([| 2L; 2L |], dtype = dtype)
                    Expect.throwsT<ArgumentException> (fun () -> f truth other mask) "imputed shape"
                yield testCase (sprintf "%s: mask of another shape" name) <| fun () ->
                    let other = torch.ones([| 3L; 3L |], dtype = dtype)
                    Expect.throwsT<ArgumentException> (fun () -> f truth imputed other) "mask shape"
                yield testCase (sprintf "%s: no missing entry" name) <| fun () ->
                    let none = torch.zeros([| 2L; 3L |], dtype = dtype)
                    Expect.throwsT<ArgumentException> (fun () -> f truth imputed none) "nothing to score"
                yield testCase (sprintf "%s: 1-D tensors" name) <| fun () ->
                    let v = torch.ones([| 3L |], dtype = dtype)
                    Expect.throwsT<ArgumentException> (fun () -> f v v v) "1-D"
        ]
    ]
