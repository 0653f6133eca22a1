module EMFlow.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    // One torch thread: see build.sh; tests that touch global torch state are sequenced.
    EMFlow.Tensors.setThreads 1
    runTestsInAssemblyWithCLIArgs [] argv
