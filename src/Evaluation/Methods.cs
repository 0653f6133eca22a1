using EMFlow.Baselines;

namespace EMFlow.Evaluation;

/// <summary>
/// One imputation method as the protocol sees it: fitted once per fold on the training rows, then asked to
/// complete the test rows. <see cref="Imputer"/>s take part through <see cref="Method.Of"/>; anything else (another
/// library, a test double) implements this interface.
/// </summary>
public interface IImputationMethod : IDisposable
{
    /// <summary>Fits on the training rows (n, p), NaN marking every entry the method may not see.</summary>
    void Fit(double[,] train);

    /// <summary>Returns the rows (m, p) with every NaN replaced; observed entries are expected unchanged.</summary>
    double[,] Transform(double[,] rows);
}

/// <summary>
/// A method that also takes tables with categorical columns (<see cref="ColumnKind"/>): after
/// <see cref="Fit(double[,], IReadOnlyList{ColumnKind})"/>, <see cref="IImputationMethod.Transform"/> imputes each
/// missing categorical cell as one of the categories seen at Fit. The protocol runs such tables only with these
/// methods; every method backed by an <see cref="Imputer"/> is one (<see cref="ImputerMethod"/>, through
/// <see cref="MixedImputer"/>).
/// </summary>
public interface IMixedImputationMethod : IImputationMethod
{
    /// <summary>Fits on training rows (n, p) of numeric and categorical columns, NaN marking every entry the method
    /// may not see; a categorical cell holds its category's code (any finite number).</summary>
    /// <param name="train">(n, p) rows.</param>
    /// <param name="kinds">(p) the kind of each column.</param>
    void Fit(double[,] train, IReadOnlyList<ColumnKind> kinds);
}

/// <summary>A named way to create a fresh <see cref="IImputationMethod"/> for each fold.</summary>
/// <param name="Name">Label used in results ("mean", "knn", "emflow", ...).</param>
/// <param name="Create">Makes a new, unfitted method; called once per fold.</param>
public sealed record Method(string Name, Func<IImputationMethod> Create)
{
    // EMFlow with the command line's start (ForestStart.Sized and the Gaussian mixture beside Gaussian EM and kNN),
    // the given hold-out draw, and any further candidates after those two.
    private static EMFlowImputer SizedForestAndMixture(long seed, Func<EMFlowOptions, EMFlowOptions> adjust, HoldOutDraw holdOut, params IStartCandidate[] more) =>
        new(adjust(new EMFlowOptions { Seed = seed, HoldOut = holdOut }), new IStartCandidate[] { ForestStart.Sized(), new MixtureStart() }.Concat(more).ToArray());

    /// <summary>A method backed by an <see cref="Imputer"/> created fresh for each fold.</summary>
    public static Method Of(string name, Func<Imputer> create)
    {
        ArgumentNullException.ThrowIfNull(create);
        return new Method(name, () => new ImputerMethod(create()));
    }

    /// <summary>The protocol's standard methods by name: "mean", "median", "knn" (k = 5), "gaussian-em",
    /// "emflow" (<see cref="EMFlowOptions"/> defaults), "emflow-paper" (<see cref="EMFlowOptions.Paper"/>).</summary>
    /// <param name="name">One of the names above.</param>
    /// <param name="seed">Seed given to EMFlow.</param>
    /// <param name="adjust">Optional change to both EMFlow option sets (e.g. fewer epochs for a quick run, one torch thread).</param>
    /// <exception cref="ArgumentException">An unknown name.</exception>
    public static Method Standard(string name, long seed = 0, Func<EMFlowOptions, EMFlowOptions>? adjust = null)
    {
        if (name is null || !Factories.TryGetValue(name, out var make))
            throw new ArgumentException($"Unknown method '{name}'; expected one of {string.Join(", ", Factories.Keys)}.", nameof(name));
        return make(name, seed, adjust ?? (o => o));
    }

    /// <summary>Every name <see cref="Standard"/> accepts, in the order they are defined.</summary>
    public static IReadOnlyCollection<string> KnownNames => Factories.Keys;

