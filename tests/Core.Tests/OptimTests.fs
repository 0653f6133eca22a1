module EMFlow.Tests.OptimTests

open Expecto
open TorchSharp
open TorchSharp.Modules
open EMFlow
open EMFlow.Tensors
open EMFlow.Tests.TestUtil

let private bits (t: torch.Tensor) = toArray t |> Array.map System.BitConverter.DoubleToInt64Bits

/// Parameters (a matrix, a bias, and one the loss never touches, so it has no gradient) drawn from `seed`.
let private parameters (seed: int64) (dt: torch.ScalarType) =
    use gen = generator seed
    [| new Parameter(torch.randn([| 5L; 3L |], dtype = dt, generator = gen))
       new Parameter(torch.randn([| 3L |], dtype = dt, generator = gen))
       new Parameter(torch.randn([| 2L |], dtype = dt, generator = gen)) |]

let private loss (ps: Parameter[]) (x: torch.Tensor) =
    (x.matmul(ps[0]).add(ps[1], sc 1.0).tanh().sin()).sum()

/// Runs `steps` Adam steps from the same start with torch.optim.Adam and with Optim.Adam; returns both parameter sets.
let private race (dt: torch.ScalarType) (lr: float) (steps: int) =
    let theirs, ours = parameters 3L dt, parameters 3L dt
    use x = torch.randn([| 7L; 5L |], dtype = dt, generator = generator 4L)
    // torch.optim.Adam only as the reference, single-threaded: its step creates temporary Scalars.
    use reference = torch.optim.Adam(theirs, lr)
    use adam = new Optim.Adam(ours, lr)
    for _ in 1 .. steps do
        use _ = torch.NewDisposeScope()
        reference.zero_grad()
        (loss theirs x).backward()
        reference.step() |> ignore
        adam.ZeroGrad()
        (loss ours x).backward()
        adam.Step()
    theirs, ours

/// The same race against torch.optim.Adam with Optim.Adam over FlatParameters, on float64 and float32 parameters at once.
let private flatRace (lr: float) (steps: int) (clip: float option) =
    let make () = Array.append (parameters 3L torch.float64) (parameters 5L torch.float32)
    let theirs, ours = make (), make ()
    use x64 = torch.randn([| 7L; 5L |], dtype = torch.float64, generator = generator 4L)
    use x32 = torch.randn([| 7L; 5L |], dtype = torch.float32, generator = generator 6L)
    let both (ps: Parameter[]) = (loss ps[0..2] x64).add((loss ps[3..5] x32).to_type(torch.float64), sc 1.0)
    use reference = torch.optim.Adam(theirs, lr)
    use flat = new Optim.FlatParameters(ours)
    use adam = new Optim.Adam(flat, lr)
    for _ in 1 .. steps do
        use _ = torch.NewDisposeScope()
        reference.zero_grad()
        (both theirs).backward()
        clip |> Option.iter (fun c -> torch.nn.utils.clip_grad_norm_(theirs, c) |> ignore)
        reference.step() |> ignore
        adam.ZeroGrad()
        (both ours).backward()
        match clip with
        | Some c -> adam.ClipAndStep c |> ignore
        | None -> adam.Step()
    theirs, ours

let private bits32 (t: torch.Tensor) = t.data<float32>().ToArray() |> Array.map System.BitConverter.SingleToInt32Bits

