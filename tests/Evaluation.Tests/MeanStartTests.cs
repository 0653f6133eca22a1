using static TorchSharp.torch;

namespace EMFlow.Tests;

/// <summary>The column mean as a candidate of EMFlow's start (bench methods only).</summary>
public class MeanStartTests
{
    [Fact]
    public void Fills_each_missing_cell_with_its_columns_observed_mean_and_keeps_observed_cells()
    {
        // Column 0 observed 1 and 3 (mean 2); column 1 observed 10, 20 and 60 (mean 30).
        using var x = tensor(new double[,] { { 1, 10 }, { 3, 0 }, { 0, 20 }, { 0, 60 } }, dtype: ScalarType.Float64);
        using var mask = tensor(new double[,] { { 0, 0 }, { 0, 1 }, { 1, 0 }, { 1, 0 } }, dtype: ScalarType.Float64);
        var (fitted, filled) = new EMFlow.Evaluation.MeanStart().Fit(x, mask, Array.Empty<int>(), 0, null, CancellationToken.None);
        using var _ = fitted;
        var expected = new double[,] { { 1, 10 }, { 3, 30 }, { 2, 20 }, { 2, 60 } };
        Assert.Equal(expected, Tensors.toArray2D(filled));
        // New rows, and the same fill after Save and Load.
        using var rows = tensor(new double[,] { { 0, 5 } }, dtype: ScalarType.Float64);
        using var rowMask = tensor(new double[,] { { 1, 0 } }, dtype: ScalarType.Float64);
        using var loaded = new EMFlow.Evaluation.MeanStart().Load(fitted.Save());
        Assert.Equal(new double[,] { { 2, 5 } }, Tensors.toArray2D(loaded.Fill(rows, rowMask, CancellationToken.None)));
    }
}

/// <summary>Several seeded fits of one method averaged (bench methods only).</summary>
public class AveragedMethodTests
{
    private sealed class Constant(double value) : IImputationMethod
    {
        public int Fits;
        public void Fit(double[,] train) => Fits++;
        public double[,] Transform(double[,] rows)
        {
            var r = (double[,])rows.Clone();
            for (int i = 0; i < r.GetLength(0); i++)
                for (int j = 0; j < r.GetLength(1); j++)
                    if (double.IsNaN(r[i, j])) r[i, j] = value;
            return r;
        }
        public void Dispose() { }
    }

    [Fact]
    public void Averages_each_missing_cell_over_the_runs_and_keeps_observed_cells()
    {
        var a = new Constant(1.0);
        var b = new Constant(4.0);
        using var averaged = new AveragedMethod(new IImputationMethod[] { a, b });
        var rows = new double[,] { { double.NaN, 7 }, { 3, double.NaN } };
        averaged.Fit(rows);
        Assert.Equal(1, a.Fits);
        Assert.Equal(1, b.Fits);
        Assert.Equal(new double[,] { { 2.5, 7 }, { 3, 2.5 } }, averaged.Transform(rows));
        Assert.Throws<ArgumentException>(() => new AveragedMethod(Array.Empty<IImputationMethod>()));
    }
}
