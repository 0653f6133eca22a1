// What a bench script that times the library needs (run ./build.sh build first): its assemblies, and the process set-up
// `emflow` does first (freed native blocks kept for reuse, one torch thread), so that the script's seconds are what the
// command line's would be. #load it before anything that uses EMFlow.
#r "../src/Host.CSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../src/Host.CSharp/bin/Release/net10.0/EMFlow.Core.dll"
#r "../src/Host.CSharp/bin/Release/net10.0/EMFlow.dll"

EMFlow.NativeHeap.ReuseFreedBlocks() |> ignore
TorchSharp.torch.set_num_threads 1
