// Which columns get fitted odds of being missing (Selection.missingOdds: a column keeps odds 1 unless a
// likelihood-ratio test at level 0.001 finds its missingness predicted by the rest of the row), on the training rows
// of each fold of the tables protocol (seed 0), MCAR 0.2 and MAR.
// Run after ./build.sh build:  dotnet fsi bench/fitted-odds.fsx concrete,breast_cancer,wine_quality,spam,letter,review,air_quality
#load "ForestReferences.fsx"
#load "BenchTable.fsx"
open TorchSharp
open EMFlow
open EMFlow.Evaluation
torch.set_num_threads 1
for name in fsi.CommandLineArgs[1].Split(',') do
  for mechName, mech in [ "mcar", Mechanism.Mcar 0.2; "mar", Mechanism.Mar() ] do
    let table, foldIds = BenchTable.load name mech
    let p = table.Values.GetLength 1
    let counts =
      [ for f in 0 .. 4 do
          let split = Protocol.Split(table, foldIds, f)
          let x0 = split.TrainRows
          let n = x0.GetLength 0
          let xt = torch.tensor(Array2D.init n p (fun i j -> if System.Double.IsNaN x0[i, j] then 0.0 else x0[i, j]), dtype = torch.float64)
          let mt = torch.tensor(Array2D.init n p (fun i j -> if System.Double.IsNaN x0[i, j] then 1.0 else 0.0), dtype = torch.float64)
          let odds = Selection.missingOdds xt mt
          let missingCols = (mt.sum(dim = 0L).gt(Tensors.sc 0.0)).sum().item<int64>()
          let fitted = (odds.ne(Tensors.sc 1.0).any(dim = 0L)).sum().item<int64>()
          yield sprintf "%d/%d" fitted missingCols ]
    printfn "%s %s: columns with fitted odds / columns with missing cells, per fold: %s" name mechName (String.concat " " counts)
