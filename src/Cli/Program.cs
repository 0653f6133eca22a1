using EMFlow;
using EMFlow.Cli;

// Before any tensor exists: libtorch's short-lived tensors then reuse heap blocks instead of faulting in fresh pages
// (NativeHeap says why and what it measured).
NativeHeap.ReuseFreedBlocks();
// Work outside an imputer's fit (the demo's table and mask, reading and scaling a file) runs on one torch thread too.
// Left at torch's default until the first fit set a count, the same demo gave other bits in 2 runs of 40 on 2 cores,
// enough to move its EMFlow RMSE in the fourth digit (TorchThreadScope.SetProcessDefault).
TorchThreadScope.SetProcessDefault(1);
using var keys = new CancelKeys(Console.Error, Environment.Exit);
// Ctrl+C asks the running command to stop (within a second); it then exits with 130 without writing its output. A
// second Ctrl+C ends the process at once.
Console.CancelKeyPress += (_, e) => e.Cancel = keys.Press();
return App.Run(args, Console.Out, Console.Error, keys.Token);
