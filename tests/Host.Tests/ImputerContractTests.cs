using static EMFlow.Tests.TestData;
namespace EMFlow.Tests;

/// <summary>The contract on the imputers of the EMFlow library, and on one written outside it.</summary>
public sealed class ImputerContractTests : ImputerContract
{
    public static TheoryData<string> Imputers => new() { "mean", "median", "gaussian-em", "knn", "emflow", "emflow-knn-start", "nearest-pixel", "emflow-images", "outside-midrange", "forest", "forest-fastforest", "forest-linear", "forest-averaged", "emflow-forest", "emflow-mixture" };

    /// <summary>Imputers that fill a feature from that feature's own values; the image imputers copy neighbouring pixels instead.</summary>
    public static TheoryData<string> FeatureWiseImputers => new() { "mean", "median", "gaussian-em", "knn", "emflow", "emflow-knn-start", "outside-midrange", "forest", "forest-fastforest", "forest-linear", "forest-averaged", "emflow-forest", "emflow-mixture" };

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
        // The forest as users get it (four runs of 25 trees, the linear base where it helps); small one-run forests
        // for the other settings keep the contract fast.
        "forest" => new ForestImputer(),
        "forest-fastforest" => new ForestImputer(ForestOptions.OneRun with { Trainer = ForestTrainer.FastForest, Trees = 10, Leaves = 8, MaxSweeps = 3 }),
        "forest-linear" => new ForestImputer(ForestOptions.OneRun with { Trees = 10, Leaves = 8, MaxSweeps = 3, LinearBase = ForestLinearBase.Always }),
        "forest-averaged" => new ForestImputer(ForestOptions.OneRun with { Trees = 10, Leaves = 8, MaxSweeps = 3, Repeats = 2 }),
        "emflow-forest" => new EMFlowImputer(TestData.QuickEMFlow(), new[] { new ForestStart(ForestOptions.OneRun with { Trees = 10, Leaves = 8, MaxSweeps = 3 }) }),
        "emflow-mixture" => new EMFlowImputer(TestData.QuickEMFlow(), new IStartCandidate[] { new MixtureStart() }),
        _ => throw new ArgumentException(name),
    };

    // Pre-cancelled tokens, failed refits, disposal and names for the library's imputers; the shared contract cancels
    // a refit midway for every imputer, the rivals included.
    private static CancellationToken Cancelled() => new(canceled: true);


    [Theory, MemberData(nameof(Imputers))]
    public void A_cancelled_first_Fit_leaves_the_imputer_unfitted(string name)
    {
        var (_, data) = TestData.Table(60);
        using var imputer = Create(name);
        Assert.ThrowsAny<OperationCanceledException>(() => imputer.Fit(data, cancellationToken: Cancelled()));
        Assert.False(imputer.IsFitted);
        Assert.Null(imputer.ColumnNames);
        Assert.Throws<InvalidOperationException>(() => imputer.Transform(data));
    }

    [Theory, MemberData(nameof(Imputers))]
    public void A_cancelled_or_failed_refit_leaves_the_previous_model_bit_for_bit(string name)
    {
        var (_, data) = TestData.Table(80);
        var (_, other) = TestData.Table(90, seed: 2);
        var (_, probe) = TestData.Table(30, seed: 3);
        using var imputer = Create(name);
        imputer.Fit(data, new[] { "a", "b", "c", "d" });
        var before = imputer.Transform(probe);

        Assert.ThrowsAny<OperationCanceledException>(() => imputer.Fit(other, new[] { "w", "x", "y", "z" }, cancellationToken: Cancelled()));
        for (int i = 0; i < 90; i++) other[i, 2] = double.NaN;
        Assert.Throws<ArgumentException>(() => imputer.Fit(other));

        Assert.True(imputer.IsFitted);
        Assert.Equal(new[] { "a", "b", "c", "d" }, imputer.ColumnNames);
        AssertBitForBit(before, imputer.Transform(probe));
    }

    [Theory, MemberData(nameof(Imputers))]
    public void After_Dispose_every_member_throws_ObjectDisposedException(string name)
    {
        var (_, data) = TestData.Table(60);
        var imputer = Create(name);
        imputer.Fit(data);
        imputer.Dispose();
        imputer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => imputer.IsFitted);
        Assert.Throws<ObjectDisposedException>(() => imputer.FeatureCount);
        Assert.Throws<ObjectDisposedException>(() => imputer.ColumnNames);
        Assert.Throws<ObjectDisposedException>(() => imputer.Transform(data));
        Assert.Throws<ObjectDisposedException>(() => imputer.Transform(data, new[] { "a", "b", "c", "d" }));
        Assert.Throws<ObjectDisposedException>(() => imputer.Fit(data));
        switch (imputer)
        {
            case GaussianEmImputer g:
                Assert.Throws<ObjectDisposedException>(() => g.Mu);
                Assert.Throws<ObjectDisposedException>(() => g.Sigma);
                Assert.Throws<ObjectDisposedException>(() => g.IterationsRun);
                Assert.Throws<ObjectDisposedException>(() => g.Converged);
                Assert.Throws<ObjectDisposedException>(() => g.LogLikelihoodHistory);
                break;
            case EMFlowImputer e:
                Assert.Throws<ObjectDisposedException>(() => e.Mu);
                Assert.Throws<ObjectDisposedException>(() => e.Sigma);
                Assert.Throws<ObjectDisposedException>(() => e.IterationsRun);
                Assert.Throws<ObjectDisposedException>(() => e.SelectedIteration);
                Assert.Throws<ObjectDisposedException>(() => e.History);
                Assert.Throws<ObjectDisposedException>(() => e.KnnShare);
                Assert.Throws<ObjectDisposedException>(() => e.Save("never.model"));
                break;
            case MeanImputer m:
                Assert.Throws<ObjectDisposedException>(() => m.FillValues);
                break;
        }
    }

    [Theory, MemberData(nameof(Imputers))]
    public void Columns_are_matched_by_name_in_any_order_and_wrong_names_are_named(string name)
    {
        var (_, data) = TestData.Table(80);
        var names = new[] { "a", "b", "c", "d" };
        using var imputer = Create(name);
        imputer.Fit(data, names);
        Assert.Equal(names, imputer.ColumnNames);
        var inOrder = imputer.Transform(data);
        var reversed = new double[80, 4];
        for (int i = 0; i < 80; i++)
            for (int j = 0; j < 4; j++) reversed[i, j] = data[i, 3 - j];
        var byName = imputer.Transform(reversed, new[] { "d", "c", "b", "a" });
        for (int i = 0; i < 80; i++)
            for (int j = 0; j < 4; j++)
                Assert.Equal(BitConverter.DoubleToInt64Bits(inOrder[i, 3 - j]), BitConverter.DoubleToInt64Bits(byName[i, j]));

        var missing = Assert.Throws<ArgumentException>(() => imputer.Transform(data, new[] { "a", "b", "c", "e" }));
        Assert.Contains("'d'", missing.Message);
        Assert.Contains("'e'", missing.Message);
        Assert.Throws<ArgumentException>(() => imputer.Transform(data, new[] { "a", "b", "c" }));
        Assert.Throws<ArgumentException>(() => imputer.Transform(data, new[] { "a", "b", "c", "c" }));
        var duplicate = Assert.Throws<ArgumentException>(() => imputer.Fit(data, new[] { "a", "b", "a", "d" }));
        Assert.Contains("'a'", duplicate.Message);
    }
}
