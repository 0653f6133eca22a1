using static EMFlow.Tests.TestData;
using static TorchSharp.torch;
namespace EMFlow.Tests;

/// <summary>A start averaged over several hold-out draws (<see cref="EMFlowOptions.StartDraws"/>): every member is
/// fitted without the fit's own hold-out, which scores the iterations, and without a draw of its own; it repeats with
/// its seed, keeps observed values, and saves and loads with the model.</summary>
public sealed class StartDrawsTests
{
    /// <summary>The Gaussian mixture start, keeping every mask it was fitted on.</summary>
    public sealed class Recording : IStartCandidate
    {
        private readonly MixtureStart _inner = new();
        public readonly List<double[]> Masks = new();

        public string Name => "recording";

        public Tuple<IFittedStartCandidate, Tensor> Fit(Tensor x, Tensor mask, int[] groups, long seed, IProgress<TrainingProgress>? progress, CancellationToken ct)
        {
            Masks.Add(Tensors.toArray(mask.flatten()));
            progress?.Report(new TrainingProgress("recording", 1, 1, 1, 1, double.NaN, double.NaN, TimeSpan.Zero));
            return _inner.Fit(x, mask, groups, seed, null, ct);
        }

        public IFittedStartCandidate Load(byte[] bytes) => _inner.Load(bytes);
    }

    private static EMFlowOptions Options(int draws, long seed = 7) =>
        QuickEMFlow(seed) with { Iterations = 1, EpochsPerIteration = 1, ValidationFraction = 0.1, StartDraws = draws, InitialImputation = InitialImputation.Auto };

    [Fact]
    public void Every_member_misses_the_fit_s_hold_out_and_a_draw_of_its_own()
    {
        var (_, data) = Table(300);
        var candidate = new Recording();
        using var imputer = new EMFlowImputer(Options(3), new[] { candidate });
        var seen = new List<TrainingProgress>();
        var completed = imputer.FitTransform(data, progress: new Sink(seen.Add));

        Assert.Equal(3, candidate.Masks.Count);
        // A user watching the start sees which draw each candidate's steps belong to.
        for (int k = 1; k <= 3; k++) Assert.Contains(seen, q => q.Phase.Contains($"recording, draw {k}/3"));
        int n = data.GetLength(0), p = data.GetLength(1);
        int observed = 0, hiddenFromAll = 0;
        var own = new int[3];
        for (int e = 0; e < n * p; e++)
        {
            if (double.IsNaN(data[e / p, e % p])) continue;
            observed++;
            bool all = candidate.Masks.All(m => m[e] == 1.0);
            if (all) hiddenFromAll++;
            for (int k = 0; k < 3; k++) if (candidate.Masks[k][e] == 1.0 && !all) own[k]++;
        }
        // The fit's own hold-out (10% of the observed cells) is hidden from all three; each member also misses cells
        // of its own draw, which the first member, fitted on the fit's hold-out alone, does not.
        Assert.InRange(hiddenFromAll / (double)observed, 0.07, 0.13);
        Assert.Equal(0, own[0]);
        Assert.True(own[1] > 0.05 * observed && own[2] > 0.05 * observed, $"cells of the members' own draws: {own[1]}, {own[2]}");
        Assert.False(candidate.Masks[1].SequenceEqual(candidate.Masks[2]));

        Assert.Equal(new[] { "gaussian-em", "knn", "recording", "recording 2", "recording 3" }, imputer.StartNames);
        Assert.Equal(3, imputer.StartDrawsUsed);
        var w = imputer.StartWeights;
        Assert.Equal(5, w.GetLength(1));
        for (int j = 0; j < p; j++)
        {
            Assert.Equal(1.0, w[j, 0] + w[j, 1] + w[j, 2] + w[j, 3] + w[j, 4], 9);
            Assert.Equal(w[j, 1], imputer.KnnShare[j], 12);
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
            {
                if (!double.IsNaN(data[i, j])) Assert.Equal(data[i, j], completed[i, j]);
                else Assert.True(double.IsFinite(completed[i, j]));
            }
    }

    [Fact]
    public void Same_seed_same_result_and_the_model_file_keeps_every_draw()
    {
        var (_, data) = Table(240);
        var (_, probe) = Table(60, seed: 4);
        using var a = new EMFlowImputer(Options(2), new[] { new Recording() });
        using var b = new EMFlowImputer(Options(2), new[] { new Recording() });
        using var other = new EMFlowImputer(Options(2, seed: 8), new[] { new Recording() });
        AssertBitForBit(a.FitTransform(data), b.FitTransform(data));
        var imputed = a.Transform(probe);
        AssertBitForBit(imputed, b.Transform(probe));
        other.Fit(data);
        Assert.NotEqual(a.StartWeights.Cast<double>(), other.StartWeights.Cast<double>());

        // Refitting a loaded model fits each candidate once per draw, as the original did.
        AssertReloads<Recording>(a, probe, imputed);
    }

    [Fact]
    public void Zero_draws_are_refused_by_name()
    {
        var (_, data) = Table(60);
        using var imputer = new EMFlowImputer(Options(0), new[] { new Recording() });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => imputer.Fit(data));
        Assert.Equal("StartDraws", e.ParamName);
        Assert.Contains("got 0", e.Message);
    }
}
