using Spectre.Console;

namespace EMFlow.Cli;

internal static class ImputeCommand
{
    public static void Run(string[] words, IAnsiConsole console, bool interactive, CancellationToken ct) =>
        throw new UsageException("impute is not available yet");
}