[<Tests>]
let tests =
    testList "Optim" [
        test "Adam over flat parameters equals torch.optim.Adam bit for bit (float64 and float32 together)" {
            let theirs, ours = flatRace 1e-2 200 None
            for i in 0 .. 2 do Expect.equal (bits ours[i]) (bits theirs[i]) (sprintf "float64 parameter %d" i)
            for i in 3 .. 5 do Expect.equal (bits32 ours[i]) (bits32 theirs[i]) (sprintf "float32 parameter %d" i)
            let start = (parameters 3L torch.float64)[0]
            Expect.notEqual (bits ours[0]) (bits start) "the parameters moved"
        }
        test "clipping over flat parameters agrees with clip_grad_norm_" {
            // A small limit, so that every step is clipped.
            let theirs, ours = flatRace 1e-2 50 (Some 0.05)
            // The flat buffer sums the squared gradients in another order than clip_grad_norm_'s per-parameter norms, so
            // the clipping factor differs in its last bits, and Adam's division by √v amplifies that where v is tiny:
            // 3e-9 after 50 steps on one AVX-512 CPU, under 1e-9 on another. A wrong clip moves parameters by about the rate.
            for i in 0 .. 2 do
                Expect.isLessThan (maxAbs ours[i] theirs[i]) 1e-7 (sprintf "float64 parameter %d" i)
            for i in 3 .. 5 do
                Expect.isLessThan (maxAbs (ours[i].to_type(torch.float64)) (theirs[i].to_type(torch.float64))) 1e-4 (sprintf "float32 parameter %d" i)
        }
        test "flat parameters keep their values and shapes, and a non-finite gradient takes no step" {
            let ps = parameters 7L torch.float64
            let before = ps |> Array.map (fun p -> toArray (p.detach().clone()))
            use flat = new Optim.FlatParameters(ps)
            for i in 0 .. ps.Length - 1 do
                Expect.equal (toArray ps[i]) before[i] (sprintf "values of parameter %d" i)
            Expect.equal ps[0].shape [| 5L; 3L |] "shape kept"
            use adam = new Optim.Adam(flat, 1e-2)
            (loss ps (torch.ones(2L, 5L, dtype = torch.float64))).mul(torch.tensor(nan, dtype = torch.float64)).backward()
            let norm = adam.ClipAndStep 1.0
            Expect.isFalse (System.Double.IsFinite norm) "the norm is reported"
            Expect.equal (toArray ps[0]) before[0] "no step on a NaN gradient"
            Expect.equal adam.Steps 0L "no step counted"
        }
        test "Adam equals torch.optim.Adam bit for bit over 300 steps (float64)" {
            let theirs, ours = race torch.float64 1e-2 300
            for i in 0 .. theirs.Length - 1 do
                Expect.equal (bits ours[i]) (bits theirs[i]) (sprintf "parameter %d" i)
            let start = (parameters 3L torch.float64)[0]
            Expect.notEqual (bits ours[0]) (bits start) "the parameters moved"
        }
        test "Adam equals torch.optim.Adam bit for bit over 300 steps (float32)" {
            let theirs, ours = race torch.float32 1e-3 300
            for i in 0 .. theirs.Length - 1 do
                Expect.equal (bits ours[i]) (bits theirs[i]) (sprintf "parameter %d" i)
        }
        test "Adam counts its steps and rejects a non-positive learning rate" {
            let ps = parameters 1L torch.float64
            use adam = new Optim.Adam(ps, 1e-3)
            (loss ps (torch.ones(2L, 5L, dtype = torch.float64))).backward()
            adam.Step()
            Expect.equal adam.Steps 1L "one step"
            Expect.throwsT<System.ArgumentOutOfRangeException> (fun () -> new Optim.Adam(ps, 0.0) |> ignore) "lr 0"
        }
        test "the kept-Scalar helpers compute what TorchSharp's operators compute" {
            use gen = generator 5L
            let a = torch.randn([| 4L; 3L |], dtype = dtype, generator = gen)
            let b = torch.randn([| 4L; 3L |], dtype = dtype, generator = gen)
            Expect.equal (bits (plus a b)) (bits (a + b)) "plus"
            Expect.equal (bits (scaleBy 0.37 a)) (bits (a * 0.37)) "scaleBy"
            Expect.equal (bits (divideBy 3.0 a)) (bits (a / 3.0)) "divideBy"
            Expect.equal (bits (offsetBy 1e-8 a)) (bits (a + 1e-8)) "offsetBy"
            Expect.equal (bits (oneMinus a)) (bits (1.0 - a)) "oneMinus"
            Expect.equal (toArray (range 4L)) [| 0.0; 1.0; 2.0; 3.0 |] "range"
            Expect.equal (range 4L).dtype torch.int64 "range dtype"
            let i = range 3L
            Expect.equal (toArray (plus i i)) [| 0.0; 2.0; 4.0 |] "plus on integers"
        }
    ]
