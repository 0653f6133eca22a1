namespace EMFlow.Evaluation;

/// <summary>
/// Several fits of one method, each made with its own seed, whose imputations of each missing cell are averaged;
/// observed cells are copied. It measures how much of a method's error is the spread of its seeded choices: EMFlow's
/// start chooses its blend on one random 5% of the observed cells, and on Spam under MAR another draw moved one
/// fold's RMSE by 12% (bench/README.md, "Whole missingness patterns held out").
/// </summary>
public sealed class AveragedMethod : IImputationMethod
{
    private readonly IImputationMethod[] _runs;

    /// <summary>Averages <paramref name="runs"/> (at least one), each fitted on the same rows; disposing this disposes them.</summary>
    public AveragedMethod(IEnumerable<IImputationMethod> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        _runs = runs.ToArray();
        if (_runs.Length == 0) throw new ArgumentException("at least one run is needed.", nameof(runs));
    }

    /// <inheritdoc />
    public void Fit(double[,] train)
    {
        foreach (var run in _runs) run.Fit(train);
    }

    /// <summary>Each run's imputation (m, p) of <paramref name="rows"/>, averaged cell by cell; observed cells as given.</summary>
    public double[,] Transform(double[,] rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        int m = rows.GetLength(0), p = rows.GetLength(1);
        var sum = new double[m, p];
        foreach (var run in _runs)
        {
            var imputed = run.Transform(rows);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < p; j++) sum[i, j] += imputed[i, j];
        }
        var result = new double[m, p];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < p; j++) result[i, j] = double.IsNaN(rows[i, j]) ? sum[i, j] / _runs.Length : rows[i, j];
        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var run in _runs) run.Dispose();
    }
}
