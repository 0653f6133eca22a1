// How well each way of drawing the hold-out chooses the start's blend: per fold of the tables protocol (seed 0), the
// training rows' observed cells are held out by each draw (uniform, like the missingness, that with each cell's error
// weighed by its odds of being missing, or the cells drawn by those odds), the start's
// candidates (mean, kNN, Gaussian EM, and the forest when asked) are fitted without them, the per-feature weights
// are chosen on them as the start chooses (grid of tenths, prior 100), and the blend is scored on the test fold's
// hidden cells, each candidate imputing the test rows as fitted (the protocol's score), and on the training rows'
// really missing cells. No draw and no choice sees either truth.
// Run after ./build.sh build:  dotnet fsi bench/holdout-draw.fsx TABLE MECHANISM FOLDS [CANDIDATES [DRAWS]]
//   e.g. dotnet fsi bench/holdout-draw.fsx spam mar 0,1,2,3,4
// A sixth argument names the draws to run (default the first four): dotnet fsi bench/holdout-draw.fsx spam mar 0 forest missingness,patterns
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
// A fifth argument adds candidates to mean, kNN and Gaussian EM: "forest" (one run, seed 0), "forest-sized" (the
// command line's ForestStart.Sized) and "gmm" (MixtureStart), comma-separated.
// EMFLOW_DRAW_SEED (default 1) seeds every draw, to see how much the choice moves with the draw alone. A list
// ("1,2,3") repeats each draw with each seed, candidates fitted anew each time, and also scores the blends averaged
// over the seeds: the test imputations averaged, and the weights averaged and applied to the first seed's candidates.
let drawSeeds =
    match Environment.GetEnvironmentVariable "EMFLOW_DRAW_SEED" with
    | null | "" -> [| 1L |]
    | v -> v.Split(',') |> Array.map int64
let extras = if args.Length > 4 then set (args[4].Split(',')) else Set.empty
let table, foldIds = BenchTable.load name mechanism
let p = table.Values.GetLength 1
/// A candidate: fitted on the training rows (NaN = missing), it returns their imputation (n, p) and the test rows'.
type Candidate = float[,] -> float[,] -> torch.Tensor * float[,]
let ofImputer (make: unit -> Imputer) : Candidate = fun train test ->
    use imp = make ()
    let out = imp.FitTransform(train)
    torch.tensor(out, dtype = torch.float64), imp.Transform(test)
let ofStart (start: IStartCandidate) : Candidate = fun train test ->
    let tensors (a: float[,]) =
        let m = Array2D.map (fun v -> if Double.IsNaN v then 1.0 else 0.0) a
        torch.tensor(Array2D.map (fun v -> if Double.IsNaN v then 0.0 else v) a, dtype = torch.float64), torch.tensor(m, dtype = torch.float64)
    let x, m = tensors train
    let fitted, filled = start.Fit(x, m, [||], 0L, null, Threading.CancellationToken.None)
    use fitted = fitted
    let xt, mt = tensors test
    let t = fitted.Fill(xt, mt, Threading.CancellationToken.None).data<float>().ToArray()
    filled, Array2D.init (test.GetLength 0) p (fun i j -> t[i * p + j])
let candidates () : (string * Candidate)[] =
    [| yield "mean", ofImputer (fun () -> new MeanImputer())
       yield "knn", ofImputer (fun () -> new KnnImputer(5))
       yield "gaussian-em", ofImputer (fun () -> new GaussianEmImputer())
       if extras.Contains "forest" then yield "forest", ofImputer (fun () -> new ForestImputer(ForestOptions(Seed = 0L)))
       if extras.Contains "forest-sized" then yield "forest", ofStart (ForestStart.Sized())
       if extras.Contains "gmm" then yield "gmm", ofStart (MixtureStart())
       if extras.Contains "mean-start" then yield "mean-start", ofStart (MeanStart()) |]
