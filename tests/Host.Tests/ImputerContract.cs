namespace EMFlow.Tests;

// The lists are static members of each derived class: xunit looks MemberData up on the class whose tests run, which
// the analyzer, reading this abstract class alone, cannot see.
#pragma warning disable xUnit1015

/// <summary>
/// What every imputer promises, checked the way a C# application would call it. Any assembly can run it on its own
/// imputers: derive from this class, list the names in <c>Imputers</c> and <c>FeatureWiseImputers</c> (static
/// members of the derived class, shadowing these) and build each one in <see cref="Create"/>.
/// </summary>
public abstract class ImputerContract
{
    /// <summary>Builds a fresh imputer for a name from the derived class's lists.</summary>
    protected abstract Imputer Create(string name);

    [Theory, MemberData("Imputers")]
    public void Keeps_shape_and_observed_cells_bit_for_bit_and_leaves_no_NaN(string name)
    {
        var (_, data) = TestData.Table();
        using var imputer = Create(name);
        var completed = imputer.FitTransform(data);
        Assert.Equal(data.GetLength(0), completed.GetLength(0));
        Assert.Equal(data.GetLength(1), completed.GetLength(1));
        for (int i = 0; i < data.GetLength(0); i++)
            for (int j = 0; j < data.GetLength(1); j++)
            {
                Assert.False(double.IsNaN(completed[i, j]), $"NaN left at ({i}, {j})");
                if (!double.IsNaN(data[i, j]))
                    Assert.Equal(BitConverter.DoubleToInt64Bits(data[i, j]), BitConverter.DoubleToInt64Bits(completed[i, j]));
            }
    }

    [Theory, MemberData("Imputers")]
    public void Same_settings_same_output(string name)
    {
        var (_, data) = TestData.Table(120);
        using var a = Create(name);
        using var b = Create(name);
        Assert.Equal(a.FitTransform(data), b.FitTransform(data));
    }

    [Theory, MemberData("Imputers")]
    public void Transform_before_Fit_throws_InvalidOperationException(string name)
    {
        using var imputer = Create(name);
        var ex = Assert.Throws<InvalidOperationException>(() => imputer.Transform(new double[,] { { 1, double.NaN } }));
        Assert.Contains("Fit", ex.Message);
    }

    [Theory, MemberData("Imputers")]
    public void All_missing_column_is_rejected_naming_the_column(string name)
    {
        var (_, data) = TestData.Table(50);
        for (int i = 0; i < 50; i++) data[i, 2] = double.NaN;
        using var imputer = Create(name);
        var ex = Assert.Throws<ArgumentException>(() => imputer.Fit(data));
        Assert.Equal("data", ex.ParamName);
        Assert.Contains("Column 2", ex.Message);
    }

    [Theory, MemberData("Imputers")]
    public void Infinite_values_are_rejected(string name)
    {
        var (_, data) = TestData.Table(50);
        data[3, 1] = double.PositiveInfinity;
        using var imputer = Create(name);
        var ex = Assert.Throws<ArgumentException>(() => imputer.Fit(data));
        Assert.Contains("(3, 1)", ex.Message);
    }

    [Theory, MemberData("Imputers")]
    public void Wrong_column_count_at_Transform_is_rejected(string name)
    {
        var (_, data) = TestData.Table(60);
        using var imputer = Create(name);
        imputer.Fit(data);
        var ex = Assert.Throws<ArgumentException>(() => imputer.Transform(new double[2, 3]));
        Assert.Contains("Expected 4 features, got 3", ex.Message);
    }

    [Theory, MemberData("FeatureWiseImputers")]
    public void All_missing_rows_and_constant_columns_are_imputed(string name)
    {
        var (_, data) = TestData.Table(80);
        for (int j = 0; j < 4; j++) data[5, j] = double.NaN;
        for (int i = 0; i < 80; i++) data[i, 1] = i % 7 == 0 ? double.NaN : 3.5;
        using var imputer = Create(name);
        var completed = imputer.FitTransform(data);
        for (int j = 0; j < 4; j++) Assert.True(double.IsFinite(completed[5, j]));
        Assert.Equal(3.5, completed[7, 1], 6);
    }

    [Theory, MemberData("Imputers")]
    public void Explicit_mask_overload_ignores_values_under_the_mask(string name)
    {
        var (complete, withNaN) = TestData.Table(100);
        var missing = new bool[100, 4];
        var garbage = (double[,])complete.Clone();
        for (int i = 0; i < 100; i++)
            for (int j = 0; j < 4; j++)
                if (double.IsNaN(withNaN[i, j])) { missing[i, j] = true; garbage[i, j] = 1e6; }
        using var a = Create(name);
        using var b = Create(name);
        var viaMask = a.FitTransform(garbage, missing);
        var viaNaN = b.FitTransform(withNaN);
        for (int i = 0; i < 100; i++)
            for (int j = 0; j < 4; j++)
                Assert.Equal(viaNaN[i, j], viaMask[i, j], 9);
    }

    /// <summary>Reports on the fitting thread, so a cancellation it requests lands before the next check.</summary>
    private sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    [Theory, MemberData("Imputers")]
    public void A_refit_cancelled_midway_leaves_the_previous_model_bit_for_bit(string name)
    {
        var (_, data) = TestData.Table(80);
        var (_, other) = TestData.Table(90, seed: 2);
        var (_, probe) = TestData.Table(30, seed: 3);
        using var imputer = Create(name);
        imputer.Fit(data);
        var before = imputer.Transform(probe);
        using var cts = new CancellationTokenSource();
        try
        {
            imputer.Fit(other, progress: new InlineProgress(_ => cts.Cancel()), cancellationToken: cts.Token);
        }
        catch (OperationCanceledException)
        {
            var after = imputer.Transform(probe);
            for (int i = 0; i < before.GetLength(0); i++)
                for (int j = 0; j < before.GetLength(1); j++)
                    Assert.Equal(BitConverter.DoubleToInt64Bits(before[i, j]), BitConverter.DoubleToInt64Bits(after[i, j]));
            return;
        }
        // Only an imputer that reports no progress before its last check may finish: nothing could cancel it midway.
        Assert.True(imputer.IsFitted);
    }
}
