namespace EMFlow.Tests;

public class MultipleImputationTests
{
    // Mean and a Cholesky factor of the covariance of GaussianTable: correlations from 0.3 to 0.8, unequal variances.
    private static readonly double[] Mean = { 1, -2, 0, 5 };
    private static readonly double[,] Factor =
    {
        { 1.0, 0, 0, 0 },
        { 0.8, 0.6, 0, 0 },
        { 0.5, 0.4, 0.7, 0 },
        { 0.6, -0.3, 0.2, 0.5 },
    };

    /// <summary>n rows of a known 4-variate Gaussian, and the same rows with cells NaN completely at random.</summary>
    private static (double[,] Complete, double[,] WithMissing) GaussianTable(int n, int seed, double rate)
    {
        var rng = new Random(seed);
        var complete = new double[n, 4];
        var withMissing = new double[n, 4];
        var e = new double[4];
        for (int i = 0; i < n; i++)
        {
            for (int k = 0; k < 4; k++) e[k] = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            for (int j = 0; j < 4; j++)
            {
                double v = Mean[j];
                for (int k = 0; k <= j; k++) v += Factor[j, k] * e[k];
                complete[i, j] = v;
                withMissing[i, j] = rng.NextDouble() < rate ? double.NaN : v;
            }
        }
        return (complete, withMissing);
    }

    /// <summary>Share of the missing cells of <paramref name="data"/> whose true value lies between the smallest and
    /// the largest of the draws, and the mean width of that interval.</summary>
    private static (double Coverage, double Width) Coverage(double[,] complete, double[,] data, IReadOnlyList<double[,]> draws)
    {
        int cells = 0, covered = 0;
        double width = 0;
        for (int i = 0; i < data.GetLength(0); i++)
            for (int j = 0; j < data.GetLength(1); j++)
            {
                if (!double.IsNaN(data[i, j])) continue;
                double lo = draws.Min(d => d[i, j]), hi = draws.Max(d => d[i, j]);
                cells++;
                width += hi - lo;
                if (lo <= complete[i, j] && complete[i, j] <= hi) covered++;
            }
        return (covered / (double)cells, width / cells);
    }

    [Fact]
    public void GaussianEm_draws_repeat_with_the_seed_differ_from_each_other_and_keep_observed_cells()
    {
        var (_, data) = GaussianTable(300, 1, 0.2);
        using var gem = new GaussianEmImputer();
        gem.Fit(data);
        var draws = gem.SampleImputations(data, 3, seed: 4);
        var again = gem.SampleImputations(data, 3, seed: 4);
        Assert.Equal(3, draws.Count);
        for (int k = 0; k < 3; k++) TestData.AssertBitForBit(draws[k], again[k]);
        Assert.NotEqual(draws[0], draws[1]);
        Assert.NotEqual(draws[0], gem.SampleImputations(data, 1, seed: 5)[0]);
        foreach (var d in draws) TestData.AssertObservedKept(data, d);
        var proper = gem.SampleProperImputations(data, 2, data, seed: 4);
        TestData.AssertBitForBit(proper[1], gem.SampleProperImputations(data, 2, data, seed: 4)[1]);
        foreach (var d in proper) TestData.AssertObservedKept(data, d);
    }

    [Fact]
    public void Draws_throw_before_Fit_and_for_a_count_below_1()
    {
        var (_, data) = GaussianTable(50, 2, 0.2);
        using var gem = new GaussianEmImputer();
        Assert.Throws<InvalidOperationException>(() => gem.SampleImputations(data, 1));
        Assert.Throws<InvalidOperationException>(() => gem.SampleProperImputations(data, 1, data));
        gem.Fit(data);
        Assert.Equal("count", Assert.Throws<ArgumentOutOfRangeException>(() => gem.SampleImputations(data, 0)).ParamName);
        Assert.Equal("count", Assert.Throws<ArgumentOutOfRangeException>(() => gem.SampleProperImputations(data, 0, data)).ParamName);
        using var flow = new EMFlowImputer(TestData.QuickEMFlow());
        Assert.Throws<InvalidOperationException>(() => flow.SampleProperImputations(data, 1, data));
    }

