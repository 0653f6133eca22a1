using EMFlow.Evaluation;

namespace EMFlow.Tests;

/// <summary>The evaluation protocol: what methods may see, folds, masks, scoring, tables with real missing cells.</summary>
public class EvaluationTests
{
    /// <summary>Records every table given to Fit and Transform; imputes a constant.</summary>
    private sealed class Spy : IImputationMethod
    {
        public static readonly List<double[,]> Fitted = new();
        public static readonly List<double[,]> Transformed = new();
        public const double Fill = 0.5;

        public void Fit(double[,] train) => Fitted.Add((double[,])train.Clone());

        public double[,] Transform(double[,] rows)
        {
            Transformed.Add((double[,])rows.Clone());
            var r = (double[,])rows.Clone();
            for (int i = 0; i < r.GetLength(0); i++)
                for (int j = 0; j < r.GetLength(1); j++)
                    if (double.IsNaN(r[i, j])) r[i, j] = Fill;
            return r;
        }

        public void Dispose() { }
    }

    /// <summary>(n, 3) with x[i, j] = i + 1000 j: after min-max scaling each observed cell encodes its row, i / (n − 1).</summary>
    private static double[,] RowCoded(int n)
    {
        var x = new double[n, 3];
        for (int i = 0; i < n; i++) for (int j = 0; j < 3; j++) x[i, j] = i + 1000 * j;
        return x;
    }

    private static IEnumerable<int> RowsIn(double[,] t, int n)
    {
        for (int i = 0; i < t.GetLength(0); i++)
            for (int j = 0; j < t.GetLength(1); j++)
                if (!double.IsNaN(t[i, j])) yield return (int)Math.Round(t[i, j] * (n - 1));
    }

    private static EvaluationResult RunSpy(double[,] data, ProtocolOptions options)
    {
        Spy.Fitted.Clear();
        Spy.Transformed.Clear();
        return Protocol.Run(data, new[] { new Method("spy", () => new Spy()) }, options);
    }

    [Fact]
    public void The_test_folds_rows_never_reach_Fit_and_their_hidden_cells_reach_Transform_as_NaN()
    {
        const int n = 53;
        var result = RunSpy(RowCoded(n), new ProtocolOptions { Seed = 4, Mechanism = Mechanism.Mcar(0.3) });
        Assert.Equal(5, Spy.Fitted.Count);
        for (int f = 0; f < 5; f++)
        {
            var test = Enumerable.Range(0, n).Where(i => result.Folds[i] == f).ToHashSet();
            var seenAtFit = RowsIn(Spy.Fitted[f], n).ToHashSet();
            Assert.Empty(seenAtFit.Intersect(test));
            Assert.Equal(n - test.Count, Spy.Fitted[f].GetLength(0));
            // Transform gets the test rows, in order, with exactly the hidden cells set to NaN.
            var rows = test.OrderBy(i => i).ToArray();
            var t = Spy.Transformed[f];
            Assert.Equal(rows.Length, t.GetLength(0));
            for (int r = 0; r < rows.Length; r++)
                for (int j = 0; j < 3; j++)
                {
                    Assert.Equal(result.Table.Hidden[rows[r], j], double.IsNaN(t[r, j]));
                    if (!double.IsNaN(t[r, j])) Assert.Equal(rows[r], (int)Math.Round(t[r, j] * (n - 1)));
                }
        }
    }

    [Fact]
    public void Folds_partition_the_rows_into_near_equal_parts()
    {
        var folds = Protocol.AssignFolds(103, 5, seed: 9);
        Assert.Equal(103, folds.Length);
        var sizes = Enumerable.Range(0, 5).Select(f => folds.Count(x => x == f)).ToArray();
        Assert.All(folds, f => Assert.InRange(f, 0, 4));
        Assert.All(sizes, s => Assert.InRange(s, 20, 21));
        // The shuffle is not the identity order (fold = row mod 5 would be the unshuffled assignment).
        Assert.NotEqual(Enumerable.Range(0, 103).Select(i => i % 5), folds);

        RunSpy(RowCoded(40), new ProtocolOptions { Seed = 1 });
        var imputedRows = Spy.Transformed.Sum(t => t.GetLength(0));
        Assert.Equal(40, imputedRows);
    }

