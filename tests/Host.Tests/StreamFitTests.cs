using static EMFlow.Tests.TestData;
namespace EMFlow.Tests;

/// <summary><see cref="EMFlowImputer.FitStream"/>: a fit that reads its table block by block, as a C# application
/// with a file too large for memory would call it.</summary>
public sealed class StreamFitTests
{
    /// <summary>The table's rows as blocks of <paramref name="rows"/>, counting the passes made over it.</summary>
    private sealed class Blocks(double[,] table, int rows)
    {
        public int Passes { get; private set; }

        public IEnumerable<double[,]> Read()
        {
            Passes++;
            int n = table.GetLength(0), p = table.GetLength(1);
            for (int start = 0; start < n; start += rows)
            {
                int m = Math.Min(rows, n - start);
                var block = new double[m, p];
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < p; j++) block[i, j] = table[start + i, j];
                yield return block;
            }
        }
    }

    private static double Rmse(double[,] complete, double[,] withMissing, double[,] imputed)
    {
        double sum = 0;
        int count = 0;
        for (int i = 0; i < complete.GetLength(0); i++)
            for (int j = 0; j < complete.GetLength(1); j++)
                if (double.IsNaN(withMissing[i, j]))
                {
                    double d = imputed[i, j] - complete[i, j];
                    sum += d * d;
                    count++;
                }
        return Math.Sqrt(sum / count);
    }

    [Fact]
    public void A_streamed_fit_reads_the_table_once_per_epoch_and_imputes_about_as_well_as_the_whole_table_fit()
    {
        var (complete, data) = TestData.Table(600, seed: 2);
        var options = QuickEMFlow() with { ValidationFraction = 0.1 };
        var blocks = new Blocks(data, 128);
        using var streamed = new EMFlowImputer(options);
        streamed.FitStream(blocks.Read, new[] { "a", "b", "c", "d" }, sampleRows: 250);
        // One pass for the scale and the sample, then one per epoch of each iteration run.
        Assert.Equal(1 + streamed.IterationsRun * options.EpochsPerIteration, blocks.Passes);
        Assert.Equal(new[] { "a", "b", "c", "d" }, streamed.ColumnNames);

        var imputed = streamed.Transform(data);
        for (int i = 0; i < 600; i++)
            for (int j = 0; j < 4; j++)
            {
                Assert.False(double.IsNaN(imputed[i, j]));
                if (!double.IsNaN(data[i, j])) Assert.Equal(BitConverter.DoubleToInt64Bits(data[i, j]), BitConverter.DoubleToInt64Bits(imputed[i, j]));
            }
        using var whole = new EMFlowImputer(options);
        using var mean = new MeanImputer();
        double rmse = Rmse(complete, data, imputed), wholeRmse = Rmse(complete, data, whole.FitTransform(data)), meanRmse = Rmse(complete, data, mean.FitTransform(data));
        Assert.True(rmse < 0.8 * meanRmse, $"streamed {rmse:F4}, mean {meanRmse:F4}");
        Assert.True(rmse < 1.25 * wholeRmse, $"streamed {rmse:F4}, whole-table fit {wholeRmse:F4}");
    }

    [Fact]
    public void Same_seed_same_model_bit_for_bit_and_another_seed_another_one()
    {
        var (_, data) = TestData.Table(300, seed: 3);
        var (_, probe) = TestData.Table(40, seed: 4);
        double[,] Fit(long seed)
        {
            using var imputer = new EMFlowImputer(QuickEMFlow(seed));
            imputer.FitStream(new Blocks(data, 70).Read, sampleRows: 120);
            return imputer.Transform(probe);
        }
        var first = Fit(7);
        AssertBitForBit(first, Fit(7));
        var other = Fit(8);
        Assert.Contains(Enumerable.Range(0, 40 * 4), k => first[k / 4, k % 4] != other[k / 4, k % 4]);
    }

    [Fact]
    public void Bad_blocks_are_rejected_naming_the_column_and_the_row_and_a_failed_fit_keeps_the_model()
    {
        var (_, data) = TestData.Table(200, seed: 5);
        var (_, probe) = TestData.Table(30, seed: 6);
        using var imputer = new EMFlowImputer(QuickEMFlow());
        imputer.FitStream(new Blocks(data, 64).Read);
        var before = imputer.Transform(probe);

        var infinite = (double[,])data.Clone();
        infinite[130, 2] = double.PositiveInfinity;
        var e = Assert.Throws<ArgumentException>(() => imputer.FitStream(new Blocks(infinite, 64).Read, new[] { "a", "b", "c", "d" }));
        Assert.Contains("'c'", e.Message);
        Assert.Contains("row 130", e.Message);

        IEnumerable<double[,]> Ragged()
        {
            yield return new double[3, 4];
            yield return new double[3, 5];
        }
        Assert.Contains("5", Assert.Throws<ArgumentException>(() => imputer.FitStream(Ragged)).Message);

        var blank = (double[,])data.Clone();
        for (int i = 0; i < 200; i++) blank[i, 1] = double.NaN;
        Assert.Contains("Column 1", Assert.Throws<ArgumentException>(() => imputer.FitStream(new Blocks(blank, 64).Read)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => imputer.FitStream(new Blocks(data, 64).Read, sampleRows: 1));
        Assert.ThrowsAny<OperationCanceledException>(() => imputer.FitStream(new Blocks(data, 64).Read, cancellationToken: new CancellationToken(true)));

        AssertBitForBit(before, imputer.Transform(probe));
        Assert.Throws<InvalidOperationException>(() => imputer.ChooseSpread(data));
    }
}
