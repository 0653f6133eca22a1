namespace EMFlow.Tests;

/// <summary>Scoring.FitAndScore, the fit-time-score step shared by the table and image protocols and the benchmarks.</summary>
public class ScoringTests
{
    /// <summary>Fills every NaN with a constant and records what it was given.</summary>
    private sealed class Constant(double fill, int? rows = null) : IImputationMethod
    {
        public double[,]? Fitted { get; private set; }
        public int Transforms { get; private set; }

        public void Fit(double[,] train) => Fitted = (double[,])train.Clone();

        public double[,] Transform(double[,] x)
        {
            Transforms++;
            var r = new double[rows ?? x.GetLength(0), x.GetLength(1)];
            for (int i = 0; i < r.GetLength(0); i++)
                for (int j = 0; j < r.GetLength(1); j++)
                    r[i, j] = i < x.GetLength(0) && !double.IsNaN(x[i, j]) ? x[i, j] : fill;
            return r;
        }

        public void Dispose() { }
    }

    private static readonly double[,] Truth = { { 1.0, 2.0 }, { 3.0, 5.0 } };
    private static readonly bool[,] Hidden = { { true, false }, { false, true } };
    private static readonly double[,] Rows = { { double.NaN, 2.0 }, { 3.0, double.NaN } };
    private static readonly double[,] Train = { { 0.0, 1.0 }, { double.NaN, 4.0 } };

    [Fact]
    public void Fits_on_the_training_rows_imputes_the_rows_once_and_scores_the_hidden_cells()
    {
        var method = new Constant(fill: 4.0);
        var s = Scoring.FitAndScore(method, Train, Rows, Truth, Hidden);
        Assert.Equal(Train, method.Fitted);
        Assert.Equal(1, method.Transforms);
        Assert.Equal(new[,] { { 4.0, 2.0 }, { 3.0, 4.0 } }, s.Imputed);
        // Errors 4 − 1 = 3 and 4 − 5 = −1: sqrt((9 + 1) / 2).
        Assert.Equal(Math.Sqrt(5.0), s.Rmse);
        Assert.Equal(2, s.Scored);
        Assert.True(s.FitSeconds >= 0 && s.TransformSeconds >= 0);
    }

    [Fact]
    public void A_column_scale_divides_each_columns_errors()
    {
        var s = Scoring.FitAndScore(new Constant(fill: 4.0), Train, Rows, Truth, Hidden, columnScale: new[] { 3.0, 0.5 });
        // 3 / 3 = 1 and −1 / 0.5 = −2: sqrt((1 + 4) / 2).
        Assert.Equal(Math.Sqrt(2.5), s.Rmse);
        Assert.Equal(2, s.Scored);
    }

    [Fact]
    public void Nothing_hidden_scores_NaN_over_no_cell()
    {
        var s = Scoring.FitAndScore(new Constant(fill: 4.0), Train, Rows, Truth, new bool[2, 2]);
        Assert.True(double.IsNaN(s.Rmse));
        Assert.Equal(0, s.Scored);
    }

    [Fact]
    public void An_imputer_is_fitted_and_left_to_its_owner()
    {
        using var mean = new MeanImputer();
        var s = Scoring.FitAndScore(mean, Train, Rows, Truth, Hidden);
        Assert.True(mean.IsFitted);
        // The column means of the training rows are 0 and 2.5: errors −1 and −2.5.
        Assert.Equal(Math.Sqrt((1 + 6.25) / 2), s.Rmse, 12);
        Assert.Equal(mean.Transform(Rows), s.Imputed);
    }

    [Fact]
    public void Rows_of_another_shape_throw_with_the_methods_name()
    {
        var e = Assert.Throws<InvalidOperationException>(() =>
            Scoring.FitAndScore(new Constant(fill: 0, rows: 3), Train, Rows, Truth, Hidden, name: "short"));
        Assert.Contains("Method 'short' returned 3 x 2 for 2 x 2 rows", e.Message);
    }

    [Fact]
    public void The_table_protocol_scores_each_fold_as_the_helper_does()
    {
        var data = TestData.Table(60).Complete;
        var options = new ProtocolOptions { Seed = 2, Folds = 3, Mechanism = Mechanism.Mcar(0.25) };
        var result = Protocol.Run(data, new[] { Method.Standard("mean") }, options);
        for (int f = 0; f < 3; f++)
        {
            var split = Protocol.Split(result.Table, result.Folds, f);
            var truth = new double[split.TestRowIds.Length, result.Table.Values.GetLength(1)];
            var hidden = new bool[truth.GetLength(0), truth.GetLength(1)];
            for (int r = 0; r < truth.GetLength(0); r++)
                for (int j = 0; j < truth.GetLength(1); j++)
                    (truth[r, j], hidden[r, j]) = (result.Table.Values[split.TestRowIds[r], j], result.Table.Hidden[split.TestRowIds[r], j]);
            using var mean = new MeanImputer();
            var s = Scoring.FitAndScore(mean, split.TrainRows, split.TestRows, truth, hidden);
            var fold = result.Methods[0].Folds[f];
            Assert.Equal(s.Rmse, fold.Rmse);
            Assert.Equal(s.Scored, fold.Scored);
            Assert.Equal(s.Rmse, Protocol.HiddenRmse(result.Table, split, s.Imputed));
        }
    }
}
