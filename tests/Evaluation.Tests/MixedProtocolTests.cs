namespace EMFlow.Tests;

/// <summary>The protocol on tables with categorical columns: what methods see, how cells are scored, and that a
/// numeric table is scored exactly as before.</summary>
public class MixedProtocolTests
{
    /// <summary>Records what Fit and Transform get; imputes 0.5 in numeric columns and the code 0 in categorical ones.</summary>
    private sealed class MixedSpy : IMixedImputationMethod
    {
        public static readonly List<IReadOnlyList<ColumnKind>> Kinds = new();
        public static readonly List<double[,]> Transformed = new();
        private IReadOnlyList<ColumnKind>? _kinds;

        public void Fit(double[,] train) => throw new InvalidOperationException("a mixed table must reach the categorical Fit");

        public void Fit(double[,] train, IReadOnlyList<ColumnKind> kinds)
        {
            _kinds = kinds.ToArray();
            Kinds.Add(_kinds);
        }

        public double[,] Transform(double[,] rows)
        {
            Transformed.Add((double[,])rows.Clone());
            var r = (double[,])rows.Clone();
            for (int i = 0; i < r.GetLength(0); i++)
                for (int j = 0; j < r.GetLength(1); j++)
                    if (double.IsNaN(r[i, j])) r[i, j] = _kinds![j] == ColumnKind.Categorical ? 0 : 0.5;
            return r;
        }

        public void Dispose() { }
    }

    private static EvaluationResult RunSpy(double[,] data, ProtocolOptions options)
    {
        MixedSpy.Kinds.Clear();
        MixedSpy.Transformed.Clear();
        return Protocol.Run(data, new[] { new Method("spy", () => new MixedSpy()) }, options);
    }

    [Fact]
    public void Categorical_columns_keep_their_codes_and_are_scored_by_accuracy_the_numeric_ones_by_RMSE()
    {
        var (complete, _) = MixedTestData.Table(200, seed: 1);
        var result = RunSpy(complete, new ProtocolOptions { Seed = 3, Folds = 4, ColumnKinds = MixedTestData.Kinds });
        var t = result.Table;
        Assert.True(t.HasCategorical);
        Assert.Equal(MixedTestData.Kinds, t.ColumnKinds);
        Assert.All(MixedSpy.Kinds, k => Assert.Equal(MixedTestData.Kinds, k));
        for (int i = 0; i < 200; i++) Assert.Equal(complete[i, 2], t.Values[i, 2]);
        Assert.Equal(1.0, Enumerable.Range(0, 200).Max(i => t.Values[i, 0]), 12);
        Assert.True(Enumerable.Range(0, 200).Any(i => t.Hidden[i, 2]), "the mechanism hides categorical cells too");
        for (int f = 0; f < 4; f++)
        {
            double squares = 0;
            int numeric = 0, categorical = 0, right = 0;
            for (int i = 0; i < 200; i++)
                for (int j = 0; j < 4; j++)
                {
                    if (result.Folds[i] != f || !t.Hidden[i, j]) continue;
                    if (j == 2) { categorical++; if (t.Values[i, j] == 0) right++; }
                    else { numeric++; squares += Math.Pow(0.5 - t.Values[i, j], 2); }
                }
            var fold = result.Methods[0].Folds[f];
            Assert.Equal(numeric, fold.Scored);
            Assert.Equal(categorical, fold.CategoricalScored);
            Assert.Equal(Math.Sqrt(squares / numeric), fold.Rmse, 12);
            Assert.Equal(right / (double)categorical, fold.Accuracy, 12);
            Assert.Equal(fold.Accuracy, fold.ColumnAccuracy![2], 12);
            Assert.True(double.IsNaN(fold.ColumnAccuracy[0]), "numeric columns have no accuracy");
        }
        var m = result.Methods[0];
        Assert.Equal(m.Folds.Average(f => f.Accuracy), m.MeanAccuracy, 12);
        Assert.True(m.StdAccuracy >= 0);
    }

    [Fact]
    public void A_test_rows_category_unseen_in_training_reaches_Transform_as_missing_and_is_not_scored()
    {
        const int n = 20;
        var data = new double[n, 2];
        for (int i = 0; i < n; i++) { data[i, 0] = i; data[i, 1] = i % 2; }
        data[0, 1] = data[1, 1] = 7;                                 // category 7 only in rows 0 and 1, both in fold 0
        var folds = Enumerable.Range(0, n).Select(i => i < 10 ? 0 : 1).ToArray();
        var mask = new bool[n, 2];
        mask[0, 1] = true;                                            // hidden: scored, and can only be wrong
        var kinds = new[] { ColumnKind.Numeric, ColumnKind.Categorical };
        var result = RunSpy(data, new ProtocolOptions { Folds = 2, FoldIds = folds, Mask = mask, ColumnKinds = kinds });
        var seen = MixedSpy.Transformed[0];
        Assert.True(double.IsNaN(seen[0, 1]));
        Assert.True(double.IsNaN(seen[1, 1]), "an observed category no training row shows reaches the method as missing");
        Assert.Equal(0.0, seen[2, 1]);
        var fold0 = result.Methods[0].Folds[0];
        Assert.Equal(1, fold0.CategoricalScored);
        Assert.Equal(0.0, fold0.Accuracy);
        Assert.True(double.IsNaN(result.Methods[0].Folds[1].Accuracy), "fold 1 hides no categorical cell");
    }