    [Fact]
    public void Same_seed_gives_the_same_folds_and_masks_and_another_seed_does_not()
    {
        var data = TestData.Table(120).Complete;
        foreach (var mech in new[] { Mechanism.Mcar(0.2), Mechanism.Mar(), Mechanism.Mnar() })
        {
            var a = Protocol.Prepare(data, new ProtocolOptions { Seed = 3, Mechanism = mech });
            var b = Protocol.Prepare(data, new ProtocolOptions { Seed = 3, Mechanism = mech });
            var c = Protocol.Prepare(data, new ProtocolOptions { Seed = 4, Mechanism = mech });
            Assert.Equal(a.Hidden, b.Hidden);
            Assert.NotEqual(a.Hidden, c.Hidden);
        }
        Assert.Equal(Protocol.AssignFolds(120, 5, 3), Protocol.AssignFolds(120, 5, 3));
        Assert.NotEqual(Protocol.AssignFolds(120, 5, 3), Protocol.AssignFolds(120, 5, 4));
    }

    [Fact]
    public void Scales_to_the_unit_interval_and_scores_hidden_entries_only()
    {
        var data = TestData.Table(100).Complete;
        var result = RunSpy(data, new ProtocolOptions { Seed = 2, Folds = 4 });
        var t = result.Table;
        for (int j = 0; j < 4; j++)
        {
            var col = Enumerable.Range(0, 100).Select(i => t.Values[i, j]).ToArray();
            Assert.Equal(0.0, col.Min(), 12);
            Assert.Equal(1.0, col.Max(), 12);
        }
        for (int f = 0; f < 4; f++)
        {
            double s = 0; int count = 0;
            for (int i = 0; i < 100; i++)
                for (int j = 0; j < 4; j++)
                    if (result.Folds[i] == f && t.Hidden[i, j]) { s += Math.Pow(Spy.Fill - t.Values[i, j], 2); count++; }
            var fold = result.Methods[0].Folds[f];
            Assert.Equal(count, fold.Scored);
            Assert.Equal(Math.Sqrt(s / count), fold.Rmse, 12);
        }
        var rmses = result.Methods[0].Folds.Select(f => f.Rmse).ToArray();
        Assert.Equal(rmses.Average(), result.Methods[0].MeanRmse, 12);
        Assert.InRange(t.HiddenRate, 0.12, 0.28);
    }

    [Fact]
    public void MAR_never_hides_the_leading_seventy_percent_of_features_and_reports_its_rate()
    {
        var data = TestData.Table(400).Complete;
        var t = Protocol.Prepare(data, new ProtocolOptions { Seed = 1, Mechanism = Mechanism.Mar() });
        int lead = Missingness.marObservedFeatures(4);
        for (int i = 0; i < 400; i++) for (int j = 0; j < lead; j++) Assert.False(t.Hidden[i, j]);
        Assert.InRange(t.TrailingHiddenRate, 0.2, 0.8);
        Assert.Equal(t.TrailingHiddenRate * (4 - lead) / 4.0, t.HiddenRate, 10);
    }

    [Fact]
    public void MAR_at_a_set_rate_hides_about_that_share_of_the_trailing_features()
    {
        var data = TestData.Table(2000).Complete;
        var t = Protocol.Prepare(data, new ProtocolOptions { Seed = 2, Mechanism = Mechanism.Mar(0.26) });
        int lead = Missingness.marObservedFeatures(4);
        for (int i = 0; i < 2000; i++) for (int j = 0; j < lead; j++) Assert.False(t.Hidden[i, j]);
        Assert.InRange(t.TrailingHiddenRate, 0.23, 0.29);
        Assert.Equal("mar0.26", Mechanism.Mar(0.26).ToString());
        Assert.Equal("mar", Mechanism.Mar().ToString());
        Assert.Equal("trailingRate", Assert.Throws<ArgumentOutOfRangeException>(() => Mechanism.Mar(1.0)).ParamName);
    }

    [Fact]
    public void Explicit_mask_and_folds_are_used_as_given()
    {
        var data = RowCoded(20);
        var mask = new bool[20, 3];
        mask[0, 1] = mask[7, 2] = mask[19, 0] = true;
        var ids = Enumerable.Range(0, 20).Select(i => i / 10).ToArray();
        var result = RunSpy(data, new ProtocolOptions { Folds = 2, Mask = mask, FoldIds = ids });
        Assert.Equal(mask, result.Table.Hidden);
        Assert.Equal(ids, result.Folds);
        Assert.Equal("mask-file", result.Mechanism);
        Assert.Equal(Enumerable.Range(10, 10), RowsIn(Spy.Fitted[0], 20).Distinct().OrderBy(i => i));
    }

