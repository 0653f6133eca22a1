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
    public void A_missing_entry_is_the_responsibility_weighted_mix_of_conditional_means_computed_by_hand()
    {
        // Two components over 3 features; the row observes features 0 and 2 and misses 1.
        double[] w = { 0.3, 0.7 };
        double[][] mu = { new[] { 0.2, 0.5, 0.4 }, new[] { 0.7, 0.3, 0.6 } };
        double[][,] sigma =
        {
            new[,] { { 0.04, 0.01, 0.005 }, { 0.01, 0.03, -0.008 }, { 0.005, -0.008, 0.05 } },
            new[,] { { 0.02, -0.006, 0.004 }, { -0.006, 0.05, 0.012 }, { 0.004, 0.012, 0.03 } },
        };
        var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(2);
            writer.Write(3);
            for (int c = 0; c < 2; c++)
            {
                writer.Write(w[c]);
                foreach (var v in mu[c]) writer.Write(v);
                for (int a = 0; a < 3; a++) for (int b = 0; b < 3; b++) writer.Write(sigma[c][a, b]);
            }
        }
        double x0 = 0.45, x2 = 0.55;
        // Per component: Σ_OO⁻¹ of the 2 × 2 observed block, the conditional mean of feature 1 and the log density of (x0, x2).
        var mean = new double[2];
        var logDensity = new double[2];
        for (int c = 0; c < 2; c++)
        {
            var s = sigma[c];
            double det = s[0, 0] * s[2, 2] - s[0, 2] * s[0, 2];
            double i00 = s[2, 2] / det, i22 = s[0, 0] / det, i02 = -s[0, 2] / det;
            double d0 = x0 - mu[c][0], d2 = x2 - mu[c][2];
            double g0 = i00 * d0 + i02 * d2, g2 = i02 * d0 + i22 * d2;
            mean[c] = mu[c][1] + s[1, 0] * g0 + s[1, 2] * g2;
            logDensity[c] = Math.Log(w[c]) - 0.5 * (d0 * g0 + d2 * g2 + Math.Log(det) + 2 * Math.Log(2 * Math.PI));
        }
        double top = Math.Max(logDensity[0], logDensity[1]);
        double r0 = Math.Exp(logDensity[0] - top), r1 = Math.Exp(logDensity[1] - top);
        double expected = (r0 * mean[0] + r1 * mean[1]) / (r0 + r1);

        using var fitted = new MixtureStart().Load(stream.ToArray());
        using var x = Tensors.ofArray2D(new[,] { { x0, 0.0, x2 } });
        using var mask = Tensors.ofArray2D(new[,] { { 0.0, 1.0, 0.0 } });
        using var filled = fitted.Fill(x, mask, CancellationToken.None);
        var got = Tensors.toArray2D(filled);
        Assert.Equal(expected, got[0, 1], 12);
        Assert.Equal(x0, got[0, 0]);
        Assert.Equal(x2, got[0, 2]);
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
