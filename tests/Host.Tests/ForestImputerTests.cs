using System.Security.Cryptography;
using System.Text.Json.Nodes;
using static EMFlow.Tests.TestData;
namespace EMFlow.Tests;

/// <summary>What <see cref="ForestImputer"/> promises beyond the shared contract: bit-for-bit reproducibility,
/// kept per-feature models (Transform without refitting), progress per feature, and Save/Load.</summary>
public sealed class ForestImputerTests
{
    private static ForestOptions Small(ForestTrainer trainer = ForestTrainer.FastForest, ForestLinearBase linear = ForestLinearBase.None) =>
        ForestOptions.OneRun with { Trainer = trainer, Trees = 10, Leaves = 8, MaxSweeps = 4, Seed = 7, LinearBase = linear };


    [Theory, InlineData(ForestTrainer.FastForest, ForestLinearBase.None), InlineData(ForestTrainer.LightGbm, ForestLinearBase.None),
     InlineData(ForestTrainer.LightGbm, ForestLinearBase.Always), InlineData(ForestTrainer.LightGbm, ForestLinearBase.WhereItHelps)]
    public void Same_seed_same_output_bit_for_bit_and_new_rows_use_the_kept_models(ForestTrainer trainer, ForestLinearBase linear)
    {
        var (_, data) = TestData.Table(120);
        var (_, probe) = TestData.Table(40, seed: 3);
        using var a = new ForestImputer(Small(trainer, linear));
        using var b = new ForestImputer(Small(trainer, linear));
        AssertBitForBit(a.FitTransform(data), b.FitTransform(data));
        var first = a.Transform(probe);
        AssertBitForBit(first, b.Transform(probe));
        AssertBitForBit(first, a.Transform(probe));
        Assert.InRange(a.SweepsKept, 1, 4);
        Assert.True(a.Changes.Count >= a.SweepsKept);
    }

    [Fact]
    public void Progress_is_reported_per_feature_and_sweep()
    {
        var (_, data) = TestData.Table(80);
        var seen = new List<TrainingProgress>();
        using var forest = new ForestImputer(Small());
        forest.Fit(data, progress: new Sink(seen.Add));
        Assert.NotEmpty(seen);
        Assert.All(seen, p => Assert.StartsWith("forest", p.Phase));
        Assert.Contains(seen, p => p.Iteration == 1 && p.Epoch == 1);
    }