    [Fact]
    public void Mask_and_fold_files_round_trip()
    {
        var dir = Directory.CreateTempSubdirectory();
        try
        {
            var mask = new bool[,] { { true, false }, { false, false }, { false, true } };
            var maskPath = Path.Combine(dir.FullName, "mask.csv");
            CsvTable.WriteMask(maskPath, mask);
            Assert.Equal(mask, CsvTable.ReadMask(maskPath));
            var foldsPath = Path.Combine(dir.FullName, "folds.csv");
            File.WriteAllLines(foldsPath, new[] { "fold", "0", "1", "1" });
            Assert.Equal(new[] { 0, 1, 1 }, CsvTable.ReadFolds(foldsPath));
            File.WriteAllLines(maskPath, new[] { "a,b", "0,2" });
            Assert.Throws<FormatException>(() => CsvTable.ReadMask(maskPath));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Real_missing_cells_drop_mostly_missing_columns_and_empty_rows_and_are_never_scored()
    {
        var data = TestData.Table(60).Complete;
        var x = new double[60, 5];
        for (int i = 0; i < 60; i++)
        {
            for (int j = 0; j < 4; j++) x[i, j] = data[i, j];
            x[i, 4] = i % 10 < 6 ? double.NaN : i;   // 60% unknown: dropped
        }
        for (int j = 0; j < 5; j++) x[5, j] = double.NaN;                  // no known cell: dropped
        for (int i = 10; i < 30; i++) x[i, 1] = double.NaN;                // a third unknown: kept, never hidden
        var result = RunSpy(x, new ProtocolOptions { Seed = 0, Mechanism = Mechanism.Mcar(0.3) });
        var t = result.Table;
        Assert.Equal(new[] { 4 }, t.DroppedColumns);
        Assert.Equal(1, t.DroppedRows);
        Assert.DoesNotContain(5, t.KeptRows);
        Assert.Equal(59, t.Values.GetLength(0));
        Assert.Equal(4, t.Values.GetLength(1));
        for (int r = 0; r < 59; r++)
            for (int j = 0; j < 4; j++)
                if (double.IsNaN(t.Values[r, j])) Assert.False(t.Hidden[r, j]);
        Assert.True(t.UnknownRate > 0.05);
        Assert.All(result.Methods[0].Folds, f => Assert.False(double.IsNaN(f.Rmse)));
    }

    [Fact]
    public void Bad_folds_and_settings_throw_naming_the_parameter()
    {
        var data = RowCoded(10);
        var ex = Assert.Throws<ArgumentException>(() => RunSpy(data, new ProtocolOptions { Folds = 2, FoldIds = new int[9] }));
        Assert.Equal("options", ex.ParamName);
        ex = Assert.Throws<ArgumentException>(() => RunSpy(data, new ProtocolOptions { Folds = 2, FoldIds = Enumerable.Repeat(3, 10).ToArray() }));
        Assert.Contains("Fold ids", ex.Message);
        var range = Assert.Throws<ArgumentOutOfRangeException>(() => Protocol.AssignFolds(10, 1, 0));
        Assert.Equal("folds", range.ParamName);
        range = Assert.Throws<ArgumentOutOfRangeException>(() => Mechanism.Mcar(1.5));
        Assert.Equal("rate", range.ParamName);
    }

    [Fact]
    public void Standard_methods_run_end_to_end_and_knn_beats_the_mean()
    {
        var data = TestData.Table(150).Complete;
        var methods = new[] { "mean", "median", "knn", "gaussian-em", "forest" }.Select(m => Method.Standard(m)).ToList();
        methods.Add(Method.Of("emflow", () => new EMFlowImputer(TestData.QuickEMFlow())));
        var result = Protocol.Run(data, methods, new ProtocolOptions { Seed = 5, Folds = 3 });
        Assert.All(result.Methods, m => Assert.InRange(m.MeanRmse, 0.0, 0.5));
        Assert.All(result.Methods, m => Assert.True(m.PeakWorkingSetBytes > 0));
        var rmse = result.Methods.ToDictionary(m => m.Method, m => m.MeanRmse);
        Assert.True(rmse["knn"] < rmse["mean"], $"knn {rmse["knn"]} mean {rmse["mean"]}");
        Assert.True(rmse["forest"] < rmse["mean"], $"forest {rmse["forest"]} mean {rmse["mean"]}");
        Assert.Throws<ArgumentException>(() => Method.Standard("random-forest"));
    }

    [Fact]
    public void Every_listed_method_name_is_known_and_an_unknown_one_is_refused_with_every_known_name()
    {
        var listed = Method.StandardNames.Concat(Method.VariantNames).Concat(Method.TreeNames).Concat(Method.CompetitorNames).ToList();
        Assert.All(listed, n => Assert.Contains(n, Method.KnownNames));
        // Naming a method builds it lazily: nothing is fitted here.
        Assert.All(Method.KnownNames, n => Assert.Equal(n, Method.Standard(n).Name));
        var error = Assert.Throws<ArgumentException>(() => Method.Standard("random-forest"));
        Assert.Equal("name", error.ParamName);
        Assert.Contains("'random-forest'", error.Message);
        Assert.All(Method.KnownNames, n => Assert.Contains(n, error.Message));
    }
}
