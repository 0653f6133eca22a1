// How well each way of drawing the hold-out chooses the start's blend: per fold of the tables protocol (seed 0), the
// training rows' observed cells are held out by each draw (uniform, like the missingness, that with each cell's error
// weighed by its odds of being missing, or the cells drawn by those odds), the start's
// candidates (mean, kNN, Gaussian EM, and the forest when asked) are fitted without them, the per-feature weights
// are chosen on them as the start chooses (grid of tenths, prior 100), and the blend is scored on the test fold's
// hidden cells, each candidate imputing the test rows as fitted (the protocol's score), and on the training rows'
// really missing cells. No draw and no choice sees either truth.
// Run after ./build.sh build:  dotnet fsi bench/holdout-draw.fsx TABLE MECHANISM FOLDS [forest]
//   e.g. dotnet fsi bench/holdout-draw.fsx spam mar 0,1,2,3,4
#load "ForestReferences.fsx"
#load "BenchTable.fsx"
open System
open TorchSharp
open EMFlow
open EMFlow.Evaluation
torch.set_num_threads 1
let args = fsi.CommandLineArgs
let name = args[1]
let mechanism = if args[2] = "mar" then Mechanism.Mar() else Mechanism.Mcar 0.2
let folds = args[3].Split(',') |> Array.map int
let withForest = args.Length > 4 && args[4] = "forest"
let table, foldIds = BenchTable.load name mechanism
let p = table.Values.GetLength 1
let candidates () : (string * Imputer)[] =
    [| yield "mean", new MeanImputer() :> Imputer
       yield "knn", new KnnImputer(5) :> Imputer
       yield "gaussian-em", new GaussianEmImputer() :> Imputer
       if withForest then yield "forest", new ForestImputer(ForestOptions(Seed = 0L)) :> Imputer |]
let names = candidates () |> Array.map fst
// "odds-drawn" is not a HoldOutDraw: the held-out cells themselves drawn by their odds (column shares as the shaped
// draw), which takes the observed rows most like the missing ones out of the candidates' fits.
let draws = [| "uniform", HoldOutDraw.Uniform; "missingness", HoldOutDraw.LikeMissingness; "odds-weighted", HoldOutDraw.ByPropensity; "odds-drawn", enum<HoldOutDraw> 3 |]
let oddsDrawn (x: torch.Tensor) (mask: torch.Tensor) =
    let observed = 1.0 - mask
    let odds = Selection.missingOdds x mask * observed
    let relative = (odds / (odds.sum(dim = 0L) / observed.sum(dim = 0L).clamp_min(1.0)).clamp_min(1e-300)).clamp_max(Selection.MaxOddsRatio)
    let weights = (mask.mean(dimensions = [| 0L |]) + 1e-3) * relative
    let positions = observed.flatten().nonzero().squeeze(1L)
    let k = int64 (Math.Round(0.05 * float positions.shape[0]))
    use gen = new torch.Generator(1UL)
    let chosen = positions.index_select(0L, torch.multinomial(weights.flatten().index_select(0L, positions), k, replacement = false, generator = gen))
    let hidden = torch.zeros(mask.numel(), dtype = torch.float64).index_fill(0L, chosen, 1.0).reshape(mask.shape)
    mask + hidden, hidden
let results = Collections.Generic.Dictionary<string, ResizeArray<float>>()
let add k v = (if not (results.ContainsKey k) then results[k] <- ResizeArray()); results[k].Add v
for f in folds do
    let split = Protocol.Split(table, foldIds, f)
    let rows = split.TrainRowIds
    let n = rows.Length
    let x0 = split.TrainRows
    let missing = Array2D.init n p (fun i j -> Double.IsNaN x0[i, j])
    let xt = torch.tensor(Array2D.init n p (fun i j -> if missing[i, j] then 0.0 else x0[i, j]), dtype = torch.float64)
    let mt = torch.tensor(Array2D.init n p (fun i j -> if missing[i, j] then 1.0 else 0.0), dtype = torch.float64)
    // The truth of the training rows' missing cells: only for scoring, never for choosing.
    let truth = Array2D.init n p (fun i j -> table.Values[rows[i], j])
    let scoreOn (imp: float[,]) =
        let mutable s, c = 0.0, 0
        for i in 0 .. n - 1 do
            for j in 0 .. p - 1 do
                if missing[i, j] && table.Hidden[rows[i], j] then
                    let d = imp[i, j] - truth[i, j]
                    s <- s + d * d
                    c <- c + 1
        sqrt (s / float c)
    for drawName, draw in draws do
        let trainMask, hidden =
            match draw with
            | HoldOutDraw.Uniform -> Selection.holdOut 1L 0.05 mt
            | HoldOutDraw.LikeMissingness -> Selection.holdOutLikeMissingness 1L 0.05 mt
            | HoldOutDraw.ByPropensity ->
                // What the fit does: the shaped draw, each held-out cell's error weighed by its odds.
                let trainMask, hidden = Selection.holdOutLikeMissingness 1L 0.05 mt
                trainMask, Selection.oddsWeights xt mt hidden
            | _ -> oddsDrawn xt mt
        let tm = trainMask.data<float>().ToArray()
        let input = Array2D.init n p (fun i j -> if tm[i * p + j] > 0.5 then nan else x0[i, j])
        let fitted =
            candidates () |> Array.map (fun (_, imp) ->
                use imp = imp
                let out = imp.FitTransform(input)
                torch.tensor(out, dtype = torch.float64), imp.Transform(split.TestRows))
        let filled = fitted |> Array.map fst
        let w = Selection.blendWeights (Selection.simplexGrid filled.Length 10) 100.0 xt filled hidden
        let blended = Selection.blendAll w filled
        let arr (t: torch.Tensor) = let a = t.data<float>().ToArray() in Array2D.init n p (fun i j -> a[i * p + j])
        let blendRmse = scoreOn (arr blended)
        let wa = w.data<float>().ToArray()
        let k = filled.Length
        let testBlend =
            let tests = fitted |> Array.map snd
            Array2D.init (split.TestRows.GetLength 0) p (fun i j -> Seq.sum (seq { for c in 0 .. k - 1 -> wa[j * k + c] * tests[c][i, j] }))
        let testRmse = Protocol.HiddenRmse(table, split, testBlend)
        add (sprintf "training rows: blend, %s draw" drawName) blendRmse
        add (sprintf "test fold: blend, %s draw" drawName) testRmse
        if draw = HoldOutDraw.Uniform then
            fitted |> Array.iteri (fun c (t, test) -> add ("training rows: " + names[c]) (scoreOn (arr t)); add ("test fold: " + names[c]) (Protocol.HiddenRmse(table, split, test)))
        let shares = w.mean(dimensions = [| 0L |]).data<float>().ToArray()
        printfn "fold %d %-12s blend %.4f, test %.4f  mean weights %s" f drawName blendRmse testRmse (String.Join(" ", Array.map2 (sprintf "%s %.2f") names shares))
printfn "\n%s %s, folds %s: RMSE (mean over folds)" name args[2] args[3]
for kv in results |> Seq.sortBy (fun kv -> kv.Key) do printfn "%-44s %.4f" kv.Key (Seq.average kv.Value)
