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
    /// <summary>For each numeric feature, ridge plus trees only where the feature's gaps lie among its observed rows
    /// (the other columns' means over the rows that miss it differ from their means over the rows that have it by no
    /// more than chance allows) and ridge plus trees beats trees alone twice on the feature's observed training rows:
    /// in a 3-fold cross-validation, and on the fifth of those rows that lie furthest toward the feature's gaps, held
    /// out from both fits. Decided once per feature, when its first model of the first run is fitted, at the price of
    /// eight extra fits per feature. The default: on near-linear tables (Breast cancer, Concrete) the ridge carries
    /// what trees approximate by a staircase; where the gaps lie apart from the observed rows (MAR) the ridge would
    /// extrapolate into them, and it lost there (bench/README.md, "The default forest").</summary>
    WhereItHelps,
}

/// <summary>Settings of <see cref="ForestImputer"/>.</summary>
public sealed record ForestOptions
{
    /// <summary>The per-feature model. Default <see cref="ForestTrainer.LightGbm"/>.</summary>
    public ForestTrainer Trainer { get; init; } = ForestTrainer.LightGbm;

    /// <summary>Most sweeps over the features (missForest's <c>maxiter</c>). Default 10.</summary>
    public int MaxSweeps { get; init; } = 10;

    /// <summary>Trees per feature model (boosting rounds for LightGBM). Default 25: with <see cref="LearningRate"/>
    /// 0.4 and <see cref="Repeats"/> 4, about the work of one run of 100 trees at 0.1, and it imputed better on
    /// every table measured (bench/README.md, "The default forest").</summary>
    public int Trees { get; init; } = 25;

    /// <summary>Most leaves per tree. Default 32.</summary>
    public int Leaves { get; init; } = 32;

    /// <summary>Fewest training rows in a leaf. Default 5 (missForest's regression <c>nodesize</c>).</summary>
    public int MinimumRowsPerLeaf { get; init; } = 5;

    /// <summary>Share of the predictors each tree may use (FastForest) or each boosting round samples (LightGBM), in (0, 1].
    /// Default 0.7.</summary>
    public double FeatureFraction { get; init; } = 0.7;

    /// <summary>Learning rate of <see cref="ForestTrainer.LightGbm"/>; unused by FastForest. Default 0.4 (see
    /// <see cref="Trees"/>).</summary>
    public double LearningRate { get; init; } = 0.4;

    /// <summary>Whether a numeric feature's model is a ridge regression on the other features plus the tree ensemble
    /// fitted to the ridge's residuals (prediction = ridge + trees, kept inside the range of the feature's observed
    /// values). Trees approximate a linear relation by a staircase, which needs many leaves and rows per step; on
    /// near-linear tables (Breast cancer, Concrete) the ridge carries the linear part and the trees only the rest.
    /// Categorical columns (groups of indicators, one classifier each) keep the plain classifier. Default
    /// <see cref="ForestLinearBase.WhereItHelps"/>; <see cref="ForestLinearBase.Always"/> lost to trees alone under MAR
    /// on Air Quality and Breast cancer (bench/README.md, "A linear base under the trees").</summary>
    public ForestLinearBase LinearBase { get; init; } = ForestLinearBase.WhereItHelps;

    /// <summary>Seed of every model (each feature and sweep gets its own stream derived from it). Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Independent missForest runs, each with its own seed stream (the first with <see cref="Seed"/> itself),
    /// whose imputations of each missing cell are averaged, at Fit and at Transform. A boosted model per feature is
    /// a noisy learner and the sweeps compound its noise: on Concrete one fold's RMSE ranged over .113-.130 across
    /// four seeds, and the average of those four runs scored 6-7% below the seeds' mean on each of three folds
    /// (bench/README.md, "Averaging runs"). Costs one fit per run, and Transform imputes with every run. Default 4,
    /// of <see cref="Trees"/> 25 each.</summary>
    public int Repeats { get; init; } = 4;

    /// <summary>One missForest run of 100 trees at learning rate 0.1, trees alone: the forest's earlier default, and the
    /// runs <see cref="ForestStart.Sized"/> averages.</summary>
    public static ForestOptions OneRun { get; } = new() { Trees = 100, LearningRate = 0.1, Repeats = 1, LinearBase = ForestLinearBase.None };

    /// <summary>Threads of each trainer. Default 1, which makes a fit bit-for-bit reproducible; more threads may
    /// change the last bits of the trees.</summary>
    public int Threads { get; init; } = 1;
}
