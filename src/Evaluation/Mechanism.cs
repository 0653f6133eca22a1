namespace EMFlow.Evaluation;

/// <summary>The kind of simulated missingness.</summary>
public enum MechanismKind
{
    /// <summary>Missing completely at random: each entry independently with a fixed probability.</summary>
    Mcar,
    /// <summary>Missing at random, the paper's appendix E: the first floor(0.7 p) features always observed, each
    /// other entry of row i missing with probability sigmoid(Σ of the row's standardised leading features).</summary>
    Mar,
    /// <summary>Missing not at random, self-masking: an entry above its feature's quantile goes missing with a fixed
    /// probability.</summary>
    Mnar,
}

/// <summary>
/// How the protocol hides entries of a complete table. Build one with <see cref="Mcar"/>, <see cref="Mar"/> or
/// <see cref="Mnar"/>; values are checked when the mask is drawn.
/// </summary>
public sealed record Mechanism
{
    private Mechanism(MechanismKind kind, double rate, double quantile, double probability)
    {
        Kind = kind;
        Rate = rate;
        Quantile = quantile;
        Probability = probability;
    }

    /// <summary>The kind of missingness.</summary>
    public MechanismKind Kind { get; }

    /// <summary>MCAR missing probability per entry; for MAR at a set rate, the expected rate over the trailing
    /// features (NaN for <see cref="Mar()"/>); unused for MNAR.</summary>
    public double Rate { get; }

    /// <summary>MNAR threshold quantile per feature (unused otherwise).</summary>
    public double Quantile { get; }

    /// <summary>MNAR probability that an entry above its threshold goes missing (unused otherwise).</summary>
    public double Probability { get; }

    /// <summary>MCAR with the given rate (the paper uses 0.2 for tables).</summary>
    /// <param name="rate">Missing probability per entry, in [0, 1).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="rate"/> outside [0, 1).</exception>
    public static Mechanism Mcar(double rate = 0.2)
    {
        if (!(rate >= 0 && rate < 1)) throw new ArgumentOutOfRangeException(nameof(rate), rate, $"rate must be in [0, 1); got {rate}.");
        return new(MechanismKind.Mcar, rate, double.NaN, double.NaN);
    }

    /// <summary>MAR as in the paper's appendix E, with standardised values inside the sigmoid (see
    /// <c>Missingness.mar</c>); the realised rate depends on the data and is reported with every result.</summary>
    public static Mechanism Mar() => new(MechanismKind.Mar, double.NaN, double.NaN, double.NaN);

    /// <summary>MAR as in <see cref="Mar()"/> with an intercept inside the sigmoid set so that the expected missing rate
    /// over the last 30% of features is <paramref name="trailingRate"/> (<c>Missingness.marAtRate</c>): the paper's
    /// mechanism at the rates its Table 4 reports.</summary>
    /// <param name="trailingRate">Expected rate over the trailing features, in (0, 1); <see cref="Rate"/> holds it.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="trailingRate"/> outside (0, 1).</exception>
    public static Mechanism Mar(double trailingRate)
    {
        if (!(trailingRate > 0 && trailingRate < 1))
            throw new ArgumentOutOfRangeException(nameof(trailingRate), trailingRate, $"trailingRate must be in (0, 1); got {trailingRate}.");
        return new(MechanismKind.Mar, trailingRate, double.NaN, double.NaN);
    }

    /// <summary>Self-masking MNAR: an entry strictly above its feature's <paramref name="quantile"/> goes missing with
    /// probability <paramref name="probability"/>.</summary>
    /// <param name="quantile">Threshold quantile, in [0, 1]. Default 0.5.</param>
    /// <param name="probability">Missing probability above the threshold, in [0, 1]. Default 0.5.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value outside [0, 1].</exception>
    public static Mechanism Mnar(double quantile = 0.5, double probability = 0.5)
    {
        if (!(quantile >= 0 && quantile <= 1)) throw new ArgumentOutOfRangeException(nameof(quantile), quantile, $"quantile must be in [0, 1]; got {quantile}.");
        if (!(probability >= 0 && probability <= 1)) throw new ArgumentOutOfRangeException(nameof(probability), probability, $"probability must be in [0, 1]; got {probability}.");
        return new(MechanismKind.Mnar, double.NaN, quantile, probability);
    }

    /// <summary>A short label: "mcar0.2", "mar", "mar0.26" (at a set trailing rate), "mnar-q0.5-p0.5".</summary>
    public override string ToString() => Kind switch
    {
        MechanismKind.Mcar => FormattableString.Invariant($"mcar{Rate}"),
        MechanismKind.Mar => double.IsNaN(Rate) ? "mar" : FormattableString.Invariant($"mar{Rate}"),
        _ => FormattableString.Invariant($"mnar-q{Quantile}-p{Probability}"),
    };
}
