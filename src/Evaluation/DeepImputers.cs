using System.Diagnostics;
using static TorchSharp.torch;

namespace EMFlow.Baselines;

/// <summary>Settings every deep rival shares: its Adam learning rate, its seed and the thread count of its fit.</summary>
public abstract record DeepImputerOptions
{
    /// <summary>Adam learning rate (of every network the method trains). Default 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Seed of every random choice.</summary>
    public long Seed { get; init; }
    /// <summary>Torch intra-op threads during Fit; null keeps the imputer's default of 1 (<c>Imputer</c>'s thread scope).</summary>
    public int? TorchThreads { get; init; }
}

/// <summary>
/// What the deep rivals (<see cref="GainImputer"/>, <see cref="MiwaeImputer"/>, <see cref="McFlowImputer"/>) share: settings
/// kept from construction and checked at Fit (the thread count here), a fit that holds the thread count, builds a
/// fresh model and keeps it only when training completes, and the model's release.
/// </summary>
/// <typeparam name="TOptions">The method's settings.</typeparam>
/// <typeparam name="TModel">Its trained networks.</typeparam>
public abstract class DeepImputer<TOptions, TModel> : Imputer
    where TOptions : DeepImputerOptions, new()
    where TModel : class, IDisposable
{
    /// <summary>An imputer with the given settings (checked at Fit); null takes the defaults.</summary>
    protected DeepImputer(TOptions? options) => Options = options ?? new TOptions();

    /// <summary>The settings.</summary>
    public TOptions Options { get; }

    /// <summary>The trained model; null before the first successful Fit. A failed or cancelled refit keeps the previous one.</summary>
    protected TModel? Model { get; private set; }

    /// <inheritdoc />
    protected override void ValidateSettings(int rows, int columns)
    {
        if (Options.TorchThreads is < 1) throw new ArgumentOutOfRangeException(nameof(Options.TorchThreads), Options.TorchThreads, "TorchThreads must be at least 1 when given.");
    }

    /// <summary>A new, untrained model for <paramref name="features"/> columns.</summary>
    protected abstract TModel CreateModel(int features);

    /// <summary>Trains <paramref name="model"/> on scaled rows; <paramref name="clock"/> runs since Fit started.</summary>
    protected abstract void Train(TModel model, Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, Stopwatch clock, CancellationToken ct);

    /// <inheritdoc />
    protected sealed override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        using var threads = new TorchThreadScope(Options.TorchThreads);
        var clock = Stopwatch.StartNew();
        var model = CreateModel((int)x.shape[1]);
        try
        {
            Train(model, x, mask, progress, clock, ct);
        }
        catch
        {
            // A failed or cancelled refit leaves the previous model in place.
            model.Dispose();
            throw;
        }
        var previous = Model;
        Model = model;
        previous?.Dispose();
    }

    /// <summary>Disposes the model (and whatever else a subclass keeps from a fit).</summary>
    protected virtual void Release()
    {
        Model?.Dispose();
        Model = null;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        Release();
        base.Dispose(disposing);
    }
}

/// <summary>Settings of <see cref="GainImputer"/>; defaults are the GAIN paper's.</summary>
public sealed record GainOptions : DeepImputerOptions
{
    /// <summary>Probability that the hint reveals an entry's status to the discriminator. Default 0.9.</summary>
    public double HintRate { get; init; } = 0.9;
    /// <summary>Weight α of the reconstruction error of observed entries. Default 100.</summary>
    public double Alpha { get; init; } = 100;
    /// <summary>Rows per mini-batch (capped at n). Default 128.</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>Training iterations. Default 10000.</summary>
    public int Iterations { get; init; } = 10000;
}

/// <summary>
/// GAIN imputation (Yoon, Jordon and van der Schaar, ICML 2018): a generator fills missing entries while a
/// discriminator, given a hint of the mask, tries to tell them from observed ones.
/// </summary>
public sealed class GainImputer : DeepImputer<GainOptions, Gain.Model>
{
    /// <summary>An imputer with the given settings (checked at Fit).</summary>
    public GainImputer(GainOptions? options = null) : base(options) { }

