using System.IO.Compression;
using EMFlow.Data;
using EMFlow.Evaluation;

namespace EMFlow.Tests;

/// <summary>Tiny seeded images: two classes, a bright left or right half on a dark background, plus noise.</summary>
internal static class TestImages
{
    public static (double[,] Images, int[] Labels) Halves(int n, int size, int seed)
    {
        var rng = new Random(seed);
        var images = new double[n, size * size];
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 2;
            double level = 0.6 + 0.3 * rng.NextDouble();
            for (int r = 0; r < size; r++)
                for (int c = 0; c < size; c++)
                {
                    bool lit = labels[i] == 0 ? c < size / 2 : c >= size / 2;
                    images[i, r * size + c] = Math.Clamp((lit ? level : 0.1) + 0.05 * (rng.NextDouble() - 0.5), 0, 1);
                }
        }
        return (images, labels);
    }
}

public class IdxTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("emflow-idx").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>An idx3 file built byte by byte: magic 00 00 08 03, sizes 2, 2, 3 (big-endian), 12 pixels.</summary>
    private static byte[] TwoImagesOf2x3() =>
        new byte[] { 0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3 }
            .Concat(new byte[] { 0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 1 }).ToArray();

    [Fact]
    public void Reads_a_hand_written_image_file_as_rows_scaled_to_0_1()
    {
        File.WriteAllBytes(PathOf("a-idx3-ubyte"), TwoImagesOf2x3());
        var images = Idx.ReadImages(PathOf("a-idx3-ubyte"));
        Assert.Equal((2, 2, 3), (images.Count, images.Rows, images.Columns));
        Assert.Equal(6, images.Pixels.GetLength(1));
        Assert.Equal(new[] { 0, 0.2, 0.4, 0.6, 0.8, 1.0 }, Enumerable.Range(0, 6).Select(j => Math.Round(images.Pixels[0, j], 12)));
        Assert.Equal(1 / 255.0, images.Pixels[1, 5]);
    }

    [Fact]
    public void Reads_gzip_transparently_and_round_trips_labels()
    {
        using (var f = File.Create(PathOf("a.gz")))
        using (var z = new GZipStream(f, CompressionLevel.Fastest))
            z.Write(TwoImagesOf2x3());
        Assert.Equal(Idx.ReadImages(PathOf("a.gz")).Pixels[0, 1], 0.2, 12);
        Idx.WriteLabels(PathOf("l.gz"), new[] { 3, 0, 9 });
        Assert.Equal(new[] { 3, 0, 9 }, Idx.ReadLabels(PathOf("l.gz")));
        var pixels = new double[,] { { 0, 1, 0.2, 0.4 } };
        Idx.WriteImages(PathOf("w"), pixels, 2, 2);
        Assert.Equal(pixels, Idx.ReadImages(PathOf("w")).Pixels);
    }

    [Fact]
    public void Wrong_magic_number_names_the_file()
    {
        Idx.WriteLabels(PathOf("labels"), new[] { 1, 2 });
        var ex = Assert.Throws<InvalidDataException>(() => Idx.ReadImages(PathOf("labels")));
        Assert.Contains(PathOf("labels"), ex.Message);
        Assert.Contains("magic number", ex.Message);
    }

    [Fact]
    public void Truncated_file_names_the_file_and_what_is_missing()
    {
        File.WriteAllBytes(PathOf("short"), TwoImagesOf2x3()[..20]);
        var ex = Assert.Throws<InvalidDataException>(() => Idx.ReadImages(PathOf("short")));
        Assert.Contains(PathOf("short"), ex.Message);
        Assert.Contains("truncated", ex.Message);
        File.WriteAllBytes(PathOf("header"), new byte[] { 0, 0, 8 });
        Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(PathOf("header")));
    }

    [Fact]
    public void Zero_size_missing_file_and_empty_path_are_rejected()
    {
        File.WriteAllBytes(PathOf("zero"), new byte[] { 0, 0, 8, 1, 0, 0, 0, 0 });
        Assert.Contains("size 0 must be positive", Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(PathOf("zero"))).Message);
        Assert.Throws<FileNotFoundException>(() => Idx.ReadImages(PathOf("nope")));
        Assert.Equal("path", Assert.Throws<ArgumentException>(() => Idx.ReadImages(" ")).ParamName);
    }
}

public class NearestPixelTests
{
    [Fact]
    public void Imputer_copies_the_nearest_observed_pixel_smallest_index_on_ties()
    {
        // 3 x 3 images; in the first the centre is missing: its four neighbours are at distance 1 and
        // pixel 1 (value 2) has the smallest index. The other images, complete, give every column a range (a
        // column whose observed values are all equal imputes that value, as for every imputer).
        var data = new double[,] { { 1, 2, 3, 4, double.NaN, 6, 7, 8, 9 }, { 0, 0, 0, 0, 5, 0, 0, 0, 0 }, { 0, 0, 0, 0, 7, 0, 0, 0, 0 } };
        using var imputer = new NearestPixelImputer(3, 3);
        var completed = imputer.FitTransform(data);
        Assert.Equal(2, completed[0, 4], 12);
        Assert.Equal(6, completed[0, 5]);
    }