    // One entry per method, so that the names accepted and the names listed in the error cannot drift apart.
    private static readonly OrderedDictionary<string, Func<string, long, Func<EMFlowOptions, EMFlowOptions>, Method>> Factories = new()
    {
        ["mean"] = (name, seed, adjust) => Of(name, () => new MeanImputer()),
        ["median"] = (name, seed, adjust) => Of(name, () => new MeanImputer(SimpleStrategy.Median)),
        ["knn"] = (name, seed, adjust) => Of(name, () => new KnnImputer(5)),
        ["gaussian-em"] = (name, seed, adjust) => Of(name, () => new GaussianEmImputer()),
        // missForest-style tree ensembles (EMFlow.Forest: LightGBM by default, or ML.NET FastForest); run only when named.
        // "forest" is ForestImputer's default, as `emflow impute --method forest` runs it ("forest-small4-chosen" names
        // the same); "forest-one-run" (the default before four runs of 25 trees were) and the variants below it are
        // one run of 100 trees (ForestOptions.OneRun) with one setting changed.
        ["forest"] = (name, seed, adjust) => Of(name, () => new ForestImputer(new ForestOptions { Seed = seed })),
        ["forest-one-run"] = (name, seed, adjust) => Of(name, () => new ForestImputer(ForestOptions.OneRun with { Seed = seed })),
        ["forest-fastforest"] = (name, seed, adjust) => Of(name, () => new ForestImputer(ForestOptions.OneRun with { Seed = seed, Trainer = ForestTrainer.FastForest })),
        ["forest-linear"] = (name, seed, adjust) => Of(name, () => new ForestImputer(ForestOptions.OneRun with { Seed = seed, LinearBase = ForestLinearBase.Always })),
        ["forest-avg4"] = (name, seed, adjust) => Of(name, () => new ForestImputer(ForestOptions.OneRun with { Seed = seed, Repeats = 4 })),
        ["forest-avg2"] = (name, seed, adjust) => Of(name, () => new ForestImputer(ForestOptions.OneRun with { Seed = seed, Repeats = 2 })),
        ["forest-linear-chosen"] = (name, seed, adjust) => Of(name, () => new ForestImputer(ForestOptions.OneRun with { Seed = seed, LinearBase = ForestLinearBase.WhereItHelps })),
        // Four runs of 25 trees at 4 times the learning rate, averaged: about the trees of one run of 100.
        ["forest-small4"] = (name, seed, adjust) => Of(name, () => new ForestImputer(new ForestOptions { Seed = seed, LinearBase = ForestLinearBase.None })),
        ["forest-small4-linear"] = (name, seed, adjust) => Of(name, () => new ForestImputer(new ForestOptions { Seed = seed, LinearBase = ForestLinearBase.Always })),
        ["forest-small4-chosen"] = (name, seed, adjust) => Of(name, () => new ForestImputer(new ForestOptions { Seed = seed })),
        ["emflow"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed }))),
        ["emflow-shaped-holdout"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.LikeMissingness }))),
        ["emflow-auto-start"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, InitialImputation = InitialImputation.Auto }))),
        ["emflow-knn-start"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, InitialImputation = InitialImputation.Knn }))),
        // The Auto start with the tree ensembles as a third candidate of the blend (EMFlow.Forest's ForestStart).
        ["emflow-forest"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed }), new[] { new ForestStart(ForestOptions.OneRun) })),
        ["emflow-forest-shaped"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.LikeMissingness }), new[] { new ForestStart(ForestOptions.OneRun) })),
        // The same with the forest's runs averaged as the table's size allows: `emflow impute --start auto-forest`.
        ["emflow-forest-sized-shaped"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.LikeMissingness }), new[] { ForestStart.Sized() })),
        // "emflow-forest-shaped" with the forest's linear base chosen per feature.
        ["emflow-forest-linear-shaped"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.LikeMissingness }), new[] { new ForestStart(ForestOptions.OneRun with { LinearBase = ForestLinearBase.WhereItHelps }) })),
        // The same with the forest's imputations averaged over four runs (ForestOptions.Repeats).
        ["emflow-forest-avg4-shaped"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.LikeMissingness }), new[] { new ForestStart(ForestOptions.OneRun with { Repeats = 4 }) })),
        // "emflow-forest-shaped", but every iteration runs even after one the hold-out scores worse.
        ["emflow-forest-shaped-every-iteration"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.LikeMissingness, StopAfterWorseIteration = false }), new[] { new ForestStart(ForestOptions.OneRun) })),
        ["emflow-forest-shaped-weighted"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.LikeMissingness, ObservedShareWeight = 4 }), new[] { new ForestStart(ForestOptions.OneRun) })),
        ["emflow-paper"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(EMFlowOptions.Paper with { Seed = seed }))),
        // The competitors run their own papers' settings; only the thread count follows the EMFlow adjustment.
        ["gain"] = (name, seed, adjust) => Of(name, () => new GainImputer(new GainOptions { Seed = seed, TorchThreads = adjust(new EMFlowOptions()).TorchThreads })),
        ["miwae"] = (name, seed, adjust) => Of(name, () => new MiwaeImputer(new MiwaeOptions { Seed = seed, TorchThreads = adjust(new EMFlowOptions()).TorchThreads })),
        // Settings chosen per fold on the training rows' own held-out entries (EMFlowTuning), then refitted.
        ["emflow-tuned"] = (name, seed, adjust) => new Method(name, () => new TunedEMFlowMethod(adjust(new EMFlowOptions { Seed = seed }), adjust, seed)),
        // A Gaussian mixture fitted by EM with missing entries, K chosen on held-out entries: what a latent mixture
        // imputes before a flow is trained.
        ["gmm"] = (name, seed, adjust) => new Method(name, () => new GaussianMixtureMethod(seed)),
        // The Auto start blending Gaussian EM, kNN, the forest and that mixture.
        ["emflow-forest-gmm"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed }), new IStartCandidate[] { new ForestStart(ForestOptions.OneRun), new MixtureStart() })),
        ["emflow-forest-gmm-shaped"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.LikeMissingness }), new IStartCandidate[] { new ForestStart(ForestOptions.OneRun), new MixtureStart() })),
        // ForestStart.Sized with the Gaussian mixture as a fourth candidate: `emflow impute --hold-out missingness`.
        ["emflow-forest-sized-gmm-shaped"] = (name, seed, adjust) => Of(name, () => SizedForestAndMixture(seed, adjust, HoldOutDraw.LikeMissingness)),
        // The same with each held-out cell weighed by its odds of being missing (HoldOutDraw.ByPropensity):
        // `emflow impute --start-draws 1`.
        ["emflow-forest-sized-gmm-propensity"] = (name, seed, adjust) => Of(name, () => SizedForestAndMixture(seed, adjust, HoldOutDraw.ByPropensity)),
        ["emflow-forest-sized-gmm-patterns"] = (name, seed, adjust) => Of(name, () => SizedForestAndMixture(seed, adjust, HoldOutDraw.LikeMissingPatterns)),
        // The command line's default fitted three times with seeds seed, seed + 1 and seed + 2 (each its own hold-out
        // draw and candidate seeds), the imputations averaged.
        ["emflow-forest-sized-gmm-propensity-avg3"] = (name, seed, adjust) => new Method(name, () => new AveragedMethod(Enumerable.Range(0, 3).Select(r =>
            (IImputationMethod)new ImputerMethod(SizedForestAndMixture(seed + r, adjust, HoldOutDraw.ByPropensity))))),
        // The same with its start averaged over three hold-out draws (EMFlowOptions.StartDraws): what `emflow
        // impute` runs by default.
        ["emflow-forest-sized-gmm-propensity-draws3"] = (name, seed, adjust) => Of(name, () => SizedForestAndMixture(seed, o => adjust(o) with { StartDraws = 3 }, HoldOutDraw.ByPropensity)),
        // The same with ForestImputer's default forest (four runs of 25 trees, the linear base where it helps) in
        // the start instead of the sized runs of 100 trees: what `emflow impute` runs by default.
        ["emflow-forest-default-gmm-propensity-draws3"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.ByPropensity, StartDraws = 3 }), new IStartCandidate[] { new ForestStart(), new MixtureStart() })),
        ["emflow-forest-sized-gmm-mean-propensity"] = (name, seed, adjust) => Of(name, () => SizedForestAndMixture(seed, adjust, HoldOutDraw.ByPropensity, new MeanStart())),
        ["emflow-forest-sized-gmm-mean-patterns"] = (name, seed, adjust) => Of(name, () => SizedForestAndMixture(seed, adjust, HoldOutDraw.LikeMissingPatterns, new MeanStart())),
        ["emflow-forest-mean-shaped"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed, HoldOut = HoldOutDraw.LikeMissingness }), new IStartCandidate[] { new ForestStart(ForestOptions.OneRun), new MeanStart() })),
        ["emflow-gmm"] = (name, seed, adjust) => Of(name, () => new EMFlowImputer(adjust(new EMFlowOptions { Seed = seed }), new IStartCandidate[] { new MixtureStart() })),
        ["mcflow"] = (name, seed, adjust) => Of(name, () => new McFlowImputer(new McFlowOptions { Seed = seed, TorchThreads = adjust(new EMFlowOptions()).TorchThreads })),
    };

    /// <summary>Names accepted by <see cref="Standard"/>, in the order the tables list them.</summary>
    public static IReadOnlyList<string> StandardNames { get; } = new[] { "mean", "median", "knn", "gaussian-em", "emflow", "emflow-paper" };

    /// <summary>EMFlow variants accepted by <see cref="Standard"/>, run only when named: "emflow-tuned" (settings
    /// searched per fold), "emflow-shaped-holdout" (<see cref="EMFlowOptions.HoldOut"/> = <see cref="HoldOutDraw.LikeMissingness"/>),
    /// "emflow-auto-start" (<see cref="InitialImputation.Auto"/>), "emflow-knn-start" (<see cref="InitialImputation.Knn"/>),
    /// "emflow-forest" (the Auto start blending Gaussian EM, kNN and <see cref="ForestStart"/>), "emflow-forest-shaped"
    /// (the same with the hold-out shaped like the missingness), "emflow-forest-sized-shaped" (the same with
    /// <see cref="ForestStart.Sized"/>: <c>emflow impute --start auto-forest</c>), "emflow-forest-sized-gmm-shaped" (the
    /// same with a <see cref="MixtureStart"/> too: <c>emflow impute --hold-out missingness</c>),
    /// "emflow-forest-sized-gmm-propensity" (the same with <see cref="HoldOutDraw.ByPropensity"/>:
    /// <c>emflow impute --start-draws 1</c>), "emflow-forest-sized-gmm-propensity-draws3" (that with its start averaged
    /// over three hold-out draws, <see cref="EMFlowOptions.StartDraws"/>: what <c>emflow impute</c> runs by default),
    /// "emflow-forest-sized-gmm-patterns" (the same with
    /// <see cref="HoldOutDraw.LikeMissingPatterns"/>: <c>emflow impute --hold-out patterns</c>), "emflow-forest-sized-gmm-mean-propensity" and
    /// "emflow-forest-sized-gmm-mean-patterns" (the two with the column mean as a fifth candidate, <see cref="MeanStart"/>), "emflow-forest-shaped-weighted" (the same as "emflow-forest-shaped" with
    /// <see cref="EMFlowOptions.ObservedShareWeight"/> = 4).</summary>
    public static IReadOnlyList<string> VariantNames { get; } = new[] { "emflow-tuned", "emflow-shaped-holdout", "emflow-auto-start", "emflow-knn-start", "emflow-forest", "emflow-forest-shaped", "emflow-forest-sized-shaped", "emflow-forest-sized-gmm-shaped", "emflow-forest-sized-gmm-propensity", "emflow-forest-sized-gmm-patterns", "emflow-forest-sized-gmm-propensity-draws3", "emflow-forest-default-gmm-propensity-draws3", "emflow-forest-sized-gmm-mean-propensity", "emflow-forest-sized-gmm-mean-patterns", "emflow-forest-shaped-weighted" };

    /// <summary>The missForest-style <see cref="ForestImputer"/> (EMFlow.Forest), also accepted by <see cref="Standard"/> but
    /// run only when named: "forest" and "forest-small4-chosen" (<see cref="ForestImputer"/>'s default options: four runs
    /// of 25 trees averaged, the linear base where it helps), "forest-small4" and "forest-small4-linear" (the same with
    /// <see cref="ForestLinearBase.None"/> or <see cref="ForestLinearBase.Always"/>); and one run of 100 trees
    /// (<see cref="ForestOptions.OneRun"/>): "forest-one-run" (LightGBM gbdt), "forest-fastforest" (ML.NET's FastForest random
    /// forest), "forest-linear" (LightGBM on the residuals of a ridge regression for every numeric feature,
    /// <see cref="ForestLinearBase.Always"/>), "forest-linear-chosen" (the same where it helps,
    /// <see cref="ForestLinearBase.WhereItHelps"/>), "forest-avg2" and "forest-avg4" (the imputations of 2 or 4
    /// runs averaged, <see cref="ForestOptions.Repeats"/>).</summary>
    public static IReadOnlyList<string> TreeNames { get; } = new[] { "forest", "forest-one-run", "forest-fastforest", "forest-linear", "forest-linear-chosen", "forest-avg2", "forest-avg4", "forest-small4", "forest-small4-linear", "forest-small4-chosen" };

    /// <summary>The paper's deep competitors, also accepted by <see cref="Standard"/> but run only when named (they
    /// train for minutes per fold): "gain", "miwae", "mcflow".</summary>
    public static IReadOnlyList<string> CompetitorNames { get; } = new[] { "gain", "miwae", "mcflow" };
}

