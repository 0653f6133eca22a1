using System.Globalization;
using EMFlow.Bench;

// Benchmarks of EMFlow.NET. Timings on a shared machine vary run to run: compare the ratios measured side by side
// in one process, and take absolute times as indicative only.
// As the command line does (NativeHeap says why), so that fit seconds here are those a user of emflow sees.
EMFlow.NativeHeap.ReuseFreedBlocks();
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    Console.WriteLine(Args.Usage);
    return args.Length == 0 ? 2 : 0;
}
try
{
    var a = new Args(args.Skip(1).ToArray());
    switch (args[0])
    {
        case "estep": EStepBench.Run(a); break;
        case "fit": FitBench.Run(a); break;
        case "tables": TablesBench.Run(a); break;
        case "mixed": MixedBench.Run(a); break;
        case "report": TablesBench.ReportFiles(a); break;
        case "datasets": Console.WriteLine(string.Join(",", TablesBench.DefaultDatasets(a.Flag("quick")))); break;
        case "images": ImagesBench.Run(a); break;
        case "images-report": ImagesBench.ReportFiles(a); break;
        case "images-ridge": ImagesBench.Ridge(a); break;
        case "converge": ConvergeBench.Run(a); break;
        case "coverage": CoverageBench.Run(a); break;
        case "coverage-report": CoverageBench.ReportFiles(a); break;
        case "converge-report": ConvergeBench.ReportFile(a); break;
        case "step": return StepBench.Run(a);
        default:
            Console.Error.WriteLine($"error: unknown subcommand '{args[0]}'\n{Args.Usage}");
            return 2;
    }
    return 0;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
