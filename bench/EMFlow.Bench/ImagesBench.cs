using System.Diagnostics;
using System.Text.Json;
using EMFlow.Data;
using EMFlow.Evaluation;
using static TorchSharp.torch;

namespace EMFlow.Bench;

/// <summary>One line of bench/results/images*.jsonl: one (dataset, MCAR rate, method) of the image protocol.</summary>
internal sealed record ImageRecord(
    string dataset, string split, int train, int test, double rate, double hidden_rate, string method, string settings, long seed, bool quick,
    double rmse, double accuracy, double complete_accuracy, int classifier_epochs, double fit_seconds, double transform_seconds,
    double[] iteration_seconds, double peak_working_set_mb, string machine, string date);

/// <summary>
/// The paper's image protocol (section 4.2, Tables 2 and 3) on MNIST or Fashion-MNIST: MCAR per pixel at each rate,
/// every method fitted on the masked training images and asked to complete the masked test images; RMSE over the
/// test images' missing pixels on [0, 1]; accuracy of a LeNet-style classifier, trained on the complete training
/// images, on each completed test set; a PNG grid of ground truth / observed / imputed test images.
/// </summary>
internal static class ImagesBench
{
    /// <summary>The paper's MNIST rows (60k/10k), rates .1 … .9: Table 2 RMSE and Table 3 EMFlow accuracy.</summary>
    private static readonly (string Name, double[] Values)[] PaperRmse =
    {
        ("paper EMFlow (MNIST 60k/10k)", new[] { .0726, .0775, .0832, .0901, .0986, .1100, .1260, .1504, .1951 }),
        ("paper MCFlow", new[] { .0835, .0879, .0894, .0941, .1027, .1119, .1251, .1463, .2020 }),
        ("paper GAIN", new[] { .1029, .1184, .1399, .1495, .1723, .1794, .2167, .2200, .2710 }),
    };

    private static readonly double[] PaperAccuracy = { .9894, .9884, .9882, .9878, .9860, .9824, .9696, .9253, .7502 };

    private static readonly double[] AllRates = { .1, .2, .3, .4, .5, .6, .7, .8, .9 };

