namespace EMFlow.Tests;

/// <summary>The imputer contract on the paper's rivals, which derive from <see cref="Imputer"/> in another assembly.</summary>
public sealed class BaselineContractTests : ImputerContract
{
    public static TheoryData<string> Imputers => new() { "gain", "miwae", "mcflow" };

    public static TheoryData<string> FeatureWiseImputers => Imputers;

    protected override Imputer Create(string name) => name switch
    {
        "gain" => new GainImputer(new GainOptions { Iterations = 50, Seed = 3, TorchThreads = 1 }),
        "mcflow" => new McFlowImputer(new McFlowOptions { Epochs = 2, HiddenWidth = 16, CouplingLayers = 2, BatchSize = 64, Seed = 3, TorchThreads = 1 }),
        "miwae" => new MiwaeImputer(new MiwaeOptions { Epochs = 2, Hidden = 16, ImputeSamples = 20, Seed = 3, TorchThreads = 1 }),
        _ => throw new ArgumentException(name),
    };
}