    [Theory, InlineData(ForestTrainer.FastForest, ForestLinearBase.None), InlineData(ForestTrainer.LightGbm, ForestLinearBase.None),
     InlineData(ForestTrainer.LightGbm, ForestLinearBase.Always), InlineData(ForestTrainer.FastForest, ForestLinearBase.Always),
     InlineData(ForestTrainer.LightGbm, ForestLinearBase.WhereItHelps)]
    public void Save_then_Load_transforms_bit_for_bit(ForestTrainer trainer, ForestLinearBase linear)
    {
        var (_, data) = TestData.Table(100);
        var (_, probe) = TestData.Table(30, seed: 5);
        var path = Path.Combine(Path.GetTempPath(), $"forest-{Guid.NewGuid():N}.model");
        try
        {
            using var forest = new ForestImputer(Small(trainer, linear));
            forest.Fit(data, new[] { "a", "b", "c", "d" });
            var expected = forest.Transform(probe);
            forest.Save(path);
            using var loaded = ForestImputer.Load(path);
            Assert.Equal(new[] { "a", "b", "c", "d" }, loaded.ColumnNames);
            Assert.Equal(forest.SweepsKept, loaded.SweepsKept);
            Assert.Equal(trainer, loaded.Options.Trainer);
            Assert.Equal(linear, loaded.Options.LinearBase);
            AssertBitForBit(expected, loaded.Transform(probe));

            var bytes = File.ReadAllBytes(path);
            bytes[^10] ^= 0xFF;
            File.WriteAllBytes(path, bytes);
            var ex = Assert.Throws<InvalidDataException>(() => ForestImputer.Load(path));
            Assert.Contains("checksum", ex.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_file_of_format_1_still_loads_and_a_later_format_is_named()
    {
        var (_, data) = TestData.Table(100);
        var (_, probe) = TestData.Table(30, seed: 5);
        var path = Path.Combine(Path.GetTempPath(), $"forest-v1-{Guid.NewGuid():N}.model");
        try
        {
            using var forest = new ForestImputer(Small());
            forest.Fit(data);
            forest.Save(path);
            // Without the linear base a numeric table's file differs from format 1 only in its header's version and in
            // the options' LinearBase, which format 1 lacked and its models read the same without: "EMFLOW-FOREST"
            // (1 + 13 bytes), then the version.
            var bytes = File.ReadAllBytes(path);
            Assert.Equal(4, BitConverter.ToInt32(bytes, 14));
            BitConverter.GetBytes(1).CopyTo(bytes, 14);
            File.WriteAllBytes(path, bytes);
            using (var old = ForestImputer.Load(path)) AssertBitForBit(forest.Transform(probe), old.Transform(probe));
            BitConverter.GetBytes(5).CopyTo(bytes, 14);
            File.WriteAllBytes(path, bytes);
            Assert.Contains("format 5", Assert.Throws<InvalidDataException>(() => ForestImputer.Load(path)).Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Rewrites a forest model file as an older format wrote it: the given version in the header, the options
    /// without the properties that format did not have, and the checksum and length of the new content.</summary>
    private static void AsFormat(string path, int version, params string[] absentOptions)
    {
        using var file = new BinaryReader(new MemoryStream(File.ReadAllBytes(path)));
        var magic = file.ReadString();
        file.ReadInt32();
        file.ReadBytes(32);
        var content = file.ReadBytes((int)file.ReadInt64());
        using var payload = new BinaryReader(new MemoryStream(content));
        var options = JsonNode.Parse(payload.ReadString())!.AsObject();
        foreach (var name in absentOptions) Assert.True(options.Remove(name), $"the options name {name}");
        var rest = content[(int)payload.BaseStream.Position..];
        var rewritten = new MemoryStream();
        using (var w = new BinaryWriter(rewritten, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            w.Write(options.ToJsonString());
            w.Write(rest);
        }
        var bytes = rewritten.ToArray();
        using var output = new BinaryWriter(File.Create(path));
        output.Write(magic);
        output.Write(version);
        output.Write(SHA256.HashData(bytes));
        output.Write((long)bytes.Length);
        output.Write(bytes);
    }

    [Fact]
    public void A_file_of_format_2_loads_as_fitted_without_the_linear_base()
    {
        var (_, data) = TestData.Table(100);
        var (_, probe) = TestData.Table(30, seed: 5);
        var path = Path.Combine(Path.GetTempPath(), $"forest-v2-{Guid.NewGuid():N}.model");
        try
        {
            using var forest = new ForestImputer(Small(ForestTrainer.LightGbm));
            forest.Fit(data);
            forest.Save(path);
            AsFormat(path, 2, nameof(ForestOptions.LinearBase));
            using var old = ForestImputer.Load(path);
            Assert.Equal(ForestLinearBase.None, old.Options.LinearBase);
            AssertBitForBit(forest.Transform(probe), old.Transform(probe));
        }
        finally
        {
            File.Delete(path);
        }
    }

    // Five columns, the last two exact linear functions of the first three: a ridge recovers them from any row,
    // while trees can only approach the plane by steps.
    private static double[,] Linear(int n, int seed, out double[,] complete)
    {
        var rng = new Random(seed);
        complete = new double[n, 5];
        var data = new double[n, 5];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < 3; j++) complete[i, j] = rng.NextDouble();
            complete[i, 3] = 0.5 * complete[i, 0] + 0.3 * complete[i, 1] + 0.2 * complete[i, 2];
            complete[i, 4] = 0.6 * complete[i, 0] - 0.4 * complete[i, 2] + 0.4;
            for (int j = 0; j < 5; j++) data[i, j] = j >= 3 && rng.NextDouble() < 0.2 ? double.NaN : complete[i, j];
        }
        return data;
    }

    [Theory, InlineData(ForestTrainer.LightGbm), InlineData(ForestTrainer.FastForest)]
    public void On_an_exactly_linear_table_the_linear_base_imputes_far_better_and_keeps_the_observed_cells(ForestTrainer trainer)
    {
        var data = Linear(400, 11, out var truth);
        var probe = Linear(100, 12, out var probeTruth);
        var options = ForestOptions.OneRun with { Trainer = trainer, Trees = 50, Leaves = 16, MaxSweeps = 3, Seed = 3 };
        using var plain = new ForestImputer(options);
        using var linear = new ForestImputer(options with { LinearBase = ForestLinearBase.Always });
        using var chosen = new ForestImputer(options with { LinearBase = ForestLinearBase.WhereItHelps });
        var withoutBase = plain.FitTransform(data);
        var withBase = linear.FitTransform(data);
        // Where the relation is exactly linear the hold-out check picks the ridge too.
        AssertBitForBit(withBase, chosen.FitTransform(data));
        for (int i = 0; i < 400; i++)
            for (int j = 0; j < 5; j++)
                if (!double.IsNaN(data[i, j])) Assert.Equal(data[i, j], withBase[i, j]);
        foreach (var (t, d, a, b) in new[] { (truth, data, withBase, withoutBase), (probeTruth, probe, linear.Transform(probe), plain.Transform(probe)) })
            for (int j = 3; j < 5; j++)
            {
                double with = Rmse(t, a, d, j), without = Rmse(t, b, d, j);
                Assert.True(with < 0.25 * without && with < 0.01, $"{trainer}, column {j}: RMSE {with:F4} with the linear base, {without:F4} without");
            }
    }

    [Fact]
    public void Where_the_gaps_lie_apart_from_the_observed_rows_the_linear_base_is_not_chosen_even_on_a_linear_table()
    {
        // The exactly linear table above, but columns 3 and 4 go missing mostly where column 0 is large (MAR): a ridge
        // fitted on the observed rows would predict in a region it was not fitted on. On such a table it would do
        // well, but on real MAR tables it lost, and the check cannot tell the two apart from the observed rows.
        var rng = new Random(5);
        var data = Linear(400, 11, out var truth);
        for (int i = 0; i < 400; i++)
            for (int j = 3; j < 5; j++)
                data[i, j] = truth[i, 0] > 0.5 && rng.NextDouble() < 0.4 ? double.NaN : truth[i, j];
        var options = ForestOptions.OneRun with { Trees = 50, Leaves = 16, MaxSweeps = 3, Seed = 3 };
        using var plain = new ForestImputer(options);
        using var chosen = new ForestImputer(options with { LinearBase = ForestLinearBase.WhereItHelps });
        AssertBitForBit(plain.FitTransform(data), chosen.FitTransform(data));

        // The same rows missing the same number of cells at random: the base is chosen, as on the table above.
        var shuffled = (double[,])truth.Clone();
        for (int i = 0; i < 400; i++)
            for (int j = 3; j < 5; j++)
                shuffled[i, j] = double.IsNaN(data[(i * 7 + 3) % 400, j]) ? double.NaN : truth[i, j];
        using var always = new ForestImputer(options with { LinearBase = ForestLinearBase.Always });
        using var chosenAtRandom = new ForestImputer(options with { LinearBase = ForestLinearBase.WhereItHelps });
        AssertBitForBit(always.FitTransform(shuffled), chosenAtRandom.FitTransform(shuffled));
    }

    [Fact]
    public void Repeats_average_the_runs_on_missing_cells_only_and_survive_Save_and_Load()
    {
        var (_, data) = TestData.Table(120);
        var (_, probe) = TestData.Table(40, seed: 3);
        var one = Small(ForestTrainer.LightGbm) with { Seed = 11 };
        using var first = new ForestImputer(one);
        using var second = new ForestImputer(one with { Seed = Tensors.deriveSeed(11, int.MinValue + 1) });
        using var both = new ForestImputer(one with { Repeats = 2 });
        Assert.Throws<ArgumentOutOfRangeException>("Repeats", () => new ForestImputer(one with { Repeats = 0 }).Fit(data));
        foreach (var (input, a, b, averaged) in new[]
                 {
                     (data, first.FitTransform(data), second.FitTransform(data), both.FitTransform(data)),
                     (probe, first.Transform(probe), second.Transform(probe), both.Transform(probe)),
                 })
        {
            AssertObservedKept(input, averaged);
            bool differ = false;
            for (int i = 0; i < input.GetLength(0); i++)
                for (int j = 0; j < input.GetLength(1); j++)
                    if (double.IsNaN(input[i, j]))
                    {
                        // Averaged on the [0, 1] scale before unscaling: equal to a few ulps.
                        Assert.Equal((a[i, j] + b[i, j]) / 2, averaged[i, j], 1e-12);
                        differ |= a[i, j] != b[i, j];
                    }
            Assert.True(differ, "the two runs imputed alike: their seeds did not reach the trees");
        }
        var path = Path.Combine(Path.GetTempPath(), $"forest-repeats-{Guid.NewGuid():N}.model");
        try
        {
            both.Save(path);
            using var loaded = ForestImputer.Load(path);
            Assert.Equal(2, loaded.Options.Repeats);
            AssertBitForBit(both.Transform(probe), loaded.Transform(probe));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Where_the_gaps_lie_beyond_a_bend_the_linear_base_is_not_chosen()
    {
        // Column 2 follows column 0 linearly up to 0.6 and is flat beyond; its gaps are exactly the rows with
        // x0 > 0.75, so a ridge fitted on the observed rows extrapolates its slope into them while trees stay at the
        // flat edge. Over the observed rows the relation looks nearly linear, and a check drawn uniformly from them
        // takes the ridge; the check held out toward the gaps must not.
        var rng = new Random(21);
        int n = 600;
        var data = new double[n, 3];
        var truth = new double[n, 3];
        for (int i = 0; i < n; i++)
        {
            double x0 = rng.NextDouble(), x1 = rng.NextDouble();
            truth[i, 0] = data[i, 0] = x0;
            truth[i, 1] = data[i, 1] = x1;
            truth[i, 2] = Math.Min(x0, 0.6) + 0.3 * x1 + 0.01 * (rng.NextDouble() - 0.5);
            data[i, 2] = x0 > 0.75 ? double.NaN : truth[i, 2];
        }
        var options = ForestOptions.OneRun with { Trees = 50, Leaves = 16, MaxSweeps = 3, Seed = 3 };
        using var plain = new ForestImputer(options);
        using var always = new ForestImputer(options with { LinearBase = ForestLinearBase.Always });
        using var chosen = new ForestImputer(options with { LinearBase = ForestLinearBase.WhereItHelps });
        var withoutBase = plain.FitTransform(data);
        var withBase = always.FitTransform(data);
        AssertBitForBit(withoutBase, chosen.FitTransform(data));
        double without = Rmse(truth, withoutBase, data, 2), with = Rmse(truth, withBase, data, 2);
        Assert.True(without < with, $"RMSE {without:F4} without the base, {with:F4} with it");
    }

    /// <summary>The mixed test table one-hot encoded as MixedImputer encodes it: x, y, colour=0, colour=1, colour=2, z.</summary>
    private static double[,] Encoded(double[,] data)
    {
        int n = data.GetLength(0);
        var encoded = new double[n, 6];
        for (int i = 0; i < n; i++)
        {
            encoded[i, 0] = data[i, 0];
            encoded[i, 1] = data[i, 1];
            for (int k = 0; k < 3; k++) encoded[i, 2 + k] = double.IsNaN(data[i, 2]) ? double.NaN : data[i, 2] == k ? 1 : 0;
            encoded[i, 5] = data[i, 3];
        }
        return encoded;
    }

    [Theory, InlineData(ForestTrainer.FastForest, ForestLinearBase.None), InlineData(ForestTrainer.LightGbm, ForestLinearBase.None),
     InlineData(ForestTrainer.LightGbm, ForestLinearBase.Always)]
    public void A_categorical_column_is_classified_into_probabilities_and_its_saved_model_transforms_bit_for_bit(ForestTrainer trainer, ForestLinearBase linear)
    {
        var (complete, data) = MixedTestData.Table(400, seed: 5);
        var (_, probe) = MixedTestData.Table(60, seed: 6);
        using var mixed = new MixedImputer(new ForestImputer(Small(trainer, linear)));
        var completed = mixed.FitTransform(data, MixedTestData.Kinds);
        double accuracy = MixedTestData.Accuracy(complete, data, completed), mode = MixedTestData.ModeAccuracy(complete, data);
        Assert.True(accuracy >= mode + 0.25, $"{trainer}: {accuracy:F3} of the hidden colours right, the mode {mode:F3}");

        // The classifier's output fills the indicators: probabilities, each row's summing to 1.
        var forest = (ForestImputer)mixed.Inner;
        var filled = forest.Transform(Encoded(probe));
        for (int i = 0; i < 60; i++)
        {
            if (!double.IsNaN(probe[i, 2])) continue;
            double sum = 0;
            for (int k = 2; k < 5; k++)
            {
                Assert.InRange(filled[i, k], 0.0, 1.0);
                sum += filled[i, k];
            }
            Assert.Equal(1.0, sum, 6);
        }

        var path = Path.Combine(Path.GetTempPath(), $"forest-mixed-{Guid.NewGuid():N}.model");
        try
        {
            forest.Save(path);
            using var loaded = ForestImputer.Load(path);
            AssertBitForBit(filled, loaded.Transform(Encoded(probe)));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void In_EMFlow_s_start_a_categorical_column_s_indicators_share_their_blend_weights()
    {
        var (complete, data) = MixedTestData.Table(300, seed: 8);
        var options = TestData.QuickEMFlow() with { Iterations = 1, EpochsPerIteration = 1, ValidationFraction = 0.2 };
        using var mixed = new MixedImputer(new EMFlowImputer(options, new[] { new ForestStart(ForestOptions.OneRun with { Trees = 20, Leaves = 8, MaxSweeps = 2 }) }));
        var completed = mixed.FitTransform(data, MixedTestData.Kinds);
        var w = ((EMFlowImputer)mixed.Inner).StartWeights;
        Assert.Equal(6, w.GetLength(0));
        for (int c = 0; c < 3; c++)
        {
            Assert.Equal(w[2, c], w[3, c]);
            Assert.Equal(w[2, c], w[4, c]);
        }
        Assert.True(MixedTestData.Accuracy(complete, data, completed) >= MixedTestData.ModeAccuracy(complete, data) + 0.25);
    }

    // Six independent columns and two thresholds of them: the noise columns spoil kNN's distances and a Gaussian
    // cannot follow a step, while trees split at the threshold.
    private static double[,] Stepped(int n, int seed, out double[,] complete)
    {
        var rng = new Random(seed);
        complete = new double[n, 8];
        var data = new double[n, 8];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < 6; j++) complete[i, j] = rng.NextDouble();
            complete[i, 6] = (complete[i, 0] > 0.5 ? 1.0 : 0.0) + 0.02 * rng.NextDouble();
            complete[i, 7] = (complete[i, 1] > 0.3 ? 1.0 : 0.0) + 0.02 * rng.NextDouble();
            for (int j = 0; j < 8; j++) data[i, j] = rng.NextDouble() < 0.15 ? double.NaN : complete[i, j];
        }
        return data;
    }

    [Fact]
    public void ForestStart_joins_EMFlow_s_blend_is_weighed_per_feature_and_saves_with_the_model()
    {
        var data = Stepped(400, 1, out _);
        var probe = Stepped(80, 2, out var probeTruth);
        var options = TestData.QuickEMFlow() with { Iterations = 1, EpochsPerIteration = 1, ValidationFraction = 0.1 };
        var forest = ForestOptions.OneRun with { Trees = 100, Leaves = 8, MaxSweeps = 3 };
        using var a = new EMFlowImputer(options, new[] { new ForestStart(forest) });
        using var b = new EMFlowImputer(options, new[] { new ForestStart(forest) });
        var completed = a.FitTransform(data);
        AssertBitForBit(completed, b.FitTransform(data));
        Assert.Equal(new[] { "gaussian-em", "knn", "forest" }, a.StartNames);
        Assert.Equal(1, a.StartDrawsUsed);
        var w = a.StartWeights;
        Assert.Equal(8, w.GetLength(0));
        Assert.Equal(3, w.GetLength(1));
        for (int j = 0; j < 8; j++)
        {
            Assert.Equal(1.0, w[j, 0] + w[j, 1] + w[j, 2], 9);
            Assert.Equal(w[j, 1], a.KnnShare[j], 12);
        }
        // The stepped columns lean on the trees.
        Assert.True(w[6, 2] >= 0.5 && w[7, 2] >= 0.5, $"forest weights {w[6, 2]}, {w[7, 2]}");
        for (int i = 0; i < 400; i++)
            for (int j = 0; j < 8; j++)
                if (!double.IsNaN(data[i, j])) Assert.Equal(data[i, j], completed[i, j]);

        var imputed = a.Transform(probe);
        using var plain = new EMFlowImputer(options);
        plain.Fit(data);
        var without = plain.Transform(probe);
        Assert.True(Rmse(probeTruth, imputed, probe, 6) < Rmse(probeTruth, without, probe, 6)
            && Rmse(probeTruth, imputed, probe, 7) < Rmse(probeTruth, without, probe, 7),
            "the forest in the start imputes the threshold columns of new rows better than Gaussian EM and kNN alone");

        AssertReloads<ForestStart>(a, probe, imputed);
    }

    [Fact]
    public void A_sized_forest_start_averages_four_runs_on_a_small_table_and_one_beyond_the_size_limit()
    {
        Assert.Equal(4, ForestStart.RepeatsFor(5454, 24));
        Assert.Equal(4, ForestStart.RepeatsFor(ForestStart.AveragedSizeLimit / 100, 10));
        Assert.Equal(1, ForestStart.RepeatsFor(ForestStart.AveragedSizeLimit / 100 + 1, 10));
        Assert.Equal(1, ForestStart.RepeatsFor(20000, 16));
        var data = Stepped(200, 3, out _);
        var probe = Stepped(40, 4, out _);
        var options = TestData.QuickEMFlow() with { Iterations = 1, EpochsPerIteration = 1, ValidationFraction = 0.1 };
        var forest = ForestOptions.OneRun with { Trees = 10, Leaves = 8, MaxSweeps = 2 };
        using var sized = new EMFlowImputer(options, new[] { ForestStart.Sized(forest) });
        using var four = new EMFlowImputer(options, new[] { new ForestStart(forest with { Repeats = 4 }) });
        using var one = new EMFlowImputer(options, new[] { new ForestStart(forest) });
        var completed = sized.FitTransform(data);
        AssertBitForBit(four.FitTransform(data), completed);
        Assert.NotEqual(Fingerprint(one.FitTransform(data)), Fingerprint(completed));
        var imputed = sized.Transform(probe);
        var path = Path.Combine(Path.GetTempPath(), $"emflow-forest-sized-{Guid.NewGuid():N}.model");
        try
        {
            sized.Save(path);
            using var loaded = EMFlowImputer.Load(path);
            AssertBitForBit(imputed, loaded.Transform(probe));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string Fingerprint(double[,] x) => string.Join(",", x.Cast<double>().Select(v => BitConverter.DoubleToInt64Bits(v)));

    [Fact]
    public void A_forest_start_with_the_linear_base_saves_inside_EMFlow_s_model_and_transforms_bit_for_bit()
    {
        var data = Linear(200, 21, out _);
        var probe = Linear(40, 22, out _);
        var options = TestData.QuickEMFlow() with { Iterations = 1, EpochsPerIteration = 1, ValidationFraction = 0.1 };
        using var imputer = new EMFlowImputer(options, new[] { new ForestStart(ForestOptions.OneRun with { Trees = 10, Leaves = 8, MaxSweeps = 2, LinearBase = ForestLinearBase.Always }) });
        imputer.Fit(data);
        var imputed = imputer.Transform(probe);
        var path = Path.Combine(Path.GetTempPath(), $"emflow-forest-linear-{Guid.NewGuid():N}.model");
        try
        {
            imputer.Save(path);
            using var loaded = EMFlowImputer.Load(path);
            Assert.IsType<ForestStart>(Assert.Single(loaded.StartCandidates));
            AssertBitForBit(imputed, loaded.Transform(probe));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Start_candidates_are_checked_report_progress_inside_the_start_and_a_cancelled_refit_keeps_the_model()
    {
        Assert.Throws<ArgumentException>(() => new EMFlowImputer(null, new[] { new ForestStart(), new ForestStart() }));
        Assert.Throws<ArgumentException>(() => new EMFlowImputer(null, new IStartCandidate[] { null! }));
        var data = Stepped(150, 3, out _);
        var options = TestData.QuickEMFlow() with { Iterations = 1, EpochsPerIteration = 1 };
        using var imputer = new EMFlowImputer(options, new[] { new ForestStart(ForestOptions.OneRun with { Trees = 5, Leaves = 4, MaxSweeps = 2 }) });
        var seen = new List<TrainingProgress>();
        imputer.Fit(data, progress: new Sink(seen.Add));
        Assert.Contains(seen, p => p.Phase.StartsWith("initial imputation (forest sweep 1/2, 1/", StringComparison.Ordinal) && p.Iteration == 0);
        var before = imputer.Transform(data);
        using var cts = new CancellationTokenSource();
        // Cancelled as the start begins: the forest is never fitted, and the first model stays.
        var progress = new Sink(p => { if (p.Phase == "initial imputation") cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => imputer.Fit(data, progress: progress, cancellationToken: cts.Token));
        AssertBitForBit(before, imputer.Transform(data));
    }

    private static double Rmse(double[,] truth, double[,] imputed, double[,] withMissing, int column)
    {
        double sum = 0;
        int count = 0;
        for (int i = 0; i < truth.GetLength(0); i++)
            if (double.IsNaN(withMissing[i, column]))
            {
                double d = imputed[i, column] - truth[i, column];
                sum += d * d;
                count++;
            }
        return Math.Sqrt(sum / Math.Max(count, 1));
    }
}