/// <summary>
/// EMFlow with its settings chosen on each training set: <see cref="EMFlowTuning.Search"/> over
/// <see cref="EMFlowTuning.Candidates"/> scores every candidate on 5% of the training rows' observed entries, then the
/// best is refitted on all of them. Run by <see cref="Method.Standard"/> as "emflow-tuned", only when named (it costs
/// about eight EMFlow fits).
/// </summary>
public sealed class TunedEMFlowMethod : IImputationMethod
{
    private readonly EMFlowOptions _baseline;
    private readonly Func<EMFlowOptions, EMFlowOptions> _adjust;
    private readonly long _seed;
    private EMFlowImputer? _imputer;

    /// <summary>A method searching around <paramref name="baseline"/>; <paramref name="adjust"/> is applied to every candidate.</summary>
    public TunedEMFlowMethod(EMFlowOptions baseline, Func<EMFlowOptions, EMFlowOptions>? adjust = null, long seed = 0)
    {
        _baseline = baseline ?? throw new ArgumentNullException(nameof(baseline));
        _adjust = adjust ?? (o => o);
        _seed = seed;
    }

    /// <summary>The imputer refitted with the chosen settings (null before Fit).</summary>
    public EMFlowImputer? Imputer => _imputer;

    /// <summary>The last search's outcome (null before Fit).</summary>
    public TuningResult? Tuning { get; private set; }