let names = candidates () |> Array.map fst
// "odds-drawn" is not a HoldOutDraw: the held-out cells themselves drawn by their odds (column shares as the shaped
// draw), which takes the observed rows most like the missing ones out of the candidates' fits.
// "patterns" and "patterns-odds" are not HoldOutDraws either: rows drawn uniformly, each given the missingness pattern of
// a row drawn from those with a missing cell (the pattern's cells that the row observes are held out), so that cells
// missing together are held out together and a candidate predicts them from the same cells as the real gaps;
// "patterns-odds" also weighs each held-out cell by its odds, as ByPropensity does.
let allDraws = [| "uniform", HoldOutDraw.Uniform; "missingness", HoldOutDraw.LikeMissingness; "odds-weighted", HoldOutDraw.ByPropensity; "odds-drawn", enum<HoldOutDraw> 3
                  "patterns", enum<HoldOutDraw> 4; "patterns-odds", enum<HoldOutDraw> 5 |]
let draws = if args.Length > 5 then (let keep = set (args[5].Split(',')) in allDraws |> Array.filter (fun (d, _) -> keep.Contains d)) else allDraws[0..3]
let patternDrawn (drawSeed: int64) (mask: torch.Tensor) =
    let m = mask.data<float>().ToArray()
    let n, q = int mask.shape[0], int mask.shape[1]
    let donors = [| for i in 0 .. n - 1 do if Seq.exists (fun j -> m[i * q + j] > 0.5) (seq { 0 .. q - 1 }) then i |]
    let target = int (Math.Round(0.05 * float (m |> Array.sumBy (fun v -> 1.0 - v))))
    let rng = Random(int drawSeed)
    let hidden = Array.zeroCreate<float> (n * q)
    let kept = Array.init q (fun j -> Seq.sumBy (fun i -> 1.0 - m[i * q + j]) (seq { 0 .. n - 1 }))
    let mutable count = 0
    for i in Seq.sortBy (fun _ -> rng.Next()) (seq { 0 .. n - 1 }) |> Seq.toArray do
        if count < target then
            let d = donors[rng.Next donors.Length]
            for j in 0 .. q - 1 do
                if m[d * q + j] > 0.5 && m[i * q + j] < 0.5 && kept[j] > 1.0 then
                    hidden[i * q + j] <- 1.0
                    kept[j] <- kept[j] - 1.0
                    count <- count + 1
    let h = torch.tensor(hidden, dtype = torch.float64).reshape(mask.shape)
    mask + h, h
