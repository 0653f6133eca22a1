namespace EMFlow;

/// <summary>The tree ensemble <see cref="ForestImputer"/> fits for each feature.</summary>
public enum ForestTrainer
{
    /// <summary>LightGBM (native, through ML.NET's wrapper), gradient-boosted trees (gbdt). The default: on Concrete it
    /// imputed better than FastForest at a seventh of the time and a third of the memory (bench/README.md, "Tree ensembles").</summary>
    LightGbm,
    /// <summary>ML.NET's FastForest: a random forest (bagged regression trees, each on a random share of the
    /// features), the model of the original missForest.</summary>
    FastForest,
}

/// <summary>Where <see cref="ForestImputer"/> puts a ridge regression under a numeric feature's trees
/// (<see cref="ForestOptions.LinearBase"/>).</summary>
public enum ForestLinearBase
{
    /// <summary>Trees alone, as missForest.</summary>
    None,
    /// <summary>Ridge plus trees on its residuals for every numeric feature.</summary>
    Always,
    /// <summary>For each numeric feature, ridge plus trees only where it beats trees alone twice on the feature's
    /// observed training rows: in a 3-fold cross-validation, and on the fifth of those rows that lie furthest toward
    /// the feature's gaps, held out from both fits (so a ridge that would extrapolate into MAR gaps is caught there).
    /// Decided once, when the feature's first model is fitted, at the price of eight extra fits per feature. On a
    /// table with strongly non-linear relations (Letter) the ridge under the trees costs a little; this keeps the gain
    /// where the relations are near linear (bench/README.md, "A linear base under the trees").</summary>
    WhereItHelps,
}

/// <summary>Settings of <see cref="ForestImputer"/>.</summary>
public sealed record ForestOptions
{
    /// <summary>The per-feature model. Default <see cref="ForestTrainer.LightGbm"/>.</summary>
    public ForestTrainer Trainer { get; init; } = ForestTrainer.LightGbm;

    /// <summary>Most sweeps over the features (missForest's <c>maxiter</c>). Default 10.</summary>
    public int MaxSweeps { get; init; } = 10;

    /// <summary>Trees per feature model (boosting rounds for LightGBM). Default 100.</summary>
    public int Trees { get; init; } = 100;

    /// <summary>Most leaves per tree. Default 32.</summary>
    public int Leaves { get; init; } = 32;

    /// <summary>Fewest training rows in a leaf. Default 5 (missForest's regression <c>nodesize</c>).</summary>
    public int MinimumRowsPerLeaf { get; init; } = 5;

    /// <summary>Share of the predictors each tree may use (FastForest) or each boosting round samples (LightGBM), in (0, 1].
    /// Default 0.7.</summary>
    public double FeatureFraction { get; init; } = 0.7;

    /// <summary>Learning rate of <see cref="ForestTrainer.LightGbm"/>; unused by FastForest. Default 0.1.</summary>
    public double LearningRate { get; init; } = 0.1;

    /// <summary>Whether a numeric feature's model is a ridge regression on the other features plus the tree ensemble
    /// fitted to the ridge's residuals (prediction = ridge + trees, kept inside the range of the feature's observed
    /// values). Trees approximate a linear relation by a staircase, which needs many leaves and rows per step; on
    /// near-linear tables (Breast cancer, Concrete) the ridge carries the linear part and the trees only the rest.
    /// Categorical columns (groups of indicators, one classifier each) keep the plain classifier. Default
    /// <see cref="ForestLinearBase.None"/>: under MAR gaps the ridge extrapolates into the region the gaps cover and
    /// lost to trees alone on Air Quality and Breast cancer (bench/README.md, "A linear base under the trees").</summary>
    public ForestLinearBase LinearBase { get; init; } = ForestLinearBase.None;

    /// <summary>Seed of every model (each feature and sweep gets its own stream derived from it). Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Independent missForest runs, each with its own seed stream (the first with <see cref="Seed"/> itself),
    /// whose imputations of each missing cell are averaged, at Fit and at Transform. A boosted model per feature is
    /// a noisy learner and the sweeps compound its noise: on Concrete one fold's RMSE ranged over .113-.130 across
    /// four seeds, and the average of those four runs scored 6-7% below the seeds' mean on each of three folds
    /// (bench/README.md, "Averaging runs"). Costs one fit per run, and Transform imputes with every run. Default
    /// 1.</summary>
    public int Repeats { get; init; } = 1;

    /// <summary>Threads of each trainer. Default 1, which makes a fit bit-for-bit reproducible; more threads may
    /// change the last bits of the trees.</summary>
    public int Threads { get; init; } = 1;
}
