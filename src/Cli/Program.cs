using EMFlow.Cli;

using var keys = new CancelKeys(Console.Error, Environment.Exit);
// Ctrl+C asks the running command to stop (within a second); it then exits with 130 without writing its output. A
// second Ctrl+C ends the process at once.
Console.CancelKeyPress += (_, e) => e.Cancel = keys.Press();
return App.Run(args, Console.Out, Console.Error, keys.Token);
