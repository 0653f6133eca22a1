using System.Diagnostics;

namespace EMFlow.Evaluation;

/// <summary>One fit of a method and its imputation of some rows, timed and scored (<see cref="Scoring.FitAndScore(IImputationMethod, double[,], double[,], double[,], bool[,], double[], string)"/>).</summary>
/// <param name="Imputed">(m, p) the rows as the method completed them.</param>
/// <param name="FitSeconds">Seconds of Fit.</param>
/// <param name="TransformSeconds">Seconds of Transform.</param>
/// <param name="Rmse">RMSE over the hidden cells of the rows (<see cref="Metrics.rmseAndCountOf"/>); NaN when none is hidden.</param>
/// <param name="Scored">Number of hidden cells scored by the RMSE (the numeric ones, in a table with categorical columns).</param>
public sealed record FitScore(double[,] Imputed, double FitSeconds, double TransformSeconds, double Rmse, int Scored)
{
    /// <summary>Share of the hidden categorical cells imputed as their true category; NaN when none is hidden (always,
    /// in a numeric table).</summary>
    public double Accuracy { get; init; } = double.NaN;

    /// <summary>Number of hidden categorical cells scored by <see cref="Accuracy"/>.</summary>
    public int CategoricalScored { get; init; }

    /// <summary>(p) the accuracy of each categorical column over its hidden cells; NaN for a numeric column and for a
    /// column with no hidden cell. Null in a numeric table.</summary>
    public IReadOnlyList<double>? ColumnAccuracy { get; init; }
}

/// <summary>
/// What every protocol does with a method: fit it, time the fit, impute rows, time that, and score the imputed rows'
/// hidden cells against the truth. The table protocol (<see cref="Protocol.Run"/>), the image protocol
/// (<see cref="ImageProtocol.Run"/>, <see cref="ImageProtocol.RidgeValidation(double[,], double, IReadOnlyList{double}, Func{double, Imputer}, long)"/>)
/// and the benchmarks share it, so they time and score alike.
/// </summary>
/// <example>
/// <code>
/// using var imputer = new GaussianEmImputer();
/// var s = Scoring.FitAndScore(imputer, trainWithNaN, testWithNaN, testTruth, testHidden);
/// Console.WriteLine($"RMSE {s.Rmse:F4} over {s.Scored} cells; fit {s.FitSeconds:F1} s, impute {s.TransformSeconds:F2} s");
/// </code>
/// </example>
public static class Scoring
{
    /// <summary>Fits <paramref name="method"/> on <paramref name="train"/>, imputes <paramref name="rows"/> and scores the
    /// result where <paramref name="hidden"/> is true.</summary>
    /// <param name="method">A fresh method; the caller keeps and disposes it.</param>
    /// <param name="train">(n, p) rows to fit on, NaN where the method may not look.</param>
    /// <param name="rows">(m, p) rows to impute, NaN at least at the hidden cells.</param>
    /// <param name="truth">(m, p) the rows' true values; only the hidden cells are read.</param>
    /// <param name="hidden">(m, p) true at the cells scored.</param>
    /// <param name="columnScale">Optional (p) divisor of each column's errors (its range, for data not on [0, 1]); null scores the errors as they are.</param>
    /// <param name="name">The method's name for the error message; null for none.</param>
    /// <returns>The imputed rows, the seconds of fit and transform, the RMSE over the hidden cells and their count.</returns>
    /// <exception cref="InvalidOperationException">The method returned rows of another shape than <paramref name="truth"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="hidden"/> or <paramref name="columnScale"/> does not fit <paramref name="truth"/>.</exception>
    public static FitScore FitAndScore(IImputationMethod method, double[,] train, double[,] rows, double[,] truth, bool[,] hidden,
        double[]? columnScale = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(truth);
        var clock = Stopwatch.StartNew();
        method.Fit(train);
        double fit = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var imputed = method.Transform(rows);
        double transform = clock.Elapsed.TotalSeconds;
        if (imputed.GetLength(0) != truth.GetLength(0) || imputed.GetLength(1) != truth.GetLength(1))
            throw new InvalidOperationException($"{(name is null ? "The method" : $"Method '{name}'")} returned {imputed.GetLength(0)} x {imputed.GetLength(1)} for {truth.GetLength(0)} x {truth.GetLength(1)} rows.");
        var (rmse, scored) = columnScale is null
            ? Metrics.rmseAndCountOf(truth, imputed, hidden)
            : Metrics.scaledRmseAndCountOf(columnScale, truth, imputed, hidden);
        return new FitScore(imputed, fit, transform, rmse, scored);
    }

