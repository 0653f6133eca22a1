using Spectre.Console;

namespace EMFlow.Cli;

/// <summary>Runs a fit under a Spectre.Console progress bar when the console is interactive, plainly otherwise.</summary>
internal static class Fitting
{
    /// <param name="console">The terminal, for the bar.</param>
    /// <param name="showProgress">Draw a bar (an interactive terminal).</param>
    /// <param name="title">What is fitted, e.g. "emflow on concrete.csv".</param>
    /// <param name="fit">The fit, given the progress sink.</param>
    /// <param name="plain">Without a bar, where plain progress lines go (stderr), or null for none.</param>
    public static void Run(IAnsiConsole console, bool showProgress, string title, Action<IProgress<TrainingProgress>?> fit, TextWriter? plain = null)
    {
        if (!showProgress)
        {
            fit(plain is null ? null : new PlainLines(plain, title, PlainInterval));
            return;
        }
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1.0);
                fit(new Inline<TrainingProgress>(p =>
                {
                    task.Value = p.Fraction;
                    var loss = double.IsNaN(p.L1) ? "" : $" L1 {p.L1:F3}";
                    task.Description = Markup.Escape($"{title}: {p.Phase} {p.Iteration}/{p.Iterations}{loss}");
                }));
                task.Value = 1.0;
            });
    }

    /// <summary>The least time between two plain progress lines.</summary>
    internal static readonly TimeSpan PlainInterval = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Progress as plain lines for a pipe or a log: one when the fit starts, then at most one per epoch (or phase) and at
    /// most one per <see cref="PlainInterval"/>, whichever is rarer. Each line is whole: no bar, no carriage return,
    /// no wrapping.
    /// </summary>
    internal sealed class PlainLines(TextWriter writer, string title, TimeSpan interval) : IProgress<TrainingProgress>
    {
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
        private TimeSpan? _last;
        private (string, int, int) _step = ("", -1, -1);

        public void Report(TrainingProgress p)
        {
            var step = (p.Phase, p.Iteration, p.Epoch);
            if (step == _step) return;          // the same epoch or phase again: not a new step
            _step = step;
            var now = _clock.Elapsed;
            if (_last is { } last && now - last < interval) return;
            _last = now;
            var c = System.Globalization.CultureInfo.InvariantCulture;
            var iteration = p.Iteration > 0 ? string.Create(c, $", iteration {p.Iteration}/{p.Iterations}") : "";
            var where = p.Epoch > 0 ? string.Create(c, $", epoch {p.Epoch}/{p.Epochs}") : "";
            var loss = double.IsNaN(p.L1) ? "" : string.Create(c, $", L1 {p.L1:F3}");
            writer.WriteLine(string.Create(c, $"emflow: {title}: {p.Phase}{iteration}{where}{loss}; {p.Fraction * 100:F0}% done after {now.TotalSeconds:F0} s"));
            writer.Flush();
        }
    }

    /// <summary>Reports on the fitting thread (Progress&lt;T&gt; would post to the thread pool and arrive late).</summary>
    private sealed class Inline<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
