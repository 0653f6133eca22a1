using System.Xml.Linq;
using EMFlow.Evaluation.Tests;

/// <summary>
/// Issue 15: TorchSharp 0.107 frees a Scalar in its finalizer while native code may still read it, so any library call
/// that creates a temporary Scalar (a tensor <c>+</c>, <c>t * 0.5</c>, <c>1.0 - t</c>, <c>square()</c>, an optimiser's
/// <c>step()</c>, ...) can fail or crash when another thread of the host collects garbage. These tests keep every shipped
/// assembly free of such calls; tests/Stress shows the result under load.
/// </summary>
public class ScalarSafetyTests
{
    // Tensors.sc and Tensors.scInt cache every Scalar they create for the life of the process.
    static readonly string[] Cache = { "EMFlow.Tensors::sc(", "EMFlow.Tensors.sc@", "EMFlow.Tensors::scInt(", "EMFlow.Tensors.scInt@" };

    /// <summary>Every project under src/ with its built assembly (same configuration as this test run).</summary>
    static IReadOnlyList<string> ShippedAssemblies()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory);           // tests/Evaluation.Tests/bin/<config>/<tfm>/
        var tfm = here.Name;
        var config = here.Parent!.Name;
        var root = here;
        while (root != null && !File.Exists(Path.Combine(root.FullName, "EMFlow.sln"))) root = root.Parent;
        Assert.NotNull(root);
        var found = new List<string>();
        foreach (var project in Directory.GetDirectories(Path.Combine(root!.FullName, "src")).SelectMany(d => Directory.GetFiles(d, "*.*proj")))
        {
            var dir = Path.GetDirectoryName(project)!;
            var name = XDocument.Load(project).Descendants("AssemblyName").FirstOrDefault()?.Value ?? Path.GetFileNameWithoutExtension(project);
            var bin = Path.Combine(dir, "bin", config, tfm);
            var dll = Path.Combine(bin, name + ".dll");
            Assert.True(File.Exists(dll), $"{project} is not built ({dll} is missing); build the solution first.");
            found.Add(dll);
        }
        return found;
    }

    [Fact]
    public void No_shipped_assembly_calls_TorchSharp_in_a_way_that_creates_a_temporary_Scalar()
    {
        var offenders = ScalarGuard.Offenders(typeof(TorchSharp.torch).Assembly.Location);
        var assemblies = ShippedAssemblies();
        Assert.Contains(assemblies, a => a.EndsWith("EMFlow.Core.dll"));
        Assert.Contains(assemblies, a => a.EndsWith("EMFlow.Evaluation.dll"));
        Assert.True(assemblies.Count >= 6, $"expected every src/ project, got {string.Join(", ", assemblies.Select(Path.GetFileName))}");
        var sites = assemblies.SelectMany(a => ScalarGuard.Scan(a, offenders, Cache)).ToList();
        Assert.True(sites.Count == 0, $"{sites.Count} call sites create a temporary TorchSharp Scalar (use Tensors.plus/scaleBy/oneMinus/..., " +
            "Tensors.sc for constants, `use`/`using` for other values, Optim.Adam for training):\n" +
            string.Join("\n", sites.OrderBy(s => s.Location).Select(s => $"  {s.Location}  {s.Callee.Replace("TorchSharp.", "")}  ({s.Why}; in {s.Caller})")));
    }

    [Fact]
    public void The_guard_still_knows_the_offending_TorchSharp_members()
    {
        // Fails loudly if a TorchSharp upgrade changes what the guard has to look for.
        var o = ScalarGuard.Offenders(typeof(TorchSharp.torch).Assembly.Location);
        Assert.Contains("TorchSharp.torch.Tensor::op_Addition(TorchSharp.torch.Tensor,TorchSharp.torch.Tensor)", o);
        Assert.Contains("TorchSharp.torch.Tensor::op_Multiply(TorchSharp.torch.Tensor,Double)", o);
        Assert.Contains("TorchSharp.torch.Tensor::square()", o);
        Assert.Contains("TorchSharp.Modules.Adam::step(System.Func`1<TorchSharp.torch.Tensor>)", o);
        Assert.DoesNotContain("TorchSharp.torch.Tensor::mul(TorchSharp.Scalar)", o);
        Assert.DoesNotContain("TorchSharp.torch.Tensor::add(TorchSharp.torch.Tensor,TorchSharp.Scalar)", o);
    }

    [Fact]
    public void The_guard_finds_a_temporary_Scalar_in_this_test_assembly()
    {
        // Unsafe() below is the kind of code the guard must catch; this assembly is never shipped.
        var offenders = ScalarGuard.Offenders(typeof(TorchSharp.torch).Assembly.Location);
        var sites = ScalarGuard.Scan(typeof(ScalarSafetyTests).Assembly.Location, offenders, Cache)
            .Where(s => s.Caller.Contains(nameof(Unsafe))).ToList();
        Assert.Contains(sites, s => s.Callee.Contains("op_Addition") && s.Location.StartsWith("ScalarSafetyTests.cs:"));
        Assert.Contains(sites, s => s.Callee.Contains("op_Implicit"));
    }

    static TorchSharp.torch.Tensor Unsafe(TorchSharp.torch.Tensor a) => (a + a).gt(0.5);
}
