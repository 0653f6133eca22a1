using System.Diagnostics;

namespace EMFlow.Evaluation;

/// <summary>One fit of a method and its imputation of some rows, timed and scored (<see cref="Scoring.FitAndScore(IImputationMethod, double[,], double[,], double[,], bool[,], double[], string)"/>).</summary>
/// <param name="Imputed">(m, p) the rows as the method completed them.</param>
/// <param name="FitSeconds">Seconds of Fit.</param>
/// <param name="TransformSeconds">Seconds of Transform.</param>
/// <param name="Rmse">RMSE over the hidden cells of the rows (<see cref="Metrics.rmseAndCountOf"/>); NaN when none is hidden.</param>
/// <param name="Scored">Number of hidden cells scored.</param>
public sealed record FitScore(double[,] Imputed, double FitSeconds, double TransformSeconds, double Rmse, int Scored);

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
