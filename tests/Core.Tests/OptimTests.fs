module EMFlow.Tests.OptimTests

open Expecto
open TorchSharp
open TorchSharp.Modules
open EMFlow
open EMFlow.Tensors

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

[<Tests>]
let tests =
    testList "Optim" [
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