    private Gain.Settings Settings => new(Options.HintRate, Options.Alpha, Options.BatchSize, Options.Iterations, Options.LearningRate);

    /// <inheritdoc />
    protected override void ValidateSettings(int rows, int columns)
    {
        Gain.validate(Settings);
        base.ValidateSettings(rows, columns);
    }

    /// <inheritdoc />
    protected override Gain.Model CreateModel(int features) => new(features, Options.Seed);

    /// <inheritdoc />
    protected override void Train(Gain.Model model, Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, Stopwatch clock, CancellationToken ct)
    {
        using var gen = Tensors.generator(Tensors.deriveSeed(Options.Seed, 2));
        using var optD = new Optim.Adam(model.DiscriminatorParameters, Options.LearningRate);
        using var optG = new Optim.Adam(model.GeneratorParameters, Options.LearningRate);
        long n = x.shape[0], batch = Math.Min(Options.BatchSize, n);
        int every = Math.Max(1, Options.Iterations / 100);
        for (int it = 1; it <= Options.Iterations; it++)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var rows = randperm(n, generator: gen).narrow(0, 0, batch);
            var (d, g, _) = Gain.trainStep(Settings, model, optD, optG, gen, x.index_select(0, rows), mask.index_select(0, rows)).ToValueTuple();
            if (it % every == 0 || it == Options.Iterations)
                progress?.Report(new TrainingProgress("training", 1, 1, it, Options.Iterations, d, g, clock.Elapsed));
        }
    }

    /// <inheritdoc />
    protected override Tensor TransformScaled(Tensor x, Tensor mask)
    {
        using var gen = Tensors.generator(Tensors.deriveSeed(Options.Seed, 3));
        return Gain.impute(Model!, gen, x, mask);
    }
}

/// <summary>Settings of <see cref="MiwaeImputer"/>.</summary>
public sealed record MiwaeOptions : DeepImputerOptions
{
    /// <summary>Latent dimension. Default 10 (capped at p).</summary>
    public int Latent { get; init; } = 10;
    /// <summary>Hidden width of encoder and decoder. Default 128.</summary>
    public int Hidden { get; init; } = 128;
    /// <summary>Importance samples per row in the training bound. Default 20.</summary>
    public int Samples { get; init; } = 20;
    /// <summary>Importance samples per row when imputing. Default 200.</summary>
    public int ImputeSamples { get; init; } = 200;
    /// <summary>Rows per mini-batch (capped at n). Default 64.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Passes over the data. Default 200.</summary>
    public int Epochs { get; init; } = 200;
}

/// <summary>
/// MIWAE imputation (Mattei and Frellsen, ICML 2019): a deep latent variable model trained on the
/// importance-weighted bound of the observed data; imputes by self-normalised importance sampling and draws
/// multiple imputations by importance resampling.
/// </summary>
public sealed class MiwaeImputer : DeepImputer<MiwaeOptions, Miwae.Model>
{
    /// <summary>An imputer with the given settings (checked at Fit).</summary>
    public MiwaeImputer(MiwaeOptions? options = null) : base(options) { }

    /// <summary>Mean importance-weighted bound per row after each epoch (on the [0, 1] scale).</summary>
    public IReadOnlyList<double> BoundHistory { get; private set; } = Array.Empty<double>();

    private Miwae.Settings SettingsFor(int p) =>
        new(Math.Min(Options.Latent, p), Options.Hidden, Options.Samples, Options.ImputeSamples, Options.BatchSize, Options.Epochs, Options.LearningRate);

    /// <inheritdoc />
    protected override void ValidateSettings(int rows, int columns)
    {
        Miwae.validate(new Miwae.Settings(Options.Latent, Options.Hidden, Options.Samples, Options.ImputeSamples, Options.BatchSize, Options.Epochs, Options.LearningRate));
        base.ValidateSettings(rows, columns);
    }

