module EMFlow.Tests.ScalerTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors
open EMFlow.Tests.TestUtil

/// Round-trip error allowed on values of magnitude up to ~100: a few ulps of the data.
let roundTripTol = 1e-12

let private config = { FsCheckConfig.defaultConfig with maxTest = 30 }

/// Random (n, p) data with feature-specific offsets and scales, and an MCAR-like mask whose first
/// row is kept observed so every column has an observed value. Missing entries hold NaN.
let private randomCase (seed: int) =
    use gen = generator (int64 seed)
    let n, p = 12, 4
    let x = torch.randn([| int64 n; int64 p |], dtype = dtype, generator = gen)
    let scale = torch.rand([| int64 p |], dtype = dtype, generator = gen).mul(torch.tensor(50.0, dtype = dtype))
    let offset = torch.randn([| int64 p |], dtype = dtype, generator = gen).mul(torch.tensor(30.0, dtype = dtype))
    let x = x.mul(scale).add(offset)
    let mask = torch.rand([| int64 n; int64 p |], dtype = dtype, generator = gen).lt(torch.tensor(0.3, dtype = dtype)).to_type(dtype)
    mask[0] <- torch.zeros([| int64 p |], dtype = dtype)
    let withNaN = torch.where(mask.gt(torch.tensor(0.5, dtype = dtype)), torch.tensor(Double.NaN, dtype = dtype), x)
    withNaN, mask

