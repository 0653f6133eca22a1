using static EMFlow.Tests.TestData;
using System.Diagnostics;
using static TorchSharp.torch;

namespace EMFlow.Tests;

/// <summary>
/// Cancellation reaches every long loop: a token cancelled while an imputer works stops it with
/// <see cref="OperationCanceledException"/> well within a second on these tables (the bound asserted, 5 s, is generous
/// so that a loaded machine does not fail the tests), and a cancelled refit leaves the previous model bit for bit.
/// </summary>
public sealed class CancellationTests
{
    /// <summary>A (n, p) table of correlated columns with 20% of cells missing.</summary>
    private static double[,] Wide(int n, int p, int seed = 1)
    {
        var rng = new Random(seed);
        var data = new double[n, p];
        for (int i = 0; i < n; i++)
        {
            double a = rng.NextDouble();
            for (int j = 0; j < p; j++)
                data[i, j] = rng.NextDouble() < 0.2 ? double.NaN : a * (j + 1) + rng.NextDouble();
        }
        return data;
    }

    /// <summary>Runs work that only the token can end, cancels it after <paramref name="cancelAfterMs"/> and checks
    /// that it stopped with OperationCanceledException soon after.</summary>
    private static void AssertStopsWhenCancelled(Action<CancellationToken> work, int cancelAfterMs = 200)
    {
        using var cts = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        cts.CancelAfter(cancelAfterMs);
        Assert.ThrowsAny<OperationCanceledException>(() => work(cts.Token));
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 5);
    }


    [Fact]
    public void A_Gaussian_EM_refit_cancelled_between_sweeps_leaves_the_model_bit_for_bit()
    {
        // Tolerance 0 and a million sweeps: only the token can end this first fit.
        using var imputer = new GaussianEmImputer(new GaussianEmOptions { Tolerance = 0, MaxIterations = 1_000_000 });
        AssertStopsWhenCancelled(ct => imputer.Fit(Wide(300, 8), cancellationToken: ct));
        Assert.False(imputer.IsFitted);

        // 2000 sweeps: a moment on 50 rows, a minute on 20000, so the refit below can only end by the token.
        var small = Wide(50, 4);
        var big = Wide(20000, 16, seed: 2);
        using var fitted = new GaussianEmImputer(new GaussianEmOptions { Tolerance = 0, MaxIterations = 2000 });
        fitted.Fit(small);
        var before = fitted.Transform(small);
        var (mu, sweeps) = (fitted.Mu, fitted.IterationsRun);
        // The refit runs on a table of another width, so a partly swapped model could not go unnoticed.
        AssertStopsWhenCancelled(ct => fitted.Fit(big, cancellationToken: ct));
        Assert.Equal(4, fitted.FeatureCount);
        Assert.Equal(mu, fitted.Mu);
        Assert.Equal(sweeps, fitted.IterationsRun);
        AssertBitForBit(before, fitted.Transform(small));
    }

    [Fact]
    public void KnnImputer_Transform_of_20000_rows_stops_when_cancelled()
    {
        var data = Wide(20000, 16);
        using var imputer = new KnnImputer();
        imputer.Fit(data);
        AssertStopsWhenCancelled(ct => imputer.Transform(data, cancellationToken: ct));
    }

    [Fact]
    public void The_EMFlow_kNN_start_on_a_20000_x_16_table_stops_when_cancelled()
    {
        var data = Wide(20000, 16);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { InitialImputation = InitialImputation.Knn });
        AssertStopsWhenCancelled(ct => imputer.Fit(data, cancellationToken: ct), cancelAfterMs: 300);
        Assert.False(imputer.IsFitted);
    }

    [Fact]
    public void An_EMFlow_refit_cancelled_during_training_leaves_the_model_bit_for_bit()
    {
        var (_, data) = TestData.Table(150);
        var (_, other) = TestData.Table(150, seed: 4);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow());
        imputer.Fit(data);
        var before = imputer.Transform(data);
        var history = imputer.History.ToArray();
        using var cts = new CancellationTokenSource();
        var progress = new Inline<TrainingProgress>(p => { if (p.Phase == "training") cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => imputer.Fit(other, progress: progress, cancellationToken: cts.Token));
        Assert.Equal(history, imputer.History);
        AssertBitForBit(before, imputer.Transform(data));
    }

    [Fact]
    public void The_core_loops_throw_on_a_cancelled_token()
    {
        var cancelled = new CancellationToken(canceled: true);
        using var scope = NewDisposeScope();
        var x = rand(50, 3, dtype: float64);
        var mask = zeros(50, 3, dtype: float64);
        Assert.ThrowsAny<OperationCanceledException>(() => GaussianEm.fitBatchCancellable(GaussianEm.defaults, cancelled, x, mask));
        var pool = Knn.donors(x, mask);
        Assert.ThrowsAny<OperationCanceledException>(() => Knn.imputeCancellable(5, pool, cancelled, x, mask));
    }

    private sealed class Inline<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
