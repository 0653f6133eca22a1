// kNN imputation of 5000 new rows from 20000 donor rows at p = 16 (20% MCAR in both), one torch thread: rows per
// second, the process's peak resident set, and a hash of the output, which must not change with the implementation.
// Then the 3000 x 7 demo size imputed against itself, in milliseconds.
// Run after ./build.sh build:  dotnet fsi bench/knn-transform.fsx
#r "../src/Host.CSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../src/Host.CSharp/bin/Release/net10.0/EMFlow.Core.dll"
open TorchSharp
open EMFlow
torch.set_num_threads 1
let gen = new torch.Generator(seed = 5UL)
let n, m, p = 20000L, 5000L, 16L
let table rows =
    let x = torch.rand([| rows; p |], dtype = torch.float64, generator = gen)
    let mask = torch.rand([| rows; p |], dtype = torch.float64, generator = gen).lt(torch.tensor(0.2, dtype = torch.float64)).to_type(torch.float64)
    x * (torch.ones_like(mask) - mask), mask
let donorX, donorMask = table n
let newX, newMask = table m
let pool = Knn.donors donorX donorMask
Knn.impute 5 pool (newX.narrow(0L, 0L, 200L)) (newMask.narrow(0L, 0L, 200L)) |> ignore
let clock = System.Diagnostics.Stopwatch.StartNew()
let imputed = Knn.impute 5 pool newX newMask
let seconds = clock.Elapsed.TotalSeconds
let bytes = imputed.data<float>().ToArray() |> Array.collect (fun (v: float) -> System.BitConverter.GetBytes v)
let hash = System.Convert.ToHexString(System.Security.Cryptography.SHA256.HashData bytes)
let peak = System.IO.File.ReadAllLines("/proc/self/status") |> Array.find (fun l -> l.StartsWith "VmHWM")
printfn "%.0f rows/s (%.2f s), %s, output SHA-256 %s" (float m / seconds) seconds (peak.Replace("\t", " ")) (hash.Substring(0, 16))
// The demo's size: 3000 x 7 (20% MCAR) imputed against a pool of the same rows.
let small, smallMask =
    let g = new torch.Generator(seed = 7UL)
    let x = torch.rand([| 3000L; 7L |], dtype = torch.float64, generator = g)
    let mask = torch.rand([| 3000L; 7L |], dtype = torch.float64, generator = g).lt(torch.tensor(0.2, dtype = torch.float64)).to_type(torch.float64)
    x * (torch.ones_like(mask) - mask), mask
let smallPool = Knn.donors small smallMask
Knn.impute 5 smallPool small smallMask |> ignore
let smallClock = System.Diagnostics.Stopwatch.StartNew()
Knn.impute 5 smallPool small smallMask |> ignore
printfn "3000 x 7 against itself: %.0f ms" smallClock.Elapsed.TotalMilliseconds