    [Fact]
    public void Imputer_checks_its_shape()
    {
        Assert.Equal("width", Assert.Throws<ArgumentOutOfRangeException>(() => new NearestPixelImputer(0, 3)).ParamName);
        Assert.Equal("height", Assert.Throws<ArgumentOutOfRangeException>(() => new NearestPixelImputer(3, 0)).ParamName);
        using var imputer = new NearestPixelImputer(3, 3);
        var ex = Assert.Throws<ArgumentException>(() => imputer.Fit(new double[,] { { 1, 2, 3, 4 }, { 1, 2, 3, 5 } }));
        Assert.Contains("3 × 3 = 9", ex.Message);
    }

    [Fact]
    public void EMFlow_nearest_pixel_start_needs_an_image_shape_matching_p()
    {
        var (_, data) = TestData.Table(40);
        using var noShape = new EMFlowImputer(TestData.QuickEMFlow() with { InitialImputation = InitialImputation.NearestPixel });
        Assert.Equal("ImageWidth", Assert.Throws<ArgumentException>(() => noShape.Fit(data)).ParamName);
        using var wrong = new EMFlowImputer(TestData.QuickEMFlow() with { InitialImputation = InitialImputation.NearestPixel, ImageWidth = 3, ImageHeight = 3 });
        Assert.Contains("3 × 3 = 9", Assert.Throws<ArgumentException>(() => wrong.Fit(data)).Message);
        using var zero = new EMFlowImputer(TestData.QuickEMFlow() with { ImageWidth = 0, ImageHeight = 4 });
        Assert.Equal("ImageWidth", Assert.Throws<ArgumentOutOfRangeException>(() => zero.Fit(data)).ParamName);
        using var half = new EMFlowImputer(TestData.QuickEMFlow() with { ImageWidth = 4 });
        Assert.Contains("go together", Assert.Throws<ArgumentException>(() => half.Fit(data)).Message);
    }

    [Fact]
    public void EMFlow_from_nearest_pixels_keeps_observed_pixels_and_fills_the_rest_in_range()
    {
        var (images, _) = TestImages.Halves(80, 6, 3);
        var rng = new Random(4);
        var masked = (double[,])images.Clone();
        for (int i = 0; i < 80; i++) for (int j = 0; j < 36; j++) if (rng.NextDouble() < 0.3) masked[i, j] = double.NaN;
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with
        {
            InitialImputation = InitialImputation.NearestPixel, ImageWidth = 6, ImageHeight = 6, RefitLatentGaussian = false, Iterations = 1,
        });
        var completed = imputer.FitTransform(masked);
        for (int i = 0; i < 80; i++)
            for (int j = 0; j < 36; j++)
                if (double.IsNaN(masked[i, j])) Assert.InRange(completed[i, j], 0, 1);
                else Assert.Equal(masked[i, j], completed[i, j]);
    }
}

public class NearestPixelModelFileTests
{
    [Fact]
    public void A_saved_nearest_pixel_EMFlow_model_completes_new_images_exactly_as_before()
    {
        var (images, _) = TestImages.Halves(60, 4, 5);
        var rng = new Random(6);
        var masked = (double[,])images.Clone();
        for (int i = 0; i < 60; i++) for (int j = 0; j < 16; j++) if (rng.NextDouble() < 0.25) masked[i, j] = double.NaN;
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with
        {
            InitialImputation = InitialImputation.NearestPixel, ImageWidth = 4, ImageHeight = 4, RefitLatentGaussian = false, Iterations = 1,
        });
        imputer.Fit(masked);
        var path = Path.GetTempFileName();
        try
        {
            imputer.Save(path);
            using var loaded = EMFlowImputer.Load(path);
            Assert.Equal(InitialImputation.NearestPixel, loaded.Options.InitialImputation);
            Assert.Equal(imputer.Transform(masked), loaded.Transform(masked));
        }
        finally
        {
            File.Delete(path);
        }
    }
}

public class LeNetClassifierTests
{
    [Fact]
    public void Learns_a_separable_problem_well_above_chance_and_is_seeded()
    {
        var (train, trainLabels) = TestImages.Halves(200, 8, 1);
        var (test, testLabels) = TestImages.Halves(60, 8, 2);
        using var a = new LeNetClassifier(8, 8, classes: 2, seed: 5);
        a.Fit(train, trainLabels, epochs: 3, batchSize: 16);
        Assert.True(a.Accuracy(test, testLabels) > 0.9, $"accuracy {a.Accuracy(test, testLabels)}");
        using var b = new LeNetClassifier(8, 8, classes: 2, seed: 5);
        b.Fit(train, trainLabels, epochs: 3, batchSize: 16);
        Assert.Equal(a.EpochLosses, b.EpochLosses);
    }

