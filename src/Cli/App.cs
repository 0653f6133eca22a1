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
    /// <summary>Exit code of a run cancelled by Ctrl+C (128 + SIGINT, as shells report it); nothing is written.</summary>
    public const int Cancelled = 130;

    internal const string Usage = """
        emflow: impute missing values in tables with EMFlow (a normalizing flow with online EM), Gaussian EM or simple baselines.

        Usage:
          emflow impute INPUT.csv -o OUTPUT.csv [options]   complete a table (CSV or .parquet)
          emflow evaluate DATA.csv [options]                score methods on a complete table (the paper's protocol)
          emflow demo [options]                             a tour on a synthetic table (about 15 s)
          emflow COMMAND --help                             the command's options, defaults and an example
          emflow --version                                  the version

        Progress goes to stderr: a bar on a terminal, plain lines otherwise. Results go to stdout.
        Exit codes: 0 success, 1 unexpected failure, 2 bad arguments or input, 130 cancelled (Ctrl+C; a second Ctrl+C
        ends the process at once).
        """;

    internal const string ImputeHelp = """
        emflow impute INPUT.csv -o OUTPUT.csv [options]

        Fits an imputer on the numeric and categorical columns of INPUT.csv and writes the completed table; observed
        cells are written back exactly as they were. A column with no number in it (colour, city) is categorical, and
        so is each column named by --categorical: categories are one-hot encoded for the imputer, and each missing
        cell takes the most probable of the column's observed categories. Nothing is written if the input is bad or
        the run is cancelled.

        INPUT and OUTPUT are CSV, or Parquet when their name ends in .parquet (flat columns of double, float, int32,
        int64 and string; nulls, and NaN in floating columns, are missing). A Parquet output keeps a Parquet input's
        column names and types: observed values come back exactly, imputed ones in their column's type (integers
        rounded to the nearest). With --load, the rows are read, imputed and written a block at a time, so memory
        stays flat however long the table is.

        Options:
          -o, --output FILE       completed table (required)
          --method NAME           emflow (default), gaussian-em, knn, mean, median or forest
          --missing TOKEN         a further text that marks a missing cell (empty, NA, NaN and nan always do)
          --separator C           field separator of INPUT.csv: one character, or tab (default ,)
          --categorical LIST      comma-separated columns to impute as categories even though they hold numbers
                                  (integer codes stay numeric otherwise)
          --skip-non-numeric      pass text columns through untouched (blanks stay blank) instead of imputing
                                  them as categorical, and columns mixing numbers and text instead of rejecting them
          --iterations N          EMFlow iterations (default 2)
          --epochs N              training epochs per iteration (default 40)
          --batch-size N          rows per batch (default 256)
          --learning-rate X       Adam learning rate (default 0.001)
          --start NAME            EMFlow's initial imputation (iteration 0): auto-forest-mixture (default; per
                                  feature the blend of Gaussian EM, kNN, the forest and a Gaussian mixture that is
                                  best on held-out cells), auto-forest (the same without the mixture), auto
                                  (Gaussian EM and kNN only: faster on wide tables), auto-mixture (Gaussian EM, kNN
                                  and the mixture), gaussian-em or knn
          --hold-out HOW          which observed cells are held out to choose the start's blend and the iteration:
                                  propensity (default; drawn in proportion to each column's missing share, and the
                                  blend weighs each held-out cell by its odds of being missing given the rest of its
                                  row), missingness (drawn the same, not weighed), patterns (whole rows' missingness
                                  patterns lent to other rows, so cells that go missing together are held out
                                  together) or uniform
          --start-draws N         hold-out draws the start's blend is fitted on and averaged over; each costs one
                                  fit of the start's candidates (default 3; 1 is about three times faster there)
          --forest-repeats N      independent forest runs of 25 trees averaged, in the start and with --method
                                  forest; each costs one run (default 4)
          --seed S                seed of every random choice (default 0)
          --threads T             torch threads (default 1)
          --multiple K            also write K sampled imputations OUTPUT.1.csv ... OUTPUT.K.csv (emflow only),
                                  their spread calibrated on the fit's held-out cells (a --load model draws
                                  as it is)
          --model FILE            save the fitted EMFlow (or, with --method forest, forest) model; of a table
                                  with categorical columns, their categories too
          --load FILE             impute with a saved EMFlow model instead of fitting one (columns matched by name),
                                  streaming the table; a forest model with --method forest; a model of a table
                                  with categorical columns imputes them too (the whole table is read)
          --block-rows N          rows read, imputed and written at a time with --load, and rows per Parquet row
                                  group written (default 8192)
          --stream                fit EMFlow on the file read block by block, once per epoch, then impute it
                                  block by block: memory stays flat whatever the row count (numeric columns;
                                  the start, hold-out and choice of iteration use a seeded sample of rows)
          --sample-rows N         rows of that sample held in memory (default 50000)
          --report FILE           write a self-contained HTML report (plots open offline; a categorical column
                                  shows its observed and imputed cells per category)
          --png-dir DIR           write the report's figures as PNG files (numeric columns)
          -q, --quiet             no progress and no summary
          -h, --help              this help

        EMFlow keeps the iteration with the lowest error on held-out observed cells; iteration 0 is its start. The
        summary names the iteration kept, the hold-out error of each, the start's weights per feature and the time.

        Example:
          emflow impute concrete.csv -o concrete-imputed.csv --report concrete.html
          emflow impute shop.csv -o shop-imputed.csv --method knn --categorical store
          emflow impute new-rows.parquet -o new-rows-done.parquet --load model.emflow
        """;

    internal const string EvaluateHelp = """
        emflow evaluate DATA.csv [options]

        The paper's protocol on a complete table: min-max scaling, cells hidden by a missingness mechanism, k-fold
        cross-validation where the test fold is only re-imputed, RMSE over the hidden cells (mean ± std over folds).
        Cells already missing in DATA.csv are never scored (a warning says how many there are). A column with no
        number in it is categorical, and so is each column named by --categorical: the mechanism hides its cells too,
        each method imputes them through the one-hot layer (as impute does), and they are scored by accuracy, the
        share of hidden categorical cells imputed as their true category; the RMSE is then over the numeric cells.

        Options:
          --mechanism NAME        mcar (default), mar or mnar
          --rate X                the MCAR rate (default 0.2); with mar, the expected rate over the last 30% of
                                  features (without it, appendix E's own rate)
          --folds K               cross-validation folds (default 5)
          --methods LIST          comma-separated (default mean,knn,gaussian-em,emflow, emflow being the library's
                                  defaults); also median, forest (as --method forest), forest-one-run (one
                                  run of 100 trees), forest-avg4 (4 such runs averaged),
                                  emflow-forest-default-gmm-propensity-draws3 (what impute runs by default),
                                  emflow-forest-sized-gmm-propensity-draws3 (the same with the forest's runs of
                                  100 trees sized to the table),
                                  emflow-forest-sized-gmm-propensity (and --start-draws 1),
                                  emflow-forest-sized-gmm-shaped (and --hold-out missingness),
                                  emflow-forest-sized-gmm-patterns (and --hold-out patterns),
                                  emflow-forest-sized-shaped (the same without the mixture), emflow-forest-shaped
                                  (and one forest run), emflow-forest (one run, uniform hold-out), emflow-paper and
                                  the paper's competitors gain, miwae, mcflow
          --seed S                seed of the mask, the folds and the methods (default 0)
          --threads T             torch threads (default 1)
          --mask MASK.csv         a 0/1 CSV with header (1 = hidden) instead of the mechanism
          --fold-ids FOLDS.txt    one fold id per row, to compare with other tools on identical splits
          --categorical LIST      comma-separated columns to score as categories even though they hold numbers
                                  (integer codes, e.g. a class label)
          --drop-target           drop a last column named target
          --format NAME           table (default, for reading), json (one JSON object per method and fold: RMSE,
                                  seconds, the method's peak memory, the mechanism and the realised rate; with
                                  categorical columns also accuracy and scoredCategoricalCells), csv (the same
                                  fields) or markdown (the summary table)
          -q, --quiet             no per-fold progress on stderr
          -h, --help              this help

        Example:
          emflow evaluate concrete.csv --mechanism mar --folds 5 --methods mean,gaussian-em,emflow --format json > runs.jsonl
          emflow evaluate wine.csv --categorical quality --methods mean,knn,gaussian-em
        """;

    internal const string DemoHelp = """
        emflow demo [options]

        Hides 20% of a seeded non-Gaussian synthetic table (made in code, nothing to download), imputes it with the
        mean, Gaussian EM and EMFlow, prints the RMSE of each on the hidden cells and writes an HTML report.

        Options:
          --rows N                rows of the synthetic table (default 3000)
          --seed S                seed (default 1)
          --threads T             torch threads (default 1)
          --epochs N              EMFlow epochs per iteration (default 20; 40 is the library's default)
          --hidden-width W        width of the flow's coupling networks (default 128)
          --report FILE           the HTML report (default emflow-demo-report.html)
          --no-report             write no report
          --png-dir DIR           write the report's figures as PNG files
          -q, --quiet             no progress and no table
          -h, --help              this help

        Example:
          emflow demo --threads 2 --report demo.html
        """;

    /// <summary>The tool's version, as the package carries it.</summary>
    internal static string Version =>
        typeof(App).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion.Split('+')[0]
        ?? typeof(App).Assembly.GetName().Version?.ToString() ?? "unknown";

    /// <summary>Runs one command line.</summary>
    /// <param name="args">The words after <c>emflow</c>.</param>
    /// <param name="stdout">Where results and the progress bar go.</param>
    /// <param name="stderr">Where error messages go.</param>
    /// <param name="cancellationToken">Stops a running fit; nothing is written then.</param>
    /// <returns>0 success, 2 bad arguments or input, 130 cancelled, 1 anything else.</returns>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
        {
            // "emflow help impute" is "emflow impute --help".
            var text = args.Length > 1 ? HelpFor(args[1]) ?? Usage : Usage;
            stdout.WriteLine(text);
            return args.Length == 0 ? BadInput : Success;
        }
        if (args[0] is "--version" or "version")
        {
            stdout.WriteLine($"emflow {Version}");
            return Success;
        }
        var rest = args[1..];
        // Asked anywhere among a command's words, --help prints that command's help and nothing runs.
        if (HelpFor(args[0]) is { } help && rest.Any(w => w is "--help" or "-h"))
        {
            stdout.WriteLine(help);
            return Success;
        }
        try
        {
            var console = ConsoleFor(stdout);
            switch (args[0])
            {
                case "demo":
                    DemoCommand.Run(rest, console, Interactive(stdout), stderr, cancellationToken);
                    return Success;
                case "impute":
                    ImputeCommand.Run(rest, console, Interactive(stdout), stderr, cancellationToken);
                    return Success;
                case "evaluate":
                    EvaluateCommand.Run(rest, console, stdout, stderr, cancellationToken);
                    return Success;
                default:
                    throw new UsageException($"unknown command '{args[0]}'; the commands are demo, impute and evaluate (emflow help)");
            }
        }
        catch (UsageException e) { return Fail(stderr, e.Message, BadInput); }
        catch (OperationCanceledException) { return Fail(stderr, "cancelled; no output was written", Cancelled); }
        catch (FileNotFoundException e) { return Fail(stderr, $"file not found: {e.FileName ?? e.Message}", BadInput); }
        catch (DirectoryNotFoundException e) { return Fail(stderr, e.Message, BadInput); }
        catch (InvalidDataException e) { return Fail(stderr, e.Message, BadInput); }
        catch (FormatException e) { return Fail(stderr, e.Message, BadInput); }
        // The library names the parameter for a programmer; the command line's user needs the message alone.
        catch (ArgumentException e) { return Fail(stderr, e.ParamName is { } name ? e.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : e.Message, BadInput); }
        catch (Exception e) { return Fail(stderr, $"{e.GetType().Name}: {e.Message}", Failure); }
    }

    private static string? HelpFor(string command) => command switch
    {
        "impute" => ImputeHelp,
        "evaluate" => EvaluateHelp,
        "demo" => DemoHelp,
        _ => null,
    };

    private static int Fail(TextWriter stderr, string message, int code)
    {
        // One line, as promised: library messages can span lines (ArgumentException appends the parameter name).
        stderr.WriteLine("emflow: " + message.ReplaceLineEndings(" "));
        return code;
    }

    /// <summary>A progress bar only makes sense on a real terminal; tests and pipes get plain text.</summary>
    private static bool Interactive(TextWriter stdout) =>
        ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>The terminal's console, or, for a pipe, a file or a test's writer, plain text that never wraps (a
    /// console that is not a terminal reports 80 columns, and Spectre would break file names there) and draws
    /// tables in ASCII.</summary>
    private static IAnsiConsole ConsoleFor(TextWriter stdout)
    {
        if (Interactive(stdout)) return AnsiConsole.Console;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(stdout),
        });
        console.Profile.Width = Unwrapped;
        // Tables in ASCII (Spectre's safe borders) rather than box drawing, for logs and for tools that read them.
        console.Profile.Capabilities.Unicode = false;
        return console;
    }

    /// <summary>Box drawing on a terminal, ASCII elsewhere.</summary>
    internal static TableBorder TableBorderFor(IAnsiConsole console) =>
        console.Profile.Capabilities.Unicode ? TableBorder.Square : TableBorder.Ascii;

    /// <summary>The width given to a console that is not a terminal: wide enough that no line is broken.</summary>
    internal const int Unwrapped = 32_767;
}
