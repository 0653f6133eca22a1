// The table and folds of the `tables` protocol for the bench scripts: a table of ../shared/data (or EMFLOW_DATA) by
// name, its last column dropped where the bench console drops a target, the mechanism's cells hidden, 5 folds, seed 0:
// the same folds and masks as `emflow-bench tables`. #load it after the #r lines of EMFlow.dll and EMFlow.Evaluation.dll.
module BenchTable

open System
open System.IO
open EMFlow
open EMFlow.Evaluation

/// The prepared table and each kept row's fold id.
let load (name: string) (mechanism: Mechanism) =
    let dataDir =
        match Environment.GetEnvironmentVariable "EMFLOW_DATA" with
        | null | "" -> Path.Combine(__SOURCE_DIRECTORY__, "..", "..", "shared", "data")
        | d -> d
    // Letter, Spam and Breast cancer carry a class label as their last column; the protocol imputes the features only.
    let keepTarget = name <> "letter" && name <> "spam" && name <> "breast_cancer"
    let cols, raw = CsvTable.Read(Path.Combine(dataDir, name, name + ".csv")).ToTuple()
    let values =
        if keepTarget || cols[cols.Length - 1] <> "target" then raw
        else Array2D.init (raw.GetLength 0) (raw.GetLength 1 - 1) (fun i j -> raw[i, j])
    let table = Protocol.Prepare(values, ProtocolOptions(Folds = 5, Seed = 0L, Mechanism = mechanism))
    table, Protocol.AssignFolds(table.KeptRows.Length, 5, Tensors.deriveSeed 0L 1)
