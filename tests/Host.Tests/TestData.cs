namespace EMFlow.Tests;

/// <summary>Small seeded tables built the way a C# user would: plain arrays with NaN for missing values.</summary>
internal static class TestData
{
    /// <summary>A (n, 4) table with linear and nonlinear dependencies and 20% of cells set to NaN.</summary>
    public static (double[,] Complete, double[,] WithMissing) Table(int n = 200, int seed = 1, double rate = 0.2)
    {
        var rng = new Random(seed);
        var complete = new double[n, 4];
        var withMissing = new double[n, 4];
        for (int i = 0; i < n; i++)
        {
            double a = Normal(rng), b = 0.6 * a + 0.8 * Normal(rng);
            complete[i, 0] = 10 + 3 * a;
            complete[i, 1] = -2 + b;
            complete[i, 2] = a * a + 0.1 * Normal(rng);
            complete[i, 3] = 100 + 20 * (a - b) + Normal(rng);
            for (int j = 0; j < 4; j++)
                withMissing[i, j] = rng.NextDouble() < rate ? double.NaN : complete[i, j];
        }
        return (complete, withMissing);
    }

    private static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    /// <summary>Fast EMFlow settings for tests: one torch thread, few epochs, a small flow.</summary>
    public static EMFlowOptions QuickEMFlow(long seed = 7) => new()
    {
        Iterations = 2,
        EpochsPerIteration = 2,
        BatchSize = 64,
        HiddenWidth = 16,
        CouplingLayers = 2,
        Seed = seed,
        TorchThreads = 1,
    };

    /// <summary>Asserts that two tables have the same shape and the same bits in every cell (NaN payloads included).</summary>
    /// <summary>Every observed cell of <paramref name="data"/> (n, p) comes back exactly, and every missing one finite.</summary>
    public static void AssertObservedKept(double[,] data, double[,] imputed)
    {
        for (int i = 0; i < data.GetLength(0); i++)
            for (int j = 0; j < data.GetLength(1); j++)
                if (!double.IsNaN(data[i, j])) Assert.Equal(data[i, j], imputed[i, j]);
                else Assert.True(double.IsFinite(imputed[i, j]));
    }

    /// <summary>Saves the model, loads it back and checks that the loaded one names the same start, holds a single
    /// start candidate of type <typeparamref name="TCandidate"/>, and imputes probe exactly as imputed.</summary>
    public static void AssertReloads<TCandidate>(EMFlowImputer fitted, double[,] probe, double[,] imputed)
    {
        var path = Path.Combine(Path.GetTempPath(), $"emflow-{Guid.NewGuid():N}.model");
        try
        {
            fitted.Save(path);
            using var loaded = EMFlowImputer.Load(path);
            Assert.Equal(fitted.StartNames, loaded.StartNames);
            Assert.Equal(fitted.StartDrawsUsed, loaded.StartDrawsUsed);
            Assert.IsType<TCandidate>(Assert.Single(loaded.StartCandidates));
            AssertBitForBit(imputed, loaded.Transform(probe));
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static void AssertBitForBit(double[,] expected, double[,] actual)
    {
        Assert.Equal(expected.GetLength(0), actual.GetLength(0));
        Assert.Equal(expected.GetLength(1), actual.GetLength(1));
        for (int i = 0; i < expected.GetLength(0); i++)
            for (int j = 0; j < expected.GetLength(1); j++)
                Assert.Equal(BitConverter.DoubleToInt64Bits(expected[i, j]), BitConverter.DoubleToInt64Bits(actual[i, j]));
    }
}

/// <summary>Progress reported on the caller's thread, as it happens (<see cref="Progress{T}"/> would post it).</summary>
internal sealed class Sink(Action<TrainingProgress> report) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value) => report(value);
}
