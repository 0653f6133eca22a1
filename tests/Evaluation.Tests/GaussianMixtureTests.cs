namespace EMFlow.Tests;

/// <summary>The Gaussian mixture fitted by EM with missing entries, alone and as a start candidate of EMFlow.</summary>
public class GaussianMixtureTests
{
    // Three well separated clusters with different correlations: one Gaussian cannot impute them, a mixture can.
    private static (double[,] Complete, double[,] WithMissing) Clusters(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new double[n, 4];
        var y = new double[n, 4];
        for (int i = 0; i < n; i++)
        {
            int c = i % 3;
            double z = Normal(rng);
            double sign = c == 1 ? -1 : 1;
            for (int j = 0; j < 4; j++) x[i, j] = 30 * c * (j % 2 == 0 ? 1 : -1) + sign * (j + 1) * z + 0.1 * Normal(rng);
            for (int j = 0; j < 4; j++) y[i, j] = j != i % 4 && rng.NextDouble() < 0.25 ? double.NaN : x[i, j];
        }
        return (x, y);
    }

    private static double Normal(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    private static double HiddenRmse(double[,] complete, double[,] withMissing, double[,] imputed)
    {
        double se = 0;
        int count = 0;
        for (int i = 0; i < complete.GetLength(0); i++)
            for (int j = 0; j < complete.GetLength(1); j++)
                if (double.IsNaN(withMissing[i, j])) { se += Math.Pow(imputed[i, j] - complete[i, j], 2); count++; }
        return Math.Sqrt(se / count);
    }

    [Fact]
    public void Imputes_clustered_rows_far_better_than_one_Gaussian_keeps_observed_entries_and_repeats_with_its_seed()
    {
        var (complete, data) = Clusters(600, seed: 1);
        using var gmm = new GaussianMixtureMethod(seed: 2);
        gmm.Fit(data);
        var imputed = gmm.Transform(data);
        using var again = new GaussianMixtureMethod(seed: 2);
        again.Fit(data);
        TestData.AssertBitForBit(imputed, again.Transform(data));
        for (int i = 0; i < data.GetLength(0); i++)
            for (int j = 0; j < data.GetLength(1); j++)
            {
                Assert.False(double.IsNaN(imputed[i, j]));
                if (!double.IsNaN(data[i, j])) Assert.Equal(BitConverter.DoubleToInt64Bits(data[i, j]), BitConverter.DoubleToInt64Bits(imputed[i, j]));
            }
        using var em = new GaussianEmImputer();
        double mixture = HiddenRmse(complete, data, imputed), single = HiddenRmse(complete, data, em.FitTransform(data));
        Assert.True(gmm.Choice.K > 1, $"K = {gmm.Choice.K}");
        Assert.True(mixture < 0.5 * single, $"mixture {mixture:F4}, one Gaussian {single:F4}, K {gmm.Choice.K}: {string.Join(", ", gmm.Choice.Scores)}");
    }

    [Fact]
    public void As_a_start_candidate_it_joins_the_blend_and_survives_the_model_file()
    {
        var (_, data) = Clusters(300, seed: 3);
        var options = TestData.QuickEMFlow() with { Iterations = 1, EpochsPerIteration = 2 };
        using var imputer = new EMFlowImputer(options, new IStartCandidate[] { new MixtureStart() });
        var completed = imputer.FitTransform(data);
        Assert.Equal(new[] { "gaussian-em", "knn", "gmm" }, imputer.StartNames);
        Assert.Equal(3, imputer.StartWeights.GetLength(1));
        var path = Path.Combine(Path.GetTempPath(), $"emflow-gmm-{Guid.NewGuid():N}.emflow");
        try
        {
            imputer.Save(path);
            using var loaded = EMFlowImputer.Load(path);
            TestData.AssertBitForBit(imputer.Transform(data), loaded.Transform(data));
        }
        finally { File.Delete(path); }
        for (int i = 0; i < data.GetLength(0); i++)
            for (int j = 0; j < data.GetLength(1); j++)
                if (!double.IsNaN(data[i, j])) Assert.Equal(data[i, j], completed[i, j]);
    }
}