    /// <inheritdoc />
    public void Fit(double[,] train)
    {
        var candidates = EMFlowTuning.Candidates(_baseline).Select(c => (c.Label, _adjust(c.Options))).ToArray();
        Tuning = EMFlowTuning.Search(train, candidates, seed: Tensors.deriveSeed(_seed, 7));
        _imputer?.Dispose();
        _imputer = new EMFlowImputer(Tuning.Best);
        _imputer.Fit(train);
    }

    /// <inheritdoc />
    public double[,] Transform(double[,] rows) =>
        (_imputer ?? throw new InvalidOperationException("TunedEMFlowMethod is not fitted yet; call Fit first.")).Transform(rows);

    /// <inheritdoc />
    public void Dispose() => _imputer?.Dispose();
}

/// <summary>Adapts an <see cref="Imputer"/> to <see cref="IImputationMethod"/>; a table with categorical columns goes
/// through a <see cref="MixedImputer"/> around it (one-hot encoded, each missing category the most probable).</summary>
public sealed class ImputerMethod : IMixedImputationMethod
{
    // Set by the categorical Fit and cleared by the numeric one, so Transform follows whichever Fit ran last. It holds
    // no resource of its own: disposing the adapter disposes the imputer inside it.
    private MixedImputer? _mixed;

