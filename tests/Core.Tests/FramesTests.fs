module EMFlow.Tests.FramesTests

open System
open Expecto
open Deedle
open EMFlow

/// x, y, colour, z (n rows) as a frame, and the true colours: colour (red, green, blue) follows x and y, z all
/// three; each cell missing with probability `rate` (seeded).
let private colours (n: int) (seed: int) (rate: float) =
    let rng = Random(seed)
    let normal () = sqrt (-2.0 * log (1.0 - rng.NextDouble())) * cos (2.0 * Math.PI * rng.NextDouble())
    let names = [| "blue"; "green"; "red" |]
    let rows =
        Array.init n (fun _ ->
            let x = normal ()
            let y = 0.3 * x + normal ()
            let score = [| -x - y + 0.5 * normal (); 1.5 * y + 0.5 * normal (); 1.5 * x + 0.5 * normal () |]
            let colour = Array.IndexOf(score, Array.max score)
            10.0 + 2.0 * x, y, colour, x - y + 2.0 * float (colour - 1) + 0.3 * normal ())
    let hide () = rng.NextDouble() < rate
    let masks = rows |> Array.map (fun _ -> Array.init 4 (fun _ -> hide ()))
    let numeric j f = Series.ofOptionalObservations (rows |> Array.mapi (fun i r -> i, if masks[i][j] then None else Some (f r)))
    let frame =
        Frame.ofColumns [ "x", numeric 0 (fun (x, _, _, _) -> x)
                          "y", numeric 1 (fun (_, y, _, _) -> y)
                          "z", numeric 3 (fun (_, _, _, z) -> z) ]
    let colour = Series.ofOptionalObservations (rows |> Array.mapi (fun i (_, _, c, _) -> i, if masks[i][2] then None else Some names[c]))
    frame.AddColumn("colour", colour)
    let frame = frame.Columns.[ [ "x"; "y"; "colour"; "z" ] ]
    frame, rows |> Array.map (fun (_, _, c, _) -> names[c])

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
        test "a non-numeric column is rejected naming it and pointing at imputeMixed" {
            let frame = Frame.ofColumns [ "name", Series.ofValues [ box "x"; box "y" ]; "v", Series.ofValues [ box 1.0; box 2.0 ] ]
            let ex = Expect.throwsC (fun () -> Frames.toArray frame |> ignore) id
            Expect.stringContains ex.Message "'name'" "names the column"
            Expect.stringContains ex.Message "imputeMixed" "points at the mixed bridge"
        }
        test "toMixedArray codes text columns in text order and declared numeric codes in numeric order" {
            let frame =
                Frame.ofColumns [ "grade", Series.ofOptionalObservations [ 1, Some 10; 2, Some 9; 3, None; 4, Some 2; 5, Some 9 ] :> ISeries<int>
                                  "city", Series.ofOptionalObservations [ 1, Some "Oslo"; 2, None; 3, Some "Bergen"; 4, Some "Oslo"; 5, Some "Ålesund" ]
                                  "v", Series.ofObservations [ for r in 1 .. 5 -> r, float r ] ]
            let layout = Frames.toMixedArray [ "grade" ] frame
            Expect.equal layout.Kinds [| ColumnKind.Categorical; ColumnKind.Categorical; ColumnKind.Numeric |] "kinds"
            Expect.equal layout.Categories[0] [| box 2; box 9; box 10 |] "numeric order, not text order"
            Expect.equal layout.Categories[1] [| box "Bergen"; box "Oslo"; box "Ålesund" |] "ordinal text order"
            Expect.equal [ for i in [ 0; 1; 3; 4 ] -> layout.Values[i, 0] ] [ 2.0; 1.0; 0.0; 1.0 ] "codes"
            Expect.isTrue (Double.IsNaN layout.Values[2, 0] && Double.IsNaN layout.Values[1, 1]) "NaN where missing"
            Expect.equal [ layout.Values[0, 1]; layout.Values[2, 1]; layout.Values[4, 1] ] [ 1.0; 0.0; 2.0 ] "text codes"
            // Back from codes: the same cells, missing where they were (an integer column with a missing cell as objects).
            let back = Frames.ofMixedArray frame.RowKeys layout layout.Values
            Expect.equal (back.GetColumn<string>("city") |> Series.observations |> Seq.toList)
                         (frame.GetColumn<string>("city") |> Series.observations |> Seq.toList) "text cells"
            Expect.equal (back.GetColumn<int>("grade") |> Series.observations |> Seq.toList)
                         (frame.GetColumn<int>("grade") |> Series.observations |> Seq.toList) "integer cells"
            Expect.throwsT<ArgumentException> (fun () -> Frames.ofMixedArray frame.RowKeys layout (Array2D.create 5 3 7.0) |> ignore) "7 is no code"
        }
        test "a column that is neither numeric nor categorical, and an unknown declared key, are rejected naming them" {
            let frame = Frame.ofColumns [ "when", Series.ofValues [ DateTime(2026, 1, 1); DateTime(2026, 1, 2) ] :> ISeries<int>
                                          "v", Series.ofValues [ 1.0; 2.0 ] ]
            let ex = Expect.throwsC (fun () -> Frames.toMixedArray [] frame |> ignore) id
            Expect.stringContains ex.Message "'when'" "names the column"
            Expect.stringContains ex.Message "DateTime" "names the type"
            let ex = Expect.throwsC (fun () -> Frames.toMixedArray [ "colour" ] frame |> ignore) (fun e -> e :?> ArgumentException)
            Expect.stringContains ex.Message "'colour'" "names the key"
            Expect.equal ex.ParamName "categorical" "the parameter"
        }
        testSequenced <| testList "imputeMixed" [
            test "a frame with a text column comes back complete, observed cells as they were, colours among the observed" {
                let frame, truth = colours 400 3 0.15
                use imputer = new MixedImputer(new GaussianEmImputer())
                let filled = Frames.imputeMixed imputer [] frame
                Expect.equal (filled.ColumnKeys |> Seq.toList) [ "x"; "y"; "colour"; "z" ] "column keys in order"
                Expect.equal (filled.RowKeys |> Seq.toList) (frame.RowKeys |> Seq.toList) "row keys"
                Expect.equal (filled.ColumnTypes |> Seq.toList) [ typeof<float>; typeof<float>; typeof<string>; typeof<float> ] "text stays text"
                for k in [ "x"; "y"; "z" ] do
                    let before = frame.GetColumn<float>(k)
                    let after = filled.GetColumn<float>(k)
                    Expect.equal (Series.countValues after) 400 (sprintf "%s complete" k)
                    for r in frame.RowKeys do
                        let v = before.TryGet r
                        if v.HasValue then Expect.equal after[r] v.Value (sprintf "%s row %d verbatim" k r)
                let before = frame.GetColumn<string>("colour")
                let after = filled.GetColumn<string>("colour")
                Expect.equal (Series.countValues after) 400 "colour complete"
                let observed = before |> Series.values |> Set.ofSeq
                let mutable hidden, right = 0, 0
                for r in frame.RowKeys do
                    let v = before.TryGet r
                    if v.HasValue then Expect.equal after[r] v.Value "observed colour verbatim"
                    else
                        Expect.isTrue (observed.Contains after[r]) "an observed category"
                        hidden <- hidden + 1
                        if after[r] = truth[r] then right <- right + 1
                let mode = before |> Series.values |> Seq.countBy id |> Seq.maxBy snd |> fst
                let modeRight = frame.RowKeys |> Seq.filter (fun r -> not (before.TryGet r).HasValue && truth[r] = mode) |> Seq.length
                let accuracy, modeAccuracy = float right / float hidden, float modeRight / float hidden
                Expect.isGreaterThan accuracy (modeAccuracy + 0.2) (sprintf "accuracy %.3f against the mode's %.3f" accuracy modeAccuracy)
                Expect.equal (imputer.ColumnNames |> Seq.toList) [ "x"; "y"; "colour"; "z" ] "column keys as names"
            }
            test "a CSV read by Frame.ReadCsv, blank text cells included, comes back complete" {
                let path = IO.Path.Combine(IO.Path.GetTempPath(), sprintf "emflow-frames-%s.csv" (Guid.NewGuid().ToString("N")))
                let text = "x,y,colour,z\n2.1,0.3,red,4.0\n1.8,,red,3.5\n-1.2,-0.9,blue,-4.1\n-0.8,-1.1,,-3.9\n0.1,1.9,green,0.2\n,2.2,green,-0.1\n2.4,0.1,,4.2\n-1.0,-1.3,blue,\n0.3,1.7,green,0.4\n1.9,0.4,red,3.8\n-1.1,-0.7,blue,-3.6\n0.0,2.0,,0.1\n"
                IO.File.WriteAllText(path, text)
                try
                    let frame = Frame.ReadCsv(path)
                    use imputer = new MixedImputer(new KnnImputer())
                    let filled = Frames.imputeMixed imputer [] frame
                    Expect.equal (filled.GetColumn<string>("colour") |> Series.values |> Seq.toList)
                                 [ "red"; "red"; "blue"; "blue"; "green"; "green"; "red"; "blue"; "green"; "red"; "blue"; "green" ] "blank colours from their neighbours"
                    for k in [ "x"; "y"; "z" ] do Expect.equal (filled.GetColumn<float>(k) |> Series.countValues) 12 (sprintf "%s complete" k)
                finally IO.File.Delete path
            }
            test "a declared integer column comes back as integers among its observed codes" {
                let rng = Random(5)
                let n = 150
                let grade = Array.init n (fun i -> 1 + (i % 3) * 2)
                let frame =
                    Frame.ofColumns [ "score", Series.ofOptionalObservations [ for i in 0 .. n - 1 -> i, if i % 8 = 5 then None else Some (10.0 * float grade[i] + rng.NextDouble()) ] :> ISeries<int>
                                      "grade", Series.ofOptionalObservations [ for i in 0 .. n - 1 -> i, if i % 7 = 2 then None else Some grade[i] ] ]
                use imputer = new MixedImputer(new KnnImputer())
                let filled = Frames.imputeMixed imputer [ "grade" ] frame
                Expect.equal (filled.ColumnTypes |> Seq.toList) [ typeof<float>; typeof<int> ] "the codes stay integers"
                let after = filled.GetColumn<int>("grade")
                Expect.equal (Series.countValues after) n "complete"
                let mutable right = 0
                for i in 0 .. n - 1 do
                    Expect.contains [ 1; 3; 5 ] after[i] "an observed code"
                    if i % 7 = 2 && after[i] = grade[i] then right <- right + 1
                Expect.isGreaterThan right 15 "the score predicts the grade"
            }
        ]
    ]
