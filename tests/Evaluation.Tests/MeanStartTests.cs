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