    /// <summary>Wraps <paramref name="imputer"/>; disposing the adapter disposes it.</summary>
    public ImputerMethod(Imputer imputer) => Imputer = imputer ?? throw new ArgumentNullException(nameof(imputer));

    /// <summary>The wrapped imputer (for its fitted state after Fit, e.g. EMFlow's history). After a Fit with
    /// categorical columns it is fitted on the one-hot encoded table (<see cref="MixedImputer.EncodedColumnNames"/>).</summary>
    public Imputer Imputer { get; }

    /// <summary>The one-hot layer of the last Fit with categorical columns; null after a numeric Fit or before any.</summary>
    public MixedImputer? Mixed => _mixed;

    /// <inheritdoc />
    public void Fit(double[,] train)
    {
        _mixed = null;
        Imputer.Fit(train);
    }

    /// <inheritdoc />
    public void Fit(double[,] train, IReadOnlyList<ColumnKind> kinds)
    {
        _mixed = null;
        var mixed = new MixedImputer(Imputer);
        mixed.Fit(train, kinds);
        _mixed = mixed;
    }

    /// <inheritdoc />
    public double[,] Transform(double[,] rows) => _mixed is { } mixed ? mixed.Transform(rows) : Imputer.Transform(rows);

    /// <inheritdoc />
    public void Dispose() => Imputer.Dispose();
}
