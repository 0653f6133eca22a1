using TorchSharp;
using static TorchSharp.torch;

namespace EMFlow.Tests;

/// <summary>
/// An imputer written outside the EMFlow assembly, as a user would write one: each missing cell takes the middle of
/// its feature's observed range. It sees only <see cref="Imputer"/>'s protected extension points, and the shared
/// contract tests hold it to the same promises as the library's own imputers.
/// </summary>
public sealed class MidRangeImputer : Imputer
{
    private bool _fitted;

    protected override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _fitted = true;
    }

    // On the min-max scale every feature's observed range is [0, 1]; the base class scales back and restores the
    // observed cells.
    protected override Tensor TransformScaled(Tensor x, Tensor mask) =>
        _fitted ? where(mask.gt(0.5), full_like(x, 0.5), x) : throw new InvalidOperationException("not fitted");
}
