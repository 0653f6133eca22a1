using EMFlow.Evaluation;

namespace EMFlow.Tests;

/// <summary>Choosing EMFlow's settings on the training table's own held-out entries.</summary>
public class EMFlowTuningTests
{
    [Fact]
    public void Search_scores_every_candidate_picks_the_lowest_and_repeats_with_the_seed()
    {
        var (_, data) = TestData.Table(200);
        var good = TestData.QuickEMFlow();
        var other = TestData.QuickEMFlow() with { ValidationFraction = 0, SecondStep = SecondFlowStep.ReconstructionOnly, Iterations = 1 };
        var candidates = new[] { ("other", other), ("good", good) };
        var lines = new List<string>();
        var a = EMFlowTuning.Search(data, candidates, 0.1, seed: 3, progress: new SyncProgress(lines));
        var b = EMFlowTuning.Search(data, candidates, 0.1, seed: 3);
        Assert.Equal(2, a.Scores.Count);
        Assert.All(a.Scores, s => Assert.True(double.IsFinite(s.HoldOutRmse) && s.HoldOutRmse > 0));
        var min = a.Scores.MinBy(s => s.HoldOutRmse)!;
        Assert.Equal(min.Label, a.BestLabel);
        Assert.Same(min.Options, a.Best);
        Assert.NotEqual(a.Scores[0].HoldOutRmse, a.Scores[1].HoldOutRmse);
        Assert.Equal(a.Scores.Select(s => s.HoldOutRmse), b.Scores.Select(s => s.HoldOutRmse));
        Assert.Equal(2, lines.Count);
    }

    [Fact]
    public void Bad_arguments_name_the_parameter()
    {
        var (_, data) = TestData.Table(50);
        var one = new[] { ("defaults", TestData.QuickEMFlow()) };
        Assert.Equal("candidates", Assert.Throws<ArgumentException>(() => EMFlowTuning.Search(data, Array.Empty<(string, EMFlowOptions)>())).ParamName);
        Assert.Equal("holdOutFraction", Assert.Throws<ArgumentOutOfRangeException>(() => EMFlowTuning.Search(data, one, 0)).ParamName);
        Assert.Equal("holdOutFraction", Assert.Throws<ArgumentOutOfRangeException>(() => EMFlowTuning.Search(data, one, 1.0)).ParamName);
        Assert.Equal("data", Assert.Throws<ArgumentException>(() => EMFlowTuning.Search(new double[,] { { double.PositiveInfinity, 1 } }, one)).ParamName);
    }

    [Fact]
    public void The_default_candidates_start_from_the_baseline_and_keep_its_seed()
    {
        var baseline = new EMFlowOptions { Seed = 11, TorchThreads = 1 };
        var c = EMFlowTuning.Candidates(baseline);
        Assert.Same(baseline, c[0].Options);
        Assert.All(c, x => Assert.Equal(11, x.Options.Seed));
        Assert.All(c, x => Assert.Equal(1, x.Options.TorchThreads));
        Assert.Equal(c.Count, c.Select(x => x.Label).Distinct().Count());
    }

    [Fact]
    public void The_tuned_method_runs_in_the_protocol_and_keeps_observed_cells()
    {
        var (complete, _) = TestData.Table(120);
        var quick = Method.Standard("emflow-tuned", 2, o => o with { Iterations = 1, EpochsPerIteration = 1, TorchThreads = 1 });
        var result = Protocol.Run(complete, new[] { quick }, new ProtocolOptions { Folds = 2, Seed = 1, OnlyFolds = new[] { 0 } });
        Assert.True(double.IsFinite(result.Methods[0].MeanRmse));
        using var m = (TunedEMFlowMethod)quick.Create();
        var (_, data) = TestData.Table(80, seed: 5);
        m.Fit(data);
        Assert.NotNull(m.Tuning);
        Assert.Equal(EMFlowTuning.Candidates(new EMFlowOptions()).Count, m.Tuning!.Scores.Count);
        var filled = m.Transform(data);
        for (int i = 0; i < 80; i++)
            for (int j = 0; j < data.GetLength(1); j++)
                if (double.IsNaN(data[i, j])) Assert.False(double.IsNaN(filled[i, j]));
                else Assert.Equal(data[i, j], filled[i, j]);
        Assert.Throws<InvalidOperationException>(() => ((TunedEMFlowMethod)quick.Create()).Transform(data));
    }

    private sealed class SyncProgress(List<string> sink) : IProgress<string>
    {
        public void Report(string value) => sink.Add(value);
    }
}
