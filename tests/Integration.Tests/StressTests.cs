using System.Diagnostics;

namespace EMFlow.Tests;

/// <summary>
/// Issue 15: every imputer fitted over and over while another thread allocates and forces garbage collections
/// (tests/Stress, a compiled program: TorchSharp's Scalar finalizer race needs the optimised JIT of a real build).
/// About 6 s per case, 18 cases; bench/run soak runs the same program for 10 minutes per imputer.
/// </summary>
public class StressTests
{
    [Fact]
    public void Every_imputer_survives_concurrent_garbage_collection_with_bit_identical_results()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory);            // tests/Integration.Tests/bin/<config>/<tfm>/
        var program = Path.Combine(here.FullName, "..", "..", "..", "..", "Stress", "bin", here.Parent!.Name, here.Name, "emflow-stress.dll");
        Assert.True(File.Exists(program), $"{program} is missing; build the solution first.");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { program, "--seconds", "6" }) start.ArgumentList.Add(a);
        start.Environment["OMP_NUM_THREADS"] = "1";
        start.Environment["MKL_NUM_THREADS"] = "1";
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(10)), "the stress program did not finish within 10 minutes");
        var report = stdout + stderr.Result;
        // A crash (the race's usual outcome) ends the process with a signal and no summary line for the imputer.
        Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}:\n{report}");
        var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Skip(1).ToArray();
        Assert.Equal(18, rows.Length);
        Assert.All(rows, r => Assert.EndsWith("yes", r));
    }
}
