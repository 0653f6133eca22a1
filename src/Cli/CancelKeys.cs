namespace EMFlow.Cli;

/// <summary>
/// What Ctrl+C does: the first press cancels the running command (it stops within about a second, writes nothing and
/// exits with <see cref="App.Cancelled"/>); a second press ends the process at once with the same code, for work
/// that does not look at the token.
/// </summary>
public sealed class CancelKeys : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly TextWriter _stderr;
    private readonly Action<int> _exit;
    private int _presses;

    /// <param name="stderr">Where the one-line notice of the first press goes.</param>
    /// <param name="exit">Ends the process with a code (<see cref="Environment.Exit"/> in the console app).</param>
    public CancelKeys(TextWriter stderr, Action<int> exit)
    {
        _stderr = stderr;
        _exit = exit;
    }

    /// <summary>Cancelled by the first press.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>Handles one press; returns true when the process should keep running (the event's <c>Cancel</c>).</summary>
    public bool Press()
    {
        if (Interlocked.Increment(ref _presses) == 1)
        {
            _stderr.WriteLine("emflow: cancelling (press Ctrl+C again to quit at once)");
            _source.Cancel();
            return true;
        }
        _stderr.WriteLine("emflow: cancelled");
        _exit(App.Cancelled);
        return false;
    }

    /// <inheritdoc />
    public void Dispose() => _source.Dispose();
}