    public static void Run(Args a)
    {
        set_num_threads(1);
        bool quick = a.Flag("quick");
        long seed = a.Int("seed", 0);
        var dataset = a.Get("dataset") ?? "mnist";
        var dataDir = a.Get("data-dir") ?? Path.Combine(TablesBench.RepoRoot(), "..", "shared", "data");
        var rates = a.List("rates")?.Select(r => double.Parse(r, System.Globalization.CultureInfo.InvariantCulture)).ToArray()
                    ?? (quick ? new[] { .5, .9 } : AllRates);
        foreach (var r in rates)
            if (!(r > 0 && r < 1)) throw new ArgumentException($"--rates must lie in (0, 1); got {r}");
        var methods = a.List("methods") ?? new[] { "mean", "nearest", "gaussian-em", "emflow" };
        int defaultTrain = dataset == "mnist" ? 8000 : 60000, defaultTest = dataset == "mnist" ? 2000 : 10000;
        int nTrain = a.Int("train", quick ? 500 : defaultTrain), nTest = a.Int("test", quick ? 200 : defaultTest);
        var options = new ImageProtocolOptions
        {
            Log = s => Console.Error.WriteLine($"  {s}"),
            Rates = rates, Methods = methods, Seed = seed,
            Iterations = a.Int("iterations", 1), Epochs = a.Int("epochs", quick ? 1 : 2), HiddenWidth = a.Int("width", 128), ConvChannels = a.Int("conv-channels", 16), Ridge = a.Double("ridge", 1e-6),
            GaussianEmSweeps = a.Int("gem-sweeps", quick ? 1 : 2), ClassifierEpochs = a.Int("classifier-epochs", quick ? 5 : 10),
        };

        var (train, trainLabels, test, testLabels, width, height, split) = Load(dataDir, dataset, nTrain, nTest);
        var tag = $"images-{dataset}{(quick ? "-quick" : "")}";
        var resultsDir = Path.Combine(TablesBench.RepoRoot(), "bench", "results");
        var outPath = a.Get("out") ?? Path.Combine(resultsDir, tag + ".jsonl");
        if (a.Get("out") is null && File.Exists(outPath)) File.Delete(outPath);
        Console.Error.WriteLine($"{dataset}: {split}; rates {string.Join(", ", rates)}; methods {string.Join(", ", methods)}");

        ImageRecord ToRecord(ImageMethodResult r) => new(
            dataset, split, nTrain, nTest, r.Rate, r.HiddenRate, r.Method, r.Settings, seed, quick, r.Rmse, r.Accuracy, r.CompleteAccuracy,
            options.ClassifierEpochs, r.FitSeconds, r.TransformSeconds, r.IterationSeconds, r.PeakWorkingSetBytes / 1048576.0,
            Report.Machine, DateTime.UtcNow.ToString("yyyy-MM-dd"));
        // Each (rate, method) is written as soon as it is done, so a long run keeps what it finished.
        options = options with { OnResult = r => Report.AppendJson(outPath, ToRecord(r)) };
        var result = ImageProtocol.Run(train, trainLabels, test, testLabels, width, height, options);
        var records = result.Rows.Select(ToRecord).ToList();

        var png = a.Get("png") ?? Path.Combine(resultsDir, tag + ".png");
        if (WriteGrid(png, test, result, width, height)) Console.Error.WriteLine($"wrote {png}");
        using (var proc = Process.GetCurrentProcess())
            Console.Error.WriteLine($"process peak working set {proc.PeakWorkingSet64 / 1048576.0:F0} MB; classifier trained in {result.ClassifierSeconds:F1} s");
        var md = Markdown(records, result.ClassifierSeconds);
        Console.WriteLine(md);
        var mdPath = a.Get("markdown") ?? Path.Combine(resultsDir, tag + ".md");
        File.WriteAllText(mdPath, md);
    }

    /// <summary>`images-ridge`: scores covariance ridges on the training images alone (ImageProtocol.RidgeValidation),
    /// to choose `images --ridge` without looking at the test images.</summary>
    public static void Ridge(Args a)
    {
        set_num_threads(1);
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var dataset = a.Get("dataset") ?? "mnist";
        var dataDir = a.Get("data-dir") ?? Path.Combine(TablesBench.RepoRoot(), "..", "shared", "data");
        var rates = a.List("rates")?.Select(r => double.Parse(r, inv)).ToArray() ?? new[] { .1, .5 };
        var ridges = a.List("ridges")?.Select(r => double.Parse(r, inv)).ToArray() ?? new[] { 1e-6, 1e-3, 1e-2, 3e-2, 1e-1 };
        int sweeps = a.Int("gem-sweeps", 2);
        long seed = a.Int("seed", 0);
        int nTrain = a.Int("train", dataset == "mnist" ? 8000 : 60000);
        var method = a.Get("method") ?? "gaussian-em";
        var (train, _, _, _, width, height, _) = Load(dataDir, dataset, nTrain, 1);
        var protocol = new ImageProtocolOptions { Seed = seed, Iterations = a.Int("iterations", 1), Epochs = a.Int("epochs", 1), GaussianEmSweeps = sweeps };
        if (method is not ("gaussian-em" or "emflow")) throw new ArgumentException($"--method must be gaussian-em or emflow; got '{method}'");
        Imputer Make(double ridge) => ImageProtocol.Create(method, width, height, protocol with { Ridge = ridge });
        string what = method == "emflow"
            ? $"EMFlow ({protocol.Iterations} iteration(s) × {protocol.Epochs} epoch(s), otherwise the settings of `images`)"
            : $"Gaussian EM ({sweeps} sweep(s))";
        var md = new System.Text.StringBuilder();
        var source = dataset == "mnist" ? $"MNIST: the first {nTrain} images of its 10k test split (the images `images` trains on)" : $"{dataset}: the first {nTrain} training images";
        md.AppendLine($"{source}; no test image is used. {what} fitted on the first {nTrain * 3 / 4} training images, "
            + $"completing the other {nTrain - nTrain * 3 / 4}; RMSE over their missing pixels (MCAR), seed {seed}.");
        md.AppendLine();
        md.AppendLine("| ridge | " + string.Join(" | ", rates.Select(r => r.ToString("0.0#", inv))) + " |");
        md.AppendLine("|---|" + string.Concat(rates.Select(_ => "---|")));
        var byRate = rates.Select(r =>
        {
            var scores = ImageProtocol.RidgeValidation(train, r, ridges, Make, seed);
            foreach (var (ridge, rmse, seconds) in scores) Console.Error.WriteLine($"  rate {r}: ridge {ridge:g}: RMSE {rmse:F4} ({seconds:F0} s)");
            return scores;
        }).ToArray();
        for (int k = 0; k < ridges.Length; k++)
            md.AppendLine($"| {ridges[k].ToString("g", inv)} | " + string.Join(" | ", byRate.Select(s =>
            {
                bool best = s.Min(x => x.Rmse) == s[k].Rmse;
                return best ? $"**{s[k].Rmse:F4}**" : $"{s[k].Rmse:F4}";
            })) + " |");
        Console.WriteLine(md);
        var path = a.Get("markdown") ?? Path.Combine(TablesBench.RepoRoot(), "bench", "results", $"images-ridge-{dataset}{(method == "emflow" ? "-emflow" : "")}.md");
        File.WriteAllText(path, md.ToString());
    }

