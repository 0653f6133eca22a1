// A seeded synthetic CSV for the streaming measurements (bench/stream-transform.sh, bench/stream-fit.sh):
//   dotnet fsi bench/stream-data.fsx ROWS OUT.csv SEED [COMPLETE.csv]
// With COMPLETE.csv, the same rows with no cell missing are written there too (the truth of the hidden cells).
// 16 columns driven by 4 latent normals (linear, skewed and bounded features), 20% of the cells missing completely at
// random, six significant digits. Written row by row, so the generator's memory does not grow with ROWS either.
open System
open System.Globalization
open System.IO

let args = fsi.CommandLineArgs |> Array.skip 1
if args.Length < 3 || args.Length > 4 then failwith "usage: dotnet fsi bench/stream-data.fsx ROWS OUT.csv SEED [COMPLETE.csv]"
let rows = int args[0]
let rng = Random(int args[2])
let normal () =
    // Box-Muller on the seeded generator.
    let u1 = 1.0 - rng.NextDouble()
    sqrt (-2.0 * log u1) * cos (2.0 * Math.PI * rng.NextDouble())
let header = String.Join(",", [| for j in 0 .. 15 -> sprintf "x%d" j |])
let truth = if args.Length = 4 then new StreamWriter(args[3]) else StreamWriter.Null
truth.Write(header)
truth.Write('\n')
using (new StreamWriter(args[1])) (fun w ->
    w.Write(header)
    w.Write('\n')
    let cells = Array.zeroCreate<string> 16
    let complete = Array.zeroCreate<string> 16
    for _ in 1 .. rows do
        let z = Array.init 4 (fun _ -> normal ())
        for j in 0 .. 15 do
            let a, b = z[j % 4], z[(j + 1) % 4]
            let v =
                match j / 4 with
                | 0 -> a + 0.3 * b
                | 1 -> exp (0.5 * a) - 0.2 * b
                | 2 -> tanh (a + b)
                | _ -> a * b + 0.1 * normal ()
            complete[j] <- v.ToString("G6", CultureInfo.InvariantCulture)
            cells[j] <- if rng.NextDouble() < 0.2 then "" else complete[j]
        w.Write(String.Join(",", cells))
        w.Write('\n')
        truth.Write(String.Join(",", complete))
        truth.Write('\n'))
truth.Dispose()
