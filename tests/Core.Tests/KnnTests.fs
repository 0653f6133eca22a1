module EMFlow.Tests.KnnTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors

let private table (rows: float[][]) = torch.tensor(array2D rows, dtype = dtype)

[<Tests>]
let tests =
    testList "Knn" [
        test "fills with the mean of the k nearest donors that observe the feature" {
            let nan = Double.NaN
            let pool =
                table [| [| 0.0; 0.0; 0.0 |]; [| 0.1; 0.1; 0.1 |]; [| 0.2; 0.2; 0.2 |]; [| 0.9; 0.9; 0.9 |]
                         [| 0.05; nan; 0.6 |] |]
            let poolMask = pool.isnan().to_type(dtype)
            let donors = Knn.donors pool poolMask
            let x = table [| [| 0.12; nan; nan |] |]
            let mask = x.isnan().to_type(dtype)
            let filled = Knn.impute 2 donors x mask
            // Column 2: nearest on column 0 are rows 1 (0.02) and 4 (0.07), so (0.1 + 0.6) / 2; column 1: row 4
            // cannot donate, so rows 1 and 2, (0.1 + 0.2) / 2.
            Expect.floatClose Accuracy.veryHigh (scalar filled[0, 2]) 0.35 "column 2"
            Expect.floatClose Accuracy.veryHigh (scalar filled[0, 1]) 0.15 "column 1"
            Expect.equal (scalar filled[0, 0]) 0.12 "observed entry kept"
        }
        test "a row of the pool is never its own donor, and observed entries come back bit-for-bit" {
            let x = Synthetic.gaussian 3L 300 4
            let mask = Missingness.mcar 4L 0.3 (300, 4)
            let xm = x.masked_fill(mask.gt(sc 0.5), Double.NaN)
            let filled = Knn.impute 1 (Knn.donors xm mask) xm mask
            Expect.isTrue (filled.isfinite().all().item<bool>()) "every cell filled"
            let observed = mask.lt(sc 0.5)
            Expect.isTrue (filled.masked_select(observed).eq(x.masked_select(observed)).all().item<bool>()) "observed kept"
            // With k = 1 every fill is some other row's observed value of that column; a row observing nothing has
            // no neighbour and takes the donor mean instead.
            let seen = observed.any(1L).unsqueeze(1L)
            for j in 0L .. 3L do
                let donorsJ = x.select(1L, j).masked_select(observed.select(1L, j))
                let fills = filled.select(1L, j).masked_select(mask.select(1L, j).gt(sc 0.5).logical_and(seen.squeeze(1L)))
                let hits = fills.unsqueeze(1L).eq(donorsJ.unsqueeze(0L)).any(1L)
                Expect.isTrue (hits.all().item<bool>()) (sprintf "column %d filled from donors" j)
        }
        test "a feature no donor observes falls back to 0, and bad k or widths are named" {
            let pool = table [| [| 0.5; Double.NaN |]; [| 0.7; Double.NaN |] |]
            let donors = Knn.donors pool (pool.isnan().to_type(dtype))
            let x = table [| [| 0.6; Double.NaN |] |]
            let filled = Knn.impute 5 donors x (x.isnan().to_type(dtype))
            Expect.equal (scalar filled[0, 1]) 0.0 "no donor: the donor mean, 0"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Knn.impute 0 donors x (x.isnan().to_type(dtype)) |> ignore) "k = 0"
            let wide = torch.zeros(1L, 3L, dtype = dtype)
            Expect.throwsT<ArgumentException> (fun () -> Knn.impute 1 donors wide (torch.zeros_like(wide)) |> ignore) "3 columns against 2"
        }
    ]
