// The demo's EMFlow fit (emflow demo: 3000 x 7 synthetic table, 20% MCAR, 20 epochs per iteration, one torch thread)
// under the settings before the fit was made faster and under today's defaults, interleaved in one process so that
// both see the same machine: seconds (wall and CPU) and RMSE on the hidden cells, per seed, and the ratio of medians.
// Run after ./build.sh build:  dotnet fsi bench/demo-speed.fsx [seeds, default 3]
#r "../src/Host.CSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../src/Host.CSharp/bin/Release/net10.0/EMFlow.Core.dll"
#r "../src/Host.CSharp/bin/Release/net10.0/EMFlow.dll"
open System
open System.Diagnostics
open TorchSharp
open EMFlow

// Touching torch first lets TorchSharp find its native library before any P/Invoke.
torch.set_num_threads 1
let seeds = fsi.CommandLineArgs |> Array.tryItem 1 |> Option.map int |> Option.defaultValue 3
let rows, p = 3000, 7

/// The demo's options (DemoCommand): library defaults with 20 epochs per iteration.
let demo (seed: int64) = EMFlowOptions(Seed = seed, EpochsPerIteration = 20, TorchThreads = 1)

/// What the demo ran before: float64 separate tanh s and t networks, the E-step through the updated flow, every epoch
/// of every iteration.
let before (seed: int64) =
    EMFlowOptions(Seed = seed, EpochsPerIteration = 20, TorchThreads = 1, FlowPrecision = FlowPrecision.Float64, HiddenActivation = HiddenActivation.Tanh,
                  CouplingNetwork = CouplingNetwork.Dense, LatentFromL1Pass = false, Patience = 0, StopAfterWorseIteration = false)

let run (options: EMFlowOptions) (seed: int64) =
    use complete = Synthetic.nonlinear seed rows 0.1
    use mask = Missingness.mcar (Tensors.deriveSeed seed 1) 0.2 (rows, p)
    let c = Tensors.toArray2D complete
    let m = Tensors.toArray2D mask
    let incomplete = Array2D.init rows p (fun i j -> if m[i, j] > 0.5 then nan else c[i, j])
    use imputer = new EMFlowImputer(options)
    let me = Process.GetCurrentProcess()
    let cpu0 = me.TotalProcessorTime
    let clock = Stopwatch.StartNew()
    let imputed = imputer.FitTransform(incomplete)
    let wall = clock.Elapsed.TotalSeconds
    me.Refresh()
    let cpu = (me.TotalProcessorTime - cpu0).TotalSeconds
    // RMSE on the [0, 1] scale of the complete data, as the demo reports it.
    let lo = Array.init p (fun j -> Seq.min (seq { for i in 0 .. rows - 1 -> c[i, j] }))
    let hi = Array.init p (fun j -> Seq.max (seq { for i in 0 .. rows - 1 -> c[i, j] }))
    let mutable sum, count = 0.0, 0
    for i in 0 .. rows - 1 do
        for j in 0 .. p - 1 do
            if m[i, j] > 0.5 then
                sum <- sum + ((imputed[i, j] - c[i, j]) / (hi[j] - lo[j])) ** 2.0
                count <- count + 1
    let epochs = imputer.EpochHistory.Count
    wall, cpu, sqrt (sum / float count), epochs, imputer.SelectedIteration

let median (xs: float list) = let s = List.sort xs in s[s.Length / 2]
let results = Collections.Generic.Dictionary<string, ResizeArray<float * float * float>>()
printfn "| seed | settings | seconds | CPU seconds | RMSE | epochs run | kept |"
printfn "|---|---|---|---|---|---|---|"
for seed in 1L .. int64 seeds do
    for name, options in [ "before", before seed; "now", demo seed ] do
        let wall, cpu, rmse, epochs, kept = run options seed
        if not (results.ContainsKey name) then results[name] <- ResizeArray()
        results[name].Add((wall, cpu, rmse))
        printfn "| %d | %s | %.1f | %.1f | %.4f | %d | %d |" seed name wall cpu rmse epochs kept
let summary name =
    let r = List.ofSeq results[name]
    median [ for w, _, _ in r -> w ], median [ for _, c, _ in r -> c ], List.average [ for _, _, e in r -> e ]
let bw, bc, be = summary "before"
let nw, nc, ne = summary "now"
printfn ""
printfn "median seconds: before %.1f, now %.1f (%.2fx); median CPU seconds: before %.1f, now %.1f (%.2fx); mean RMSE: before %.4f, now %.4f"
    bw nw (bw / nw) bc nc (bc / nc) be ne
