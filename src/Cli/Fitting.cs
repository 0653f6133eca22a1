using Spectre.Console;

namespace EMFlow.Cli;

/// <summary>Runs a fit under a Spectre.Console progress bar when the console is interactive, plainly otherwise.</summary>
internal static class Fitting
{
    public static void Run(IAnsiConsole console, bool showProgress, string title, Action<IProgress<TrainingProgress>?> fit)
    {
        if (!showProgress)
        {
            fit(null);
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

    /// <summary>Reports on the fitting thread (Progress&lt;T&gt; would post to the thread pool and arrive late).</summary>
    private sealed class Inline<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
