// EMFlow (library defaults) against Gaussian EM on rows neither saw at Fit: the demo's nonlinear synthetic table
// (Synthetic.nonlinear, 3000 x 7, 20% MCAR) fitted on one seed's rows, then new rows of another seed imputed with
// Transform; RMSE on their hidden cells on the [0, 1] scale of the complete new rows, per seed.
// Run after ./build.sh build:  dotnet fsi bench/synthetic-unseen.fsx [seeds, default 3]
#r "../src/Host.CSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../src/Host.CSharp/bin/Release/net10.0/EMFlow.Core.dll"
#r "../src/Host.CSharp/bin/Release/net10.0/EMFlow.dll"
open System
open TorchSharp
open EMFlow
// Touching torch first lets TorchSharp find its native library before any P/Invoke.
torch.set_num_threads 1
let rows, p = 3000, 7
let table seed =
    use complete = Synthetic.nonlinear seed rows 0.1
    use mask = Missingness.mcar (Tensors.deriveSeed seed 1) 0.2 (rows, p)
    let c = Tensors.toArray2D complete
    let m = Tensors.toArray2D mask
    c, m, Array2D.init rows p (fun i j -> if m[i, j] > 0.5 then nan else c[i, j])
let rmse (c: float[,]) (m: float[,]) (imp: float[,]) =
    let lo = Array.init p (fun j -> Seq.min (seq { for i in 0 .. rows - 1 -> c[i, j] }))
    let hi = Array.init p (fun j -> Seq.max (seq { for i in 0 .. rows - 1 -> c[i, j] }))
    let mutable sum, count = 0.0, 0
    for i in 0 .. rows - 1 do
        for j in 0 .. p - 1 do
            if m[i, j] > 0.5 then
                sum <- sum + ((imp[i, j] - c[i, j]) / (hi[j] - lo[j])) ** 2.0
                count <- count + 1
    sqrt (sum / float count)
let seeds = fsi.CommandLineArgs |> Array.tryItem 1 |> Option.map int64 |> Option.defaultValue 3L
for seed in 1L .. seeds do
    let _, _, train = table seed
    let c, m, test = table (seed + 100L)
    use em = new EMFlowImputer(EMFlowOptions(Seed = seed, TorchThreads = 1))
    em.Fit(train)
    let e = rmse c m (em.Transform(test))
    use g = new GaussianEmImputer()
    g.Fit(train)
    let ge = rmse c m (g.Transform(test))
    printfn "seed %d: unseen rows EMFlow %.4f, Gaussian EM %.4f, %.0f%% below (kept iteration %d)" seed e ge (100.0 * (1.0 - e / ge)) em.SelectedIteration
