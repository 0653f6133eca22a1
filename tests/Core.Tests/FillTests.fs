module EMFlow.Tests.FillTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Missingness
open EMFlow.Fill
open EMFlow.Tensors
open EMFlow.Tests.TestUtil

/// Allowed gap between a realised missing rate and its expectation: about five standard deviations
/// of a rate estimated from the ~10 000 Bernoulli draws the tests use (sd at most 0.5 / sqrt 9000).
let rateTol = 0.025

let private config = { FsCheckConfig.defaultConfig with maxTest = 25 }

let private bits (t: Tensor) = toArray t |> Array.map BitConverter.DoubleToInt64Bits


/// Correlated Gaussian data (n, p) from a seed.
let private gaussianData (seed: int64) (n: int) (p: int) =
    use gen = generator seed
    let sigma = randomCovariance gen p
    let mu = torch.randn([| int64 p |], dtype = dtype, generator = gen)
    sampleGaussian gen mu sigma n

/// Data (n, p) with an MCAR mask whose first row is observed (so every column has an observed
/// value) and NaN written into the missing entries, as real data would arrive.
let private incompleteCase (seed: int64) (n: int) (p: int) (rate: float) =
    let x = gaussianData seed n p
    let mask = mcar (seed + 1L) rate (n, p)
    mask[0] <- torch.zeros([| int64 p |], dtype = dtype)
    let xNaN = torch.where(mask.gt(torch.tensor(0.5, dtype = dtype)), torch.tensor(Double.NaN, dtype = dtype), x)
    xNaN, mask

/// Euclidean nearest observed pixel, ties to the smallest index, by brute force over all pixels.
let private bruteForceNearest (width: int) (image: float[]) (missing: bool[]) =
    let observed = [| for q in 0 .. image.Length - 1 do if not missing[q] then yield q |]
    image
    |> Array.mapi (fun q v ->
        if not missing[q] then v
        elif observed.Length = 0 then 0.0
        else
            let d2 o =
                let dr, dc = o / width - q / width, o % width - q % width
                dr * dr + dc * dc
            // minBy keeps the first minimum, and observed is in increasing index order.
            image[observed |> Array.minBy d2])

let private allKinds = [ Mean; Median; RandomDraw; Zero; NearestNeighbour(4, 3) ]