    [Fact]
    public void Bad_input_is_rejected_naming_the_parameter()
    {
        using var net = new LeNetClassifier(8, 8, classes: 2);
        var (x, y) = TestImages.Halves(4, 8, 1);
        Assert.Equal("labels", Assert.Throws<ArgumentException>(() => net.Fit(x, new[] { 0, 1, 2, 0 })).ParamName);
        Assert.Equal("images", Assert.Throws<ArgumentException>(() => net.Predict(new double[1, 10])).ParamName);
        Assert.Equal("epochs", Assert.Throws<ArgumentOutOfRangeException>(() => net.Fit(x, y, epochs: 0)).ParamName);
        Assert.Equal("width", Assert.Throws<ArgumentOutOfRangeException>(() => new LeNetClassifier(3, 8)).ParamName);
    }
}

public class ImageProtocolTests
{
    [Fact]
    public void Runs_end_to_end_on_tiny_synthetic_images()
    {
        var (train, trainLabels) = TestImages.Halves(120, 8, 1);
        var (test, testLabels) = TestImages.Halves(40, 8, 2);
        var seen = new List<ImageMethodResult>();
        var result = ImageProtocol.Run(train, trainLabels, test, testLabels, 8, 8, new ImageProtocolOptions
        {
            Rates = new[] { 0.3, 0.6 },
            Methods = new[] { "mean", "nearest", "gaussian-em", "emflow" },
            Epochs = 1, HiddenWidth = 8, BatchSize = 64, GaussianEmSweeps = 1, ClassifierEpochs = 3, KeptImages = 2, Seed = 1,
            OnResult = seen.Add,
        });
        Assert.Equal(8, result.Rows.Count);
        Assert.Equal(result.Rows, seen);
        Assert.InRange(result.CompleteAccuracy, 0.9, 1);
        foreach (var r in result.Rows)
        {
            Assert.InRange(r.Rmse, 0, 1);
            Assert.InRange(r.Accuracy, 0, 1);
            Assert.InRange(r.HiddenRate, r.Rate - 0.05, r.Rate + 0.05);
            Assert.Equal((2, 64), (r.FirstImages.GetLength(0), r.FirstImages.GetLength(1)));
        }
        Assert.Single(result.Rows.Where(r => r.Method == "emflow" && r.Rate == 0.3 && r.IterationSeconds.Length == 1));
        // Halves are flat within each half, so the nearest pixel beats the per-pixel mean.
        foreach (var rate in new[] { 0.3, 0.6 })
            Assert.True(result.Rows.Single(r => r.Rate == rate && r.Method == "nearest").Rmse < result.Rows.Single(r => r.Rate == rate && r.Method == "mean").Rmse);
    }

    [Fact]
    public void RidgeValidation_scores_each_ridge_on_held_out_training_images_and_checks_its_arguments()
    {
        var (train, _) = TestImages.Halves(80, 4, 3);
        var ridges = new[] { 1e-6, 0.1, 10.0 };
        var scores = ImageProtocol.RidgeValidation(train, 0.3, ridges, sweeps: 2, seed: 1);
        Assert.Equal(ridges, scores.Select(s => s.Ridge));
        Assert.All(scores, s => Assert.InRange(s.Rmse, 1e-6, 1));
        // A ridge of 10 mean variances shrinks the conditional mean to the per-pixel mean, which cannot use the
        // other half of the image; the small ridges can.
        Assert.True(scores[0].Rmse < scores[2].Rmse, $"ridge 1e-6: {scores[0].Rmse}, ridge 10: {scores[2].Rmse}");
        // The same images and seed give the same scores, through either overload.
        var again = ImageProtocol.RidgeValidation(train, 0.3, ridges, r => new GaussianEmImputer(new GaussianEmOptions { MaxIterations = 2, Ridge = r }), 1);
        Assert.Equal(scores.Select(s => s.Rmse), again.Select(s => s.Rmse));
        Assert.Equal("rate", Assert.Throws<ArgumentOutOfRangeException>(() => ImageProtocol.RidgeValidation(train, 1.0, ridges, 2, 1)).ParamName);
        Assert.Equal("ridges", Assert.Throws<ArgumentOutOfRangeException>(() => ImageProtocol.RidgeValidation(train, 0.3, new[] { -1.0 }, 2, 1)).ParamName);
        Assert.Equal("sweeps", Assert.Throws<ArgumentOutOfRangeException>(() => ImageProtocol.RidgeValidation(train, 0.3, ridges, 0, 1)).ParamName);
        Assert.Equal("train", Assert.Throws<ArgumentException>(() => ImageProtocol.RidgeValidation(new double[4, 16], 0.3, ridges, 2, 1)).ParamName);
    }

    [Fact]
    public void Unknown_method_and_bad_rate_are_rejected()
    {
        var (x, y) = TestImages.Halves(10, 4, 1);
        Assert.Contains("Unknown method 'knn'", Assert.Throws<ArgumentException>(() =>
            ImageProtocol.Run(x, y, x, y, 4, 4, new ImageProtocolOptions { Methods = new[] { "knn" } })).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageProtocol.Run(x, y, x, y, 4, 4, new ImageProtocolOptions { Rates = new[] { 1.0 } }));
        Assert.Equal("train", Assert.Throws<ArgumentException>(() => ImageProtocol.Run(x, y, x, y, 5, 4)).ParamName);
    }
}