    /// <summary>Fits <paramref name="method"/> on a table of numeric and categorical columns, imputes
    /// <paramref name="rows"/>, and scores the hidden cells: the RMSE over the numeric ones, the share of categorical
    /// ones imputed as their true category (the accuracy).</summary>
    /// <param name="method">A fresh method; the caller keeps and disposes it.</param>
    /// <param name="train">(n, p) rows to fit on, NaN where the method may not look; categorical cells hold codes.</param>
    /// <param name="rows">(m, p) rows to impute, NaN at least at the hidden cells.</param>
    /// <param name="truth">(m, p) the rows' true values (codes in categorical columns); only the hidden cells are read.</param>
    /// <param name="hidden">(m, p) true at the cells scored.</param>
    /// <param name="kinds">(p) the kind of each column.</param>
    /// <param name="name">The method's name for the error message; null for none.</param>
    /// <returns>The imputed rows, the seconds of fit and transform, the RMSE over the hidden numeric cells and their
    /// count, the accuracy over the hidden categorical cells and their count.</returns>
    /// <exception cref="InvalidOperationException">The method returned rows of another shape than <paramref name="truth"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="hidden"/> or <paramref name="kinds"/> does not fit <paramref name="truth"/>.</exception>
    public static FitScore FitAndScore(IMixedImputationMethod method, double[,] train, double[,] rows, double[,] truth, bool[,] hidden,
        IReadOnlyList<ColumnKind> kinds, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(truth);
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(kinds);
        int m = truth.GetLength(0), p = truth.GetLength(1);
        if (kinds.Count != p)
            throw new ArgumentException($"Expected {p} column kinds, one per column of truth; got {kinds.Count}.", nameof(kinds));
        if (hidden.GetLength(0) != m || hidden.GetLength(1) != p)
            throw new ArgumentException($"The hidden mask must have the truth's shape ({m}, {p}); got ({hidden.GetLength(0)}, {hidden.GetLength(1)}).", nameof(hidden));
        var clock = Stopwatch.StartNew();
        method.Fit(train, kinds);
        double fit = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var imputed = method.Transform(rows);
        double transform = clock.Elapsed.TotalSeconds;
        if (imputed.GetLength(0) != m || imputed.GetLength(1) != p)
            throw new InvalidOperationException($"{(name is null ? "The method" : $"Method '{name}'")} returned {imputed.GetLength(0)} x {imputed.GetLength(1)} for {m} x {p} rows.");
        var (rmse, scored) = Metrics.rmseAndCountOf(truth, imputed, Only(hidden, kinds, ColumnKind.Numeric));
        var categoricalHidden = Only(hidden, kinds, ColumnKind.Categorical);
        var (accuracy, categorical) = AccuracyAndCount(truth, imputed, categoricalHidden);
        var byColumn = new double[p];
        for (int j = 0; j < p; j++)
        {
            int right = 0, count = 0;
            for (int i = 0; i < m; i++)
                if (categoricalHidden[i, j]) { count++; if (imputed[i, j] == truth[i, j]) right++; }
            byColumn[j] = count == 0 ? double.NaN : right / (double)count;
        }
        return new FitScore(imputed, fit, transform, rmse, scored) { Accuracy = accuracy, CategoricalScored = categorical, ColumnAccuracy = byColumn };
    }

    /// <summary>The share of the cells where <paramref name="hidden"/> is true whose imputed value equals the truth
    /// exactly (a categorical cell's code), with their count; NaN when none is hidden.</summary>
    /// <param name="truth">(m, p) true values.</param>
    /// <param name="imputed">(m, p) imputed values.</param>
    /// <param name="hidden">(m, p) true where a cell is scored.</param>
    /// <exception cref="ArgumentException">The shapes differ.</exception>
    public static (double Accuracy, int Scored) AccuracyAndCount(double[,] truth, double[,] imputed, bool[,] hidden)
    {
        ArgumentNullException.ThrowIfNull(truth);
        ArgumentNullException.ThrowIfNull(imputed);
        ArgumentNullException.ThrowIfNull(hidden);
        int m = truth.GetLength(0), p = truth.GetLength(1);
        if (imputed.GetLength(0) != m || imputed.GetLength(1) != p || hidden.GetLength(0) != m || hidden.GetLength(1) != p)
            throw new ArgumentException($"Expected imputed values and a mask of the truth's shape ({m}, {p}); got ({imputed.GetLength(0)}, {imputed.GetLength(1)}) and ({hidden.GetLength(0)}, {hidden.GetLength(1)}).", nameof(imputed));
        int right = 0, count = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < p; j++)
                if (hidden[i, j])
                {
                    count++;
                    if (imputed[i, j] == truth[i, j]) right++;
                }
        return (count == 0 ? double.NaN : right / (double)count, count);
    }

    /// <summary>The mask restricted to the columns of one kind.</summary>
    internal static bool[,] Only(bool[,] hidden, IReadOnlyList<ColumnKind> kinds, ColumnKind kind)
    {
        int m = hidden.GetLength(0), p = hidden.GetLength(1);
        var r = new bool[m, p];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < p; j++)
                r[i, j] = hidden[i, j] && kinds[j] == kind;
        return r;
    }

    /// <summary><see cref="FitAndScore(IImputationMethod, double[,], double[,], double[,], bool[,], double[], string)"/> for an <see cref="Imputer"/>,
    /// which the caller keeps (to read its fitted state) and disposes.</summary>
    public static FitScore FitAndScore(Imputer imputer, double[,] train, double[,] rows, double[,] truth, bool[,] hidden,
        double[]? columnScale = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(imputer);
        // The adapter only forwards; it is not disposed here, since that would dispose the caller's imputer.
        return FitAndScore(new ImputerMethod(imputer), train, rows, truth, hidden, columnScale, name);
    }
}
