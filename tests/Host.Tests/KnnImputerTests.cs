namespace EMFlow.Tests;

/// <summary>The k-nearest-neighbour baseline: hand-computed neighbours, observed cells kept, bad input.</summary>
public class KnnImputerTests
{
    private static readonly double NaN = double.NaN;

    [Fact]
    public void Imputes_the_mean_of_the_k_nearest_rows_that_observe_the_feature()
    {
        // Columns span [0, 10], [0, 10], [0, 100] so the fitted min-max scaling is a plain division.
        var train = new double[,]
        {
            { 0, 0, 0 },
            { 1, 1, 10 },
            { 2, 2, 20 },
            { 9, 9, 90 },
            { 10, 10, 100 },
            { 0.5, NaN, 60 },   // nearest to the query on column 0, but cannot donate column 1
        };
        using var knn = new KnnImputer(k: 2);
        knn.Fit(train);
        // Query (1.2, ?, ?): scaled distance on column 0 only, times sqrt(3 / 1).
        // Donors for column 2 (all rows): |1.2 − 1| = 0.2, |1.2 − 0.5| = 0.7, |1.2 − 2| = 0.8 → rows 1 and 5 → (10 + 60) / 2.
        // Donors for column 1 (row 5 excluded): rows 1 (0.2) and 2 (0.8) → (1 + 2) / 2.
        var result = knn.Transform(new double[,] { { 1.2, NaN, NaN } });
        Assert.Equal(1.5, result[0, 1], 12);
        Assert.Equal(35.0, result[0, 2], 12);
    }

    [Fact]
    public void Distance_is_scaled_by_the_share_of_commonly_observed_features()
    {
        // Query (0, 0, ?) against row A (0.3, NaN, 0): one common feature, distance sqrt(3/1 · 0.09) = 0.52;
        // row B (0.2, 0.2, 100): two common features, sqrt(3/2 · 0.08) = 0.35: B is nearer although A matches on
        // column 0 almost as well. With k = 1 the result is B's value.
        var train = new double[,]
        {
            { 0.3, NaN, 0 },
            { 0.2, 0.2, 100 },
            { 1, 1, 50 },
            { 0.9, 0, 25 },
        };
        using var knn = new KnnImputer(k: 1);
        knn.Fit(train);
        // Scaling: columns span [0, 1], [0, 1], [0, 100]; the query is on the same scale.
        var result = knn.Transform(new double[,] { { 0, 0, NaN } });
        Assert.Equal(100.0, result[0, 2], 12);
    }

    [Fact]
    public void Keeps_observed_cells_bit_for_bit_and_fills_every_missing_one()
    {
        var (_, data) = TestData.Table(150, seed: 3);
        using var knn = new KnnImputer();
        var completed = knn.FitTransform(data);
        for (int i = 0; i < data.GetLength(0); i++)
            for (int j = 0; j < data.GetLength(1); j++)
            {
                Assert.False(double.IsNaN(completed[i, j]));
                if (!double.IsNaN(data[i, j]))
                    Assert.Equal(BitConverter.DoubleToInt64Bits(data[i, j]), BitConverter.DoubleToInt64Bits(completed[i, j]));
            }
    }

    [Fact]
    public void Beats_the_mean_on_dependent_features()
    {
        var (truth, data) = TestData.Table(400, seed: 5);
        using var knn = new KnnImputer();
        using var mean = new MeanImputer();
        double Rmse(double[,] c)
        {
            double s = 0; int n = 0;
            for (int i = 0; i < data.GetLength(0); i++)
                for (int j = 0; j < data.GetLength(1); j++)
                    if (double.IsNaN(data[i, j])) { var d = (c[i, j] - truth[i, j]) / (j == 3 ? 20 : 1); s += d * d; n++; }
            return Math.Sqrt(s / n);
        }
        Assert.True(Rmse(knn.FitTransform(data)) < 0.8 * Rmse(mean.FitTransform(data)));
    }

    [Fact]
    public void Neighbours_come_from_the_fitted_rows_only()
    {
        var train = new double[,] { { 0, 0 }, { 10, 10 } };
        using var knn = new KnnImputer(k: 1);
        knn.Fit(train);
        // The second query row (1, 1) would be the nearest donor for the first if Transform pooled its rows.
        var result = knn.Transform(new double[,] { { 1.1, NaN }, { 1, 1 } });
        Assert.Equal(0.0, result[0, 1]);
    }

    [Fact]
    public void All_missing_column_is_rejected_naming_the_column()
    {
        var (_, data) = TestData.Table(50);
        for (int i = 0; i < 50; i++) data[i, 2] = NaN;
        using var knn = new KnnImputer();
        var ex = Assert.Throws<ArgumentException>(() => knn.Fit(data));
        Assert.Equal("data", ex.ParamName);
        Assert.Contains("Column 2", ex.Message);
    }

    [Fact]
    public void K_below_one_is_rejected_at_Fit()
    {
        using var knn = new KnnImputer(k: 0);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => knn.Fit(new double[,] { { 1, 2 }, { 3, 4 } }));
        Assert.Equal("K", ex.ParamName);
    }

    [Fact]
    public void Transform_before_Fit_throws()
    {
        using var knn = new KnnImputer();
        Assert.Throws<InvalidOperationException>(() => knn.Transform(new double[,] { { 1, NaN } }));
    }
}
