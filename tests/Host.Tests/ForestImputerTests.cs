namespace EMFlow.Tests;

/// <summary>What <see cref="ForestImputer"/> promises beyond the shared contract: bit-for-bit reproducibility,
/// kept per-feature models (Transform without refitting), progress per feature, and Save/Load.</summary>
public sealed class ForestImputerTests
{
    private static ForestOptions Small(ForestTrainer trainer = ForestTrainer.FastForest) =>
        new() { Trainer = trainer, Trees = 10, Leaves = 8, MaxSweeps = 4, Seed = 7 };

    private static void AssertBitForBit(double[,] expected, double[,] actual)
    {
        Assert.Equal(expected.GetLength(0), actual.GetLength(0));
        Assert.Equal(expected.GetLength(1), actual.GetLength(1));
        for (int i = 0; i < expected.GetLength(0); i++)
            for (int j = 0; j < expected.GetLength(1); j++)
                Assert.Equal(BitConverter.DoubleToInt64Bits(expected[i, j]), BitConverter.DoubleToInt64Bits(actual[i, j]));
    }

    [Theory, InlineData(ForestTrainer.FastForest), InlineData(ForestTrainer.LightGbm)]
    public void Same_seed_same_output_bit_for_bit_and_new_rows_use_the_kept_models(ForestTrainer trainer)
    {
        var (_, data) = TestData.Table(120);
        var (_, probe) = TestData.Table(40, seed: 3);
        using var a = new ForestImputer(Small(trainer));
        using var b = new ForestImputer(Small(trainer));
        AssertBitForBit(a.FitTransform(data), b.FitTransform(data));
        var first = a.Transform(probe);
        AssertBitForBit(first, b.Transform(probe));
        AssertBitForBit(first, a.Transform(probe));
        Assert.InRange(a.SweepsKept, 1, 4);
        Assert.True(a.Changes.Count >= a.SweepsKept);
    }

    [Fact]
    public void Progress_is_reported_per_feature_and_sweep()
    {
        var (_, data) = TestData.Table(80);
        var seen = new List<TrainingProgress>();
        using var forest = new ForestImputer(Small());
        forest.Fit(data, progress: new Sink(seen.Add));
        Assert.NotEmpty(seen);
        Assert.All(seen, p => Assert.StartsWith("forest", p.Phase));
        Assert.Contains(seen, p => p.Iteration == 1 && p.Epoch == 1);
    }

    [Theory, InlineData(ForestTrainer.FastForest), InlineData(ForestTrainer.LightGbm)]
    public void Save_then_Load_transforms_bit_for_bit(ForestTrainer trainer)
    {
        var (_, data) = TestData.Table(100);
        var (_, probe) = TestData.Table(30, seed: 5);
        var path = Path.Combine(Path.GetTempPath(), $"forest-{Guid.NewGuid():N}.model");
        try
        {
            using var forest = new ForestImputer(Small(trainer));
            forest.Fit(data, new[] { "a", "b", "c", "d" });
            var expected = forest.Transform(probe);
            forest.Save(path);
            using var loaded = ForestImputer.Load(path);
            Assert.Equal(new[] { "a", "b", "c", "d" }, loaded.ColumnNames);
            Assert.Equal(forest.SweepsKept, loaded.SweepsKept);
            Assert.Equal(trainer, loaded.Options.Trainer);
            AssertBitForBit(expected, loaded.Transform(probe));

            var bytes = File.ReadAllBytes(path);
            bytes[^10] ^= 0xFF;
            File.WriteAllBytes(path, bytes);
            var ex = Assert.Throws<InvalidDataException>(() => ForestImputer.Load(path));
            Assert.Contains("checksum", ex.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private sealed class Sink(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
