using static TorchSharp.torch;

namespace EMFlow.Evaluation;

/// <summary>One candidate of an <see cref="EMFlowTuning.Search"/>, with its score.</summary>
/// <param name="Label">The candidate's name.</param>
/// <param name="Options">Its settings.</param>
/// <param name="HoldOutRmse">RMSE on the held-out observed entries, [0, 1] scale (min-max of the remaining observed values).</param>
/// <param name="Seconds">Wall-clock seconds of its fit and imputation.</param>
public sealed record TuningScore(string Label, EMFlowOptions Options, double HoldOutRmse, double Seconds);

/// <summary>The outcome of an <see cref="EMFlowTuning.Search"/>.</summary>
/// <param name="Best">The settings with the lowest hold-out RMSE (the first listed among equals).</param>
/// <param name="BestLabel">Its label.</param>
/// <param name="Scores">Every candidate's score, in the order given.</param>
public sealed record TuningResult(EMFlowOptions Best, string BestLabel, IReadOnlyList<TuningScore> Scores);

/// <summary>
/// Chooses EMFlow's settings on the data it will be fitted to, without any other data: a share of the observed
/// entries is hidden, each candidate is fitted on the rest and scored on the hidden entries. Use it on a training
/// set only; scoring a test set's truth this way would leak it into the choice.
/// </summary>
/// <example>
/// <code>
/// var result = EMFlowTuning.Search(train, EMFlowTuning.Candidates(new EMFlowOptions { Seed = 1 }), seed: 1);
/// using var imputer = new EMFlowImputer(result.Best);
/// imputer.Fit(train);
/// </code>
/// </example>
public static class EMFlowTuning
{
    /// <summary>
    /// The settings the search tries by default, each a change of <paramref name="baseline"/> along one of the knobs
    /// that matter (epochs, flow width, learning rate, iterations, the L2 reconstruction step with its α), plus the
    /// paper's own settings (<see cref="EMFlowOptions.Paper"/>, with the baseline's seed and thread count).
    /// </summary>
    /// <param name="baseline">The starting point, usually <c>new EMFlowOptions { Seed = ... }</c>.</param>
    /// <returns>Labelled candidates, the baseline first.</returns>
    public static IReadOnlyList<(string Label, EMFlowOptions Options)> Candidates(EMFlowOptions baseline)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        return new (string, EMFlowOptions)[]
        {
            ("defaults", baseline),
            ("80 epochs", baseline with { EpochsPerIteration = baseline.EpochsPerIteration * 2 }),
            ("width 256", baseline with { HiddenWidth = 256 }),
            ("learning rate 3e-4", baseline with { LearningRate = 3e-4 }),
            ("4 iterations", baseline with { Iterations = 4 }),
            ("L2 reconstruction step, alpha 1e3", baseline with { SecondStep = SecondFlowStep.ReconstructionOnly, Alpha = 1e3 }),
            ("paper settings", EMFlowOptions.Paper with { Seed = baseline.Seed, TorchThreads = baseline.TorchThreads }),
        };
    }

    /// <summary>Fits every candidate with a share of the observed entries hidden and scores it on them.</summary>
    /// <param name="data">(n, p) training table, NaN (or <paramref name="missing"/>) marking missing values.</param>
    /// <param name="candidates">Labelled settings to compare; at least one.</param>
    /// <param name="holdOutFraction">Share of the observed entries hidden for scoring, in (0, 1); default 0.05.</param>
    /// <param name="seed">Seed of the hidden entries' draw.</param>
    /// <param name="missing">Optional (n, p) mask, true where missing.</param>
    /// <param name="progress">Optional: one line per candidate scored.</param>
    /// <param name="cancellationToken">Stops between and inside candidates' fits.</param>
    /// <returns>The best settings and every score.</returns>
    /// <exception cref="ArgumentException">No candidate, or bad data (see <see cref="Imputer"/>).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="holdOutFraction"/> outside (0, 1).</exception>
    public static TuningResult Search(double[,] data, IReadOnlyList<(string Label, EMFlowOptions Options)> candidates,
        double holdOutFraction = 0.05, long seed = 0, bool[,]? missing = null, IProgress<string>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        if (candidates.Count == 0) throw new ArgumentException("At least one candidate is needed; got none.", nameof(candidates));
        if (!(holdOutFraction > 0 && holdOutFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(holdOutFraction), holdOutFraction, $"holdOutFraction must be in (0, 1); got {holdOutFraction}.");
        var c = Validation.check(nameof(data), data, missing is null ? null : Microsoft.FSharp.Core.FSharpOption<bool[,]>.Some(missing));
        bool[,] visible, hidden;
        double[] range;
        using (NewDisposeScope())
        {
            var (trainMask, held) = Selection.holdOut(seed, holdOutFraction, c.Mask);
            visible = Tensors.toMask2D(trainMask);
            hidden = Tensors.toMask2D(held);
            // Scored on [0, 1] by the range of the entries the candidates see, as their own scaler would be.
            range = Scaler.fit(c.Values, trainMask).Range;
        }
        var scores = new List<TuningScore>();
        foreach (var (label, options) in candidates)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var sw = System.Diagnostics.Stopwatch.StartNew();
            using var imputer = new EMFlowImputer(options);
            imputer.Fit(data, visible, null, cancellationToken);
            var imputed = imputer.Transform(data, visible);
            var (rmse, _) = Metrics.scaledRmseAndCountOf(range, data, imputed, hidden);
            var score = new TuningScore(label, options, rmse, sw.Elapsed.TotalSeconds);
            scores.Add(score);
            progress?.Report(FormattableString.Invariant($"{label}: hold-out RMSE {score.HoldOutRmse:F4} ({score.Seconds:F1} s)"));
        }
        var best = scores.Where(s => !double.IsNaN(s.HoldOutRmse)).DefaultIfEmpty(scores[0]).MinBy(s => s.HoldOutRmse)!;
        return new TuningResult(best.Options, best.Label, scores);
    }
}
