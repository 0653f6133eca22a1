// Forest settings compared without the test folds: per fold of the tables protocol (seed 0), a further 20% of the
// observed cells of the training rows are hidden (seeded), each setting imputes the training rows, and the RMSE over
// those cells on [0, 1] (each column's observed range) is printed with the seconds. Nothing here reads a test fold.
// Run after ./build.sh build:  dotnet fsi bench/forest-settings.fsx TABLE FOLDS [mar]
//   e.g. dotnet fsi bench/forest-settings.fsx wine_quality 1,2   (tables from ../shared/data or EMFLOW_DATA)
#load "ForestReferences.fsx"
#load "BenchTable.fsx"
open System
open EMFlow
open EMFlow.Evaluation

TorchSharp.torch.set_num_threads 1
let args = fsi.CommandLineArgs |> Array.skip 1
if args.Length < 2 then failwith "usage: dotnet fsi bench/forest-settings.fsx TABLE FOLDS [mar]"
let name = args[0]
let folds = args[1].Split(',') |> Array.map int
let mechanism = if args.Length > 2 && args[2] = "mar" then Mechanism.Mar() else Mechanism.Mcar 0.2
let table, foldIds = BenchTable.load name mechanism
let forest trees rate repeats linear = ForestOptions(Trees = trees, LearningRate = rate, Repeats = repeats, LinearBase = linear)
let settings =
    [ "one run of 100, trees alone", forest 100 0.1 1 ForestLinearBase.None
      "one run of 100, base always", forest 100 0.1 1 ForestLinearBase.Always
      "2 x 50 at 0.2, trees alone", forest 50 0.2 2 ForestLinearBase.None
      "2 x 50 at 0.2, base always", forest 50 0.2 2 ForestLinearBase.Always
      "4 x 25 at 0.4, trees alone", forest 25 0.4 4 ForestLinearBase.None
      "4 x 25 at 0.4, base always", forest 25 0.4 4 ForestLinearBase.Always
      "4 x 25 at 0.4, base chosen", forest 25 0.4 4 ForestLinearBase.WhereItHelps ]
for fold in folds do
    let x = Protocol.Split(table, foldIds, fold).TrainRows
    let n, p = Array2D.length1 x, Array2D.length2 x
    let rng = Random(17)
    let hidden = Array2D.init n p (fun i j -> not (Double.IsNaN x[i, j]) && rng.NextDouble() < 0.2)
    let input = Array2D.init n p (fun i j -> if hidden[i, j] then nan else x[i, j])
    let observed j = [| for i in 0 .. n - 1 do if not (Double.IsNaN x[i, j]) then yield x[i, j] |]
    let range = Array.init p (fun j -> let v = observed j in Array.max v - Array.min v)
    let rmse (imputed: float[,]) =
        let mutable sum, count = 0.0, 0
        for i in 0 .. n - 1 do
            for j in 0 .. p - 1 do
                if hidden[i, j] then
                    let d = (imputed[i, j] - x[i, j]) / range[j]
                    sum <- sum + d * d
                    count <- count + 1
        sqrt (sum / float count)
    for label, options in settings do
        let clock = Diagnostics.Stopwatch.StartNew()
        use forest = new ForestImputer(options)
        let imputed = forest.FitTransform(input)
        printfn "%s fold %d | %-28s | %.4f | %5.1f s" name fold label (rmse imputed) clock.Elapsed.TotalSeconds