    private static (double[,], int[], double[,], int[], int, int, string) Load(string dir, string dataset, int nTrain, int nTest)
    {
        if (nTrain < 2) throw new ArgumentException($"--train must be at least 2; got {nTrain}");
        if (nTest < 1) throw new ArgumentException($"--test must be at least 1; got {nTest}");
        string F(string name) =>
            File.Exists(Path.Combine(dir, dataset, name)) ? Path.Combine(dir, dataset, name)
            : throw new ArgumentException($"{Path.Combine(dir, dataset, name)} not found; point --data-dir at a folder holding {dataset}/{name}");
        switch (dataset)
        {
            case "mnist":
            {
                // Only the 10k test split of MNIST is available: its first images train, its last ones test.
                var images = Idx.ReadImages(F("t10k-images-idx3-ubyte.gz"));
                var labels = Idx.ReadLabels(F("t10k-labels-idx1-ubyte.gz"));
                if (nTrain + nTest > images.Count)
                    throw new ArgumentException($"--train + --test must be at most {images.Count} for MNIST's test split; got {nTrain} + {nTest}");
                return (Rows(images.Pixels, 0, nTrain), labels[..nTrain], Rows(images.Pixels, images.Count - nTest, nTest), labels[^nTest..],
                    images.Columns, images.Rows, $"MNIST test split: first {nTrain} train, last {nTest} test");
            }
            case "fashion_mnist":
            {
                var trainImages = Idx.ReadImages(F("train-images-idx3-ubyte.gz"));
                var trainLabels = Idx.ReadLabels(F("train-labels-idx1-ubyte.gz"));
                var testImages = Idx.ReadImages(F("t10k-images-idx3-ubyte.gz"));
                var testLabels = Idx.ReadLabels(F("t10k-labels-idx1-ubyte.gz"));
                if (nTrain > trainImages.Count || nTest > testImages.Count)
                    throw new ArgumentException($"--train at most {trainImages.Count} and --test at most {testImages.Count}; got {nTrain} and {nTest}");
                return (Rows(trainImages.Pixels, 0, nTrain), trainLabels[..nTrain], Rows(testImages.Pixels, 0, nTest), testLabels[..nTest],
                    trainImages.Columns, trainImages.Rows, $"Fashion-MNIST: first {nTrain} of the 60k train, first {nTest} of the 10k test");
            }
            default:
                throw new ArgumentException($"unknown dataset '{dataset}'; expected mnist or fashion_mnist");
        }
    }

