using EMFlow.Cli;

using var cancel = new CancellationTokenSource();
// Ctrl+C asks the running fit to stop between batches; the command then exits without writing its output.
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};
return App.Run(args, Console.Out, Console.Error, cancel.Token);
