using static TorchSharp.torch;

namespace EMFlow.Evaluation;

/// <summary>
/// The column mean of the observed training entries as a candidate of EMFlow's start blend: with it, a feature whose
/// held-out entries are best predicted by shrinking the other candidates toward its mean can say so. Measured on the
/// tables where mean imputation is the best method (Spam under MAR); run as "emflow-forest-mean-shaped".
/// </summary>
public sealed class MeanStart : IStartCandidate
{
    /// <summary>"mean".</summary>
    public string Name => "mean";

    /// <inheritdoc />
    public Tuple<IFittedStartCandidate, Tensor> Fit(Tensor x, Tensor mask, int[] groups, long seed, IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        using var scope = NewDisposeScope();
        // Cached scalars (Tensors.sc): a temporary Scalar finalised on another thread can crash TorchSharp.
        var observed = Tensors.oneMinus(mask);
        // A column with nothing observed never reaches a start: EMFlow rejects it first.
        // 0L, not 0: a literal 0 converts to ScalarType too, and sum(ScalarType) would sum the whole table.
        var means = (x * observed).sum(0L) / observed.sum(0L);
        var fitted = new Fitted(means.to_type(ScalarType.Float64).data<double>().ToArray());
        return Tuple.Create<IFittedStartCandidate, Tensor>(fitted, fitted.Fill(x, mask, ct).MoveToOuterDisposeScope());
    }

    /// <inheritdoc />
    public IFittedStartCandidate Load(byte[] bytes)
    {
        var means = new double[bytes.Length / sizeof(double)];
        Buffer.BlockCopy(bytes, 0, means, 0, bytes.Length);
        return new Fitted(means);
    }

    private sealed class Fitted(double[] means) : IFittedStartCandidate
    {
        public Tensor Fill(Tensor x, Tensor mask, CancellationToken ct)
        {
            using var m = tensor(means, dtype: x.dtype);
            return where(mask.gt(Tensors.sc(0.5)), m.expand_as(x), x);
        }

        public byte[] Save()
        {
            var bytes = new byte[means.Length * sizeof(double)];
            Buffer.BlockCopy(means, 0, bytes, 0, bytes.Length);
            return bytes;
        }

        public void Dispose() { }
    }
}
