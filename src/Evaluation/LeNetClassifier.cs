using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace EMFlow.Evaluation;

/// <summary>
/// A LeNet-style image classifier (LeCun et al. 1998) for the paper's Table 3: two 5 × 5 convolutions (6 and 16
/// channels, padding 2, ReLU), each followed by 2 × 2 max pooling, then dense layers of 120 and 84 units and one
/// output per class. Trained with Adam on cross-entropy; float32; every weight and every batch order drawn from a
/// generator seeded by <c>seed</c>, never from torch's global one.
/// </summary>
/// <remarks>Padding 2 on both convolutions (LeNet-5 pads only the first) lets the same network take images from
/// 4 × 4 pixels up, so tests can train it on tiny synthetic images; at 28 × 28 the dense input is 16 × 7 × 7.</remarks>
/// <example>
/// <code>
/// using var net = new LeNetClassifier(28, 28, classes: 10, seed: 0);
/// net.Fit(trainImages, trainLabels, epochs: 3);        // (n, 784) in [0, 1], labels 0-9
/// double accuracy = net.Accuracy(testImages, testLabels);
/// </code>
/// </example>
public sealed class LeNetClassifier : IDisposable
{
    private readonly TorchSharp.Modules.Parameter[] _parameters;
    private readonly TorchSharp.Modules.Parameter _c1w, _c1b, _c2w, _c2b, _f1w, _f1b, _f2w, _f2b, _f3w, _f3b;
    private readonly long _seed;
    private bool _disposed;

