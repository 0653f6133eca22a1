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
    /// <summary>A candidate with the default <see cref="ForestOptions"/>; model files create it this way to load one.</summary>
    public ForestStart() : this(null) { }

    /// <summary>A candidate with the given forest settings; its <see cref="ForestOptions.Seed"/> is replaced by the one
    /// EMFlow derives from its own seed.</summary>
    public ForestStart(ForestOptions? options) => Options = options ?? new ForestOptions();

    /// <summary>The forest settings.</summary>
    public ForestOptions Options { get; }

    /// <summary>"forest".</summary>
    public string Name => "forest";

    /// <inheritdoc />
    /// <remarks>Progress is reported after each feature's model, as <see cref="ForestImputer"/> reports it. A group of
    /// indicator columns (a categorical column) is predicted by one classifier.</remarks>
    public Tuple<IFittedStartCandidate, Tensor> Fit(Tensor x, Tensor mask, int[] groups, long seed, IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        var forest = new ForestImputer(Options with { Seed = seed });
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