    [Fact]
    public void Proper_draws_check_the_fitted_rows()
    {
        var (_, data) = GaussianTable(60, 3, 0.2);
        using var gem = new GaussianEmImputer();
        gem.Fit(data);
        Assert.Equal("fittedRows", Assert.Throws<ArgumentNullException>(() => gem.SampleProperImputations(data, 1, null!)).ParamName);
        Assert.Equal("fittedRows", Assert.Throws<ArgumentException>(() => gem.SampleProperImputations(data, 1, new double[5, 3])).ParamName);
        Assert.Equal("fittedRows", Assert.Throws<ArgumentException>(() => gem.SampleProperImputations(data, 1, new double[1, 4])).ParamName);
        var neverObserved = (double[,])data.Clone();
        for (int i = 0; i < neverObserved.GetLength(0); i++) neverObserved[i, 2] = double.NaN;
        var ex = Assert.Throws<ArgumentException>(() => gem.SampleProperImputations(data, 1, neverObserved));
        Assert.Equal("fittedRows", ex.ParamName);
        Assert.Contains("Column 2", ex.Message);
    }

    [Fact]
    public void The_central_interval_of_20_conditional_draws_holds_about_90_percent_of_hidden_Gaussian_values()
    {
        // With the Gaussian known up to sampling error, the smallest and largest of 20 draws hold a new value of the
        // same conditional distribution with probability 19/21 = 90.5%; 1000 rows hide about 800 cells, so the share
        // measured has a standard error of about 1%.
        var (_, train) = GaussianTable(4000, 5, 0.2);
        var (complete, test) = GaussianTable(1000, 6, 0.2);
        using var gem = new GaussianEmImputer();
        gem.Fit(train);
        var (plain, plainWidth) = Coverage(complete, test, gem.SampleImputations(test, 20, seed: 1));
        Assert.InRange(plain, 0.87, 0.94);
        var (proper, properWidth) = Coverage(complete, test, gem.SampleProperImputations(test, 20, train, seed: 1));
        Assert.InRange(proper, 0.87, 0.94);
        // 4000 rows pin μ and Σ down: the resampled fits hardly widen the draws.
        Assert.InRange(properWidth / plainWidth, 0.95, 1.08);
    }

    [Fact]
    public void Proper_draws_are_wider_than_plain_ones_when_the_fit_rests_on_few_rows()
    {
        var (_, train) = GaussianTable(25, 7, 0.2);
        var (complete, test) = GaussianTable(400, 8, 0.2);
        using var gem = new GaussianEmImputer();
        gem.Fit(train);
        var (_, plainWidth) = Coverage(complete, test, gem.SampleImputations(test, 20, seed: 2));
        var (_, properWidth) = Coverage(complete, test, gem.SampleProperImputations(test, 20, train, seed: 2));
        Assert.True(properWidth > 1.05 * plainWidth, $"proper width {properWidth:F3} against plain {plainWidth:F3}");
    }

