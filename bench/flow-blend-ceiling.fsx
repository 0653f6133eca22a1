// How much a per-feature blend of EMFlow's start (iteration 0, the forest start) with its flow iterations could gain at
// most: per fold of the tables protocol (MCAR 0.2, seed 0), the test RMSE of the start and of each iteration (every
// epoch trained, no early end), then three blends of the start with each iteration: the best share per feature chosen
// on the test cells themselves (a ceiling that no method can reach, since it reads the truth it is scored on), the
// best single share for the whole table (the same), and shares chosen on the even test rows and scored on the odd
// ones and back (with the start's shrinkage, 100 cells at the pooled error): an estimate of what a blend chosen on
// held-out cells can keep. Nothing here chooses anything that a result reports.
// Run after ./build.sh build:  dotnet fsi bench/flow-blend-ceiling.fsx TABLE FOLDS [ITERATIONS]
//   e.g. dotnet fsi bench/flow-blend-ceiling.fsx concrete 0,1,2,3,4   (tables from ../shared/data or EMFLOW_DATA)
#load "ForestReferences.fsx"
#load "BenchTable.fsx"
open System
open TorchSharp
open EMFlow
open EMFlow.Evaluation
torch.set_num_threads 1
let args = fsi.CommandLineArgs
let name = args[1]
let folds = args[2].Split(',') |> Array.map int
let iters = if args.Length > 3 then int args[3] else 2
let table, foldIds = BenchTable.load name (Mechanism.Mcar 0.2)
let p = table.Values.GetLength 1
for f in folds do
    let split = Protocol.Split(table, foldIds, f)
    let test = split.TestRowIds
    let opts = EMFlowOptions(Seed = 0L, TorchThreads = 1, StopAfterWorseIteration = false, Patience = 0, Iterations = iters)
    use imp = new EMFlowImputer(opts, [| new ForestStart() :> IStartCandidate |])
    let clock = Diagnostics.Stopwatch.StartNew()
    imp.Fit(split.TrainRows)
    let fitS = clock.Elapsed.TotalSeconds
    let outs = [| for k in 0 .. imp.AvailableIterations -> imp.TransformAtIteration(k, split.TestRows) |]
    // per feature sums of squared error and counts on hidden test cells
    let sse (x: float[,]) =
        Array.init p (fun j ->
            let mutable s, c = 0.0, 0
            for r in 0 .. test.Length - 1 do
                if table.Hidden[test[r], j] then
                    let d = x[r, j] - table.Values[test[r], j]
                    s <- s + d * d
                    c <- c + 1
            s, c)
    let rmseOf (per: (float * int)[]) = sqrt ((per |> Array.sumBy fst) / float (per |> Array.sumBy snd))
    let per = outs |> Array.map sse
    let blendSse (a: float[,]) (b: float[,]) w =
        Array.init p (fun j ->
            let mutable s, c = 0.0, 0
            for r in 0 .. test.Length - 1 do
                if table.Hidden[test[r], j] then
                    let v = (1.0 - w) * a[r, j] + w * b[r, j]
                    let d = v - table.Values[test[r], j]
                    s <- s + d * d
                    c <- c + 1
            s, c)
    let grid = [| for i in 0 .. 10 -> float i / 10.0 |]
    let oracle k =
        // per feature: best w
        let tables = grid |> Array.map (fun w -> blendSse outs[0] outs[k] w)
        let best = Array.init p (fun j -> grid |> Array.mapi (fun wi w -> w, fst (tables.[wi].[j])) |> Array.minBy snd)
        let total = Array.init p (fun j -> snd (best.[j]), snd (tables.[0].[j]))
        rmseOf total, best |> Array.map fst
    let start = rmseOf per[0]
    let line = Text.StringBuilder()
    line.AppendFormat("{0} fold {1}: fit {2:F0}s kept {3} holdout start {4:F4} iters [{5}] | test start {6:F4}", name, f, fitS, imp.SelectedIteration,
                      imp.InitialValidationRmse, String.Join(" ", imp.History |> Seq.map (fun h -> h.ValidationRmse.ToString("F4"))), start) |> ignore
    for k in 1 .. outs.Length - 1 do
        let r = rmseOf per[k]
        line.AppendFormat(" | it{0} {1:F4} ({2:+0.0;-0.0}%)", k, r, 100.0 * (r / start - 1.0)) |> ignore
    for k in 1 .. outs.Length - 1 do
        let r, ws = oracle k
        line.AppendFormat(" | oracle blend start+it{0} {1:F4} ({2:+0.0;-0.0}%) w=[{3}]", k, r, 100.0 * (r / start - 1.0), String.Join(" ", ws |> Array.map (fun w -> w.ToString("0.0")))) |> ignore
    // Honest estimates: one table-wide w (oracle, 1 parameter), and per-feature w chosen on half of the test rows
    // (with the start's shrinkage: 100 pseudo-cells at the pooled error) and scored on the other half, both ways.
    for k in 1 .. outs.Length - 1 do
        let tables = grid |> Array.map (fun w -> blendSse outs[0] outs[k] w)
        let wi = [| 0 .. 10 |] |> Array.minBy (fun wi -> tables.[wi] |> Array.sumBy fst)
        let r = rmseOf tables.[wi]
        line.AppendFormat(" | global-w{0} {1:0.0} {2:F4} ({3:+0.0;-0.0}%)", k, grid.[wi], r, 100.0 * (r / start - 1.0)) |> ignore
        let half (keepRow: int -> bool) (w: float[]) =
            Array.init p (fun j ->
                let mutable s, c = 0.0, 0
                for r in 0 .. test.Length - 1 do
                    if keepRow r && table.Hidden[test[r], j] then
                        let v = (1.0 - w.[j]) * outs[0][r, j] + w.[j] * outs[k][r, j]
                        let d = v - table.Values[test[r], j]
                        s <- s + d * d
                        c <- c + 1
                s, c)
        let choose (keepRow: int -> bool) =
            let per = grid |> Array.map (fun w -> half keepRow (Array.create p w))
            let total = per |> Array.map (fun t -> t |> Array.sumBy fst)
            let cells = float (per.[0] |> Array.sumBy snd)
            Array.init p (fun j ->
                grid |> Array.mapi (fun gi w -> w, fst (per.[gi].[j]) + 100.0 * total.[gi] / cells) |> Array.minBy snd |> fst)
        let even r = r % 2 = 0
        let odd r = r % 2 = 1
        let a = half odd (choose even)
        let b = half even (choose odd)
        let r2 = rmseOf (Array.append a b)
        line.AppendFormat(" | split-half-shrunk{0} {1:F4} ({2:+0.0;-0.0}%)", k, r2, 100.0 * (r2 / start - 1.0)) |> ignore
    // per-feature start vs it1 RMSE
    if outs.Length > 1 then
        line.AppendFormat("\n   per-feature start/it1: {0}", String.Join(" ", Array.init p (fun j -> sprintf "%.3f/%.3f" (sqrt (fst (per.[0].[j]) / float (snd (per.[0].[j])))) (sqrt (fst (per.[1].[j]) / float (snd (per.[1].[j]))))))) |> ignore
    printfn "%s" (line.ToString())
    Console.Out.Flush()