    /// <inheritdoc />
    protected override Miwae.Model CreateModel(int features) => new(features, SettingsFor(features), Options.Seed);

    /// <inheritdoc />
    protected override void Train(Miwae.Model model, Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, Stopwatch clock, CancellationToken ct)
    {
        var history = new List<double>();
        using var gen = Tensors.generator(Tensors.deriveSeed(Options.Seed, 2));
        using var opt = new Optim.Adam(model.Parameters, Options.LearningRate);
        long n = x.shape[0], batch = Math.Min(Options.BatchSize, n);
        for (int epoch = 1; epoch <= Options.Epochs; epoch++)
        {
            using var order = randperm(n, generator: gen);
            double sum = 0; int count = 0;
            for (long s = 0; s < n; s += batch)
            {
                ct.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var rows = order.narrow(0, s, Math.Min(batch, n - s));
                sum += Miwae.trainStep(model, opt, gen, x.index_select(0, rows), mask.index_select(0, rows));
                count++;
            }
            history.Add(sum / count);
            progress?.Report(new TrainingProgress("training", 1, 1, epoch, Options.Epochs, -sum / count, double.NaN, clock.Elapsed));
        }
        BoundHistory = history;
    }

    /// <inheritdoc />
    protected override Tensor TransformScaled(Tensor x, Tensor mask)
    {
        using var gen = Tensors.generator(Tensors.deriveSeed(Options.Seed, 3));
        return Chunked(x, mask, (xb, mb) => Miwae.impute(Model!, gen, xb, mb));
    }

    /// <summary>Multiple imputation: <paramref name="count"/> completed tables drawn by importance resampling.</summary>
    /// <param name="data">(m, p) rows with NaN marking missing values.</param>
    /// <param name="count">Number of tables, at least 1.</param>
    /// <param name="seed">Seed of the draws.</param>
    public IReadOnlyList<double[,]> SampleImputations(double[,] data, int count, long seed = 0)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be at least 1; got {count}.");
        var scaler = RequireScaler();
        var c = CheckRows(nameof(data), scaler.Features, data, null);
        using var scope = NewDisposeScope();
        var x = Scaled(scaler, c);
        using var gen = Tensors.generator(seed);
        var result = new List<double[,]>();
        for (int k = 0; k < count; k++)
        {
            var draw = Chunked(x, c.Mask, (xb, mb) => Miwae.sample(Model!, gen, xb, mb));
            result.Add(WriteBack(data, c, Scaler.inverseTransform(scaler, draw)));
        }
        return result;
    }

    // K importance samples per row make (K, B, p) temporaries: rows go through in chunks.
    private static Tensor Chunked(Tensor x, Tensor mask, Func<Tensor, Tensor, Tensor> f)
    {
        const long chunk = 256;
        var parts = new List<Tensor>();
        for (long s = 0; s < x.shape[0]; s += chunk)
        {
            long len = Math.Min(chunk, x.shape[0] - s);
            parts.Add(f(x.narrow(0, s, len), mask.narrow(0, s, len)));
        }
        return parts.Count == 1 ? parts[0] : cat(parts, 0);
    }
}

/// <summary>Settings of <see cref="McFlowImputer"/>.</summary>
public sealed record McFlowOptions : DeepImputerOptions
{
    /// <summary>Epochs (flow training, latent-network training, re-imputation). Default 30.</summary>
    public int Epochs { get; init; } = 30;
    /// <summary>Rows per mini-batch (capped at n). Default 256.</summary>
    public int BatchSize { get; init; } = 256;
    /// <summary>Weight of the embedding's negative log-likelihood against the observed-entry error. Default 1e-3.</summary>
    public double LikelihoodWeight { get; init; } = 1e-3;
    /// <summary>Coupling layers of the flow. Default 6.</summary>
    public int CouplingLayers { get; init; } = 6;
    /// <summary>Hidden width of flow and latent network. Default 128.</summary>
    public int HiddenWidth { get; init; } = 128;
    /// <summary>Re-imputation passes for rows given to Transform, starting from the training means. Default 5.</summary>
    public int TransformPasses { get; init; } = 5;
}

