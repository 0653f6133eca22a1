using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace EMFlow.Cli;

/// <summary>
/// <c>emflow impute INPUT.csv -o OUTPUT.csv</c>: reads the table (CSV, or Parquet by the extension), fits the chosen
/// imputer on its numeric columns, or on its numeric and categorical columns through a <see cref="MixedImputer"/>, and
/// writes the completed table with observed cells exactly as they were. With a saved model that stores column names
/// (<c>--load</c>), the table is streamed through it instead (<see cref="StreamTransform"/>).
/// Files are written through temporary files that replace them only when complete, so bad input or a cancelled run
/// writes nothing.
/// </summary>
internal static class ImputeCommand
{
    private static readonly HashSet<string> Flags = new() { "--quiet", "--skip-non-numeric", "--stream" };
    private static readonly Dictionary<string, string> Aliases = new() { ["-o"] = "--output", ["-q"] = "--quiet" };
    private static readonly string[] FitSettings = { "--iterations", "--epochs", "--batch-size", "--learning-rate", "--seed", "--threads", "--start", "--hold-out", "--start-draws", "--forest-repeats" };

    public static void Run(string[] words, IAnsiConsole console, bool interactive, TextWriter stderr, CancellationToken ct)
    {
        var a = new Arguments(words, Flags, Aliases);
        var output = a.Text("--output");
        var method = a.Text("--method") ?? "emflow";
        var token = a.Text("--missing");
        var separatorText = a.Text("--separator");
        var categorical = Names(a.Text("--categorical"), "--categorical");
        bool skip = a.Flag("--skip-non-numeric");
        bool quiet = a.Flag("--quiet");
        int multiple = a.Int("--multiple", 0, min: 1);
        int blockRows = a.Int("--block-rows", StreamTransform.DefaultBlockRows, min: 1);
        var modelOut = a.Text("--model");
        var modelIn = a.Text("--load");
        var report = a.Text("--report");
        var pngDir = a.Text("--png-dir");
        bool stream = a.Flag("--stream");
        int sampleRows = a.Int("--sample-rows", EMFlowImputer.DefaultSampleRows, min: 2);
        var given = FitSettings.Where(s => a.Text(s) is not null).ToList();
        // The start and --method forest both use the library's default forest, four averaged runs of 25 trees: in
        // the start it scored level with or below the sized runs of 100 trees on most tables, in about half the
        // seconds on tables up to Review's size (bench/README.md, "The default forest in EMFlow's start").
        int? repeats = a.Text("--forest-repeats") is null ? null : a.Int("--forest-repeats", 1, min: 1);
        var forest = repeats is { } r ? new ForestOptions { Repeats = r } : new ForestOptions();
        ForestStart Trees() => new(forest);
        // The default: the tree ensembles and the Gaussian mixture join the start's blend as third and fourth
        // candidates (bench/README.md, "The mixture in the command line's start").
        var (start, startCandidates) = a.Text("--start") switch
        {
            null or "auto-forest-mixture" => (InitialImputation.Auto, new IStartCandidate[] { Trees(), new MixtureStart() }),
            "auto-forest" => (InitialImputation.Auto, new IStartCandidate[] { Trees() }),
            "auto" => (InitialImputation.Auto, Array.Empty<IStartCandidate>()),
            "auto-mixture" => (InitialImputation.Auto, new IStartCandidate[] { new MixtureStart() }),
            "gaussian-em" => (InitialImputation.GaussianEm, Array.Empty<IStartCandidate>()),
            "knn" => (InitialImputation.Knn, Array.Empty<IStartCandidate>()),
            var other => throw new UsageException($"--start must be auto-forest-mixture, auto-forest, auto, auto-mixture, gaussian-em or knn; got '{other}'"),
        };
        var defaults = new EMFlowOptions();
        var options = defaults with
        {
            Iterations = a.Int("--iterations", defaults.Iterations, min: 1),
            EpochsPerIteration = a.Int("--epochs", defaults.EpochsPerIteration, min: 1),
            BatchSize = a.Int("--batch-size", defaults.BatchSize, min: 2),
            LearningRate = a.Positive("--learning-rate", defaults.LearningRate),
            Seed = a.Long("--seed", defaults.Seed),
            TorchThreads = a.Int("--threads", 1, min: 1),
            InitialImputation = start,
            // Under MAR a uniform hold-out scores mostly cells of features that are never missing (bench/README.md,
            // "Tree ensembles": Concrete MAR .123 against .138 with the forest start), and the observed rows it scores
            // are unlike the missing ones: weighing them by their odds of being missing was lower on 5 of 8 MAR tables
            // ("The held-out cells weighed by their odds of being missing").
            HoldOut = a.Text("--hold-out") switch
            {
                null or "propensity" => HoldOutDraw.ByPropensity,
                "missingness" => HoldOutDraw.LikeMissingness,
                "uniform" => HoldOutDraw.Uniform,
                "patterns" => HoldOutDraw.LikeMissingPatterns,
                var other => throw new UsageException($"--hold-out must be missingness, patterns, propensity or uniform; got '{other}'"),
            },
            // The blend chosen on one draw of held-out cells moves with the draw; averaged over three draws it was
            // lower or level on every table and mechanism measured, Spam MAR from .049 to .0445 (bench/README.md,
            // "The start averaged over hold-out draws"), at about three times the start's seconds.
            StartDraws = a.Int("--start-draws", 3, min: 1),
        };
        a.RejectUnknown(1);
        if (repeats is not null && method == "emflow" && !startCandidates.OfType<ForestStart>().Any())
            throw new UsageException($"--forest-repeats applies to a start with the forest (auto-forest-mixture or auto-forest); --start is {a.Text("--start")}");
        if (a.Text("--start-draws") is not null && method == "emflow" && startCandidates.Length == 0)
            throw new UsageException($"--start-draws applies to a start with candidates (auto-forest-mixture, auto-forest or auto-mixture); --start is {a.Text("--start")}");

        if (a.Positional.Count == 0) throw new UsageException("impute needs an input file: emflow impute INPUT.csv -o OUTPUT.csv");
        var input = a.Positional[0];
        if (output is null) throw new UsageException("impute needs an output file: -o OUTPUT.csv");
        if (method is not ("emflow" or "gaussian-em" or "knn" or "mean" or "median" or "forest"))
            throw new UsageException($"--method must be emflow, gaussian-em, knn, mean, median or forest; got '{method}'");
        if (method != "emflow")
        {
            // A forest model saves and loads too (ForestImputer.Save / Load); the other methods keep no model file.
            bool files = method == "forest";
            var emflowOnly = new[] { ("--multiple", multiple > 0), ("--model", !files && modelOut is not null), ("--load", !files && modelIn is not null) }
                .Concat(given.Where(g => g != "--seed" && !(files && g == "--forest-repeats")).Select(g => (g, true))).FirstOrDefault(o => o.Item2).Item1;
            if (emflowOnly is not null) throw new UsageException($"{emflowOnly} applies to --method emflow{(emflowOnly is "--model" or "--load" or "--forest-repeats" ? " or forest" : "")} only");
        }
        if (a.Text("--sample-rows") is not null && !stream) throw new UsageException("--sample-rows applies to --stream only");
        if (stream)
        {
            if (method != "emflow") throw new UsageException($"--stream fits EMFlow; --method {method} reads the whole table");
            var whole = new[] { ("--load", modelIn is not null), ("--multiple", multiple > 0), ("--report", report is not null), ("--png-dir", pngDir is not null), ("--categorical", categorical is not null) }
                .FirstOrDefault(o => o.Item2).Item1;
            if (modelIn is not null) throw new UsageException("--stream fits a model and --load imputes with a saved one: give one of them");
            if (whole is not null) throw new UsageException($"--stream does not go with {whole}, which needs the whole table");
        }
        if (modelIn is not null && given.Count > 0 && given.Any(g => g != "--seed"))
            throw new UsageException($"--load imputes with the saved model's settings; {given.First(g => g != "--seed")} does not apply");
        char? separator = separatorText switch
        {
            null => null,
            "tab" or "\\t" => '\t',
            { Length: 1 } s when s[0] is not ('"' or '\r' or '\n') => s[0],
            var other => throw new UsageException($"--separator must be one character (or tab); got '{other}'"),
        };
        if (!File.Exists(input)) throw new UsageException(Directory.Exists(input) ? $"input {input} is a folder, not a file" : $"input file not found: {input}");
        foreach (var (path, flag) in new[] { (output, "-o"), (modelOut, "--model"), (report, "--report") })
            if (path is not null && string.Equals(Path.GetFullPath(path), Path.GetFullPath(input), StringComparison.Ordinal))
                throw new UsageException($"{flag} {path} is the input file; write to another file");
        if (modelIn is not null && !File.Exists(modelIn)) throw new UsageException($"model file not found: {modelIn}");
        RequireFolder(output, "output");
        if (modelOut is not null) RequireFolder(modelOut, "model");
        if (report is not null) RequireFolder(report, "report");
        bool parquetIn = ParquetFiles.IsParquet(input);
        if (parquetIn && separator is not null) throw new UsageException($"--separator reads CSV input; {input} is Parquet");

        if (stream)
        {
            RunStreamed(input, output, token, skip, separator, blockRows, sampleRows, options, startCandidates, modelOut, quiet, console, interactive, stderr, ct);
            return;
        }

        // A model fitted on a table with categorical columns: its columns are matched by name, categorical ones included.
        using var mixedModel = modelIn is not null && MixedImputer.IsModelFile(modelIn) ? MixedImputer.Load(modelIn) : null;
        if (mixedModel is not null && multiple > 0 && mixedModel.Inner is not EMFlowImputer)
            throw new UsageException($"--multiple draws with an EMFlow model; the model in {modelIn} holds a {mixedModel.Inner.GetType().Name}");
        if (modelIn is not null && mixedModel is null && multiple == 0 && (modelOut ?? report ?? pngDir) is null)
        {
            using Imputer loaded = method == "forest" ? ForestImputer.Load(modelIn) : EMFlowImputer.Load(modelIn);
            // Models of formats 1 and 2 store no names and match columns by position, which needs the whole table's
            // column kinds: they take the whole-table path below.
            if (loaded.ColumnNames is not null)
            {
                if (categorical is not null)
                    throw new UsageException($"--load takes tables of numeric columns only; --categorical names {string.Join(", ", categorical.Select(c => $"'{c}'"))}");
                var clock0 = Stopwatch.StartNew();
                var title = $"the model in {Path.GetFileName(modelIn)} on {Path.GetFileName(input)}";
                var done = StreamTransform.WithProgress(console, interactive && !quiet, title, quiet ? null : stderr, progress =>
                    StreamTransform.Run(loaded, input, output, token, skip, separator, blockRows, progress, ct));
                if (!quiet)
                    console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"Imputed {done.MissingCells} missing cells in {done.Columns} numeric columns of {done.Rows} rows with the model in {modelIn} in {clock0.Elapsed.TotalSeconds:F1} s: {output}"));
                return;
            }
        }

        Table table;
        ParquetInput? source = null;
        try
        {
            if (parquetIn)
            {
                // The same rules as for a CSV file: the Parquet table goes through Table.Read as CSV text, and the
                // output takes its observed values from the typed columns read here.
                using var reader = ParquetFiles.Reader.Open(input);
                var columns = ParquetFiles.ReadAll(reader);
                source = new ParquetInput(reader.Schema, reader.Fields, columns);
                table = Table.Read(new StringReader(ParquetFiles.AsCsv(reader.Fields, columns)), token is null ? null : new[] { token }, skip, ',', categorical);
            }
            else table = Table.Read(input, token is null ? null : new[] { token }, skip, separator, categorical);
            // The model knows which of its columns are categorical: they are read as categories whatever their cells
            // (number codes, or text that --skip-non-numeric would otherwise pass through with an identifier column).
            var coded = mixedModel is null ? Array.Empty<string>()
                : mixedModel.ColumnNames!.Where((c, j) => mixedModel.ColumnKinds[j] == ColumnKind.Categorical
                    && table.ColumnNames.Contains(c) && !table.CategoricalColumns.Contains(c)).ToArray();
            if (coded.Length > 0)
            {
                var declared = (categorical ?? Array.Empty<string>()).Concat(coded).ToArray();
                table = source is not null
                    ? Table.Read(new StringReader(ParquetFiles.AsCsv(source.Fields, source.Columns)), token is null ? null : new[] { token }, skip, ',', declared)
                    : Table.Read(input, token is null ? null : new[] { token }, skip, separator, declared);
            }
        }
        catch (FormatException e) when (e.Message.Contains("(skipNonNumeric)", StringComparison.Ordinal))
        {
            // The library names its parameters; a user of the command line needs the flags.
            throw new UsageException(e.Message.Replace("(skipNonNumeric)", "(--skip-non-numeric)", StringComparison.Ordinal)
                .Replace("(missingTokens)", "(--missing)", StringComparison.Ordinal).Replace("(categorical)", "(--categorical)", StringComparison.Ordinal));
        }
        catch (ArgumentException e) when (e.ParamName == "categorical")
        {
            throw new UsageException($"--categorical: {e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal)}");
        }
        if (table.ImputedColumns.Count == 0) throw new UsageException($"{input} has no numeric or categorical column to impute");
        if (table.RowCount == 0) throw new UsageException($"{input} has a header but no rows");
        var allMissing = table.MixedMissingMask();
        for (int k = 0; k < table.ImputedColumns.Count; k++)
            if (Enumerable.Range(0, table.RowCount).All(i => allMissing[i, k]))
                throw new UsageException($"column '{table.ImputedColumns[k]}' has no observed value, so it cannot be imputed; drop it or fill it");
        if (table.CategoricalColumns.Count > 0 || mixedModel is not null)
        {
            if (modelIn is not null && mixedModel is null)
                throw new UsageException($"the model in {modelIn} was fitted on numeric columns only; {input} has categorical column{(table.CategoricalColumns.Count > 1 ? "s" : "")} "
                    + $"{string.Join(", ", table.CategoricalColumns.Select(c => $"'{c}'"))} (pass text columns through with --skip-non-numeric, or fit a model on a table with them)");
            if (table.NumericColumns.Count == 0 && pngDir is not null)
                throw new UsageException($"--png-dir shows numeric columns; {input} has none");
            RunMixed(table, source, blockRows, input, output, method, options, forest, startCandidates, multiple, report, pngDir, quiet, console, interactive, stderr, ct, mixedModel, modelIn, modelOut);
            return;
        }
        var data = table.ToMatrix();

        var clock = Stopwatch.StartNew();
        double[,] completed;
        IReadOnlyList<double[,]> draws = Array.Empty<double[,]>();
        ReportData? details = null;
        string[] fitSummary = Array.Empty<string>();
        string label = method;
        using (Imputer imputer = modelIn is null ? Create(method, options, forest, startCandidates) : method == "forest" ? ForestImputer.Load(modelIn) : EMFlowImputer.Load(modelIn))
        {
            // The model's column order: the table's, or, for a saved model that stores names, the order it was fitted in.
            var order = Enumerable.Range(0, table.NumericColumns.Count).ToArray();
            if (modelIn is not null)
            {
                if (imputer.ColumnNames is { } fitted)
                {
                    // Matched by name, in any order; a missing or extra name is an ArgumentException naming it (exit 2).
                    completed = imputer.Transform(data, table.NumericColumns, cancellationToken: ct);
                    order = fitted.Select(n => table.NumericColumns.ToList().IndexOf(n)).ToArray();
                }
                else
                {
                    // Formats 1 and 2 store no names: the columns can only be matched by position.
                    if (imputer.FeatureCount != table.NumericColumns.Count)
                        throw new UsageException($"the model was fitted on {imputer.FeatureCount} numeric columns; {input} has {table.NumericColumns.Count}");
                    completed = imputer.Transform(data, cancellationToken: ct);
                }
                label = $"the model in {modelIn}";
            }
            else
            {
                Fitting.Run(console, interactive && !quiet, $"{method} on {Path.GetFileName(input)}", progress =>
                    imputer.Fit(data, table.NumericColumns, progress: progress, cancellationToken: ct), quiet ? null : stderr);
                completed = imputer.Transform(data, cancellationToken: ct);
            }
            if (imputer is EMFlowImputer flow && multiple > 0)
            {
                // A fitted model draws with the spread its own hold-out calibrates; a loaded one has not kept the
                // table it was fitted on, so it draws as the model says.
                double spread = modelIn is null ? flow.ChooseSpread(data, cancellationToken: ct).Spread : 1;
                draws = flow.SampleImputations(Permuted(data, order), multiple, seed: Tensors.deriveSeed(options.Seed, 7), spread: spread)
                    .Select(d => Unpermuted(d, order)).ToArray();
            }
            if (report is not null || pngDir is not null)
                details = Details(input, method, table, data, completed, imputer);
            if (imputer is EMFlowImputer trained && modelIn is null) fitSummary = FitSummary(trained, table.NumericColumns);
            ct.ThrowIfCancellationRequested();

            Write(table.WithImputed(completed), output, source, blockRows);
            for (int k = 0; k < draws.Count; k++)
                Write(table.WithImputed(draws[k]), Numbered(output, k + 1), source, blockRows);
            if (modelOut is not null)
            {
                if (imputer is ForestImputer trees) trees.Save(modelOut);
                else ((EMFlowImputer)imputer).Save(modelOut);
            }
        }
        if (report is not null) HtmlReport.Write(report, details!);
        var pngs = pngDir is null ? Array.Empty<string>() : PngReport.Write(pngDir, details!);

        if (quiet) return;
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Imputed {table.MissingCount} missing cells in {table.NumericColumns.Count} numeric columns of {table.RowCount} rows with {label} in {clock.Elapsed.TotalSeconds:F1} s: {output}"));
        foreach (var line in fitSummary) console.WriteLine(line);
        if (draws.Count > 0) console.WriteLine($"Sampled imputations: {string.Join(", ", Enumerable.Range(1, draws.Count).Select(k => Numbered(output, k)))}");
        if (modelOut is not null) console.WriteLine($"Model: {modelOut}");
        if (report is not null) console.WriteLine($"Report: {report}");
        if (pngs.Count > 0) console.WriteLine($"Figures: {pngs.Count} PNG files in {pngDir}");
    }

    /// <summary>
    /// <c>--stream</c>: EMFlow fitted on the file read block by block (<see cref="EMFlowImputer.FitStream"/>), then the
    /// file imputed block by block; neither holds the table.
    /// </summary>
    private static void RunStreamed(string input, string output, string? token, bool skip, char? separator, int blockRows, int sampleRows, EMFlowOptions options, IStartCandidate[] startCandidates,
        string? modelOut, bool quiet, IAnsiConsole console, bool interactive, TextWriter stderr, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var (columns, passed, read) = StreamFit.Open(input, token, skip, separator, ct);
        using var imputer = new EMFlowImputer(options, startCandidates);
        Fitting.Run(console, interactive && !quiet, $"emflow on {Path.GetFileName(input)}, streamed", progress =>
            imputer.FitStream(read, columns, sampleRows, progress, ct), quiet ? null : stderr);
        var fitSeconds = clock.Elapsed.TotalSeconds;
        var fitSummary = FitSummary(imputer, columns);
        var done = StreamTransform.WithProgress(console, interactive && !quiet, $"imputing {Path.GetFileName(input)}", quiet ? null : stderr, progress =>
            StreamTransform.Run(imputer, input, output, token, skip, separator, blockRows, progress, ct));
        if (modelOut is not null) imputer.Save(modelOut);
        if (quiet) return;
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Imputed {done.MissingCells} missing cells in {done.Columns} numeric columns of {done.Rows} rows with emflow, fitted on the file read block by block ({Math.Min(sampleRows, done.Rows)} rows sampled), in {clock.Elapsed.TotalSeconds:F1} s (fit {fitSeconds:F1} s): {output}"));
        if (passed.Length > 0) console.WriteLine($"Passed through as they were: {string.Join(", ", passed.Select(c => $"'{c}'"))}.");
        foreach (var line in fitSummary) console.WriteLine(line);
        if (modelOut is not null) console.WriteLine($"Model: {modelOut}");
    }

    /// <summary>A warning for each categorical column that looks like an identifier: more than 50 categories, at least
    /// half as many as it has observed cells. Each category is a column of the encoded table, so such a column makes the
    /// fit slow and large, and an identifier imputed is another row's.</summary>
    internal static IEnumerable<string> IdentifierWarnings(Table table)
    {
        var mask = table.MixedMissingMask();
        for (int k = 0; k < table.ImputedColumns.Count; k++)
        {
            if (table.ColumnKinds[k] != ColumnKind.Categorical) continue;
            var name = table.ImputedColumns[k];
            int categories = table.Categories(name).Count, observed = 0;
            for (int i = 0; i < table.RowCount; i++) if (!mask[i, k]) observed++;
            if (categories > 50 && 2 * categories >= observed)
                yield return $"column '{name}' has {categories} categories in {observed} observed cells: if it names rows (an identifier), "
                    + "pass it through with --skip-non-numeric and declare the categorical columns to impute with --categorical";
        }
    }

    /// <summary>
    /// A table with categorical columns: the chosen imputer inside a <see cref="MixedImputer"/> (categories one-hot
    /// encoded, imputed as the most probable), the same outputs as for numeric tables; the report covers the numeric
    /// columns.
    /// </summary>
    /// <param name="loaded">A model read with --load (owned by the caller), or null to fit one.</param>
    /// <param name="modelIn">The file it was read from.</param>
    /// <param name="modelOut">Where --model saves the fitted model, or null.</param>
    private static void RunMixed(Table table, ParquetInput? source, int blockRows, string input, string output, string method, EMFlowOptions options, ForestOptions forest, IStartCandidate[] startCandidates, int multiple,
        string? report, string? pngDir, bool quiet, IAnsiConsole console, bool interactive, TextWriter stderr, CancellationToken ct,
        MixedImputer? loaded, string? modelIn, string? modelOut)
    {
        var clock = Stopwatch.StartNew();
        Table completed;
        IReadOnlyList<Table> draws = Array.Empty<Table>();
        ReportData? details = null;
        string[] fitSummary = Array.Empty<string>();
        var label = loaded is null ? method : $"the model in {modelIn}";
        if (loaded is null && !quiet)
            foreach (var line in IdentifierWarnings(table)) stderr.WriteLine($"emflow: {line}");
        using (var fitted = loaded is null ? new MixedImputer(Create(method, options, forest, startCandidates)) : null)
        {
            var imputer = loaded ?? fitted!;
            if (loaded is null)
                Fitting.Run(console, interactive && !quiet, $"{method} on {Path.GetFileName(input)}", progress =>
                    imputer.Fit(table, progress, ct), quiet ? null : stderr);
            completed = imputer.Transform(table, ct);
            if (multiple > 0)
            {
                double spread = loaded is null ? imputer.ChooseSpread(table, cancellationToken: ct).Spread : 1;
                draws = imputer.SampleImputations(table, multiple, seed: Tensors.deriveSeed(options.Seed, 7), spread: spread);
            }
            if ((report ?? pngDir) is not null)
                details = Details(input, method, table, table.ToMatrix(), completed.ToMatrix(), imputer.Inner) with { Categorical = CategoryCountsOf(table, completed) };
            if (imputer.Inner is EMFlowImputer trained && loaded is null) fitSummary = FitSummary(trained, imputer.EncodedColumnNames);
            ct.ThrowIfCancellationRequested();
            Write(completed, output, source, blockRows);
            for (int k = 0; k < draws.Count; k++) Write(draws[k], Numbered(output, k + 1), source, blockRows);
            if (modelOut is not null) imputer.Save(modelOut);
        }
        if (report is not null) HtmlReport.Write(report, details!);
        var pngs = pngDir is null ? Array.Empty<string>() : PngReport.Write(pngDir, details!);

        if (quiet) return;
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Imputed {table.MissingCount} missing cells in {table.NumericColumns.Count} numeric and {table.CategoricalColumns.Count} categorical columns of {table.RowCount} rows with {label} in {clock.Elapsed.TotalSeconds:F1} s: {output}"));
        foreach (var line in fitSummary) console.WriteLine(line);
        if (draws.Count > 0) console.WriteLine($"Sampled imputations: {string.Join(", ", Enumerable.Range(1, draws.Count).Select(k => Numbered(output, k)))}");
        if (modelOut is not null) console.WriteLine($"Model: {modelOut}");
        if (report is not null) console.WriteLine($"Report: {report}");
        if (pngs.Count > 0) console.WriteLine($"Figures: {pngs.Count} PNG files in {pngDir}");
    }

    /// <summary>A Parquet input: its schema and typed columns (n) each, which a completed table's output keeps.</summary>
    private sealed record ParquetInput(Parquet.Schema.ParquetSchema Schema, Parquet.Schema.DataField[] Fields, Array[] Columns);

    /// <summary>Writes a completed table as CSV or Parquet by the output's extension. From a Parquet input, every
    /// observed cell keeps its typed value and each missing one takes the completed table's (numbers in the column's
    /// type, categories as strings); from a CSV input, a Parquet output has double columns for the numeric columns and
    /// string columns for the others. Parquet row groups have <paramref name="blockRows"/> rows.</summary>
    private static void Write(Table completed, string output, ParquetInput? source, int blockRows)
    {
        if (source is null && !ParquetFiles.IsParquet(output))
        {
            completed.Write(output);
            return;
        }
        var names = completed.ColumnNames;
        var numeric = names.Select(n => completed.NumericColumns.Contains(n)).ToArray();
        var rows = completed.RawRows;
        using var sink = TableSink.Create(output, names, numeric, source?.Schema, source is null ? completed.RawHeader : null, completed.Separator, completed.NewLine);
        if (source is null)
        {
            for (int start = 0; start < rows.Count; start += blockRows)
                sink.WriteFields(rows.Skip(start).Take(blockRows).ToArray());
        }
        else
        {
            var columns = source.Columns.Select(c => (Array)c.Clone()).ToArray();
            for (int j = 0; j < columns.Length; j++)
            {
                bool isNumeric = ParquetFiles.IsNumeric(source.Fields[j]);
                for (int i = 0; i < rows.Count; i++)
                {
                    // A cell the imputation filled is one whose text changed.
                    var text = rows[i][j];
                    if (text == ParquetFiles.Text(source.Columns[j], i, ',', ParquetFiles.CsvMissing)) continue;
                    if (isNumeric) ParquetFiles.SetImputed(columns[j], i, double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture));
                    else ((string?[])columns[j])[i] = ParquetFiles.Unquoted(text);
                }
            }
            for (int start = 0; start < rows.Count; start += blockRows)
            {
                int len = Math.Min(blockRows, rows.Count - start);
                sink.WriteColumns(columns.Select(c =>
                {
                    var part = Array.CreateInstance(c.GetType().GetElementType()!, len);
                    Array.Copy(c, start, part, 0, len);
                    return part;
                }).ToArray());
            }
        }
        sink.Commit();
    }

    /// <summary>Per categorical column of <paramref name="table"/>, its observed cells per category and, from
    /// <paramref name="completed"/>, the categories its missing cells were given.</summary>
    private static IReadOnlyList<CategoryCounts> CategoryCountsOf(Table table, Table completed)
    {
        var before = table.ToMixedMatrix();
        var after = completed.ToMixedMatrix();
        var result = new List<CategoryCounts>();
        for (int m = 0; m < table.ImputedColumns.Count; m++)
        {
            if (table.ColumnKinds[m] != ColumnKind.Categorical) continue;
            var name = table.ImputedColumns[m];
            var categories = table.Categories(name);
            // The completed table orders its own categories; match them by text.
            var completedCategories = completed.Categories(name);
            var index = categories.Select((c, k) => (c, k)).ToDictionary(e => e.c, e => e.k, StringComparer.Ordinal);
            var observed = new int[categories.Count];
            var imputed = new int[categories.Count];
            for (int i = 0; i < table.RowCount; i++)
            {
                if (!double.IsNaN(before[i, m])) { observed[(int)before[i, m]]++; continue; }
                var label = completedCategories[(int)after[i, m]];
                imputed[index[label]]++;
            }
            result.Add(new CategoryCounts(name, categories, observed, imputed));
        }
        return result;
    }

    /// <summary>A comma-separated list of column names, or null when the option is absent.</summary>
    private static string[]? Names(string? text, string option)
    {
        if (text is null) return null;
        var names = text.Split(',').Select(n => n.Trim()).ToArray();
        if (names.Any(n => n.Length == 0)) throw new UsageException($"{option} takes column names separated by commas; got '{text}'");
        return names;
    }

    /// <summary>
    /// What the fit chose and why, for the terminal: the iteration kept, the hold-out RMSE of each iteration (0 = the
    /// start), the start's kNN share per feature, and where the time went.
    /// </summary>
    internal static string[] FitSummary(EMFlowImputer flow, IReadOnlyList<string> names)
    {
        var c = CultureInfo.InvariantCulture;
        var lines = new List<string>();
        var errors = new[] { (It: 0, Rmse: flow.InitialValidationRmse, Diverged: false) }
            .Concat(flow.History.Select(h => (It: h.Iteration, Rmse: h.ValidationRmse, Diverged: h.Diverged)))
            .Select(e => string.Create(c, $"{e.It}: {(e.Diverged ? "diverged" : double.IsFinite(e.Rmse) ? e.Rmse.ToString("F4", c) : "n/a")}{(e.It == flow.SelectedIteration ? " (kept)" : "")}"));
        // A table too small to spare observed cells has no hold-out: then the fit keeps the last iteration (the paper's
        // rule) and the start is Gaussian EM alone, since nothing could weigh the candidates.
        bool heldOut = double.IsFinite(flow.InitialValidationRmse);
        var why = !heldOut
            ? "no observed cell could be held out (too few rows), so the last iteration is kept, as in the paper"
            : flow.SelectedIteration == 0
                ? "no training iteration beat the start on the hold-out, so the start's imputation is used"
                : "the lowest hold-out error";
        lines.Add(string.Create(c, $"EMFlow kept iteration {flow.SelectedIteration} of {flow.IterationsRun} (iteration 0 = the start): {why}."));
        lines.Add("Hold-out RMSE per iteration ([0, 1] scale, observed cells held out): " + string.Join(", ", errors));
        var share = flow.KnnShare;
        if (!heldOut && flow.SelectedStart == InitialImputation.Auto)
            lines.Add($"Start (auto): with no held-out cells to weigh {string.Join(", ", flow.StartCandidates.Select(c => c.Name).Prepend("knn"))} against it, the start is gaussian-em alone.");
        else if (flow.StartCandidates.Count > 0 && flow.SelectedStart == InitialImputation.Auto)
        {
            var w = flow.StartWeights;
            // A start averaged over hold-out draws holds each candidate once per draw; a reader wants one weight per
            // candidate, so each candidate's draws are summed.
            var starts = flow.StartCandidates.Select(s => s.Name).Prepend("knn").Prepend("gaussian-em").ToArray();
            int others = starts.Length - 2, draws = flow.StartDrawsUsed;
            double Weight(int j, int k) => k < 2 ? w[j, k] : Enumerable.Range(0, draws).Sum(d => w[j, 2 + d * others + k - 2]);
            var averaged = draws > 1 ? $"; {draws} hold-out draws averaged" : "";
            if (w.GetLength(0) == names.Count)
                lines.Add($"Start (auto, blend of {string.Join(", ", starts)}{averaged}), weights per feature: "
                    + string.Join("; ", names.Select((n, j) => $"{n} " + string.Join("/", starts.Select((_, k) => Weight(j, k).ToString("0.0#", c))))));
        }
        else if (share.Length == names.Count)
            lines.Add($"Start ({StartName(flow.SelectedStart)}), kNN share per feature (the rest Gaussian EM): "
                + string.Join(", ", names.Select((n, j) => $"{n} {share[j].ToString("0.0#", c)}")));
        var time = new List<string>();
        if (double.IsFinite(flow.InitialSeconds)) time.Add(string.Create(c, $"start {flow.InitialSeconds:F1} s"));
        time.AddRange(flow.History.Select(h => string.Create(c, $"iteration {h.Iteration} {h.Seconds:F1} s")));
        if (time.Count > 0) lines.Add("Time: " + string.Join(", ", time) + ".");
        return lines.ToArray();
    }

    private static string StartName(InitialImputation start) => start switch
    {
        InitialImputation.Auto => "auto",
        InitialImputation.Knn => "knn",
        InitialImputation.GaussianEm => "gaussian-em",
        var other => other.ToString().ToLowerInvariant(),
    };

    /// <summary>OUTPUT.csv → OUTPUT.k.csv.</summary>
    internal static string Numbered(string output, int k)
    {
        var ext = Path.GetExtension(output);
        return output[..^ext.Length] + "." + k.ToString(CultureInfo.InvariantCulture) + ext;
    }

    private static Imputer Create(string method, EMFlowOptions options, ForestOptions forest, IStartCandidate[] startCandidates) => method switch
    {
        "mean" => new MeanImputer(SimpleStrategy.Mean),
        "median" => new MeanImputer(SimpleStrategy.Median),
        "gaussian-em" => new GaussianEmImputer(),
        "knn" => new KnnImputer(),
        // missForest-style trees (EMFlow.Forest); --seed and --forest-repeats are its settings here.
        "forest" => new ForestImputer(forest with { Seed = options.Seed }),
        _ => new EMFlowImputer(options, startCandidates),
    };

    private static void RequireFolder(string file, string what)
    {
        if (Directory.Exists(file)) throw new UsageException($"{what} {file} is a folder; give a file name");
        var dir = Path.GetDirectoryName(Path.GetFullPath(file))!;
        if (!Directory.Exists(dir)) throw new UsageException($"{what} folder not found: {dir}");
    }

    /// <summary>The columns of <paramref name="data"/> in the order <paramref name="order"/> lists them.</summary>
    private static double[,] Permuted(double[,] data, int[] order)
    {
        var result = new double[data.GetLength(0), order.Length];
        for (int i = 0; i < data.GetLength(0); i++)
            for (int k = 0; k < order.Length; k++) result[i, k] = data[i, order[k]];
        return result;
    }

    /// <summary>The inverse of <see cref="Permuted"/>.</summary>
    private static double[,] Unpermuted(double[,] data, int[] order)
    {
        var result = new double[data.GetLength(0), order.Length];
        for (int i = 0; i < data.GetLength(0); i++)
            for (int k = 0; k < order.Length; k++) result[i, order[k]] = data[i, k];
        return result;
    }

    private static ReportData Details(string input, string method, Table table, double[,] data, double[,] completed, Imputer imputer)
    {
        var flow = imputer as EMFlowImputer;
        return new ReportData
        {
            Title = $"emflow impute: {Path.GetFileName(input)}",
            Notes = new[]
            {
                table.CategoricalColumns.Count == 0
                    ? $"{table.RowCount} rows, {table.NumericColumns.Count} numeric columns, {table.MissingCount} missing cells imputed with {method}."
                    : $"{table.RowCount} rows, {table.NumericColumns.Count} numeric and {table.CategoricalColumns.Count} categorical columns ({string.Join(", ", table.CategoricalColumns)}: their categories below), {table.MissingCount} missing cells imputed with {method}.",
                flow is null ? "" : $"EMFlow kept iteration {flow.SelectedIteration} of {flow.IterationsRun} (0 = its start, Gaussian EM and kNN blended per feature), chosen on held-out observed cells.",
            }.Where(s => s.Length > 0).ToArray(),
            Features = table.NumericColumns,
            Incomplete = data,
            Imputed = completed,
            ImputedBy = method,
            Epochs = flow?.EpochHistory.ToArray() ?? Array.Empty<EpochRecord>(),
            Iterations = flow?.History.ToArray() ?? Array.Empty<IterationRecord>(),
            InitialValidationRmse = flow?.InitialValidationRmse ?? double.NaN,
            SelectedIteration = flow?.SelectedIteration ?? 0,
            LatentCovariance = flow?.Sigma,
        };
    }
}
