module EMFlow.Tests.Main
open Expecto
[<Tests>]
let t = test "torch" { Expect.floatClose Accuracy.high (EMFlow.Torch.ping ()) 14.0 "sum of squares" }
[<EntryPoint>]
let main argv = runTestsInAssemblyWithCLIArgs [] argv
