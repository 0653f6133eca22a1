module EMFlow.Tests.TensorsTests

open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors

[<Tests>]
let tests =
    testList "Tensors" [
        test "torch loads its native library and computes a matrix product" {
            // Fails with TorchSharp's "no reference to libtorch-cpu" error where the GLIBCXX fix is missing.
            let a = ofArray2D (array2D [ [ 1.0; 2.0 ]; [ 3.0; 4.0 ] ])
            let b = ofArray2D (array2D [ [ 5.0; 6.0 ]; [ 7.0; 8.0 ] ])
            Expect.equal (toArray2D (a.matmul(b))) (array2D [ [ 19.0; 22.0 ]; [ 43.0; 50.0 ] ]) "A B"
            Expect.floatClose Accuracy.high (scalar (torch.linalg.det(a))) -2.0 "det"
        }
        test "array round trips keep every bit" {
            let a = array2D [ [ 0.1; -1e-300; 1e300 ]; [ nan; 3.0; -0.0 ] ]
            let back = toArray2D (ofArray2D a)
            for i in 0 .. 1 do
                for j in 0 .. 2 do
                    Expect.equal (System.BitConverter.DoubleToInt64Bits back[i, j]) (System.BitConverter.DoubleToInt64Bits a[i, j]) "bits"
        }
        test "derived seeds differ by stream and from the user's seed + k" {
            let s = [ for k in 0 .. 9 -> deriveSeed 1L k ]
            Expect.equal (List.distinct s).Length 10 "distinct streams"
            Expect.isFalse (List.contains 2L s) "not seed + 1"
            Expect.equal (deriveSeed 1L 3) (deriveSeed 1L 3) "deterministic"
        }
        test "setThreads rejects zero" {
            Expect.throwsT<System.ArgumentException> (fun () -> setThreads 0) "zero threads"
        }
    ]
