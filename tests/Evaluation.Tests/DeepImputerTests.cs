namespace EMFlow.Tests;

public class DeepImputerTests
{
    [Fact]
    public void Invalid_GAIN_and_MIWAE_settings_throw_at_Fit_naming_the_setting()
    {
        var (_, data) = TestData.Table(40);
        using var gain = new GainImputer(new GainOptions { HintRate = 1.5 });
        Assert.Equal("HintRate", Assert.Throws<ArgumentOutOfRangeException>(() => gain.Fit(data)).ParamName);
        using var miwae = new MiwaeImputer(new MiwaeOptions { Samples = 0 });
        Assert.Equal("Samples", Assert.Throws<ArgumentOutOfRangeException>(() => miwae.Fit(data)).ParamName);
    }

    [Fact]
    public void GAIN_learns_something_beyond_its_initial_noise()
    {
        var (complete, data) = TestData.Table(400);
        using var briefly = new GainImputer(new GainOptions { Iterations = 1, Seed = 1, TorchThreads = 1 });
        using var trained = new GainImputer(new GainOptions { Iterations = 1500, Seed = 1, TorchThreads = 1 });
        Assert.True(Error(complete, trained.FitTransform(data), data) < Error(complete, briefly.FitTransform(data), data));
    }

    [Fact]
    public void MIWAE_bound_rises_and_multiple_imputations_differ_but_keep_observed_cells()
    {
        var (_, data) = TestData.Table(300);
        using var miwae = new MiwaeImputer(new MiwaeOptions { Epochs = 15, Hidden = 32, ImputeSamples = 50, Seed = 2, TorchThreads = 1 });
        miwae.Fit(data);
        Assert.True(miwae.BoundHistory[^1] > miwae.BoundHistory[0], "the importance-weighted bound increases");
        var draws = miwae.SampleImputations(data, 2, seed: 4);
        Assert.NotEqual(draws[0], draws[1]);
        for (int i = 0; i < 300; i++)
            for (int j = 0; j < 4; j++)
                if (!double.IsNaN(data[i, j])) Assert.Equal(data[i, j], draws[0][i, j]);
    }

    /// <summary>Mean squared error over the cells missing in <paramref name="withMissing"/>, each feature divided by its spread.</summary>
    private static double Error(double[,] truth, double[,] imputed, double[,] withMissing)
    {
        double sum = 0; int count = 0;
        for (int j = 0; j < truth.GetLength(1); j++)
        {
            double sd = Math.Sqrt(Enumerable.Range(0, truth.GetLength(0)).Select(i => truth[i, j]).Select(v => v * v).Average()
                                  - Math.Pow(Enumerable.Range(0, truth.GetLength(0)).Select(i => truth[i, j]).Average(), 2));
            for (int i = 0; i < truth.GetLength(0); i++)
                if (double.IsNaN(withMissing[i, j])) { double d = (imputed[i, j] - truth[i, j]) / sd; sum += d * d; count++; }
        }
        return sum / count;
    }
}
