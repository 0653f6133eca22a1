using Spectre.Console;

namespace EMFlow.Cli;

/// <summary>The <c>emflow</c> command line as a function, so it runs the same in a console and in tests.</summary>
public static class App
{
    /// <summary>Exit code of a successful run.</summary>
    public const int Success = 0;
    /// <summary>Exit code of an unexpected failure.</summary>
    public const int Failure = 1;
    /// <summary>Exit code of bad arguments or bad input; a one-line message names the problem.</summary>
    public const int BadInput = 2;

    internal const string Usage = """
        emflow: impute missing values in tables with EMFlow (a normalizing flow with online EM), Gaussian EM or simple baselines.

        Usage:
          emflow demo [--rows N] [--seed S] [--threads T] [--epochs N] [--hidden-width W] [--report FILE | --no-report] [--png-dir DIR] [--quiet]
          emflow impute INPUT.csv -o OUTPUT.csv [options]
          emflow evaluate DATA.csv [--mechanism mcar|mar|mnar] [--rate 0.2] [--folds 5] [--methods mean,knn,gaussian-em,emflow]
                          [--seed S] [--threads T] [--mask MASK.csv] [--fold-ids FOLDS.txt] [--drop-target] [--quiet]
                          (--rate: the MCAR rate; with mar, the expected rate over the last 30% of features, without it
                          appendix E's own rate)
          emflow help

        impute options:
          -o, --output FILE       completed table (required); observed cells are written back as they were
          --method NAME           emflow (default), gaussian-em, mean or median
          --missing TOKEN         a further text that marks a missing cell (empty, NA and NaN always do)
          --skip-non-numeric      pass non-numeric columns through untouched instead of rejecting them
          --iterations N          EMFlow iterations (default 2)
          --epochs N              training epochs per iteration (default 40)
          --batch-size N          rows per batch (default 256)
          --learning-rate X       Adam learning rate (default 0.001)
          --start NAME            EMFlow's initial imputation: auto (default; per feature the blend of Gaussian EM and
                                  kNN that is best on held-out cells), gaussian-em or knn
          --seed S                seed of every random choice (default 0)
          --threads T             torch threads (default: torch's choice)
          --multiple K            also write K sampled imputations OUTPUT.1.csv ... OUTPUT.K.csv (emflow only)
          --model FILE            save the fitted EMFlow model
          --load FILE             impute with a saved EMFlow model instead of fitting one
          --report FILE           write a self-contained HTML report (plots open offline)
          --png-dir DIR           write the report's figures as PNG files
          --quiet                 no progress bar and no summary

        evaluate: the paper's protocol on a complete table (min-max scaled; the test fold is only re-imputed; RMSE over
        hidden cells, mean ± std over folds). Methods: mean, median, knn, gaussian-em, emflow, emflow-paper, and the
        paper's competitors gain, miwae, mcflow. --mask takes a
        0/1 CSV with header (1 = missing) and --fold-ids one fold id per row, to compare with other tools on identical splits.

        Exit codes: 0 success, 1 unexpected failure, 2 bad arguments or input.
        """;

    /// <summary>Runs one command line.</summary>
    /// <param name="args">The words after <c>emflow</c>.</param>
    /// <param name="stdout">Where results and the progress bar go.</param>
    /// <param name="stderr">Where error messages go.</param>
    /// <param name="cancellationToken">Stops a running fit; nothing is written then.</param>
    /// <returns>0 success, 2 bad arguments or input, 1 anything else.</returns>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
        {
            stdout.WriteLine(Usage);
            return args.Length == 0 ? BadInput : Success;
        }
        var rest = args[1..];
        try
        {
            var console = ConsoleFor(stdout);
            switch (args[0])
            {
                case "demo":
                    DemoCommand.Run(rest, console, Interactive(stdout), cancellationToken);
                    return Success;
                case "impute":
                    ImputeCommand.Run(rest, console, Interactive(stdout), cancellationToken);
                    return Success;
                case "evaluate":
                    EvaluateCommand.Run(rest, console, cancellationToken);
                    return Success;
                default:
                    throw new UsageException($"unknown command '{args[0]}'; the commands are demo, impute and evaluate (emflow help)");
            }
        }
        catch (UsageException e) { return Fail(stderr, e.Message, BadInput); }
        catch (OperationCanceledException) { return Fail(stderr, "cancelled; no output was written", Failure); }
        catch (FileNotFoundException e) { return Fail(stderr, $"file not found: {e.FileName ?? e.Message}", BadInput); }
        catch (DirectoryNotFoundException e) { return Fail(stderr, e.Message, BadInput); }
        catch (InvalidDataException e) { return Fail(stderr, e.Message, BadInput); }
        catch (FormatException e) { return Fail(stderr, e.Message, BadInput); }
        catch (ArgumentException e) { return Fail(stderr, e.Message, BadInput); }
        catch (Exception e) { return Fail(stderr, $"{e.GetType().Name}: {e.Message}", Failure); }
    }

    private static int Fail(TextWriter stderr, string message, int code)
    {
        // One line, as promised: library messages can span lines (ArgumentException appends the parameter name).
        stderr.WriteLine("emflow: " + message.ReplaceLineEndings(" "));
        return code;
    }

    /// <summary>A progress bar only makes sense on a real terminal; tests and pipes get plain text.</summary>
    private static bool Interactive(TextWriter stdout) =>
        ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    private static IAnsiConsole ConsoleFor(TextWriter stdout) =>
        ReferenceEquals(stdout, Console.Out)
            ? AnsiConsole.Console
            : AnsiConsole.Create(new AnsiConsoleSettings
            {
                Ansi = AnsiSupport.No,
                ColorSystem = ColorSystemSupport.NoColors,
                Interactive = InteractionSupport.No,
                Out = new AnsiConsoleOutput(stdout),
            });
}
