// How much of the forest's error is the noise of one run? Per fold of the tables protocol (MCAR 0.2, seed 0), the
// forest (ForestOptions defaults) is fitted with seeds 0 … SEEDS-1 on the training rows; each imputes the test fold,
// and the average of those imputations is scored too, as ForestOptions.Repeats = SEEDS would impute it (its first run
// uses the seed itself, the further ones streams derived from it, so its figure differs from this one in the last
// digits). Nothing here chooses anything: it only reports the spread.
// Run after ./build.sh build:  dotnet fsi bench/forest-seeds.fsx TABLE FOLDS [SEEDS]
//   e.g. dotnet fsi bench/forest-seeds.fsx concrete 0,3,4 4   (tables from ../shared/data or EMFLOW_DATA)
#load "ForestReferences.fsx"
#load "BenchTable.fsx"
open System
open EMFlow
open EMFlow.Evaluation

TorchSharp.torch.set_num_threads 1
let args = fsi.CommandLineArgs |> Array.skip 1
if args.Length < 2 then failwith "usage: dotnet fsi bench/forest-seeds.fsx TABLE FOLDS [SEEDS]"
let name = args[0]
let folds = args[1].Split(',') |> Array.map int
let seeds = if args.Length > 2 then int args[2] else 4
let table, foldIds = BenchTable.load name (Mechanism.Mcar 0.2)
for f in folds do
    let split = Protocol.Split(table, foldIds, f)
    let outs =
        [ for s in 0L .. int64 (seeds - 1) ->
            use imp = new ForestImputer(ForestOptions(Seed = s))
            imp.Fit(split.TrainRows) |> ignore
            imp.Transform(split.TestRows) ]
    let scores = outs |> List.map (fun o -> Protocol.HiddenRmse(table, split, o))
    let first = outs.Head
    let average = Array2D.init (Array2D.length1 first) (Array2D.length2 first) (fun i j -> (outs |> List.sumBy (fun o -> o[i, j])) / float seeds)
    printfn "fold %d: seeds %s (mean %.4f) | average of %d runs %.4f"
        f (String.Join(" ", scores |> List.map (sprintf "%.4f"))) (List.average scores) seeds (Protocol.HiddenRmse(table, split, average))
