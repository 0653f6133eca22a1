using static TorchSharp.torch;

namespace EMFlow;

/// <summary>
/// <see cref="ForestImputer"/> as a candidate of EMFlow's <see cref="InitialImputation.Auto"/> start: the blend then
/// weighs Gaussian EM, kNN and the tree ensembles per feature on the held-out entries, and the flow iterations start
/// from that blend. The forest is fitted on the training rows with the held-out entries hidden, and kept, so new rows
/// are imputed by the same models.
/// </summary>
/// <example>
/// <code>
/// using var imputer = new EMFlowImputer(new EMFlowOptions { Seed = 1 }, new[] { new ForestStart() });
/// double[,] completed = imputer.FitTransform(table);
/// // imputer.StartNames: gaussian-em, knn, forest; imputer.StartWeights: (p, 3)
/// </code>
/// </example>
public sealed class ForestStart : IStartCandidate
{
    /// <summary>A candidate with <see cref="ForestImputer"/>'s default <see cref="ForestOptions"/> (four averaged runs of
    /// 25 trees, the linear base where it helps), the command line's; model files create it this way to load one.</summary>
    public ForestStart() : this(null) { }

    /// <summary>A candidate with the given forest settings; its <see cref="ForestOptions.Seed"/> is replaced by the one
    /// EMFlow derives from its own seed.</summary>
    public ForestStart(ForestOptions? options) : this(options, false) { }

    private ForestStart(ForestOptions? options, bool sized)
    {
        Options = options ?? new ForestOptions();
        SizedRepeats = sized;
    }

    /// <summary>A candidate whose <see cref="ForestOptions.Repeats"/> follows the size of the table it is fitted on:
    /// <see cref="RepeatsFor"/>(rows, columns) runs averaged, whatever <paramref name="options"/> says; without options,
    /// runs of <see cref="ForestOptions.OneRun"/>. The command line's start before its forest became the default
    /// one (bench/README.md, "The default forest in EMFlow's start").</summary>
    public static ForestStart Sized(ForestOptions? options = null) => new(options ?? ForestOptions.OneRun, true);

    /// <summary>Whether <see cref="ForestOptions.Repeats"/> is chosen by <see cref="RepeatsFor"/> at Fit.</summary>
    public bool SizedRepeats { get; }

    /// <summary>Largest rows × columns² at which <see cref="RepeatsFor"/> averages four runs. A forest fit costs about
    /// rows × columns² (one model per column, each on the other columns). The limit lies between Review (5454 × 24,
    /// 3.1·10⁶), the largest table on which the averaged start was measured, and Letter (20000 × 16, 5.1·10⁶), where
    /// one run already took minutes per fold on a shared 2-core machine.</summary>
    public const long AveragedSizeLimit = 4_000_000;

    /// <summary>Runs to average on a table of (<paramref name="rows"/>, <paramref name="columns"/>): 4 up to
    /// <see cref="AveragedSizeLimit"/> rows × columns², 1 beyond. Four averaged runs scored lower than one on 28 of 30
    /// folds of Concrete, Wine and Breast cancer (bench/README.md, "Averaging runs") at four times the seconds, which
    /// wide or long tables (Spam's one run: minutes per fold) cannot spare.</summary>
    public static int RepeatsFor(long rows, long columns) => rows * columns * columns <= AveragedSizeLimit ? 4 : 1;

    /// <summary>The forest settings.</summary>
    public ForestOptions Options { get; }

    /// <summary>"forest".</summary>
    public string Name => "forest";

    /// <inheritdoc />
    /// <remarks>Progress is reported after each feature's model, as <see cref="ForestImputer"/> reports it. A group of
    /// indicator columns (a categorical column) is predicted by one classifier.</remarks>
    public Tuple<IFittedStartCandidate, Tensor> Fit(Tensor x, Tensor mask, int[] groups, long seed, IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        var options = SizedRepeats ? Options with { Repeats = RepeatsFor(x.shape[0], x.shape[1]) } : Options;
        var forest = new ForestImputer(options with { Seed = seed });
        try
        {
            var filled = forest.FitUnscaled(x, mask, groups, progress, ct);
            return Tuple.Create<IFittedStartCandidate, Tensor>(new Fitted(forest), Tensors.ofArray2D(filled));
        }
        catch
        {
            forest.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public IFittedStartCandidate Load(byte[] bytes) => new Fitted(ForestImputer.LoadPayload(bytes));

    private sealed class Fitted(ForestImputer forest) : IFittedStartCandidate
    {
        public Tensor Fill(Tensor x, Tensor mask, CancellationToken ct) => forest.TransformUnscaled(x, mask, ct);

        public byte[] Save() => forest.SavePayload();

        public void Dispose() => forest.Dispose();
    }
}
