// What fewer or cheaper training steps cost in accuracy on the demo's table: the demo's EMFlow fit (emflow demo: 3000 x 7
// synthetic table, 20% MCAR, one torch thread) under settings that each cut the fit's work, on several seeds of the table
// and the fit. Prints one row per setting and seed (seconds, RMSE on the hidden cells on the complete data's [0, 1]
// scale, as the demo reports it) and the mean RMSE per setting. The RMSEs do not depend on the machine's load; the
// seconds do.
// Run after ./build.sh build:
//   dotnet fsi bench/demo-settings.fsx [seeds, default 6] [setting ...]
// A setting is epochs:batch:learning-rate:width:depth:layers, for example 20:256:1e-3:128:2:6 (the demo's own, which
// runs when no setting is given).
#load "LibraryProcess.fsx"
open System
open System.Diagnostics
open TorchSharp
open EMFlow

let args = fsi.CommandLineArgs |> Array.skip 1
let seeds = args |> Array.tryHead |> Option.map int |> Option.defaultValue 6
let settings =
    match args |> Array.skip (min 1 args.Length) with
    | [||] -> [| "20:256:1e-3:128:2:6" |]
    | given -> given
let rows, p = 3000, 7

let run (setting: string) (seed: int64) =
    let f = setting.Split ':'
    if f.Length <> 6 then invalidArg "setting" (sprintf "expected epochs:batch:learning-rate:width:depth:layers; got %s" setting)
    let options =
        EMFlowOptions(Seed = seed, TorchThreads = 1, EpochsPerIteration = int f[0], BatchSize = int f[1], LearningRate = float f[2],
                      HiddenWidth = int f[3], HiddenDepth = int f[4], CouplingLayers = int f[5])
    use complete = Synthetic.nonlinear seed rows 0.1
    use mask = Missingness.mcar (Tensors.deriveSeed seed 1) 0.2 (rows, p)
    let c = Tensors.toArray2D complete
    let m = Tensors.toArray2D mask
    let incomplete = Array2D.init rows p (fun i j -> if m[i, j] > 0.5 then nan else c[i, j])
    use imputer = new EMFlowImputer(options)
    let clock = Stopwatch.StartNew()
    let imputed = imputer.FitTransform(incomplete)
    let seconds = clock.Elapsed.TotalSeconds
    // The demo's yardstick (DemoCommand): the complete data's min-max scale, RMSE over the hidden cells.
    use _ = torch.NewDisposeScope()
    let scaler = Scaler.fit complete (torch.zeros_like(complete))
    let rmse = Metrics.rmse (Scaler.transform scaler complete) (Scaler.transform scaler (Tensors.ofArray2D imputed)) mask
    seconds, rmse, imputer.SelectedIteration

printfn "| setting (epochs:batch:lr:width:depth:layers) | seed | seconds | RMSE | iteration kept |"
printfn "|---|---|---|---|---|"
let means =
    [ for setting in settings ->
        let results = [ for seed in 1L .. int64 seeds ->
                          let seconds, rmse, kept = run setting seed
                          printfn "| %s | %d | %.1f | %.4f | %d |" setting seed seconds rmse kept
                          rmse ]
        setting, List.average results ]
printfn ""
for setting, mean in means do printfn "%s: mean RMSE %.4f over seeds 1-%d" setting mean seeds
