namespace EMFlow.Tests;

public class EMFlowImputerTests
{
    [Theory]
    [InlineData(nameof(EMFlowOptions.Iterations))]
    [InlineData(nameof(EMFlowOptions.BatchSize))]
    [InlineData(nameof(EMFlowOptions.LearningRate))]
    [InlineData(nameof(EMFlowOptions.StepSizeC))]
    [InlineData(nameof(EMFlowOptions.StepSizeGamma))]
    [InlineData(nameof(EMFlowOptions.ValidationFraction))]
    [InlineData(nameof(EMFlowOptions.KnnNeighbours))]
    [InlineData(nameof(EMFlowOptions.KnnMaxDonors))]
    [InlineData(nameof(EMFlowOptions.Ridge))]
    [InlineData(nameof(EMFlowOptions.StartSweeps))]
    [InlineData(nameof(EMFlowOptions.Patience))]
    [InlineData(nameof(EMFlowOptions.FlowPrecision))]
    [InlineData(nameof(EMFlowOptions.HiddenActivation))]
    [InlineData(nameof(EMFlowOptions.ObservedShareWeight))]
    [InlineData(nameof(EMFlowOptions.HoldOut))]
    public void Invalid_settings_throw_at_Fit_naming_the_setting(string setting)
    {
        var bad = setting switch
        {
            nameof(EMFlowOptions.Iterations) => TestData.QuickEMFlow() with { Iterations = 0 },
            nameof(EMFlowOptions.BatchSize) => TestData.QuickEMFlow() with { BatchSize = 1 },
            nameof(EMFlowOptions.LearningRate) => TestData.QuickEMFlow() with { LearningRate = -1 },
            nameof(EMFlowOptions.StepSizeC) => TestData.QuickEMFlow() with { StepSizeC = 1.5 },
            nameof(EMFlowOptions.StepSizeGamma) => TestData.QuickEMFlow() with { StepSizeGamma = 0.5 },
            nameof(EMFlowOptions.KnnNeighbours) => TestData.QuickEMFlow() with { KnnNeighbours = 0 },
            nameof(EMFlowOptions.KnnMaxDonors) => TestData.QuickEMFlow() with { KnnMaxDonors = 0 },
            nameof(EMFlowOptions.Ridge) => TestData.QuickEMFlow() with { Ridge = double.NaN },
            nameof(EMFlowOptions.StartSweeps) => TestData.QuickEMFlow() with { StartSweeps = 0 },
            nameof(EMFlowOptions.Patience) => TestData.QuickEMFlow() with { Patience = -1 },
            nameof(EMFlowOptions.FlowPrecision) => TestData.QuickEMFlow() with { FlowPrecision = (FlowPrecision)7 },
            nameof(EMFlowOptions.HiddenActivation) => TestData.QuickEMFlow() with { HiddenActivation = (HiddenActivation)7 },
            nameof(EMFlowOptions.ObservedShareWeight) => TestData.QuickEMFlow() with { ObservedShareWeight = -1 },
            nameof(EMFlowOptions.HoldOut) => TestData.QuickEMFlow() with { HoldOut = (HoldOutDraw)7 },
            _ => TestData.QuickEMFlow() with { ValidationFraction = 0.9 },
        };
        using var imputer = new EMFlowImputer(bad);
        var (_, data) = TestData.Table(40);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => imputer.Fit(data));
        Assert.Equal(setting, ex.ParamName);
        Assert.False(imputer.IsFitted);
    }

    [Fact]
    public void Checkerboard_masks_need_an_image_shape_and_fit_images_with_one()
    {
        var (_, data) = TestData.Table(60);
        using var images = FitsImagesOnlyWithAShape(data, nameof(EMFlowOptions.CouplingMask),
            TestData.QuickEMFlow() with { CouplingMask = CouplingMask.Checkerboard });
    }

    [Fact]
    public void Convolutional_couplings_need_an_image_shape_fit_images_and_survive_save_and_load()
    {
        var (_, data) = TestData.Table(60);
        using var images = FitsImagesOnlyWithAShape(data, nameof(EMFlowOptions.CouplingNetwork),
            TestData.QuickEMFlow() with { CouplingNetwork = CouplingNetwork.Convolutional, HiddenWidth = 4, ValidationFraction = 0 },
            o => o with { CouplingMask = CouplingMask.Checkerboard });
        using var loaded = SavedAndLoaded(images);
        Assert.Equal(images.Transform(data), loaded.Transform(data));
    }

    /// <summary>Fit with <paramref name="setting"/> and no image shape throws naming <paramref name="parameter"/>; with a
    /// 2 × 2 shape and the nearest-pixel start (and <paramref name="more"/>), the fit keeps every observed cell and
    /// fills every missing one. Returns that fitted imputer.</summary>
    private static EMFlowImputer FitsImagesOnlyWithAShape(double[,] data, string parameter, EMFlowOptions setting,
        Func<EMFlowOptions, EMFlowOptions>? more = null)
    {
        using var bad = new EMFlowImputer(setting);
        Assert.Equal(parameter, Assert.Throws<ArgumentException>(() => bad.Fit(data)).ParamName);
        var images = new EMFlowImputer((more ?? (o => o))(setting with
        {
            InitialImputation = InitialImputation.NearestPixel, ImageWidth = 2, ImageHeight = 2,
        }));
        var completed = images.FitTransform(data);
        for (int i = 0; i < data.GetLength(0); i++)
            for (int j = 0; j < data.GetLength(1); j++)
                if (!double.IsNaN(data[i, j])) Assert.Equal(data[i, j], completed[i, j]);
                else Assert.False(double.IsNaN(completed[i, j]));
        return images;
    }

    [Fact]
    public void Save_and_Load_round_trip_transforms_identically()
    {
        var (_, data) = TestData.Table(150);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { ValidationFraction = 0 });
        imputer.Fit(data);
        using var loaded = SavedAndLoaded(imputer);
        Assert.Equal(imputer.SelectedIteration, loaded.SelectedIteration);
        Assert.Equal(imputer.Transform(data), loaded.Transform(data));
        Assert.Equal(imputer.History, loaded.History);
    }

    [Fact]
    public void Weighting_rows_by_their_observed_share_trains_another_flow_that_keeps_observed_cells_and_reloads_with_its_setting()
    {
        var (_, data) = TestData.Table(120);
        // No hold-out: the last iteration is kept, so the flows themselves are compared, not the start.
        var plainOptions = TestData.QuickEMFlow() with { ValidationFraction = 0 };
        using var plain = new EMFlowImputer(plainOptions);
        using var weighted = new EMFlowImputer(plainOptions with { ObservedShareWeight = 4 });
        var a = plain.FitTransform(data);
        var b = weighted.FitTransform(data);
        Assert.NotEqual(a, b);
        TestData.AssertObservedKept(data, b);
        using var loaded = SavedAndLoaded(weighted);
        Assert.Equal(4, loaded.Options.ObservedShareWeight);
        Assert.Equal(weighted.Transform(data), loaded.Transform(data));
    }

    /// <summary>The model as <see cref="EMFlowImputer.Load"/> reads it back from a file <see cref="EMFlowImputer.Save"/> wrote.</summary>
    private static EMFlowImputer SavedAndLoaded(EMFlowImputer imputer)
    {
        var path = Path.Combine(Path.GetTempPath(), $"emflow-{Guid.NewGuid():N}.model");
        try
        {
            imputer.Save(path);
            return EMFlowImputer.Load(path);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void TransformAtIteration_replays_each_iteration_and_the_selected_one_is_Transform()
    {
        var (_, data) = TestData.Table(200);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { Iterations = 3, InitialImputation = InitialImputation.GaussianEm, StopAfterWorseIteration = false });
        imputer.Fit(data);
        using var gaussian = new GaussianEmImputer();
        gaussian.Fit(data);
        Assert.Equal(3, imputer.AvailableIterations);
        Assert.True(imputer.InitialSeconds >= 0);
        Assert.Equal(imputer.Transform(data), imputer.TransformAtIteration(imputer.SelectedIteration, data));
        var atZero = imputer.TransformAtIteration(0, data);
        var reference = gaussian.Transform(data);
        for (int i = 0; i < 200; i++)
            for (int j = 0; j < 4; j++)
                Assert.Equal(reference[i, j], atZero[i, j], 6);
        var steps = Enumerable.Range(0, 4).Select(k => imputer.TransformAtIteration(k, data)).ToArray();
        Assert.NotEqual(steps[0], steps[3]);
        foreach (var s in steps)
            for (int i = 0; i < 200; i++)
                for (int j = 0; j < 4; j++)
                    if (!double.IsNaN(data[i, j])) Assert.Equal(data[i, j], s[i, j]);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => imputer.TransformAtIteration(4, data));
        Assert.Equal("iteration", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => imputer.TransformAtIteration(-1, data));
    }

    [Fact]
    public void The_Gaussian_EM_start_follows_StartSweeps_and_Ridge()
    {
        var (_, data) = TestData.Table(200);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with
        {
            Iterations = 1, InitialImputation = InitialImputation.GaussianEm, StartSweeps = 2, Ridge = 0.05,
        });
        imputer.Fit(data);
        using var same = new GaussianEmImputer(new GaussianEmOptions { MaxIterations = 2, Ridge = 0.05 });
        same.Fit(data);
        using var converged = new GaussianEmImputer();
        converged.Fit(data);
        var atZero = imputer.TransformAtIteration(0, data);
        var reference = same.Transform(data);
        var other = converged.Transform(data);
        double maxOther = 0;
        for (int i = 0; i < 200; i++)
            for (int j = 0; j < 4; j++)
            {
                Assert.Equal(reference[i, j], atZero[i, j], 6);
                maxOther = Math.Max(maxOther, Math.Abs(other[i, j] - atZero[i, j]));
            }
        Assert.True(maxOther > 1e-3, $"two sweeps with a ridge should differ from the converged default fit; max difference {maxOther}");
    }

    [Fact]
    public void A_kNN_start_imputes_new_rows_at_iteration_0_exactly_as_KnnImputer_and_survives_Save_and_Load()
    {
        var (_, data) = TestData.Table(150);
        var (_, fresh) = TestData.Table(40, seed: 9);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { InitialImputation = InitialImputation.Knn, Iterations = 1 });
        imputer.Fit(data);
        Assert.Equal(InitialImputation.Knn, imputer.SelectedStart);
        using var knn = new KnnImputer(5);
        knn.Fit(data);
        // Donors are all of the training rows' observed cells (the hold-out is given back after selection).
        var expected = knn.Transform(fresh);
        var atZero = imputer.TransformAtIteration(0, fresh);
        for (int i = 0; i < 40; i++)
            for (int j = 0; j < 4; j++)
                Assert.Equal(expected[i, j], atZero[i, j], 9);
        using (var loaded = SavedAndLoaded(imputer))
        {
            Assert.Equal(InitialImputation.Knn, loaded.SelectedStart);
            Assert.Equal(imputer.Transform(fresh), loaded.Transform(fresh));
        }
        // A capped donor pool: a seeded sample of the training rows, the same on every fit.
        var capped = TestData.QuickEMFlow() with { InitialImputation = InitialImputation.Knn, Iterations = 1, KnnMaxDonors = 40 };
        using var c1 = new EMFlowImputer(capped);
        using var c2 = new EMFlowImputer(capped);
        var first = c1.FitTransform(data);
        Assert.Equal(first, c2.FitTransform(data));
        Assert.NotEqual(imputer.TransformAtIteration(0, fresh), c1.TransformAtIteration(0, fresh));
    }

    [Fact]
    public void The_Auto_start_leans_to_kNN_on_clustered_rows_and_to_Gaussian_EM_on_Gaussian_ones()
    {
        // Clustered: 12 tight clusters whose centres lie on a curve, so no linear regression predicts one feature
        // from the others, while any neighbour in the same cluster does.
        var rng = new Random(4);
        var clustered = new double[360, 4];
        for (int i = 0; i < 360; i++)
        {
            double t = (i % 12) / 11.0 * 2 * Math.PI;
            double[] centre = { Math.Cos(t), Math.Sin(t), Math.Cos(2 * t), Math.Sin(3 * t) };
            for (int j = 0; j < 4; j++)
                clustered[i, j] = rng.NextDouble() < 0.2 ? double.NaN : centre[j] + 0.02 * (rng.NextDouble() - 0.5);
        }
        // Gaussian: one strong linear factor plus noise, where the conditional mean is exactly linear.
        var gaussian = new double[360, 4];
        for (int i = 0; i < 360; i++)
        {
            double f = Normal(rng);
            for (int j = 0; j < 4; j++)
                gaussian[i, j] = rng.NextDouble() < 0.2 ? double.NaN : (j + 1) * f + 0.3 * Normal(rng);
        }
        var options = TestData.QuickEMFlow() with { InitialImputation = InitialImputation.Auto, Iterations = 1, EpochsPerIteration = 1, ValidationFraction = 0.1 };
        using (var a = new EMFlowImputer(options))
        {
            a.Fit(clustered);
            Assert.Equal(InitialImputation.Auto, a.SelectedStart);
            Assert.True(a.KnnShare.Average() >= 0.7, $"kNN shares on clusters: {string.Join(", ", a.KnnShare)}");
            using var loaded = SavedAndLoaded(a);
            Assert.Equal(a.KnnShare, loaded.KnnShare);
            Assert.Equal(a.Transform(clustered), loaded.Transform(clustered));
        }
        using (var b = new EMFlowImputer(options))
        {
            b.Fit(gaussian);
            Assert.True(b.KnnShare.Average() <= 0.3, $"kNN shares on a Gaussian table: {string.Join(", ", b.KnnShare)}");
        }
        // Without a hold-out there is nothing to compare on: Gaussian EM.
        using var c = new EMFlowImputer(options with { ValidationFraction = 0 });
        c.Fit(clustered);
        Assert.All(c.KnnShare, w => Assert.Equal(0.0, w));
        using var knn = new EMFlowImputer(options with { InitialImputation = InitialImputation.Knn });
        knn.Fit(clustered);
        Assert.All(knn.KnnShare, w => Assert.Equal(1.0, w));
    }

    private static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    [Theory]
    [InlineData(HoldOutDraw.LikeMissingness)]
    [InlineData(HoldOutDraw.ByPropensity)]
    [InlineData(HoldOutDraw.LikeMissingPatterns)]
    public void A_hold_out_shaped_like_the_missingness_fits_and_repeats_with_the_seed(HoldOutDraw draw)
    {
        var (_, data) = TestData.Table(200);
        var options = TestData.QuickEMFlow() with { HoldOut = draw, ValidationFraction = 0.1 };
        using var a = new EMFlowImputer(options);
        using var b = new EMFlowImputer(options);
        var x = a.FitTransform(data);
        Assert.Equal(x, b.FitTransform(data));
        Assert.True(double.IsFinite(a.InitialValidationRmse));
        for (int i = 0; i < 200; i++)
            for (int j = 0; j < 4; j++)
                if (double.IsNaN(data[i, j])) Assert.False(double.IsNaN(x[i, j]));
                else Assert.Equal(data[i, j], x[i, j]);
    }

    [Fact]
    public void Load_rejects_a_file_that_is_not_a_model()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "x,y\n1,2\n");
            Assert.Throws<InvalidDataException>(() => EMFlowImputer.Load(path));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Progress_is_reported_per_epoch_and_history_is_kept()
    {
        var (_, data) = TestData.Table(100);
        var reports = new List<TrainingProgress>();
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { Patience = 0, StopAfterWorseIteration = false });
        imputer.Fit(data, progress: new SynchronousProgress<TrainingProgress>(reports.Add));
        Assert.Equal(2 * 2, reports.Count(r => r.Phase == "training"));
        Assert.Equal(2, imputer.IterationsRun);
        Assert.Equal(4, imputer.EpochHistory.Count);
        Assert.All(imputer.History, h => Assert.True(double.IsFinite(h.MeanL1)));
        Assert.InRange(imputer.SelectedIteration, 0, 2);
    }

    [Fact]
    public void Cancellation_stops_Fit_and_leaves_the_imputer_unfitted()
    {
        var (_, data) = TestData.Table(200);
        using var cts = new CancellationTokenSource();
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { EpochsPerIteration = 50 });
        var progress = new SynchronousProgress<TrainingProgress>(p => { if (p.Phase == "training") cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => imputer.Fit(data, progress: progress, cancellationToken: cts.Token));
        Assert.False(imputer.IsFitted);
    }

    [Fact]
    public void SampleImputations_draws_differ_keep_observed_cells_and_repeat_with_the_seed()
    {
        var (_, data) = TestData.Table(120);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow());
        imputer.Fit(data);
        var draws = imputer.SampleImputations(data, 3, seed: 5);
        var again = imputer.SampleImputations(data, 3, seed: 5);
        Assert.Equal(3, draws.Count);
        Assert.Equal(draws[0], again[0]);
        Assert.NotEqual(draws[0], draws[1]);
        for (int i = 0; i < 120; i++)
            for (int j = 0; j < 4; j++)
                if (!double.IsNaN(data[i, j])) Assert.Equal(data[i, j], draws[1][i, j]);
        Assert.Throws<ArgumentOutOfRangeException>(() => imputer.SampleImputations(data, 0));
    }

    [Fact]
    public void LogLikelihood_is_finite_per_row()
    {
        var (complete, data) = TestData.Table(100);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow());
        imputer.Fit(data);
        var ll = imputer.LogLikelihood(complete);
        Assert.Equal(100, ll.Length);
        Assert.All(ll, v => Assert.True(double.IsFinite(v)));
    }

    [Fact]
    public void Fewer_rows_than_the_batch_size_and_a_single_feature_work()
    {
        var (_, data) = TestData.Table(30);
        using var small = new EMFlowImputer(TestData.QuickEMFlow() with { BatchSize = 256 });
        Assert.False(ContainsNaN(small.FitTransform(data)));

        var one = new double[40, 1];
        for (int i = 0; i < 40; i++) one[i, 0] = i % 5 == 0 ? double.NaN : Math.Sin(i);
        using var single = new EMFlowImputer(TestData.QuickEMFlow());
        Assert.False(ContainsNaN(single.FitTransform(one)));
    }

    [Fact]
    public void A_single_row_is_rejected_at_Fit()
    {
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow());
        var ex = Assert.Throws<ArgumentException>(() => imputer.Fit(new double[,] { { 1, 2 } }));
        Assert.Equal("data", ex.ParamName);
    }

    [Fact]
    public void Live_tensors_stay_flat_over_longer_training()
    {
        var (_, data) = TestData.Table(300);
        var counts = new List<long>();
        // Garbage from earlier tests is finalized at unpredictable times and lowers the global count: settle it at
        // every reading, so what is counted is what this fit keeps alive.
        static long Live()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            return TorchSharp.torch.Tensor.TotalCount;
        }
        var progress = new SynchronousProgress<TrainingProgress>(p => { if (p.Phase == "training") counts.Add(Live()); });
        // A patience longer than the fit: the hold-out is checked, and the best epoch's flow copied, after every epoch,
        // without ever stopping.
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { Iterations = 1, EpochsPerIteration = 12, BatchSize = 16, Patience = 1000 });
        imputer.Fit(data, progress: progress);
        // Each epoch runs 18 training steps that create dozens of tensors each. Once the optimisers' state exists and
        // the latent Gaussian has been re-anchored once (third epoch), the count of live tensors must not grow: it stays
        // put, or falls once the flow beats the start and the copy of its best epoch is let go.
        Assert.Equal(12, counts.Count);
        Assert.All(counts.Skip(3), c => Assert.InRange(c, 0, counts[2]));
        for (int k = 4; k < counts.Count; k++) Assert.InRange(counts[k], 0, counts[k - 1]);
    }

    [Fact]
    public void Members_used_before_Fit_throw_InvalidOperationException()
    {
        using var imputer = new EMFlowImputer();
        Assert.Throws<InvalidOperationException>(() => imputer.Mu);
        Assert.Throws<InvalidOperationException>(() => imputer.Save("x.model"));
        Assert.Throws<InvalidOperationException>(() => imputer.SampleImputations(new double[,] { { 1 } }, 1));
        Assert.Throws<InvalidOperationException>(() => imputer.LogLikelihood(new double[,] { { 1 } }));
        Assert.Throws<InvalidOperationException>(() => imputer.TransformAtIteration(0, new double[,] { { 1 } }));
    }

    [Fact]
    public void With_the_identity_flow_EMFlow_reproduces_Gaussian_EM()
    {
        var (_, data) = TestData.Table(300);
        using var emflow = new EMFlowImputer(TestData.QuickEMFlow() with { CouplingLayers = 0, ValidationFraction = 0, ClampToObservedRange = false });
        using var gaussian = new GaussianEmImputer();
        var a = emflow.FitTransform(data);
        var b = gaussian.FitTransform(data);
        for (int i = 0; i < 300; i++)
            for (int j = 0; j < 4; j++)
                Assert.Equal(b[i, j], a[i, j], 4);
    }

    [Fact]
    public void On_nonlinear_data_EMFlow_beats_Gaussian_EM_by_at_least_10_percent_on_a_test_fold()
    {
        // Train on 2000 rows, impute 500 unseen rows; the test fold's hidden truth is used only to score.
        var complete = Tensors.toArray2D(Synthetic.nonlinear(11, 2500, 0.1));
        var mask = Tensors.toArray2D(Missingness.mcar(12, 0.2, 2500, 7));
        double[,] Rows(int from, int count, bool hide) => Slice(complete, mask, from, count, hide);
        var train = Rows(0, 2000, hide: true);
        var test = Rows(2000, 500, hide: true);
        var truth = Rows(2000, 500, hide: false);
        using var gaussian = new GaussianEmImputer();
        gaussian.Fit(train);
        using var emflow = new EMFlowImputer(new EMFlowOptions { Seed = 3, TorchThreads = 1 });
        emflow.Fit(train);
        double g = Rmse(truth, gaussian.Transform(test), test);
        double e = Rmse(truth, emflow.Transform(test), test);
        Assert.True(e <= 0.9 * g, $"EMFlow test RMSE {e:F4} is not 10% below Gaussian EM's {g:F4}");
    }

    private static double[,] Slice(double[,] x, double[,] mask, int from, int count, bool hide)
    {
        var r = new double[count, x.GetLength(1)];
        for (int i = 0; i < count; i++)
            for (int j = 0; j < x.GetLength(1); j++)
                r[i, j] = hide && mask[from + i, j] > 0.5 ? double.NaN : x[from + i, j];
        return r;
    }

    /// <summary>RMSE over the cells missing in <paramref name="withMissing"/>, each feature scaled by its range in the truth.</summary>
    private static double Rmse(double[,] truth, double[,] imputed, double[,] withMissing)
    {
        int n = truth.GetLength(0), p = truth.GetLength(1);
        double sum = 0; int count = 0;
        for (int j = 0; j < p; j++)
        {
            double lo = double.MaxValue, hi = double.MinValue;
            for (int i = 0; i < n; i++) { lo = Math.Min(lo, truth[i, j]); hi = Math.Max(hi, truth[i, j]); }
            for (int i = 0; i < n; i++)
                if (double.IsNaN(withMissing[i, j])) { double d = (imputed[i, j] - truth[i, j]) / (hi - lo); sum += d * d; count++; }
        }
        return Math.Sqrt(sum / count);
    }

    private static bool ContainsNaN(double[,] a) => a.Cast<double>().Any(double.IsNaN);

    /// <summary>IProgress that reports on the calling thread, so tests see reports in order.</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    [Fact]
    public void Without_early_stopping_every_epoch_of_every_iteration_runs()
    {
        var (_, data) = TestData.Table(200);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { Iterations = 3, EpochsPerIteration = 4, Patience = 0, StopAfterWorseIteration = false });
        imputer.Fit(data);
        Assert.Equal(3, imputer.History.Count);
        Assert.Equal(12, imputer.EpochHistory.Count);
    }

    [Fact]
    public void After_an_iteration_that_is_no_better_on_the_hold_out_the_fit_ends()
    {
        // Gaussian rows: the start is already the right model, so some iteration soon fails to improve on it.
        var (_, data) = TestData.Table(300, seed: 3);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { Iterations = 6, ValidationFraction = 0.1, Patience = 0 });
        imputer.Fit(data);
        var history = imputer.History;
        Assert.InRange(history.Count, 1, 5);
        double best = imputer.InitialValidationRmse;
        for (int k = 0; k < history.Count - 1; k++)
        {
            Assert.True(history[k].ValidationRmse < best, $"iteration {k + 1} improved, or the fit would have ended there");
            best = history[k].ValidationRmse;
        }
        Assert.True(history[^1].ValidationRmse >= best, "the last iteration run is the one that did not improve");
    }

    [Fact]
    public void An_iteration_that_does_not_beat_the_start_is_abandoned_and_keeps_its_best_epoch()
    {
        var (_, data) = TestData.Table(300, seed: 4);
        var options = TestData.QuickEMFlow() with { Iterations = 1, EpochsPerIteration = 30, Patience = 2, ValidationFraction = 0.1 };
        using var stopped = new EMFlowImputer(options);
        stopped.Fit(data);
        int ran = stopped.EpochHistory.Count;
        Assert.InRange(ran, 3, 29);
        Assert.True(stopped.History[0].ValidationRmse >= stopped.InitialValidationRmse, "abandoned: no better than the start");
        // Stopping after two epochs without improvement means the best was two epochs before the last: a fit of exactly
        // that many epochs, everything else equal, has the same flow.
        using var exact = new EMFlowImputer(options with { EpochsPerIteration = ran - 2, Patience = 0 });
        exact.Fit(data);
        TestData.AssertBitForBit(exact.TransformAtIteration(1, data), stopped.TransformAtIteration(1, data));
    }
}