    private static double[,] Rows(double[,] x, int start, int count)
    {
        int p = x.GetLength(1);
        var r = new double[count, p];
        Buffer.BlockCopy(x, start * p * sizeof(double), r, 0, count * p * sizeof(double));
        return r;
    }

    private static T[,] Head<T>(T[,] x, int k)
    {
        var r = new T[k, x.GetLength(1)];
        for (int i = 0; i < k; i++) for (int j = 0; j < x.GetLength(1); j++) r[i, j] = x[i, j];
        return r;
    }

    /// <summary>Ground truth, observed (missing pixels blue) and each image method's completion of the first test
    /// images, one block per rate .5 and .9 (the rates run among them); false when neither rate ran.</summary>
    private static bool WriteGrid(string path, double[,] test, ImageProtocolResult result, int width, int height)
    {
        var blocks = result.Rows.Where(r => Math.Abs(r.Rate - .5) < 1e-9 || Math.Abs(r.Rate - .9) < 1e-9).GroupBy(r => r.Rate).ToArray();
        if (blocks.Length == 0) return false;
        string[] shown = { "nearest", "emflow", "emflow-zero", "emflow-checkerboard", "emflow-conv", "emflow-gem-start" };
        int k = blocks[0].First().FirstImages.GetLength(0), scale = 2, gap = 2;
        var lines = new List<(double[,] Images, bool[,]? Missing)>();
        foreach (var b in blocks)
        {
            var first = b.First();
            lines.Add((Head(test, k), null));
            lines.Add((first.FirstImages, first.FirstMask));
            foreach (var m in shown)
                if (b.FirstOrDefault(r => r.Method == m) is { } row) lines.Add((row.FirstImages, null));
            lines.Add((new double[0, 0], null)); // a blank line between rates
        }
        int cellW = width * scale + gap, cellH = height * scale + gap;
        var rgb = new byte[lines.Count * cellH, k * cellW, 3];
        for (int y = 0; y < rgb.GetLength(0); y++) for (int x = 0; x < rgb.GetLength(1); x++) for (int c = 0; c < 3; c++) rgb[y, x, c] = 255;
        for (int l = 0; l < lines.Count; l++)
        {
            var (images, missing) = lines[l];
            if (images.Length == 0) continue;
            for (int i = 0; i < k; i++)
                for (int r = 0; r < height; r++)
                    for (int c = 0; c < width; c++)
                    {
                        int j = r * width + c;
                        bool hole = missing is not null && missing[i, j];
                        byte v = (byte)Math.Round(255 * Math.Clamp(images[i, j], 0, 1));
                        var (R, G, B) = hole ? ((byte)40, (byte)70, (byte)200) : (v, v, v);
                        for (int dy = 0; dy < scale; dy++)
                            for (int dx = 0; dx < scale; dx++)
                            {
                                int y = l * cellH + r * scale + dy, x = i * cellW + c * scale + dx;
                                rgb[y, x, 0] = R; rgb[y, x, 1] = G; rgb[y, x, 2] = B;
                            }
                    }
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        // A raw pixel grid, no plot: ScottPlot's Image takes (height, width, RGB) bytes as they are.
        using var image = new ScottPlot.Image(rgb);
        image.SavePng(path);
        return true;
    }

    /// <summary>Reads bench/results/images*.jsonl (or --files) and prints the Markdown tables.</summary>
    public static void ReportFiles(Args a)
    {
        var files = a.List("files") ?? Directory.GetFiles(Path.Combine(TablesBench.RepoRoot(), "bench", "results"), "images*.jsonl");
        var records = files.OrderBy(f => f).SelectMany(File.ReadAllLines).Where(l => l.Length > 0)
            .Select(l => JsonSerializer.Deserialize<ImageRecord>(l)!).ToList();
        Console.WriteLine(Markdown(records, double.NaN));
    }

    public static string Markdown(IReadOnlyList<ImageRecord> records, double classifierSeconds)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var g in records.GroupBy(r => (r.dataset, r.split, r.quick)))
        {
            var rs = g.ToList();
            var rates = rs.Select(r => r.rate).Distinct().OrderBy(r => r).ToArray();
            var methods = rs.Select(r => r.method).Distinct().ToArray();
            bool mnist = g.Key.dataset == "mnist";
            string Rate(double r) => r.ToString(".0##", System.Globalization.CultureInfo.InvariantCulture);
            int PaperIndex(double r) => Array.FindIndex(AllRates, x => Math.Abs(x - r) < 1e-9);
            sb.AppendLine($"{g.Key.split}{(g.Key.quick ? " (quick)" : "")}; seed {rs[0].seed}; MCAR per pixel; hidden rate of the test pixels: "
                + string.Join(", ", rates.Select(r => $"{Rate(r)} → {rs.First(x => x.rate == r).hidden_rate:F3}")));
            sb.AppendLine();
            sb.AppendLine("RMSE over the test images' missing pixels, [0, 1] (Table 2; bold: best of ours)");
            sb.AppendLine();
            var header = new[] { "method" }.Concat(rates.Select(Rate)).ToArray();
            var rmseRows = methods.Select(m => (IReadOnlyList<string>)new[] { m }.Concat(rates.Select(r =>
            {
                var rec = rs.FirstOrDefault(x => x.method == m && x.rate == r);
                if (rec is null) return "—";
                bool best = rec.rmse == rs.Where(x => x.rate == r).Min(x => x.rmse);
                return best ? $"**{rec.rmse:F4}**" : $"{rec.rmse:F4}";
            })).ToArray()).ToList();
            if (mnist)
                foreach (var (name, values) in PaperRmse)
                    rmseRows.Add(new[] { name }.Concat(rates.Select(r => PaperIndex(r) is >= 0 and var i ? $"{values[i]:.0000}" : "—")).ToArray());
            sb.Append(Report.Table(header, rmseRows));
            sb.AppendLine();
            sb.AppendLine($"Accuracy of the LeNet-style classifier ({rs[0].classifier_epochs} epoch(s) on the complete training images) on the completed test images (Table 3); on the complete test images: {rs[0].complete_accuracy:F4}");
            sb.AppendLine();
            var accRows = methods.Select(m => (IReadOnlyList<string>)new[] { m }.Concat(rates.Select(r =>
                rs.FirstOrDefault(x => x.method == m && x.rate == r) is { } rec ? $"{rec.accuracy:F4}" : "—")).ToArray()).ToList();
            if (mnist)
                accRows.Add(new[] { "paper EMFlow (MNIST 60k/10k, LeNet)" }.Concat(rates.Select(r => PaperIndex(r) is >= 0 and var i ? $"{PaperAccuracy[i]:.0000}" : "—")).ToArray());
            sb.Append(Report.Table(header, accRows));
            sb.AppendLine();
            sb.AppendLine("Seconds to fit (training images) + complete (test images), and peak working set while the method ran; EMFlow also seconds per iteration");
            sb.AppendLine();
            var timeRows = methods.Select(m => (IReadOnlyList<string>)new[] { m }.Concat(rates.Select(r =>
                rs.FirstOrDefault(x => x.method == m && x.rate == r) is { } rec
                    ? $"{rec.fit_seconds:F1} + {rec.transform_seconds:F1} s, {rec.peak_working_set_mb:F0} MB"
                      + (rec.iteration_seconds.Length > 0 ? $" ({string.Join(" / ", rec.iteration_seconds.Select(t => $"{t:F0}"))} s/it)" : "")
                    : "—")).ToArray()).ToList();
            sb.Append(Report.Table(header, timeRows));
            sb.AppendLine();
            double total = rs.Sum(r => r.fit_seconds + r.transform_seconds);
            sb.AppendLine($"Total fit + complete time over every rate and method: {total / 60:F1} min" + (double.IsNaN(classifierSeconds) ? "" : $"; classifier training {classifierSeconds:F1} s") + ".");
            sb.AppendLine();
            foreach (var m in methods) sb.AppendLine($"- {m}: {rs.First(x => x.method == m).settings}");
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
