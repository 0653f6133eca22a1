using static TorchSharp.torch;

namespace EMFlow.Tests;

/// <summary>Every imputer fits and transforms with one torch thread unless its settings ask for more, and gives torch
/// back the thread count it found.</summary>
[Collection("torch threads")]
public sealed class ThreadTests
{
    private sealed class Recording(int? threads) : Imputer
    {
        public int FitThreads, TransformThreads;
        protected override int? TorchThreads => threads;
        protected override void FitScaled(Tensor x, Tensor mask, IProgress<TrainingProgress>? progress, CancellationToken ct) => FitThreads = get_num_threads();
        protected override Tensor TransformScaled(Tensor x, Tensor mask)
        {
            TransformThreads = get_num_threads();
            return x.clone();
        }
    }

    [Fact]
    public void Fit_and_Transform_run_on_one_torch_thread_by_default_and_restore_the_count_they_found()
    {
        var (_, data) = TestData.Table(40);
        int before = get_num_threads();
        try
        {
            set_num_threads(2);
            using var plain = new MidRangeImputer();
            plain.Fit(data);
            Assert.Equal(2, get_num_threads());
            Assert.Equal(1, new EMFlowOptions().TorchThreads);

            using var one = new Recording(1);
            one.FitTransform(data);
            Assert.Equal((1, 1), (one.FitThreads, one.TransformThreads));
            Assert.Equal(2, get_num_threads());

            using var leave = new Recording(null);
            leave.FitTransform(data);
            Assert.Equal((2, 2), (leave.FitThreads, leave.TransformThreads));
        }
        finally
        {
            set_num_threads(before);
        }
    }

    [Fact]
    public void SetProcessDefault_sets_the_count_scopes_restore_and_rejects_zero()
    {
        int before = get_num_threads();
        try
        {
            TorchThreadScope.SetProcessDefault(2);
            Assert.Equal(2, get_num_threads());
            using (new TorchThreadScope(1)) Assert.Equal(1, get_num_threads());
            Assert.Equal(2, get_num_threads());
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => TorchThreadScope.SetProcessDefault(0));
            Assert.Equal("threads", e.ParamName);
            Assert.Contains("got 0", e.Message);
            Assert.Equal(2, get_num_threads());
        }
        finally
        {
            set_num_threads(before);
        }
    }
}
