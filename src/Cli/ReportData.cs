namespace EMFlow.Cli;

/// <summary>One method's score in a comparison table.</summary>
/// <param name="Method">Display name.</param>
/// <param name="Rmse">RMSE over the hidden cells on the [0, 1] scale.</param>
/// <param name="Seconds">Wall-clock seconds of fit and imputation.</param>
/// <param name="PerFeature">RMSE per feature (p), NaN where a feature had no hidden cell.</param>
internal sealed record MethodScore(string Method, double Rmse, double Seconds, double[] PerFeature);

/// <summary>How often each category of a categorical column was observed, and how often it was imputed.</summary>
/// <param name="Column">The column's name.</param>
/// <param name="Categories">Its categories (k), as written in the file.</param>
/// <param name="Observed">(k) observed cells per category.</param>
/// <param name="Imputed">(k) imputed cells per category.</param>
internal sealed record CategoryCounts(string Column, IReadOnlyList<string> Categories, int[] Observed, int[] Imputed);

/// <summary>Everything a report shows; parts that do not apply (no ground truth, no flow) are null or empty.</summary>
internal sealed record ReportData
{
    public required string Title { get; init; }
    public IReadOnlyList<string> Notes { get; init; } = Array.Empty<string>();
    public required IReadOnlyList<string> Features { get; init; }
    /// <summary>(n, p) table with NaN at missing cells.</summary>
    public required double[,] Incomplete { get; init; }
    /// <summary>(n, p) table as imputed by the reported method.</summary>
    public required double[,] Imputed { get; init; }
    public string ImputedBy { get; init; } = "EMFlow";
    public IReadOnlyList<MethodScore> Scores { get; init; } = Array.Empty<MethodScore>();
    public IReadOnlyList<EpochRecord> Epochs { get; init; } = Array.Empty<EpochRecord>();
    public IReadOnlyList<IterationRecord> Iterations { get; init; } = Array.Empty<IterationRecord>();
    public double InitialValidationRmse { get; init; } = double.NaN;
    public int SelectedIteration { get; init; }
    /// <summary>Latent covariance (p, p), shown as a correlation matrix.</summary>
    public double[,]? LatentCovariance { get; init; }
    /// <summary>Observed and imputed category counts of each categorical column, in file order.</summary>
    public IReadOnlyList<CategoryCounts> Categorical { get; init; } = Array.Empty<CategoryCounts>();

    /// <summary>Observed values of feature j, and the values imputed into its missing cells.</summary>
    public (double[] Observed, double[] Imputed) Split(int j)
    {
        var observed = new List<double>();
        var imputed = new List<double>();
        for (int i = 0; i < Incomplete.GetLength(0); i++)
            if (double.IsNaN(Incomplete[i, j])) imputed.Add(Imputed[i, j]);
            else observed.Add(Incomplete[i, j]);
        return (observed.ToArray(), imputed.ToArray());
    }

    /// <summary>The latent covariance scaled to correlations: Σ_ij / sqrt(Σ_ii Σ_jj).</summary>
    public double[,]? LatentCorrelation()
    {
        if (LatentCovariance is not { } s) return null;
        int p = s.GetLength(0);
        var r = new double[p, p];
        for (int i = 0; i < p; i++)
            for (int j = 0; j < p; j++)
                r[i, j] = s[i, j] / Math.Sqrt(s[i, i] * s[j, j]);
        return r;
    }
}