    [Fact]
    public void EMFlow_proper_draws_repeat_with_the_seed_keep_observed_cells_and_cover_hidden_Gaussian_values()
    {
        var (_, train) = GaussianTable(1500, 9, 0.2);
        var (complete, test) = GaussianTable(500, 10, 0.2);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow());
        imputer.Fit(train);
        var draws = imputer.SampleProperImputations(test, 20, train, seed: 3);
        var again = imputer.SampleProperImputations(test, 20, train, seed: 3);
        for (int k = 0; k < 20; k++) TestData.AssertBitForBit(draws[k], again[k]);
        foreach (var d in draws) TestData.AssertObservedKept(test, d);
        Assert.NotEqual(draws[0], imputer.SampleImputations(test, 1, seed: 3)[0]);
        var (coverage, _) = Coverage(complete, test, draws);
        Assert.InRange(coverage, 0.85, 0.95);
        Assert.Equal("count", Assert.Throws<ArgumentOutOfRangeException>(() => imputer.SampleProperImputations(test, 0, train)).ParamName);
        Assert.Equal("fittedRows", Assert.Throws<ArgumentException>(() => imputer.SampleProperImputations(test, 1, new double[1, 4])).ParamName);
    }

    [Fact]
    public void Spread_scales_the_draws_and_is_checked()
    {
        var (_, train) = GaussianTable(600, 11, 0.2);
        var (complete, test) = GaussianTable(300, 12, 0.2);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow());
        imputer.Fit(train);
        var plain = imputer.SampleImputations(test, 20, seed: 2);
        var one = imputer.SampleImputations(test, 20, seed: 2, spread: 1);
        for (int k = 0; k < 20; k++) TestData.AssertBitForBit(plain[k], one[k]);
        var wide = imputer.SampleImputations(test, 20, seed: 2, spread: 2);
        foreach (var d in wide) TestData.AssertObservedKept(test, d);
        var (_, plainWidth) = Coverage(complete, test, plain);
        var (_, wideWidth) = Coverage(complete, test, wide);
        // Twice the latent spread, less what the clamp to the fitted range cuts off.
        Assert.InRange(wideWidth / plainWidth, 1.5, 2.05);
        foreach (var bad in new[] { 0.0, -1, double.NaN, double.PositiveInfinity })
        {
            Assert.Equal("spread", Assert.Throws<ArgumentOutOfRangeException>(() => imputer.SampleImputations(test, 1, spread: bad)).ParamName);
            Assert.Equal("spread", Assert.Throws<ArgumentOutOfRangeException>(() => imputer.SampleProperImputations(test, 1, train, spread: bad)).ParamName);
        }
    }

    [Fact]
    public void ChooseSpread_keeps_the_spread_of_a_right_model_and_repeats()
    {
        // A Gaussian table is what iteration 0's Gaussian describes exactly, so its held-out entries ask for no change.
        var (_, train) = GaussianTable(3000, 13, 0.2);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { ValidationFraction = 0.1 });
        imputer.Fit(train);
        var choice = imputer.ChooseSpread(train);
        Assert.InRange(choice.Spread, 0.85, 1.2);
        Assert.InRange(choice.HeldOutCoverage, 0.87, 0.94);
        Assert.Equal(choice, imputer.ChooseSpread(train));
    }

    [Fact]
    public void ChooseSpread_narrows_draws_that_a_Gaussian_makes_too_wide_for_heavy_tails()
    {
        // One row in ten carries ten times the noise: a Gaussian's conditional variance is the average of the two, so
        // its 90% intervals hold almost every quiet row and the central interval of its draws holds too much.
        var rng = new Random(14);
        int n = 3000;
        var data = new double[n, 3];
        for (int i = 0; i < n; i++)
        {
            double a = Normal(rng), scale = rng.NextDouble() < 0.1 ? 5 : 0.5;
            data[i, 0] = a;
            data[i, 1] = a + scale * Normal(rng);
            data[i, 2] = a - scale * Normal(rng);
            for (int j = 0; j < 3; j++) if (rng.NextDouble() < 0.2) data[i, j] = double.NaN;
        }
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { ValidationFraction = 0.1, InitialImputation = InitialImputation.GaussianEm, Iterations = 1 });
        imputer.Fit(data);
        var choice = imputer.ChooseSpread(data);
        Assert.InRange(choice.HeldOutCoverage, 0.88, 0.93);
        Assert.True(choice.Spread < 0.9, $"spread {choice.Spread:F3}");
    }

    [Fact]
    public void ChooseSpread_checks_its_arguments()
    {
        var (_, train) = GaussianTable(200, 15, 0.2);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow());
        Assert.Throws<InvalidOperationException>(() => imputer.ChooseSpread(train));
        imputer.Fit(train);
        Assert.Equal("draws", Assert.Throws<ArgumentOutOfRangeException>(() => imputer.ChooseSpread(train, draws: 1)).ParamName);
        var (_, other) = GaussianTable(200, 16, 0.2);
        Assert.Equal("fittedRows", Assert.Throws<ArgumentException>(() => imputer.ChooseSpread(other)).ParamName);
        using var noHoldOut = new EMFlowImputer(TestData.QuickEMFlow() with { ValidationFraction = 0 });
        noHoldOut.Fit(train);
        var choice = noHoldOut.ChooseSpread(train);
        Assert.Equal(1.0, choice.Spread);
        Assert.True(double.IsNaN(choice.HeldOutCoverage));
    }

    private static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
