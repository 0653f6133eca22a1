module EMFlow.Tests.FramesTests

open System
open Expecto
open Deedle
open EMFlow

[<Tests>]
let tests =
    testList "Frames" [
        test "missing values become NaN and back, keys kept" {
            let frame = Frame.ofColumns [ "a", Series.ofOptionalObservations [ 1, Some 1.0; 2, None; 3, Some 3.0 ]
                                          "b", Series.ofOptionalObservations [ 1, Some 4.0; 2, Some 5.0; 3, None ] ]
            let values, keys = Frames.toArray frame
            Expect.equal keys [| "a"; "b" |] "column keys"
            Expect.isTrue (Double.IsNaN values[1, 0] && Double.IsNaN values[2, 1]) "NaN where missing"
            let back = Frames.ofArray frame.RowKeys keys values
            Expect.equal (back.GetColumn<float>("a") |> Series.countValues) 2 "missing again"
        }
        test "impute fills a frame through an array function and keeps observed values" {
            let frame = Frame.ofColumns [ "a", Series.ofOptionalObservations [ 10, Some 1.0; 20, None ] ]
            let filled = Frames.impute (Array2D.map (fun v -> if Double.IsNaN v then 7.0 else v)) frame
            Expect.equal (filled.GetColumn<float>("a") |> Series.values |> Seq.toList) [ 1.0; 7.0 ] "filled"
            Expect.equal (filled.RowKeys |> Seq.toList) [ 10; 20 ] "row keys"
        }
        test "a non-numeric column is rejected naming it" {
            let frame = Frame.ofColumns [ "name", Series.ofValues [ box "x"; box "y" ]; "v", Series.ofValues [ box 1.0; box 2.0 ] ]
            let ex = Expect.throwsC (fun () -> Frames.toArray frame |> ignore) id
            Expect.stringContains ex.Message "'name'" "names the column"
        }
    ]
