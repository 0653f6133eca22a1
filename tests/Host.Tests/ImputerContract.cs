using System.Globalization;
using static EMFlow.Tests.TestData;

namespace EMFlow.Tests;

// The lists are static members of each derived class: xunit looks MemberData up on the class whose tests run, which
// the analyzer, reading this abstract class alone, cannot see.
#pragma warning disable xUnit1015

/// <summary>
/// What every imputer promises, checked the way a C# application would call it. Any assembly can run it on its own
/// imputers: derive from this class, list the names in <c>Imputers</c> and <c>FeatureWiseImputers</c> (static
/// members of the derived class, shadowing these) and build each one in <see cref="Create"/>. Every feature-wise
/// imputer is also held, inside a <see cref="MixedImputer"/>, to the promises on tables with categorical columns
/// (the tests named <c>Mixed_…</c>).
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

    // Mixed tables: the feature-wise imputers inside a MixedImputer, on the x, y, colour, z table and on the graded
    // table (two categorical columns, one coded 10, 20, 30). n = 120 keeps them quick.

    private MixedImputer CreateMixed(string name) => new(Create(name));

    private static (double[,] Data, ColumnKind[] Kinds, string[] Names)[] MixedTables() =>
    [
        (MixedTestData.Table(120, seed: 1).WithMissing, MixedTestData.Kinds, MixedTestData.Names),
        (MixedTestData.Graded(120, seed: 2).WithMissing, MixedTestData.GradedKinds, MixedTestData.GradedNames),
    ];

    /// <summary>The distinct observed values of column j, in increasing order.</summary>
    private static double[] ObservedCategories(double[,] data, int j) =>
        Enumerable.Range(0, data.GetLength(0)).Select(i => data[i, j]).Where(v => !double.IsNaN(v)).Distinct().Order().ToArray();

    [Theory, MemberData("FeatureWiseImputers")]
    public void Mixed_tables_keep_shape_and_observed_cells_bit_for_bit_and_impute_only_categories_seen_at_Fit(string name)
    {
        foreach (var (data, kinds, names) in MixedTables())
        {
            int n = data.GetLength(0), p = data.GetLength(1);
            using var imputer = CreateMixed(name);
            var completed = imputer.FitTransform(data, kinds, columnNames: names);
            Assert.Equal(n, completed.GetLength(0));
            Assert.Equal(p, completed.GetLength(1));
            for (int i = 0; i < n; i++)
                for (int j = 0; j < p; j++)
                {
                    Assert.False(double.IsNaN(completed[i, j]), $"{name}: NaN left at ({i}, {j})");
                    if (!double.IsNaN(data[i, j]))
                        Assert.Equal(BitConverter.DoubleToInt64Bits(data[i, j]), BitConverter.DoubleToInt64Bits(completed[i, j]));
                }
            // New rows, every one of them with a blank category, go through Transform with the same promise.
            var probe = (double[,])data.Clone();
            for (int i = 0; i < n; i++)
                for (int j = 0; j < p; j++)
                    if (kinds[j] == ColumnKind.Categorical && i % 3 == j % 3) probe[i, j] = double.NaN;
            var transformed = imputer.Transform(probe);
            for (int j = 0; j < p; j++)
            {
                if (kinds[j] != ColumnKind.Categorical) continue;
                var seen = ObservedCategories(data, j);
                Assert.Equal(seen, imputer.Categories(j));
                for (int i = 0; i < n; i++)
                {
                    Assert.Contains(completed[i, j], seen);
                    Assert.Contains(transformed[i, j], seen);
                }
            }
        }
    }

    [Theory, MemberData("FeatureWiseImputers")]
    public void Mixed_same_settings_same_output_bit_for_bit(string name)
    {
        var (_, probe) = MixedTestData.Graded(40, seed: 5);
        foreach (var (data, kinds, _) in MixedTables())
        {
            using var a = CreateMixed(name);
            using var b = CreateMixed(name);
            AssertBitForBit(a.FitTransform(data, kinds), b.FitTransform(data, kinds));
            if (kinds.Length != probe.GetLength(1)) continue;
            // Transform refits nothing: the same rows twice give the same bits.
            var first = a.Transform(probe);
            AssertBitForBit(first, b.Transform(probe));
            AssertBitForBit(first, a.Transform(probe));
        }
    }

    [Theory, MemberData("FeatureWiseImputers")]
    public void Mixed_Transform_before_Fit_throws_InvalidOperationException(string name)
    {
        var (_, data) = MixedTestData.Table(20, seed: 1);
        var table = Table.Read(new StringReader(MixedTestData.Csv(data)));
        using var imputer = CreateMixed(name);
        Assert.False(imputer.IsFitted);
        Assert.Contains("Fit", Assert.Throws<InvalidOperationException>(() => imputer.Transform(data)).Message);
        Assert.Contains("Fit", Assert.Throws<InvalidOperationException>(() => imputer.Transform(table)).Message);
        Assert.Throws<InvalidOperationException>(() => imputer.CategoryProbabilities(data, 2));
        Assert.Throws<InvalidOperationException>(() => imputer.Categories(2));
        Assert.Throws<InvalidOperationException>(() => imputer.ColumnKinds);
        Assert.Throws<InvalidOperationException>(() => imputer.ColumnNames);
        Assert.Throws<InvalidOperationException>(() => imputer.EncodedColumnNames);
    }

    [Theory, MemberData("FeatureWiseImputers")]
    public void Mixed_a_category_unseen_at_Fit_is_rejected_naming_the_column_and_the_value(string name)
    {
        var (_, data) = MixedTestData.Graded(120, seed: 2);
        using var imputer = CreateMixed(name);
        imputer.Fit(data, MixedTestData.GradedKinds, columnNames: MixedTestData.GradedNames);
        var colour = Assert.Throws<ArgumentException>(() => imputer.Transform(new double[,] { { 10, 7, 0, 20, 1 } }));
        Assert.Equal("data", colour.ParamName);
        Assert.Contains("'colour'", colour.Message);
        Assert.Contains("7", colour.Message);
        Assert.Contains("0, 1, 2", colour.Message);
        var grade = Assert.Throws<ArgumentException>(() => imputer.Transform(new double[,] { { 10, 1, 0, 25, 1 } }));
        Assert.Contains("'grade'", grade.Message);
        Assert.Contains("25", grade.Message);
        Assert.Contains("10, 20, 30", grade.Message);
        Assert.Throws<ArgumentException>(() => imputer.CategoryProbabilities(new double[,] { { 10, 1, 0, 25, 1 } }, 1));

        // A table is read by category text: a text unseen at Fit is named as text.
        var (_, colours) = MixedTestData.Table(120, seed: 1);
        imputer.Fit(Table.Read(new StringReader(MixedTestData.Csv(colours))));
        var unseen = Table.Read(new StringReader("x,y,colour,z\n10,0.5,red,1\n9,,purple,0.3\n"));
        var text = Assert.Throws<ArgumentException>(() => imputer.Transform(unseen));
        Assert.Equal("table", text.ParamName);
        Assert.Contains("'colour'", text.Message);
        Assert.Contains("'purple'", text.Message);
    }

    [Theory, MemberData("FeatureWiseImputers")]
    public void Mixed_a_categorical_column_with_every_cell_missing_is_rejected_naming_the_column(string name)
    {
        var (_, data) = MixedTestData.Graded(60, seed: 2);
        for (int i = 0; i < 60; i++) data[i, 3] = double.NaN;
        using var imputer = CreateMixed(name);
        var named = Assert.Throws<ArgumentException>(() => imputer.Fit(data, MixedTestData.GradedKinds, columnNames: MixedTestData.GradedNames));
        Assert.Equal("data", named.ParamName);
        Assert.Contains("'grade'", named.Message);
        Assert.Contains("Column 3", Assert.Throws<ArgumentException>(() => imputer.Fit(data, MixedTestData.GradedKinds)).Message);
        // Rejected before the inner imputer fits anything.
        Assert.False(imputer.IsFitted);
        Assert.False(imputer.Inner.IsFitted);
    }

    [Theory, MemberData("FeatureWiseImputers")]
    public void Mixed_a_cancelled_or_failed_refit_leaves_the_previous_model_bit_for_bit(string name)
    {
        var (_, data) = MixedTestData.Table(120, seed: 1);
        var (_, probe) = MixedTestData.Table(40, seed: 3);
        // A refit on another table whose colour has a fourth category: another encoding, five indicators wide.
        var (_, other) = MixedTestData.Table(90, seed: 2);
        for (int i = 0; i < 90; i += 10) other[i, 2] = 3;
        var otherNames = new[] { "a", "b", "c", "d" };
        using var imputer = CreateMixed(name);
        imputer.Fit(data, MixedTestData.Kinds, columnNames: MixedTestData.Names);
        var before = imputer.Transform(probe);
        var probabilities = imputer.CategoryProbabilities(probe, 2);
        var encoded = imputer.EncodedColumnNames.ToArray();

        void AssertUnchanged()
        {
            Assert.True(imputer.IsFitted);
            Assert.Equal(MixedTestData.Names, imputer.ColumnNames);
            Assert.Equal(new double[] { 0, 1, 2 }, imputer.Categories(2));
            Assert.Equal(encoded, imputer.EncodedColumnNames);
            AssertBitForBit(before, imputer.Transform(probe));
            AssertBitForBit(probabilities, imputer.CategoryProbabilities(probe, 2));
        }

        Assert.ThrowsAny<OperationCanceledException>(() => imputer.Fit(other, MixedTestData.Kinds, columnNames: otherNames, cancellationToken: new CancellationToken(canceled: true)));
        AssertUnchanged();
        var blank = (double[,])other.Clone();
        for (int i = 0; i < 90; i++) blank[i, 2] = double.NaN;
        Assert.Throws<ArgumentException>(() => imputer.Fit(blank, MixedTestData.Kinds, columnNames: otherNames));
        AssertUnchanged();
        var infinite = (double[,])other.Clone();
        infinite[89, 3] = double.PositiveInfinity;
        Assert.Throws<ArgumentException>(() => imputer.Fit(infinite, MixedTestData.Kinds, columnNames: otherNames));
        AssertUnchanged();

        using var cts = new CancellationTokenSource();
        try
        {
            imputer.Fit(other, MixedTestData.Kinds, columnNames: otherNames, progress: new InlineProgress(_ => cts.Cancel()), cancellationToken: cts.Token);
        }
        catch (OperationCanceledException)
        {
            AssertUnchanged();
            return;
        }
        // Only an imputer that reports no progress before its last check may finish, and then it holds the new model.
        Assert.Equal(otherNames, imputer.ColumnNames);
        Assert.Equal(new double[] { 0, 1, 2, 3 }, imputer.Categories(2));
    }

    [Theory, MemberData("FeatureWiseImputers")]
    public void Mixed_after_Dispose_every_member_throws_ObjectDisposedException(string name)
    {
        var (_, data) = MixedTestData.Table(60, seed: 1);
        var table = Table.Read(new StringReader(MixedTestData.Csv(data)));
        var imputer = CreateMixed(name);
        imputer.Fit(table);
        imputer.Dispose();
        imputer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => imputer.IsFitted);
        Assert.Throws<ObjectDisposedException>(() => imputer.ColumnKinds);
        Assert.Throws<ObjectDisposedException>(() => imputer.ColumnNames);
        Assert.Throws<ObjectDisposedException>(() => imputer.EncodedColumnNames);
        Assert.Throws<ObjectDisposedException>(() => imputer.Categories(2));
        Assert.Throws<ObjectDisposedException>(() => imputer.Fit(data, MixedTestData.Kinds));
        Assert.Throws<ObjectDisposedException>(() => imputer.Fit(table));
        Assert.Throws<ObjectDisposedException>(() => imputer.FitTransform(data, MixedTestData.Kinds));
        Assert.Throws<ObjectDisposedException>(() => imputer.FitTransform(table));
        Assert.Throws<ObjectDisposedException>(() => imputer.Transform(data));
        Assert.Throws<ObjectDisposedException>(() => imputer.Transform(table));
        Assert.Throws<ObjectDisposedException>(() => imputer.CategoryProbabilities(data, 2));
        Assert.Throws<ObjectDisposedException>(() => imputer.SampleImputations(data, 2));
        Assert.Throws<ObjectDisposedException>(() => imputer.SampleImputations(table, 2));
        // The inner imputer is owned, so it is disposed with the wrapper.
        Assert.Throws<ObjectDisposedException>(() => imputer.Inner.IsFitted);
    }

    [Theory, MemberData("FeatureWiseImputers")]
    public void Mixed_a_csv_table_comes_back_with_observed_text_verbatim_and_the_imputations_of_the_array(string name)
    {
        var (_, data) = MixedTestData.Graded(120, seed: 2);
        var csv = MixedTestData.GradedCsv(data);
        var table = Table.Read(new StringReader(csv), categorical: new[] { "grade" });
        Assert.Equal(new[] { "colour", "grade" }, table.CategoricalColumns);
        Assert.Equal(MixedTestData.GradedKinds, table.ColumnKinds);
        using var imputer = CreateMixed(name);
        var completed = imputer.FitTransform(table);
        Assert.Equal(0, completed.MissingCount);
        var written = new StringWriter();
        completed.Write(written);
        var before = csv.Split('\n');
        var after = written.ToString().Split('\n');
        Assert.Equal(before.Length, after.Length);
        Assert.Equal(before[0], after[0]);

        // The array route with the same settings: the table's codes index the same sorted categories, so both routes
        // impute the same cells alike.
        using var viaArray = CreateMixed(name);
        var expected = viaArray.FitTransform(data, MixedTestData.GradedKinds, columnNames: MixedTestData.GradedNames);
        for (int i = 0; i < data.GetLength(0); i++)
        {
            var b = before[i + 1].Split(',');
            var a = after[i + 1].Split(',');
            Assert.Equal(5, a.Length);
            for (int j = 0; j < 5; j++)
            {
                if (b[j] != "") { Assert.Equal(b[j], a[j]); continue; }
                var imputed = j switch
                {
                    1 => MixedTestData.Colours[(int)expected[i, j]],
                    3 => ((int)expected[i, j]).ToString(CultureInfo.InvariantCulture),
                    _ => expected[i, j].ToString("R", CultureInfo.InvariantCulture),
                };
                Assert.Equal(imputed, a[j]);
            }
        }
    }
}
