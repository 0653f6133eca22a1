// What a bench script that fits the forest needs from the bench build (run ./build.sh build first): the assemblies,
// and LightGBM's native library, since dotnet fsi does not read the bench console's dependency file, which says where
// it lies. #load it before anything that uses EMFlow.
#r "EMFlow.Bench/bin/Release/net10.0/TorchSharp.dll"
#r "EMFlow.Bench/bin/Release/net10.0/EMFlow.Core.dll"
#r "EMFlow.Bench/bin/Release/net10.0/EMFlow.dll"
#r "EMFlow.Bench/bin/Release/net10.0/EMFlow.Forest.dll"
#r "EMFlow.Bench/bin/Release/net10.0/EMFlow.Evaluation.dll"
#r "EMFlow.Bench/bin/Release/net10.0/Microsoft.ML.LightGbm.dll"

open System
open System.IO
open System.Runtime.InteropServices

NativeLibrary.SetDllImportResolver(typeof<Microsoft.ML.Trainers.LightGbm.LightGbmRegressionTrainer>.Assembly,
    fun name _ _ ->
        if name <> "lib_lightgbm" then IntPtr.Zero
        else NativeLibrary.Load(Path.Combine(__SOURCE_DIRECTORY__, "EMFlow.Bench", "bin", "Release", "net10.0", "runtimes", "linux-x64", "native", "lib_lightgbm.so")))