    /// <summary>An untrained network for <paramref name="width"/> × <paramref name="height"/> one-channel images.</summary>
    /// <param name="width">Image width, at least 4.</param>
    /// <param name="height">Image height, at least 4.</param>
    /// <param name="classes">Number of classes, at least 2; labels are 0 … classes − 1.</param>
    /// <param name="seed">Seed of the initial weights and of the batch order.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size out of range.</exception>
    public LeNetClassifier(int width, int height, int classes = 10, long seed = 0)
    {
        if (width < 4) throw new ArgumentOutOfRangeException(nameof(width), width, $"width must be at least 4; got {width}.");
        if (height < 4) throw new ArgumentOutOfRangeException(nameof(height), height, $"height must be at least 4; got {height}.");
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(classes), classes, $"classes must be at least 2; got {classes}.");
        Width = width; Height = height; Classes = classes; _seed = seed;
        int flat = 16 * (height / 2 / 2) * (width / 2 / 2);
        using var gen = Tensors.generator(seed);
        // PyTorch's default draw for convolutions and linear layers: U(±1/√fan_in) for weights and biases.
        TorchSharp.Modules.Parameter P(long[] shape, long fanIn)
        {
            var bound = 1.0 / Math.Sqrt(fanIn);
            using var noGrad = no_grad();
            var t = empty(shape, dtype: float32).uniform_(-bound, bound, gen);
            var p = new TorchSharp.Modules.Parameter(t, true);
            p.DetachFromDisposeScope();
            return p;
        }
        _c1w = P(new long[] { 6, 1, 5, 5 }, 25); _c1b = P(new long[] { 6 }, 25);
        _c2w = P(new long[] { 16, 6, 5, 5 }, 150); _c2b = P(new long[] { 16 }, 150);
        _f1w = P(new long[] { 120, flat }, flat); _f1b = P(new long[] { 120 }, flat);
        _f2w = P(new long[] { 84, 120 }, 120); _f2b = P(new long[] { 84 }, 120);
        _f3w = P(new long[] { classes, 84 }, 84); _f3b = P(new long[] { classes }, 84);
        _parameters = new[] { _c1w, _c1b, _c2w, _c2b, _f1w, _f1b, _f2w, _f2b, _f3w, _f3b };
    }

    /// <summary>Image width in pixels.</summary>
    public int Width { get; }

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <summary>Number of classes.</summary>
    public int Classes { get; }

    /// <summary>Mean training cross-entropy of each epoch of the last <see cref="Fit"/>.</summary>
    public IReadOnlyList<double> EpochLosses { get; private set; } = Array.Empty<double>();

    /// <summary>Trains on complete images.</summary>
    /// <param name="images">(n, width · height) pixel values, row-major, typically in [0, 1]; no NaN.</param>
    /// <param name="labels">n labels in 0 … classes − 1.</param>
    /// <param name="epochs">Passes over the images, at least 1.</param>
    /// <param name="batchSize">Images per Adam step, at least 1.</param>
    /// <param name="learningRate">Adam learning rate, positive.</param>
    /// <param name="torchThreads">Torch intra-op threads during training; null leaves torch's setting alone.</param>
    /// <exception cref="ArgumentException">Shapes that do not match, a NaN pixel, or a label out of range.</exception>
    /// <exception cref="ArgumentOutOfRangeException">epochs, batchSize or learningRate out of range.</exception>
    public void Fit(double[,] images, int[] labels, int epochs = 3, int batchSize = 64, double learningRate = 1e-3, int? torchThreads = 1)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (epochs < 1) throw new ArgumentOutOfRangeException(nameof(epochs), epochs, $"epochs must be at least 1; got {epochs}.");
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"batchSize must be at least 1; got {batchSize}.");
        if (!(learningRate > 0) || !double.IsFinite(learningRate))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, $"learningRate must be positive and finite; got {learningRate}.");
        ArgumentNullException.ThrowIfNull(labels);
        var x = ToInput(images);
        if (labels.Length != x.shape[0])
            throw new ArgumentException($"Expected one label per image ({x.shape[0]}); got {labels.Length}.", nameof(labels));
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] < 0 || labels[i] >= Classes)
                throw new ArgumentException($"Labels must lie in 0 … {Classes - 1}; got {labels[i]} at {i}.", nameof(labels));
        using var threads = new TorchThreadScope(torchThreads);
        using var xs = x;
        using var ys = tensor(labels.Select(l => (long)l).ToArray(), dtype: int64);
        using var gen = Tensors.generator(Tensors.deriveSeed(_seed, 1));
        using var opt = new Optim.Adam(_parameters, learningRate);
        long n = x.shape[0];
        var losses = new List<double>();
        for (int e = 0; e < epochs; e++)
        {
            using var order = randperm(n, generator: gen);
            double sum = 0; int batches = 0;
            for (long s = 0; s < n; s += batchSize)
            {
                using var scope = NewDisposeScope();
                var rows = order.narrow(0, s, Math.Min(batchSize, n - s));
                var loss = F.cross_entropy(Logits(xs.index_select(0, rows)), ys.index_select(0, rows));
                opt.ZeroGrad();
                loss.backward();
                opt.Step();
                sum += loss.item<float>(); batches++;
            }
            losses.Add(sum / batches);
        }
        EpochLosses = losses;
    }

    /// <summary>The most probable class of each image.</summary>
    /// <param name="images">(m, width · height) pixel values; no NaN.</param>
    /// <returns>m predicted labels.</returns>
    public int[] Predict(double[,] images)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var x = ToInput(images);
        using var noGrad = no_grad();
        var result = new int[x.shape[0]];
        for (long s = 0; s < x.shape[0]; s += 1024)
        {
            using var scope = NewDisposeScope();
            var len = Math.Min(1024, x.shape[0] - s);
            var pred = Logits(x.narrow(0, s, len)).argmax(1).data<long>().ToArray();
            for (int i = 0; i < len; i++) result[s + i] = (int)pred[i];
        }
        return result;
    }

    /// <summary>Share of images whose predicted class is their label, in [0, 1].</summary>
    /// <param name="images">(m, width · height) pixel values; no NaN.</param>
    /// <param name="labels">m labels.</param>
    public double Accuracy(double[,] images, int[] labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var pred = Predict(images);
        if (labels.Length != pred.Length)
            throw new ArgumentException($"Expected one label per image ({pred.Length}); got {labels.Length}.", nameof(labels));
        return pred.Zip(labels).Count(t => t.First == t.Second) / (double)Math.Max(1, pred.Length);
    }

    private Tensor Logits(Tensor x)
    {
        var h = F.max_pool2d(F.relu(F.conv2d(x, _c1w, _c1b, padding: new long[] { 2, 2 })), new long[] { 2, 2 });
        h = F.max_pool2d(F.relu(F.conv2d(h, _c2w, _c2b, padding: new long[] { 2, 2 })), new long[] { 2, 2 });
        h = F.relu(F.linear(h.flatten(1), _f1w, _f1b));
        h = F.relu(F.linear(h, _f2w, _f2b));
        return F.linear(h, _f3w, _f3b);
    }

    /// <summary>(n, h · w) doubles to a (n, 1, h, w) float32 tensor, checked.</summary>
    private Tensor ToInput(double[,] images)
    {
        ArgumentNullException.ThrowIfNull(images);
        int n = images.GetLength(0), p = images.GetLength(1);
        if (p != Width * Height)
            throw new ArgumentException($"Expected {Width * Height} pixels per image ({Width} × {Height}), got {p}.", nameof(images));
        var flat = new float[(long)n * p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
            {
                var v = images[i, j];
                if (!double.IsFinite(v)) throw new ArgumentException($"Pixels must be finite; got {v} at ({i}, {j}).", nameof(images));
                flat[(long)i * p + j] = (float)v;
            }
        var t = tensor(flat, new long[] { n, 1, Height, Width }, dtype: float32);
        return t.DetachFromDisposeScope();
    }

    /// <summary>Releases the weights.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var p in _parameters) p.Dispose();
    }
}