/// <summary>
/// MCFlow imputation (Richardson, Ebrahimi and Alahi, CVPR 2020): a RealNVP flow with a standard-normal base and a
/// latent-to-latent network that finds the likeliest embedding consistent with each row's observed entries,
/// alternated with re-imputation every epoch.
/// </summary>
public sealed class McFlowImputer : DeepImputer<McFlowOptions, McFlow.Model>
{
    private Tensor? _fill;

    /// <summary>An imputer with the given settings (checked at Fit).</summary>
    public McFlowImputer(McFlowOptions? options = null) : base(options) { }

    private McFlow.Settings Settings => new(Options.Epochs, Options.BatchSize, Options.LearningRate, Options.LikelihoodWeight, Options.CouplingLayers, Options.HiddenWidth);

    /// <inheritdoc />
    protected override void ValidateSettings(int rows, int columns)
    {
        McFlow.validate(Settings);
        if (Options.TransformPasses < 1) throw new ArgumentOutOfRangeException(nameof(Options.TransformPasses), Options.TransformPasses, "TransformPasses must be at least 1.");
        base.ValidateSettings(rows, columns);
        if (rows < 2) throw new ArgumentException($"MCFlow needs at least 2 rows to fit; got {rows}.", "data");
    }

    /// <inheritdoc />
    protected override McFlow.Model CreateModel(int features) => new(features, Settings, Options.Seed);

    /// <inheritdoc />
    protected override void Train(McFlow.Model model, Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, Stopwatch clock, CancellationToken ct)
    {
        using var gen = Tensors.generator(Tensors.deriveSeed(Options.Seed, 2));
        using var optFlow = new Optim.Adam(Flow.parameters(model.Flow), Options.LearningRate);
        using var optNet = new Optim.Adam(model.NetParameters, Options.LearningRate);
        long n = x.shape[0], batch = Math.Min(Options.BatchSize, n);
        var fill = FillValues(x, mask, SimpleStrategy.Mean);
        var xHat = where(mask.gt(Tensors.sc(0.5)), fill.expand(x.shape), x);
        using var lower = zeros(x.shape[1], dtype: float64);
        using var upper = ones(x.shape[1], dtype: float64);
        for (int epoch = 1; epoch <= Options.Epochs; epoch++)
        {
            double flowLoss = 0, netLoss = 0; int count = 0;
            using var order = randperm(n, generator: gen);
            for (long s = 0; s + 1 < n; s += batch)
            {
                ct.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var rows = order.narrow(0, s, Math.Min(batch, n - s));
                flowLoss += McFlow.flowStep(model, optFlow, xHat.index_select(0, rows));
                count++;
            }
            for (long s = 0; s + 1 < n; s += batch)
            {
                ct.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var rows = order.narrow(0, s, Math.Min(batch, n - s));
                netLoss += McFlow.netStep(Settings, model, optNet, xHat.index_select(0, rows), mask.index_select(0, rows));
            }
            xHat = McFlow.reimpute(model, lower, upper, xHat, mask);
            progress?.Report(new TrainingProgress("training", 1, 1, epoch, Options.Epochs, flowLoss / count, netLoss / count, clock.Elapsed));
        }
        var previous = _fill;
        _fill = fill.clone().DetachFromDisposeScope();
        previous?.Dispose();
    }

    /// <inheritdoc />
    protected override Tensor TransformScaled(Tensor x, Tensor mask)
    {
        var xHat = where(mask.gt(Tensors.sc(0.5)), _fill!.expand(x.shape), x);
        var lower = zeros(x.shape[1], dtype: float64);
        var upper = ones(x.shape[1], dtype: float64);
        for (int k = 0; k < Options.TransformPasses; k++)
            xHat = McFlow.reimpute(Model!, lower, upper, xHat, mask);
        return xHat;
    }

    /// <inheritdoc />
    protected override void Release()
    {
        base.Release();
        _fill?.Dispose();
        _fill = null;
    }
}
