namespace EMFlow.Evaluation;

/// <summary>
/// Imputation by a K-component Gaussian mixture fitted by EM with missing entries (each row's responsibilities from
/// the marginal densities of its observed entries; the M-step adds each component's conditional covariance of the
/// missing block), K chosen among <see cref="MixtureStart.Components"/> on 5% of the training rows' observed entries held out
/// (seeded, uniform), then refitted on every observed entry. A missing entry is imputed by the responsibilities'
/// mix of the components' conditional means. With an identity flow this is exactly what a latent Gaussian mixture
/// would impute in EMFlow, so it measures what a mixture can add on a table before a flow is trained. Run by
/// <see cref="Method.Standard"/> as "gmm", only when named.
/// </summary>
/// <remarks>Plain arrays, one thread; cost per EM sweep about n · K · (o² + m³) for o observed and m missing entries per row.</remarks>
public sealed class GaussianMixtureMethod : IImputationMethod
{
    private readonly long _seed;
    private GaussianMixture? _fitted;

    /// <summary>A method whose every random choice derives from <paramref name="seed"/>.</summary>
    public GaussianMixtureMethod(long seed = 0) => _seed = seed;

    /// <summary>The K chosen at the last Fit, and the held-out RMSE of each K tried.</summary>
    public (int K, IReadOnlyList<(int K, double HeldOutRmse)> Scores) Choice { get; private set; }

    /// <inheritdoc />
    public void Fit(double[,] train)
    {
        var (mixture, k, scores) = GaussianMixture.Choose(train, _seed);
        _fitted = mixture;
        Choice = (k, scores);
    }

    /// <inheritdoc />
    public double[,] Transform(double[,] rows) =>
        (_fitted ?? throw new InvalidOperationException("Fit first.")).Impute(rows);

    /// <inheritdoc />
    public void Dispose() { }
}
