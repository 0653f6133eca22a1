namespace EMFlow.Tests;

/// <summary>The allocator tuning an application may call at start-up.</summary>
public class NativeHeapTests
{
    [Fact]
    public void Tunes_glibc_on_linux_and_does_nothing_elsewhere()
    {
        // The test hosts run on glibc Linux in CI: there a false means the P/Invoke no longer reaches mallopt.
        bool tuned = NativeHeap.ReuseFreedBlocks();
        Assert.Equal(OperatingSystem.IsLinux(), tuned);
        // Calling it again, or with another threshold, is allowed.
        Assert.Equal(tuned, NativeHeap.ReuseFreedBlocks(1 << 20));
        Assert.Equal(tuned, NativeHeap.ReuseFreedBlocks());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(131071)]
    [InlineData(536870913)]
    [InlineData(-5)]
    public void Rejects_a_threshold_outside_its_range_naming_it(int threshold)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => NativeHeap.ReuseFreedBlocks(threshold));
        Assert.Equal("thresholdBytes", e.ParamName);
        Assert.Contains(threshold.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
    }

    [Fact]
    public void Leaves_an_imputer_bit_for_bit_the_same()
    {
        var data = TestData.Table(200, seed: 3).WithMissing;
        double[,] before;
        using (var imputer = new GaussianEmImputer()) before = imputer.FitTransform(data);
        NativeHeap.ReuseFreedBlocks();
        using var again = new GaussianEmImputer();
        TestData.AssertBitForBit(before, again.FitTransform(data));
    }
}
