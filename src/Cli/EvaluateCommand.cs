using System.Globalization;
using EMFlow.Evaluation;
using Spectre.Console;

namespace EMFlow.Cli;

/// <summary>
/// <c>emflow evaluate DATA.csv</c>: the paper's protocol on one complete table (min-max scaling, a missingness
/// mechanism, k-fold cross-validation where the test fold is only re-imputed, RMSE over hidden cells), printing
/// RMSE ± std and seconds per fold for each method. A client of <see cref="Protocol"/>, nothing more.
/// </summary>
internal static class EvaluateCommand
{
    public static void Run(string[] words, IAnsiConsole console, CancellationToken ct)
    {
        var a = new Arguments(words, new HashSet<string> { "--quiet", "--drop-target" }, new Dictionary<string, string>());
        var mechanismName = a.Text("--mechanism") ?? "mcar";
        bool rateGiven = a.Text("--rate") is not null;
        double rate = a.Positive("--rate", 0.2);
        int folds = a.Int("--folds", 5, min: 2);
        long seed = a.Long("--seed", 0);
        int threads = a.Int("--threads", 1, min: 1);
        var methodNames = (a.Text("--methods") ?? "mean,knn,gaussian-em,emflow").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var maskPath = a.Text("--mask");
        var foldsPath = a.Text("--fold-ids");
        bool quiet = a.Flag("--quiet");
        bool dropTarget = a.Flag("--drop-target");
        a.RejectUnknown(1);
        if (a.Positional.Count != 1) throw new UsageException("evaluate needs one input file: emflow evaluate DATA.csv [options]");
        var mechanism = mechanismName switch
        {
            "mcar" => Mechanism.Mcar(rate),
            // With --rate, MAR is calibrated to that expected rate over the trailing features (e.g. the paper's Table 4).
            "mar" => rateGiven ? Mechanism.Mar(rate) : Mechanism.Mar(),
            "mnar" => Mechanism.Mnar(),
            _ => throw new UsageException($"--mechanism must be mcar, mar or mnar; got '{mechanismName}'"),
        };
        foreach (var m in methodNames)
            if (!Method.StandardNames.Contains(m) && !Method.CompetitorNames.Contains(m))
                throw new UsageException($"unknown method '{m}'; the methods are {string.Join(", ", Method.StandardNames.Concat(Method.CompetitorNames))}");

        var (columns, values) = CsvTable.Read(a.Positional[0]);
        if (dropTarget && columns.Length > 0 && columns[^1] == "target")
            values = DropLastColumn(values);
        var options = new ProtocolOptions
        {
            Folds = folds,
            Seed = seed,
            Mechanism = mechanism,
            Mask = maskPath is null ? null : CsvTable.ReadMask(maskPath),
            FoldIds = foldsPath is null ? null : CsvTable.ReadFolds(foldsPath),
            Log = quiet ? null : new Progress<string>(line => console.MarkupLine(Markup.Escape(line))),
        };
        var methods = methodNames.Select(m => Method.Standard(m, seed, o => o with { TorchThreads = threads })).ToList();
        ct.ThrowIfCancellationRequested();
        var result = Protocol.Run(values, methods, options);

        var table = new Spectre.Console.Table().AddColumns("Method", "RMSE (mean ± std)", "Seconds per fold");
        foreach (var m in result.Methods)
            table.AddRow(m.Method, $"{m.MeanRmse.ToString("F4", CultureInfo.InvariantCulture)} ± {m.StdRmse.ToString("F4", CultureInfo.InvariantCulture)}",
                m.SecondsPerFold.ToString("F1", CultureInfo.InvariantCulture));
        console.WriteLine($"{Path.GetFileName(a.Positional[0])}: {result.Mechanism}, {result.Folds.Length} rows in {folds} folds; hidden rate {result.Table.HiddenRate.ToString("F3", CultureInfo.InvariantCulture)}");
        console.Write(table);
    }

    private static double[,] DropLastColumn(double[,] v)
    {
        var r = new double[v.GetLength(0), v.GetLength(1) - 1];
        for (int i = 0; i < r.GetLength(0); i++)
            for (int j = 0; j < r.GetLength(1); j++)
                r[i, j] = v[i, j];
        return r;
    }
}