    [Fact]
    public void A_method_for_numeric_tables_only_is_rejected_before_any_fold_runs_naming_it()
    {
        var (complete, _) = MixedTestData.Table(60, seed: 2);
        int created = 0;
        var methods = new[]
        {
            Method.Standard("mean"),
            new Method("numeric-only", () => { created++; return new ImputerMethodWithoutKinds(); }),
        };
        var ex = Assert.Throws<ArgumentException>(() => Protocol.Run(complete, methods, new ProtocolOptions { ColumnKinds = MixedTestData.Kinds }));
        Assert.Equal("methods", ex.ParamName);
        Assert.Contains("'numeric-only'", ex.Message);
        Assert.Equal(1, created);
        ex = Assert.Throws<ArgumentException>(() => Protocol.Run(complete, new[] { Method.Standard("emflow-tuned") }, new ProtocolOptions { ColumnKinds = MixedTestData.Kinds }));
        Assert.Contains("'emflow-tuned'", ex.Message);
    }

    private sealed class ImputerMethodWithoutKinds : IImputationMethod
    {
        public void Fit(double[,] train) { }
        public double[,] Transform(double[,] rows) => rows;
        public void Dispose() { }
    }

    [Fact]
    public void Standard_methods_impute_categories_through_the_one_hot_layer_and_beat_the_mode()
    {
        var (complete, _) = MixedTestData.Table(300, seed: 4);
        var methods = new[] { "mean", "knn", "gaussian-em" }.Select(m => Method.Standard(m)).ToArray();
        var result = Protocol.Run(complete, methods, new ProtocolOptions { Seed = 1, Folds = 3, ColumnKinds = MixedTestData.Kinds });
        var accuracy = result.Methods.ToDictionary(m => m.Method, m => m.MeanAccuracy);
        Assert.All(result.Methods, m => Assert.InRange(m.MeanRmse, 0.0, 0.5));
        Assert.All(result.Methods, m => Assert.All(m.Folds, f => Assert.True(f.CategoricalScored > 0)));
        // The mean imputer imputes the mode of the training rows: at most the most frequent colour's share.
        var shares = Enumerable.Range(0, 3).Select(c => Enumerable.Range(0, 300).Count(i => complete[i, 2] == c) / 300.0).ToArray();
        Assert.InRange(accuracy["mean"], 0.0, shares.Max() + 0.1);
        Assert.True(accuracy["gaussian-em"] > accuracy["mean"] + 0.2, $"gaussian-em {accuracy["gaussian-em"]} mode {accuracy["mean"]}");
        Assert.True(accuracy["knn"] > accuracy["mean"] + 0.2, $"knn {accuracy["knn"]} mode {accuracy["mean"]}");
    }

    [Fact]
    public void Kinds_that_are_all_numeric_score_exactly_as_a_numeric_table()
    {
        var data = TestData.Table(120).Complete;
        var methods = new[] { "mean", "knn", "gaussian-em" }.Select(m => Method.Standard(m)).ToArray();
        var plain = Protocol.Run(data, methods, new ProtocolOptions { Seed = 6, Folds = 3 });
        var kinds = Enumerable.Repeat(ColumnKind.Numeric, data.GetLength(1)).ToArray();
        var declared = Protocol.Run(data, methods, new ProtocolOptions { Seed = 6, Folds = 3, ColumnKinds = kinds });
        Assert.False(declared.Table.HasCategorical);
        Assert.Equal(plain.Table.Hidden, declared.Table.Hidden);
        for (int k = 0; k < methods.Length; k++)
        {
            Assert.Equal(plain.Methods[k].Folds.Select(f => f.Rmse), declared.Methods[k].Folds.Select(f => f.Rmse));
            Assert.All(declared.Methods[k].Folds, f => Assert.True(double.IsNaN(f.Accuracy) && f.CategoricalScored == 0));
        }
    }

    [Fact]
    public void Kinds_of_the_wrong_length_and_mismatched_shapes_throw_naming_the_parameter()
    {
        var (complete, _) = MixedTestData.Table(30, seed: 5);
        var ex = Assert.Throws<ArgumentException>(() => Protocol.Prepare(complete, new ProtocolOptions { ColumnKinds = new[] { ColumnKind.Numeric } }));
        Assert.Equal("options", ex.ParamName);
        Assert.Contains("got 1", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Protocol.Clean(complete, new[] { ColumnKind.Categorical }));
        Assert.Equal("kinds", ex.ParamName);
        ex = Assert.Throws<ArgumentException>(() => Scoring.AccuracyAndCount(new double[2, 2], new double[2, 3], new bool[2, 2]));
        Assert.Equal("imputed", ex.ParamName);
        var (accuracy, scored) = Scoring.AccuracyAndCount(new double[,] { { 1, 2 }, { 3, 4 } }, new double[,] { { 1, 0 }, { 3, 4 } }, new[,] { { true, true }, { false, false } });
        Assert.Equal((0.5, 2), (accuracy, scored));
        Assert.True(double.IsNaN(Scoring.AccuracyAndCount(new double[1, 1], new double[1, 1], new bool[1, 1]).Accuracy));
    }

    [Fact]
    public void ImputerMethod_follows_whichever_Fit_ran_last()
    {
        var (_, withMissing) = MixedTestData.Table(120, seed: 6);
        using var method = new ImputerMethod(new MeanImputer());
        method.Fit(withMissing, MixedTestData.Kinds);
        Assert.NotNull(method.Mixed);
        var mixed = method.Transform(withMissing);
        for (int i = 0; i < 120; i++) Assert.Contains(mixed[i, 2], new[] { 0.0, 1.0, 2.0 });
        method.Fit(withMissing);
        Assert.Null(method.Mixed);
        Assert.Equal(4, method.Transform(withMissing).GetLength(1));
    }
}
