namespace EMFlow.Tests;

/// <summary>The contract on the imputers of the EMFlow library, and on one written outside it.</summary>
public sealed class ImputerContractTests : ImputerContract
{
    public static TheoryData<string> Imputers => new() { "mean", "median", "gaussian-em", "knn", "emflow", "emflow-knn-start", "nearest-pixel", "emflow-images", "outside-midrange" };

    /// <summary>Imputers that fill a feature from that feature's own values; the image imputers copy neighbouring pixels instead.</summary>
    public static TheoryData<string> FeatureWiseImputers => new() { "mean", "median", "gaussian-em", "knn", "emflow", "emflow-knn-start", "outside-midrange" };

    protected override Imputer Create(string name) => name switch
    {
        "mean" => new MeanImputer(),
        "median" => new MeanImputer(SimpleStrategy.Median),
        "gaussian-em" => new GaussianEmImputer(),
        "knn" => new KnnImputer(),
        "emflow" => new EMFlowImputer(TestData.QuickEMFlow()),
        "emflow-knn-start" => new EMFlowImputer(TestData.QuickEMFlow() with { InitialImputation = InitialImputation.Knn }),
        // The contract's tables have 4 columns: 2 x 2 images.
        "nearest-pixel" => new NearestPixelImputer(2, 2),
        "emflow-images" => new EMFlowImputer(TestData.QuickEMFlow() with { InitialImputation = InitialImputation.NearestPixel, ImageWidth = 2, ImageHeight = 2 }),
        "outside-midrange" => new MidRangeImputer(),
        _ => throw new ArgumentException(name),
    };
}
