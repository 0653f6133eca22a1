namespace EMFlow.Tests;

/// <summary>What a C# application that references EMFlow.dll sees: imputation only. Evaluation, the paper's rivals
/// and the data-frame bridge are assemblies of their own.</summary>
public class AssemblyTests
{
    [Fact]
    public void EMFlow_dll_exports_only_imputation_types()
    {
        var exported = typeof(Imputer).Assembly.GetExportedTypes().Select(t => t.FullName).Order(StringComparer.Ordinal).ToArray();
        string[] expected =
        [
            "EMFlow.ColumnKind", "EMFlow.CouplingMask", "EMFlow.CouplingNetwork", "EMFlow.EMFlowImputer", "EMFlow.EMFlowOptions", "EMFlow.FlowPrecision",
            "EMFlow.GaussianEmImputer", "EMFlow.GaussianEmOptions", "EMFlow.HiddenActivation", "EMFlow.Imputer", "EMFlow.KnnImputer",
            "EMFlow.MeanImputer", "EMFlow.MixedImputer", "EMFlow.MixtureStart", "EMFlow.NativeHeap", "EMFlow.NearestPixelImputer", "EMFlow.SecondFlowStep", "EMFlow.SimpleStrategy",
            "EMFlow.Table", "EMFlow.TorchThreadScope",
        ];
        Assert.Equal(expected, exported);
    }

    [Fact]
    public void The_core_references_no_data_frame_library_and_holds_no_rival()
    {
        var core = typeof(Fitting).Assembly;
        Assert.DoesNotContain(core.GetReferencedAssemblies(), a => a.Name!.StartsWith("Deedle", StringComparison.Ordinal));
        Assert.DoesNotContain(core.GetExportedTypes(), t => t.FullName!.Contains("Gain") || t.FullName.Contains("Miwae") || t.FullName.Contains("McFlow"));
    }
}
