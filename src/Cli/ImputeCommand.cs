using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace EMFlow.Cli;

/// <summary>
/// <c>emflow impute INPUT.csv -o OUTPUT.csv</c>: reads the table, fits the chosen imputer on its numeric columns
/// (or loads a saved EMFlow model), and writes the completed table with observed cells exactly as they were.
/// Everything is computed before the first file is written, so bad input or a cancelled fit writes nothing.
/// </summary>
internal static class ImputeCommand
{
    private static readonly HashSet<string> Flags = new() { "--quiet", "--skip-non-numeric" };
    private static readonly Dictionary<string, string> Aliases = new() { ["-o"] = "--output", ["-q"] = "--quiet" };
    private static readonly string[] FitSettings = { "--iterations", "--epochs", "--batch-size", "--learning-rate", "--seed", "--threads", "--start" };

    public static void Run(string[] words, IAnsiConsole console, bool interactive, CancellationToken ct)
    {
        var a = new Arguments(words, Flags, Aliases);
        var output = a.Text("--output");
        var method = a.Text("--method") ?? "emflow";
        var token = a.Text("--missing");
        bool skip = a.Flag("--skip-non-numeric");
        bool quiet = a.Flag("--quiet");
        int multiple = a.Int("--multiple", 0, min: 1);
        var modelOut = a.Text("--model");
        var modelIn = a.Text("--load");
        var report = a.Text("--report");
        var pngDir = a.Text("--png-dir");
        var given = FitSettings.Where(s => a.Text(s) is not null).ToList();
        var defaults = new EMFlowOptions();
        var options = defaults with
        {
            Iterations = a.Int("--iterations", defaults.Iterations, min: 1),
            EpochsPerIteration = a.Int("--epochs", defaults.EpochsPerIteration, min: 1),
            BatchSize = a.Int("--batch-size", defaults.BatchSize, min: 2),
            LearningRate = a.Positive("--learning-rate", defaults.LearningRate),
            Seed = a.Long("--seed", defaults.Seed),
            TorchThreads = a.Text("--threads") is null ? null : a.Int("--threads", 1, min: 1),
            InitialImputation = a.Text("--start") switch
            {
                null or "auto" => InitialImputation.Auto,
                "gaussian-em" => InitialImputation.GaussianEm,
                "knn" => InitialImputation.Knn,
                var other => throw new UsageException($"--start must be auto, gaussian-em or knn; got '{other}'"),
            },
        };
        a.RejectUnknown(1);

        if (a.Positional.Count == 0) throw new UsageException("impute needs an input file: emflow impute INPUT.csv -o OUTPUT.csv");
        var input = a.Positional[0];
        if (output is null) throw new UsageException("impute needs an output file: -o OUTPUT.csv");
        if (method is not ("emflow" or "gaussian-em" or "mean" or "median"))
            throw new UsageException($"--method must be emflow, gaussian-em, mean or median; got '{method}'");
        if (method != "emflow")
        {
            var emflowOnly = new[] { ("--multiple", multiple > 0), ("--model", modelOut is not null), ("--load", modelIn is not null) }
                .Concat(given.Where(g => g != "--seed").Select(g => (g, true))).FirstOrDefault(o => o.Item2).Item1;
            if (emflowOnly is not null) throw new UsageException($"{emflowOnly} applies to --method emflow only");
        }
        if (modelIn is not null && given.Count > 0 && given.Any(g => g != "--seed"))
            throw new UsageException($"--load imputes with the saved model's settings; {given.First(g => g != "--seed")} does not apply");
        if (!File.Exists(input)) throw new UsageException($"input file not found: {input}");
        if (modelIn is not null && !File.Exists(modelIn)) throw new UsageException($"model file not found: {modelIn}");
        RequireFolder(output, "output");
        if (modelOut is not null) RequireFolder(modelOut, "model");
        if (report is not null) RequireFolder(report, "report");

        var table = Table.Read(input, token is null ? null : new[] { token }, skip);
        if (table.NumericColumns.Count == 0) throw new UsageException($"{input} has no numeric column to impute");
        if (table.RowCount == 0) throw new UsageException($"{input} has a header but no rows");
        var data = table.ToMatrix();
        var mask = table.MissingMask();
        for (int k = 0; k < table.NumericColumns.Count; k++)
            if (Enumerable.Range(0, table.RowCount).All(i => mask[i, k]))
                throw new UsageException($"column '{table.NumericColumns[k]}' has no observed value, so it cannot be imputed; drop it or fill it");

        var clock = Stopwatch.StartNew();
        double[,] completed;
        IReadOnlyList<double[,]> draws = Array.Empty<double[,]>();
        ReportData? details = null;
        string label = method;
        using (var imputer = modelIn is not null ? EMFlowImputer.Load(modelIn) : Create(method, options))
        {
            if (modelIn is not null)
            {
                if (imputer.FeatureCount != table.NumericColumns.Count)
                    throw new UsageException($"the model was fitted on {imputer.FeatureCount} numeric columns; {input} has {table.NumericColumns.Count}");
                completed = imputer.Transform(data);
                label = $"the model in {modelIn}";
            }
            else
            {
                double[,]? result = null;
                Fitting.Run(console, interactive && !quiet, $"{method} on {Path.GetFileName(input)}", progress =>
                    result = imputer.FitTransform(data, progress: progress, cancellationToken: ct));
                completed = result!;
            }
            if (imputer is EMFlowImputer flow && multiple > 0)
                draws = flow.SampleImputations(data, multiple, seed: Tensors.deriveSeed(options.Seed, 7));
            if (report is not null || pngDir is not null)
                details = Details(input, method, table, data, completed, imputer);
            ct.ThrowIfCancellationRequested();

            table.WithImputed(completed).Write(output);
            for (int k = 0; k < draws.Count; k++)
                table.WithImputed(draws[k]).Write(Numbered(output, k + 1));
            if (modelOut is not null) ((EMFlowImputer)imputer).Save(modelOut);
        }
        if (report is not null) HtmlReport.Write(report, details!);
        var pngs = pngDir is null ? Array.Empty<string>() : PngReport.Write(pngDir, details!);

        if (quiet) return;
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Imputed {table.MissingCount} missing cells in {table.NumericColumns.Count} numeric columns of {table.RowCount} rows with {label} in {clock.Elapsed.TotalSeconds:F1} s: {output}"));
        if (draws.Count > 0) console.WriteLine($"Sampled imputations: {string.Join(", ", Enumerable.Range(1, draws.Count).Select(k => Numbered(output, k)))}");
        if (modelOut is not null) console.WriteLine($"Model: {modelOut}");
        if (report is not null) console.WriteLine($"Report: {report}");
        if (pngs.Count > 0) console.WriteLine($"Figures: {pngs.Count} PNG files in {pngDir}");
    }

    /// <summary>OUTPUT.csv → OUTPUT.k.csv.</summary>
    internal static string Numbered(string output, int k)
    {
        var ext = Path.GetExtension(output);
        return output[..^ext.Length] + "." + k.ToString(CultureInfo.InvariantCulture) + ext;
    }

    private static Imputer Create(string method, EMFlowOptions options) => method switch
    {
        "mean" => new MeanImputer(SimpleStrategy.Mean),
        "median" => new MeanImputer(SimpleStrategy.Median),
        "gaussian-em" => new GaussianEmImputer(),
        _ => new EMFlowImputer(options),
    };

    private static void RequireFolder(string file, string what)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(file))!;
        if (!Directory.Exists(dir)) throw new UsageException($"{what} folder not found: {dir}");
    }

    private static ReportData Details(string input, string method, Table table, double[,] data, double[,] completed, Imputer imputer)
    {
        var flow = imputer as EMFlowImputer;
        return new ReportData
        {
            Title = $"emflow impute: {Path.GetFileName(input)}",
            Notes = new[]
            {
                $"{table.RowCount} rows, {table.NumericColumns.Count} numeric columns, {table.MissingCount} missing cells imputed with {method}.",
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