let imputationTests =
    testList "initial imputation" [
        testList "contract" [
            for kind in allKinds ->
                testCase (sprintf "%A keeps observed entries bit-for-bit and leaves no NaN" kind) <| fun () ->
                    let x, mask = incompleteCase 61L 30 12 0.3
                    let xBefore = bits x
                    let filled = impute kind 62L x mask
                    Expect.equal filled.shape x.shape "shape kept"
                    Expect.isFalse (filled.isnan().any().item<bool>()) "no NaN left"
                    let f, orig, m = bits filled, bits x, toArray mask
                    for q in 0 .. m.Length - 1 do
                        if m[q] = 0.0 then Expect.equal f[q] orig[q] (sprintf "observed entry %d unchanged" q)
                    Expect.equal (bits x) xBefore "input not modified"
                    Expect.equal (bits (impute kind 62L x mask)) f "deterministic for a seed"
        ]

        testCase "mean and median on a hand example" <| fun () ->
            let x = ofArray2D (array2D [ [ 1.0; nan ]; [ 2.0; 10.0 ]; [ nan; 11.0 ]; [ 6.0; 30.0 ]; [ nan; 40.0 ] ])
            let mask = nanMask x
            let mean = toArray2D (meanImpute x mask)
            Expect.equal [ mean[2, 0]; mean[4, 0]; mean[0, 1] ] [ 3.0; 3.0; 22.75 ] "means of {1,2,6} and {10,11,30,40}"
            let median = toArray2D (medianImpute x mask)
            Expect.equal [ median[2, 0]; median[4, 0]; median[0, 1] ] [ 2.0; 2.0; 20.5 ] "medians, even count averaged"

        testCase "zero imputation fills 0 and accepts an all-missing column" <| fun () ->
            let x = ofArray2D (array2D [ [ 1.0; nan ]; [ nan; nan ] ])
            Expect.equal (toArray (zeroImpute x (nanMask x))) [| 1.0; 0.0; 0.0; 0.0 |] "zeros"

        testCase "random draws come from the observed values of the same feature" <| fun () ->
            let x, mask = incompleteCase 71L 40 5 0.5
            let filled = toArray2D (randomDrawImpute 72L x mask)
            let a, m = toArray2D x, toArray2D mask
            for j in 0 .. 4 do
                let observed = set [ for i in 0 .. 39 do if m[i, j] = 0.0 then yield a[i, j] ]
                for i in 0 .. 39 do
                    if m[i, j] = 1.0 then
                        Expect.isTrue (observed.Contains filled[i, j]) (sprintf "(%d, %d) drawn from column %d" i j j)
            Expect.notEqual (bits (randomDrawImpute 73L x mask)) (bits (randomDrawImpute 72L x mask)) "seed matters"

        testCase "nearest neighbour on a 3x3 image" <| fun () ->
            // Observed: pixel 0 (row 0, col 0) = 1, pixel 5 (row 1, col 2) = 5, pixel 7 (row 2, col 1) = 7.
            // Pixels 4 and 8 are equally near 5 and 7; the smaller index, 5, wins.
            // The second image has no observed pixel and is filled with 0.
            let x = ofArray2D (array2D [ [ 1.0; nan; nan; nan; nan; 5.0; nan; 7.0; nan ]
                                         [ nan; nan; nan; nan; nan; nan; nan; nan; nan ] ])
            let filled = toArray2D (nearestNeighbourImpute (3, 3) x (nanMask x))
            Expect.equal [ for q in 0 .. 8 -> filled[0, q] ] [ 1.0; 1.0; 5.0; 1.0; 5.0; 5.0; 7.0; 7.0; 5.0 ] "image 1"
            Expect.equal [ for q in 0 .. 8 -> filled[1, q] ] (List.replicate 9 0.0) "image 2"

        testCase "nearest neighbour reads images row-major with the given width" <| fun () ->
            // Width 4, height 2: observed (0, 0) = 1 and (1, 3) = 9.
            let x = ofArray2D (array2D [ [ 1.0; nan; nan; nan; nan; nan; nan; 9.0 ] ])
            let filled = toArray (nearestNeighbourImpute (4, 2) x (nanMask x))
            Expect.equal filled [| 1.0; 1.0; 9.0; 9.0; 1.0; 1.0; 9.0; 9.0 |] "4 x 2"

        testPropertyWithConfig config "nearest neighbour matches a brute-force search" <| fun (seed: int) ->
            let width, height = 7, 5
            use gen = generator (int64 seed)
            let rate = (torch.rand([| 1L |], dtype = dtype, generator = gen) |> scalar) * 0.95
            let x = torch.rand([| 3L; int64 (width * height) |], dtype = dtype, generator = gen)
            let mask = torch.rand([| 3L; int64 (width * height) |], dtype = dtype, generator = gen)
                           .lt(torch.tensor(rate, dtype = dtype)).to_type(dtype)
            let filled = toArray2D (nearestNeighbourImpute (width, height) x mask)
            let a, m = toArray2D x, toArray2D mask
            for i in 0 .. 2 do
                let image = [| for q in 0 .. width * height - 1 -> a[i, q] |]
                let missing = [| for q in 0 .. width * height - 1 -> m[i, q] = 1.0 |]
                let expected = bruteForceNearest width image missing
                Expect.equal [| for q in 0 .. width * height - 1 -> filled[i, q] |] expected (sprintf "image %d" i)

        testCase "impute dispatches to each imputation" <| fun () ->
            let x, mask = incompleteCase 81L 12 12 0.3
            Expect.equal (bits (impute Mean 0L x mask)) (bits (meanImpute x mask)) "Mean"
            Expect.equal (bits (impute Median 0L x mask)) (bits (medianImpute x mask)) "Median"
            Expect.equal (bits (impute RandomDraw 5L x mask)) (bits (randomDrawImpute 5L x mask)) "RandomDraw"
            Expect.equal (bits (impute Zero 0L x mask)) (bits (zeroImpute x mask)) "Zero"
            Expect.equal (bits (impute (NearestNeighbour(3, 4)) 0L x mask)) (bits (nearestNeighbourImpute (3, 4) x mask)) "NearestNeighbour"

        testList "bad input" [
            for kind in [ Mean; Median; RandomDraw ] ->
                testCase (sprintf "%A: a column with no observed value names the column" kind) <| fun () ->
                    let x = ofArray2D (array2D [ [ 1.0; nan; 2.0 ]; [ 2.0; nan; 3.0 ] ])
                    let ex = Expect.throwsC (fun () -> impute kind 1L x (nanMask x) |> ignore) id
                    Expect.isTrue (ex :? ArgumentException) "ArgumentException"
                    Expect.stringContains ex.Message "column 1" "names the column"
            for kind in allKinds do
                yield testCase (sprintf "%A: mask of another shape" kind) <| fun () ->
                    let x = torch.zeros([| 3L; 12L |], dtype = dtype)
                    let mask = torch.zeros([| 2L; 12L |], dtype = dtype)
                    Expect.throwsT<ArgumentException> (fun () -> impute kind 1L x mask |> ignore) "shape"
                yield testCase (sprintf "%A: mask not 0/1" kind) <| fun () ->
                    let x = torch.zeros([| 2L; 12L |], dtype = dtype)
                    let mask = torch.ones([| 2L; 12L |], dtype = dtype).mul(torch.tensor(0.5, dtype = dtype))
                    Expect.throwsT<ArgumentException> (fun () -> impute kind 1L x mask |> ignore) "mask 0.5"
                yield testCase (sprintf "%A: NaN at an observed entry" kind) <| fun () ->
                    let x = torch.zeros([| 2L; 12L |], dtype = dtype)
                    x[0, 0] <- torch.tensor(Double.NaN, dtype = dtype)
                    let mask = torch.zeros([| 2L; 12L |], dtype = dtype)
                    Expect.throwsT<ArgumentException> (fun () -> impute kind 1L x mask |> ignore) "observed NaN"
            yield testCase "nearest neighbour: width × height must be p" <| fun () ->
                let x = torch.zeros([| 2L; 9L |], dtype = dtype)
                Expect.throwsT<ArgumentException> (fun () -> nearestNeighbourImpute (2, 4) x (nanMask x) |> ignore) "2 × 4 ≠ 9"
            yield testCase "nearest neighbour: width below 1" <| fun () ->
                let x = torch.zeros([| 2L; 9L |], dtype = dtype)
                Expect.throwsT<ArgumentOutOfRangeException> (fun () -> nearestNeighbourImpute (0, 9) x (nanMask x) |> ignore) "width 0"
        ]
    ]

[<Tests>]
let tests = testList "Fill" [ imputationTests ]
