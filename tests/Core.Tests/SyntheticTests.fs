module EMFlow.Tests.SyntheticTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors

let private bits (t: Tensor) = toArray t |> Array.map BitConverter.DoubleToInt64Bits

[<Tests>]
let tests =
    testSequenced <| testList "Synthetic" [
        testCase "nonlinear: softplus column is torch's own softplus, bit for bit" <| fun () ->
            // Without noise the softplus column is exactly softplus(x1 + x2): the table must not move when the
            // library avoids TorchSharp's temporary Scalars.
            use x = Synthetic.nonlinear 5L 2000 0.0
            use sum = plus (x.select(1L, 0L)) (x.select(1L, 1L))
            use expected = torch.nn.functional.softplus(sum)
            Expect.equal (bits (x.select(1L, 5L))) (bits expected) "softplus column"

        testCase "nonlinear: same seed, same table; checks its arguments" <| fun () ->
            use a = Synthetic.nonlinear 7L 50 0.1
            use b = Synthetic.nonlinear 7L 50 0.1
            Expect.equal (bits a) (bits b) "same seed"
            Expect.equal (a.shape) [| 50L; 7L |] "shape"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Synthetic.nonlinear 1L 0 0.1 |> ignore) "n = 0"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Synthetic.nonlinear 1L 10 -1.0 |> ignore) "noise < 0"
    ]