[<Tests>]
let tests =
    testList "Scaler" [
        testCase "maps the observed minimum and maximum to 0 and 1, ignoring missing entries" <| fun () ->
            // Row 2 of column 0 is missing and holds 100, outside the observed range [1, 5].
            let x = ofArray2D (array2D [ [ 1.0; 10.0 ]; [ 5.0; 20.0 ]; [ 100.0; 15.0 ] ])
            let mask = ofArray2D (array2D [ [ 0.0; 0.0 ]; [ 0.0; 0.0 ]; [ 1.0; 0.0 ] ])
            let s = Scaler.fit x mask
            Expect.equal s.Min [| 1.0; 10.0 |] "observed minima"
            Expect.equal s.Max [| 5.0; 20.0 |] "observed maxima"
            let t = toArray2D (Scaler.transform s x)
            Expect.equal t[0, 0] 0.0 "min of column 0 maps to 0"
            Expect.equal t[1, 0] 1.0 "max of column 0 maps to 1"
            Expect.equal t[0, 1] 0.0 "min of column 1 maps to 0"
            Expect.equal t[1, 1] 1.0 "max of column 1 maps to 1"
            Expect.floatClose Accuracy.veryHigh t[2, 1] 0.5 "midpoint maps to 0.5"

        testPropertyWithConfig config "inverseTransform (transform x) round-trips observed entries" <| fun (seed: int) ->
            let x, mask = randomCase seed
            let s = Scaler.fit x mask
            let back = toArray2D (Scaler.inverseTransform s (Scaler.transform s x))
            let orig = toArray2D x
            let m = toArray2D mask
            for i in 0 .. Array2D.length1 orig - 1 do
                for j in 0 .. Array2D.length2 orig - 1 do
                    if m[i, j] = 0.0 then
                        Expect.isLessThanOrEqual (abs (back[i, j] - orig[i, j])) roundTripTol
                            (sprintf "round trip at (%d, %d)" i j)
                    else
                        Expect.isTrue (Double.IsNaN back[i, j]) "a missing NaN stays NaN"

        testPropertyWithConfig config "scaled observed values lie in [0, 1] with both ends reached" <| fun (seed: int) ->
            let x, mask = randomCase seed
            let s, t = Scaler.fitTransform x mask
            let obs = mask.lt(torch.tensor(0.5, dtype = dtype))
            for j in 0 .. s.Features - 1 do
                let col = toArray (t.select(1L, int64 j).masked_select(obs.select(1L, int64 j)))
                Expect.equal (Array.min col) 0.0 (sprintf "column %d minimum" j)
                Expect.floatClose Accuracy.veryHigh (Array.max col) 1.0 (sprintf "column %d maximum" j)

        testCase "a constant column maps to 0 and back exactly" <| fun () ->
            let x = ofArray2D (array2D [ [ 3.25; 1.0 ]; [ 3.25; 2.0 ]; [ 3.25; 4.0 ] ])
            let mask = torch.zeros([| 3L; 2L |], dtype = dtype)
            let s = Scaler.fit x mask
            Expect.equal s.Range [| 1.0; 3.0 |] "constant column range treated as 1"
            let t = Scaler.transform s x
            Expect.equal (toArray (t.select(1L, 0L))) [| 0.0; 0.0; 0.0 |] "constant column scaled to 0"
            let back = Scaler.inverseTransform s t
            Expect.equal (toArray (back.select(1L, 0L))) [| 3.25; 3.25; 3.25 |] "and back exactly"

        testCase "NaN in a missing entry stays in its cell" <| fun () ->
            let x = ofArray2D (array2D [ [ nan; 0.0 ]; [ 2.0; 4.0 ]; [ 4.0; 8.0 ] ])
            let mask = ofArray2D (array2D [ [ 1.0; 0.0 ]; [ 0.0; 0.0 ]; [ 0.0; 0.0 ] ])
            let s = Scaler.fit x mask
            Expect.equal s.Min [| 2.0; 0.0 |] "NaN ignored in fit"
            let t = toArray2D (Scaler.transform s x)
            Expect.isTrue (Double.IsNaN t[0, 0]) "missing NaN kept"
            Expect.equal [ t[1, 0]; t[2, 0]; t[0, 1]; t[1, 1]; t[2, 1] ] [ 0.0; 1.0; 0.0; 0.5; 1.0 ] "other cells finite and correct"

        testCase "row helpers agree with the tensor functions" <| fun () ->
            let x, mask = randomCase 7
            let s = Scaler.fit x mask
            let row = toArray (x[1])
            let t = toArray ((Scaler.transform s x)[1])
            let viaRow = Scaler.transformRow s row
            Expect.equal (viaRow |> Array.map BitConverter.DoubleToInt64Bits) (t |> Array.map BitConverter.DoubleToInt64Bits) "transformRow"
            let back = Scaler.inverseTransformRow s viaRow
            for j in 0 .. row.Length - 1 do
                if not (Double.IsNaN row[j]) then
                    Expect.isLessThanOrEqual (abs (back[j] - row[j])) roundTripTol "inverseTransformRow"

        testList "bad input" [
            testCase "a column with no observed value names the column" <| fun () ->
                let x = ofArray2D (array2D [ [ 1.0; nan ]; [ 2.0; nan ] ])
                let mask = ofArray2D (array2D [ [ 0.0; 1.0 ]; [ 0.0; 1.0 ] ])
                let ex = Expect.throwsC (fun () -> Scaler.fit x mask |> ignore) id
                Expect.isTrue (ex :? ArgumentException) "ArgumentException"
                Expect.stringContains ex.Message "column 1" "names the column"
                Expect.equal (ex :?> ArgumentException).ParamName "x" "names the parameter"
            testCase "mask of another shape" <| fun () ->
                let x = torch.zeros([| 3L; 2L |], dtype = dtype)
                let mask = torch.zeros([| 2L; 2L |], dtype = dtype)
                Expect.throwsT<ArgumentException> (fun () -> Scaler.fit x mask |> ignore) "shape mismatch"
            testCase "a 1-D tensor" <| fun () ->
                let x = torch.zeros([| 3L |], dtype = dtype)
                Expect.throwsT<ArgumentException> (fun () -> Scaler.fit x x |> ignore) "1-D"
            testCase "an observed NaN" <| fun () ->
                let x = ofArray2D (array2D [ [ nan ]; [ 1.0 ] ])
                let mask = torch.zeros([| 2L; 1L |], dtype = dtype)
                Expect.throwsT<ArgumentException> (fun () -> Scaler.fit x mask |> ignore) "observed NaN"
            testCase "transform with another feature count" <| fun () ->
                let s = { Scaler.Min = [| 0.0; 0.0 |]; Scaler.Max = [| 1.0; 1.0 |] }
                let x = torch.zeros([| 3L; 3L |], dtype = dtype)
                Expect.throwsT<ArgumentException> (fun () -> Scaler.transform s x |> ignore) "transform"
                Expect.throwsT<ArgumentException> (fun () -> Scaler.inverseTransform s x |> ignore) "inverseTransform"
                Expect.throwsT<ArgumentException> (fun () -> Scaler.transformRow s [| 1.0 |] |> ignore) "transformRow"
                Expect.throwsT<ArgumentException> (fun () -> Scaler.inverseTransformRow s [| 1.0 |] |> ignore) "inverseTransformRow"
        ]
    ]
