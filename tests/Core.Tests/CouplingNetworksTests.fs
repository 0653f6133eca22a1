/// The shared MLP (CouplingNetworks.fs) that computes a dense coupling's s and t and serves the deep baselines.
/// The convolutional network is internal; CouplingTests reach it through a convolutional coupling.
module EMFlow.Tests.CouplingNetworksTests

open System
open Expecto
open TorchSharp
open EMFlow.Tensors
open EMFlow.CouplingNetworks

let private input (seed: int64) (shape: int64[]) =
    use gen = generator seed
    torch.randn(shape, dtype = dtype, generator = gen)

let private values (net: Mlp) = [ for struct (n, p) in net.named_parameters() -> n, toArray p ]

let private maxAbsOf (t: Tensor) =
    use a = t.abs()
    use m = a.max()
    scalar m

[<Tests>]
let tests =
    testList "CouplingNetworks" [
        testList "Mlp" [
            test "a zero output layer starts at exactly zero output, for either activation and initialisation" {
                for activation in [ Tanh; Relu ] do
                    for init in [ FanInUniform; XavierUniform ] do
                        use net = new Mlp("m", [| 3; 8; 8; 2 |], activation, init, ZeroOutput, 1L)
                        use x = input 2L [| 16L; 3L |]
                        use y = net.Apply x
                        Expect.equal y.shape [| 16L; 2L |] "shape (B, out)"
                        Expect.isTrue (toArray y |> Array.forall (fun v -> v = 0.0)) (sprintf "%A, %A: exactly 0" activation init)
                        use w0 = net.Parameters[0].detach()
                        Expect.isGreaterThan (maxAbsOf w0) 0.0 "hidden layers are drawn, not zero"
            }
            test "Xavier initialisation stays within sqrt(6 / (fan_in + fan_out)), with zero biases" {
                let dims = [| 7; 16; 5 |]
                use net = new Mlp("m", dims, Relu, XavierUniform, LikeHidden, 3L)
                let named = dict [ for struct (n, p) in net.named_parameters() -> n, p ]
                for i in 0 .. dims.Length - 2 do
                    let bound = Math.Sqrt(6.0 / float (dims[i] + dims[i + 1]))
                    use w = named[sprintf "w%d" i].detach()
                    let biggest = maxAbsOf w
                    Expect.isLessThanOrEqual biggest bound (sprintf "layer %d within its bound" i)
                    // Dozens of uniform draws: the largest lies near the bound unless the draw is degenerate.
                    Expect.isGreaterThan biggest (0.5 * bound) (sprintf "layer %d spread over its range" i)
                    Expect.isTrue (toArray named[sprintf "b%d" i] |> Array.forall (fun v -> v = 0.0)) (sprintf "bias %d zero" i)
            }
            test "fan-in initialisation draws hidden weights and biases within 1/sqrt(fan_in)" {
                let dims = [| 4; 9; 9; 3 |]
                use net = new Mlp("m", dims, Tanh, FanInUniform, ZeroOutput, 4L)
                let named = dict [ for struct (n, p) in net.named_parameters() -> n, p ]
                for i in 0 .. dims.Length - 3 do
                    let bound = 1.0 / sqrt (float dims[i])
                    for name in [ sprintf "w%d" i; sprintf "b%d" i ] do
                        use t = named[name].detach()
                        Expect.isLessThanOrEqual (maxAbsOf t) bound (sprintf "%s within its bound" name)
                        Expect.isGreaterThan (maxAbsOf t) 0.0 (sprintf "%s drawn" name)
            }
            test "the same seed gives the same parameters; seeding equals Reset from a generator of that seed" {
                use a = new Mlp("m", [| 3; 8; 2 |], Tanh, FanInUniform, ZeroOutput, 5L)
                use b = new Mlp("m", [| 3; 8; 2 |], Tanh, FanInUniform, ZeroOutput, 5L)
                use c = new Mlp("m", [| 3; 8; 2 |], Tanh, FanInUniform, ZeroOutput)
                Expect.isTrue (values c |> List.forall (fun (_, v) -> Array.forall ((=) 0.0) v)) "unseeded: all zero until Reset"
                do
                    use gen = generator 5L
                    c.Reset gen
                Expect.equal (values b) (values a) "same seed"
                Expect.equal (values c) (values a) "Reset from generator 5 = seeded with 5"
                use d = new Mlp("m", [| 3; 8; 2 |], Tanh, FanInUniform, ZeroOutput, 6L)
                Expect.notEqual (values d) (values a) "another seed"
            }
            test "parameters are every weight, then every bias, in the order an optimiser and a saved flow see them" {
                use net = new Mlp("m", [| 2; 4; 4; 1 |], Relu, XavierUniform, LikeHidden, 1L)
                let names = [ for struct (n, _) in net.named_parameters() -> n ]
                Expect.equal names [ "w0"; "w1"; "w2"; "b0"; "b1"; "b2" ] "names and order"
                let registered = [ for struct (_, p) in net.named_parameters() -> p ]
                Expect.isTrue (List.forall2 (fun (x: Modules.Parameter) y -> obj.ReferenceEquals(x, y)) registered (List.ofArray net.Parameters)) "Parameters = named_parameters, same objects"
                Expect.isTrue (net.Parameters |> Array.forall (fun p -> p.dtype = torch.float64 && p.requires_grad)) "float64, trainable"
            }
            test "with no input features it is a learned constant: one bias, repeated for every row" {
                use net = new Mlp("m", [| 0; 8; 8; 3 |], Tanh, FanInUniform, ZeroOutput, 1L)
                Expect.equal [ for struct (n, _) in net.named_parameters() -> n ] [ "b0" ] "a single bias"
                do
                    use _ = torch.no_grad()
                    net.Parameters[0].copy_(torch.tensor([| 1.0; 2.0; 3.0 |], dtype = dtype)) |> ignore
                use x = torch.zeros([| 4L; 0L |], dtype = dtype)
                use y = net.Apply x
                Expect.equal y.shape [| 4L; 3L |] "shape (B, out)"
                Expect.equal (toArray y) (Array.concat (Array.create 4 [| 1.0; 2.0; 3.0 |])) "the bias in every row"
                do
                    use gen = generator 2L
                    net.Reset gen
                Expect.isTrue (toArray net.Parameters[0] |> Array.forall ((=) 0.0)) "Reset zeroes it"
            }
            test "the activation is applied between layers only" {
                // 1 -> 1 -> 1 with weights -1 then 1 and zero biases: relu(-x) = 0 for x > 0, tanh gives -tanh x.
                let outputFor activation =
                    use net = new Mlp("m", [| 1; 1; 1 |], activation, XavierUniform, LikeHidden, 1L)
                    do
                        use _ = torch.no_grad()
                        net.Parameters[0].fill_(-1.0) |> ignore
                        net.Parameters[1].fill_(1.0) |> ignore
                    use x = torch.tensor([| 2.0 |], dtype = dtype).reshape(1L, 1L)
                    use y = net.Apply x
                    scalar y
                Expect.equal (outputFor Relu) 0.0 "relu"
                Expect.equal (outputFor Tanh) (-(tanh 2.0)) "tanh, and nothing after the output layer"
            }
            test "applies to the last dimension of any batch shape and leaves its input usable" {
                use net = new Mlp("m", [| 3; 5; 2 |], Tanh, XavierUniform, LikeHidden, 1L)
                use x = input 3L [| 4L; 6L; 3L |]
                use y = net.Apply x
                Expect.equal y.shape [| 4L; 6L; 2L |] "(K, B, out)"
                use flat = x.reshape(24L, 3L)
                use yFlat = net.Apply flat
                use yr = y.reshape(24L, 2L)
                Expect.equal (toArray yr) (toArray yFlat) "row by row the same"
                Expect.equal (toArray x).Length 72 "input still readable"
            }
            test "gradients reach every parameter" {
                use net = new Mlp("m", [| 3; 4; 2 |], Tanh, FanInUniform, LikeHidden, 1L)
                use x = input 4L [| 8L; 3L |]
                use y = net.Apply x
                use loss = y.sum()
                loss.backward()
                for struct (n, p) in net.named_parameters() do
                    Expect.isNotNull (box p.grad) (sprintf "%s has a gradient" n)
            }
            test "bad sizes throw ArgumentException" {
                Expect.throwsT<ArgumentException> (fun () -> new Mlp("m", [| 3 |], Tanh, FanInUniform, ZeroOutput) |> ignore) "one size"
                Expect.throwsT<ArgumentException> (fun () -> new Mlp("m", [| 3; 0; 2 |], Tanh, FanInUniform, ZeroOutput) |> ignore) "empty hidden layer"
                Expect.throwsT<ArgumentException> (fun () -> new Mlp("m", [| -1; 2 |], Tanh, FanInUniform, ZeroOutput) |> ignore) "negative input"
                Expect.throwsT<ArgumentNullException> (fun () -> new Mlp("m", Unchecked.defaultof<int[]>, Tanh, FanInUniform, ZeroOutput) |> ignore) "null"
            }
        ]
    ]