let oddsDrawn (drawSeed: int64) (x: torch.Tensor) (mask: torch.Tensor) =
    let observed = 1.0 - mask
    let odds = Selection.missingOdds x mask * observed
    let relative = (odds / (odds.sum(dim = 0L) / observed.sum(dim = 0L).clamp_min(1.0)).clamp_min(1e-300)).clamp_max(Selection.MaxOddsRatio)
    let weights = (mask.mean(dimensions = [| 0L |]) + 1e-3) * relative
    let positions = observed.flatten().nonzero().squeeze(1L)
    let k = int64 (Math.Round(0.05 * float positions.shape[0]))
    use gen = new torch.Generator(uint64 drawSeed)
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
    // Per (draw, subset): each seed's test blend, its weights (p, k) and its candidates' test imputations.
    let perSeed = Collections.Generic.Dictionary<string, ResizeArray<float[,] * float[] * float[,][]>>()
    for drawSeed in drawSeeds do
        for drawName, draw in draws do
            let trainMask, hidden =
                match draw with
                | HoldOutDraw.Uniform -> Selection.holdOut drawSeed 0.05 mt
                | HoldOutDraw.LikeMissingness -> Selection.holdOutLikeMissingness drawSeed 0.05 mt
                | HoldOutDraw.ByPropensity ->
                    // What the fit does: the shaped draw, each held-out cell's error weighed by its odds.
                    let trainMask, hidden = Selection.holdOutLikeMissingness drawSeed 0.05 mt
                    trainMask, Selection.oddsWeights xt mt hidden
                | d when int d = 4 -> patternDrawn drawSeed mt
                | d when int d = 5 ->
                    let trainMask, hidden = patternDrawn drawSeed mt
                    trainMask, Selection.oddsWeights xt mt hidden
                | _ -> oddsDrawn drawSeed xt mt
            let tm = trainMask.data<float>().ToArray()
            let input = Array2D.init n p (fun i j -> if tm[i * p + j] > 0.5 then nan else x0[i, j])
            let fitted = candidates () |> Array.map (fun (_, fit) -> fit input split.TestRows)
            let arr (t: torch.Tensor) = let a = t.data<float>().ToArray() in Array2D.init n p (fun i j -> a[i * p + j])
            // The blend of every candidate, and with mixture candidates also the blend without the mean (the command
            // line's start has no mean candidate).
            let subsets =
                [| yield "", Array.init names.Length id
                   if extras.Contains "gmm" then yield " without the mean", Array.init (names.Length - 1) ((+) 1) |]
            for label, which in subsets do
                let filled = which |> Array.map (fun c -> fst fitted[c])
                let w = Selection.blendWeights (Selection.simplexGrid filled.Length 10) 100.0 xt filled hidden
                let blended = Selection.blendAll w filled
                let blendRmse = scoreOn (arr blended)
                let wa = w.data<float>().ToArray()
                let k = filled.Length
                let tests = which |> Array.map (fun c -> snd fitted[c])
                let testBlend =
                    Array2D.init (split.TestRows.GetLength 0) p (fun i j -> Seq.sum (seq { for c in 0 .. k - 1 -> wa[j * k + c] * tests[c][i, j] }))
                let testRmse = Protocol.HiddenRmse(table, split, testBlend)
                let key = sprintf "blend%s, %s draw" label drawName
                if not (perSeed.ContainsKey key) then perSeed[key] <- ResizeArray()
                perSeed[key].Add((testBlend, wa, tests))
                add ("training rows: " + key) blendRmse
                add ("test fold: " + key) testRmse
                let shares = w.mean(dimensions = [| 0L |]).data<float>().ToArray()
                printfn "fold %d seed %d %-12s blend%s %.4f, test %.4f  mean weights %s" f drawSeed drawName label blendRmse testRmse (String.Join(" ", Array.map2 (sprintf "%s %.2f") (which |> Array.map (fun c -> names[c])) shares))
            if drawName = fst draws[0] && drawSeed = drawSeeds[0] then
                fitted |> Array.iteri (fun c (t, test) -> add ("training rows: " + names[c]) (scoreOn (arr t)); add ("test fold: " + names[c]) (Protocol.HiddenRmse(table, split, test)))
    if drawSeeds.Length > 1 then
        for kv in perSeed do
            let runs = kv.Value.ToArray()
            let m = split.TestRows.GetLength 0
            let r = float runs.Length
            let averaged = Array2D.init m p (fun i j -> runs |> Array.sumBy (fun (b, _, _) -> b[i, j]) |> fun v -> v / r)
            let _, _, firstTests = runs[0]
            let k = firstTests.Length
            let meanWeights = Array.init (p * k) (fun e -> runs |> Array.sumBy (fun (_, w, _) -> w[e]) |> fun v -> v / r)
            let reweighed = Array2D.init m p (fun i j -> Seq.sum (seq { for c in 0 .. k - 1 -> meanWeights[j * k + c] * firstTests[c][i, j] }))
            let a, b = Protocol.HiddenRmse(table, split, averaged), Protocol.HiddenRmse(table, split, reweighed)
            add (sprintf "test fold: %s, %d draws' blends averaged" kv.Key runs.Length) a
            add (sprintf "test fold: %s, %d draws' weights averaged" kv.Key runs.Length) b
            printfn "fold %d %s: %d draws' blends averaged %.4f, weights averaged %.4f" f kv.Key runs.Length a b
printfn "\n%s %s, folds %s: RMSE (mean over folds)" name args[2] args[3]
for kv in results |> Seq.sortBy (fun kv -> kv.Key) do printfn "%-44s %.4f" kv.Key (Seq.average kv.Value)
