using EMFlow;
using EMFlow.Cli;

// Before any tensor exists: libtorch's short-lived tensors then reuse heap blocks instead of faulting in fresh pages
// (NativeHeap says why and what it measured).
NativeHeap.ReuseFreedBlocks();
using var keys = new CancelKeys(Console.Error, Environment.Exit);
// Ctrl+C asks the running command to stop (within a second); it then exits with 130 without writing its output. A
// second Ctrl+C ends the process at once.
Console.CancelKeyPress += (_, e) => e.Cancel = keys.Press();
return App.Run(args, Console.Out, Console.Error, keys.Token);
