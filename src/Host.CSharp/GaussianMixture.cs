using static TorchSharp.torch;

namespace EMFlow;

/// <summary>
/// A K-component Gaussian mixture fitted by EM with missing entries: each row's responsibilities come from the
/// marginal densities of its observed entries, and the M-step adds each component's conditional covariance of the
/// missing block. A missing entry is imputed by the responsibilities' mix of the components' conditional means. With
/// an identity flow this is what a latent Gaussian mixture imputes. Plain arrays on the [0, 1] scale, one thread;
/// a sweep costs about n · K · o³ / 3 for o observed entries per row.
/// </summary>
internal sealed class GaussianMixture
{
    // EM sweeps at most per fit; the fit stops earlier once the observed log-likelihood gains less than 1e-6 of itself.
    private const int Sweeps = 60;
    // Added to each component's covariance on the [0, 1] scale: keeps a component with few rows positive definite.
    private const double Ridge = 1e-4;

    /// <summary>K chosen among <see cref="MixtureStart.Components"/> on 5% of the observed entries held out (never a row's last
    /// one), then the mixture of that K fitted on every observed entry.</summary>
    public static (GaussianMixture Mixture, int K, IReadOnlyList<(int K, double HeldOutRmse)> Scores) Choose(double[,] train, long seed, CancellationToken ct = default,
        Action<int, int>? afterK = null)
    {
        int n = train.GetLength(0), p = train.GetLength(1);
        var rng = new Random((int)(seed & 0x7FFFFFFF) ^ 0x5A17);
        var hidden = (double[,])train.Clone();
        var held = new List<(int Row, int Col)>();
        for (int i = 0; i < n; i++)
        {
            int observed = 0;
            for (int j = 0; j < p; j++) if (!double.IsNaN(train[i, j])) observed++;
            for (int j = 0; j < p; j++)
                if (!double.IsNaN(train[i, j]) && observed > 1 && rng.NextDouble() < 0.05)
                {
                    hidden[i, j] = double.NaN;
                    held.Add((i, j));
                    observed--;
                }
        }
        var scores = new List<(int, double)>();
        int best = 1;
        double bestScore = double.PositiveInfinity;
        foreach (int k in MixtureStart.Components)
        {
            if (k > 1 && k > n / (2 * (p + 1))) break;   // too few rows per component for full covariances
            ct.ThrowIfCancellationRequested();
            var m = Fit(hidden, k, new Random(rng.Next()), ct);
            var filled = m.Impute(hidden);
            double se = 0;
            foreach (var (i, j) in held) se += (filled[i, j] - train[i, j]) * (filled[i, j] - train[i, j]);
            double score = held.Count > 0 ? Math.Sqrt(se / held.Count) : 0;
            scores.Add((k, score));
            if (score < bestScore) { bestScore = score; best = k; }
            afterK?.Invoke(scores.Count, MixtureStart.Components.Count);
        }
        return (Fit(train, best, new Random(rng.Next()), ct), best, scores);
    }

    public void Write(BinaryWriter w)
    {
        int k = _weights.Length, p = _means[0].Length;
        w.Write(k);
        w.Write(p);
        for (int c = 0; c < k; c++)
        {
            w.Write(_weights[c]);
            foreach (var v in _means[c]) w.Write(v);
            for (int a = 0; a < p; a++) for (int b = 0; b < p; b++) w.Write(_covariances[c][a, b]);
        }
    }

    public static GaussianMixture Read(BinaryReader r)
    {
        int k = r.ReadInt32(), p = r.ReadInt32();
        if (k < 1 || k > 1024 || p < 1 || p > 100000) throw new InvalidDataException($"Not a mixture: {k} components of {p} features.");
        var weights = new double[k];
        var means = new double[k][];
        var covs = new double[k][,];
        for (int c = 0; c < k; c++)
        {
            weights[c] = r.ReadDouble();
            means[c] = new double[p];
            for (int a = 0; a < p; a++) means[c][a] = r.ReadDouble();
            covs[c] = new double[p, p];
            for (int a = 0; a < p; a++) for (int b = 0; b < p; b++) covs[c][a, b] = r.ReadDouble();
        }
        return new GaussianMixture(weights, means, covs);
    }

    private readonly double[] _weights;
    private readonly double[][] _means;
    private readonly double[][,] _covariances;

    private GaussianMixture(double[] weights, double[][] means, double[][,] covariances)
    {
        _weights = weights;
        _means = means;
        _covariances = covariances;
    }

    public static GaussianMixture Fit(double[,] x, int k, Random rng, CancellationToken ct = default)
    {
        int n = x.GetLength(0), p = x.GetLength(1);
        var filled = MeanFilled(x);
        var means = KMeansPlusPlus(filled, k, rng);
        var global = Covariance(filled);
        var covs = Enumerable.Range(0, k).Select(_ => (double[,])global.Clone()).ToArray();
        var weights = Enumerable.Repeat(1.0 / k, k).ToArray();
        var m = new GaussianMixture(weights, means, covs);
        double previous = double.NegativeInfinity;
        for (int sweep = 0; sweep < Sweeps; sweep++)
        {
            ct.ThrowIfCancellationRequested();
            var (ll, next) = m.Step(x, global);
            m = next;
            if (ll - previous < 1e-6 * Math.Abs(ll)) break;
            previous = ll;
        }
        return m;
    }

    // One EM sweep: the log-likelihood of the observed entries under this mixture, and the updated mixture.
    private (double LogLikelihood, GaussianMixture Next) Step(double[,] x, double[,] fallback)
    {
        int n = x.GetLength(0), p = x.GetLength(1), k = _weights.Length;
        var count = new double[k];
        var s1 = Enumerable.Range(0, k).Select(_ => new double[p]).ToArray();
        var s2 = Enumerable.Range(0, k).Select(_ => new double[p, p]).ToArray();
        double ll = 0;
        var row = new Row(p, k);
        for (int i = 0; i < n; i++)
        {
            ll += E(x, i, row, covariance: true);
            for (int c = 0; c < k; c++)
            {
                double r = row.Resp[c];
                if (r < 1e-12) continue;
                count[c] += r;
                var z = row.Completed[c];
                for (int a = 0; a < p; a++)
                {
                    s1[c][a] += r * z[a];
                    for (int b = 0; b <= a; b++) s2[c][a, b] += r * z[a] * z[b];
                }
                var cov = row.ConditionalCov[c];
                var miss = row.Missing;
                for (int a = 0; a < row.MissingCount; a++)
                    for (int b = 0; b <= a; b++)
                    {
                        int ja = miss[a], jb = miss[b];
                        if (ja >= jb) s2[c][ja, jb] += r * cov[a, b];
                        else s2[c][jb, ja] += r * cov[a, b];
                    }
            }
        }
        var weights = new double[k];
        var means = new double[k][];
        var covs = new double[k][,];
        for (int c = 0; c < k; c++)
        {
            weights[c] = count[c] / n;
            if (count[c] < p + 1)
            {
                // A component that lost its rows keeps its mean with the table's covariance and a tiny weight.
                means[c] = (double[])_means[c].Clone();
                covs[c] = (double[,])fallback.Clone();
                weights[c] = Math.Max(weights[c], 1e-6);
                continue;
            }
            means[c] = s1[c].Select(v => v / count[c]).ToArray();
            var s = new double[p, p];
            for (int a = 0; a < p; a++)
                for (int b = 0; b <= a; b++)
                {
                    double v = s2[c][a, b] / count[c] - means[c][a] * means[c][b];
                    s[a, b] = v;
                    s[b, a] = v;
                }
            for (int a = 0; a < p; a++) s[a, a] += Ridge;
            covs[c] = s;
        }
        double total = weights.Sum();
        for (int c = 0; c < k; c++) weights[c] /= total;
        return (ll, new GaussianMixture(weights, means, covs));
    }

    public double[,] Impute(double[,] x)
    {
        int n = x.GetLength(0), p = x.GetLength(1), k = _weights.Length;
        var result = (double[,])x.Clone();
        var row = new Row(p, k);
        for (int i = 0; i < n; i++)
        {
            E(x, i, row, covariance: false);
            for (int a = 0; a < row.MissingCount; a++)
            {
                int j = row.Missing[a];
                double v = 0;
                for (int c = 0; c < k; c++) v += row.Resp[c] * row.Completed[c][j];
                result[i, j] = v;
            }
        }
        return result;
    }

    // Per-row work space: for each component, the row completed by its conditional mean and the conditional
    // covariance of the missing block; the responsibilities.
    private sealed class Row
    {
        public Row(int p, int k)
        {
            Observed = new int[p];
            Missing = new int[p];
            Resp = new double[k];
            Completed = Enumerable.Range(0, k).Select(_ => new double[p]).ToArray();
            ConditionalCov = Enumerable.Range(0, k).Select(_ => new double[p, p]).ToArray();
            L = new double[p, p];
            W = new double[p, p];
            Alpha = new double[p];
            Beta = new double[p];
        }
        public readonly int[] Observed, Missing;
        public int ObservedCount, MissingCount;
        public readonly double[] Resp, Alpha, Beta;
        public readonly double[][] Completed;
        public readonly double[][,] ConditionalCov;
        public readonly double[,] L, W;
    }

    private double E(double[,] x, int i, Row row, bool covariance)
    {
        int p = x.GetLength(1), k = _weights.Length;
        row.ObservedCount = row.MissingCount = 0;
        for (int j = 0; j < p; j++)
            if (double.IsNaN(x[i, j])) row.Missing[row.MissingCount++] = j;
            else row.Observed[row.ObservedCount++] = j;
        int o = row.ObservedCount, m = row.MissingCount;
        var logs = row.Resp;
        for (int c = 0; c < k; c++)
        {
            var mu = _means[c];
            var s = _covariances[c];
            var L = row.L;
            // Cholesky of Σ_OO.
            for (int a = 0; a < o; a++)
                for (int b = 0; b <= a; b++)
                {
                    double v = s[row.Observed[a], row.Observed[b]];
                    for (int t = 0; t < b; t++) v -= L[a, t] * L[b, t];
                    L[a, b] = a == b ? Math.Sqrt(Math.Max(v, 1e-12)) : v / L[b, b];
                }
            // α = L⁻¹ (x_O − μ_O) by forward substitution.
            double quad = 0, logDet = 0;
            for (int a = 0; a < o; a++)
            {
                double v = x[i, row.Observed[a]] - mu[row.Observed[a]];
                for (int t = 0; t < a; t++) v -= L[a, t] * row.Alpha[t];
                row.Alpha[a] = v / L[a, a];
                quad += row.Alpha[a] * row.Alpha[a];
                logDet += 2 * Math.Log(L[a, a]);
            }
            logs[c] = Math.Log(_weights[c]) - 0.5 * (quad + logDet + o * Math.Log(2 * Math.PI));
            var z = row.Completed[c];
            for (int a = 0; a < o; a++) z[row.Observed[a]] = x[i, row.Observed[a]];
            if (m == 0) continue;
            // β = L⁻ᵀ α, so Σ_MO Σ_OO⁻¹ (x_O − μ_O) = Σ_MO β.
            var beta = row.Beta;
            for (int a = o - 1; a >= 0; a--)
            {
                double v = row.Alpha[a];
                for (int t = a + 1; t < o; t++) v -= L[t, a] * beta[t];
                beta[a] = v / L[a, a];
            }
            for (int a = 0; a < m; a++)
            {
                int j = row.Missing[a];
                double v = mu[j];
                for (int t = 0; t < o; t++) v += s[j, row.Observed[t]] * beta[t];
                z[j] = v;
            }
            if (!covariance) continue;
            // W = L⁻¹ Σ_OM; conditional covariance Σ_MM − Wᵀ W.
            var W = row.W;
            for (int b = 0; b < m; b++)
                for (int a = 0; a < o; a++)
                {
                    double v = s[row.Observed[a], row.Missing[b]];
                    for (int t = 0; t < a; t++) v -= L[a, t] * W[t, b];
                    W[a, b] = v / L[a, a];
                }
            var cc = row.ConditionalCov[c];
            for (int a = 0; a < m; a++)
                for (int b = 0; b <= a; b++)
                {
                    double v = s[row.Missing[a], row.Missing[b]];
                    for (int t = 0; t < o; t++) v -= W[t, a] * W[t, b];
                    cc[a, b] = v;
                    cc[b, a] = v;
                }
        }
        double max = logs.Take(k).Max(), sum = 0;
        for (int c = 0; c < k; c++) { logs[c] = Math.Exp(logs[c] - max); sum += logs[c]; }
        for (int c = 0; c < k; c++) logs[c] /= sum;
        return max + Math.Log(sum);
    }

    private static double[,] MeanFilled(double[,] x)
    {
        int n = x.GetLength(0), p = x.GetLength(1);
        var y = (double[,])x.Clone();
        for (int j = 0; j < p; j++)
        {
            double s = 0;
            int c = 0;
            for (int i = 0; i < n; i++) if (!double.IsNaN(x[i, j])) { s += x[i, j]; c++; }
            double mean = c > 0 ? s / c : 0.5;
            for (int i = 0; i < n; i++) if (double.IsNaN(y[i, j])) y[i, j] = mean;
        }
        return y;
    }

    private static double[,] Covariance(double[,] x)
    {
        int n = x.GetLength(0), p = x.GetLength(1);
        var mean = new double[p];
        for (int i = 0; i < n; i++) for (int j = 0; j < p; j++) mean[j] += x[i, j] / n;
        var s = new double[p, p];
        for (int i = 0; i < n; i++)
            for (int a = 0; a < p; a++)
                for (int b = 0; b <= a; b++) s[a, b] += (x[i, a] - mean[a]) * (x[i, b] - mean[b]) / n;
        for (int a = 0; a < p; a++) { for (int b = 0; b < a; b++) s[b, a] = s[a, b]; s[a, a] += Ridge; }
        return s;
    }

    private static double[][] KMeansPlusPlus(double[,] x, int k, Random rng)
    {
        int n = x.GetLength(0), p = x.GetLength(1);
        var centres = new List<double[]> { RowOf(x, rng.Next(n)) };
        var d = new double[n];
        while (centres.Count < k)
        {
            double total = 0;
            for (int i = 0; i < n; i++)
            {
                d[i] = centres.Min(c => Distance(x, i, c));
                total += d[i];
            }
            double u = rng.NextDouble() * total;
            int pick = 0;
            for (double acc = 0; pick < n - 1; pick++) { acc += d[pick]; if (acc >= u) break; }
            centres.Add(RowOf(x, pick));
        }
        // A few Lloyd steps.
        var assign = new int[n];
        for (int it = 0; it < 5; it++)
        {
            for (int i = 0; i < n; i++)
            {
                int bestC = 0;
                double bestD = double.PositiveInfinity;
                for (int c = 0; c < k; c++) { double v = Distance(x, i, centres[c]); if (v < bestD) { bestD = v; bestC = c; } }
                assign[i] = bestC;
            }
            for (int c = 0; c < k; c++)
            {
                var sum = new double[p];
                int count = 0;
                for (int i = 0; i < n; i++) if (assign[i] == c) { for (int j = 0; j < p; j++) sum[j] += x[i, j]; count++; }
                if (count > 0) centres[c] = sum.Select(v => v / count).ToArray();
            }
        }
        return centres.ToArray();
    }

    private static double[] RowOf(double[,] x, int i) => Enumerable.Range(0, x.GetLength(1)).Select(j => x[i, j]).ToArray();

    private static double Distance(double[,] x, int i, double[] c)
    {
        double s = 0;
        for (int j = 0; j < c.Length; j++) s += (x[i, j] - c[j]) * (x[i, j] - c[j]);
        return s;
    }
}

/// <summary>
/// A Gaussian mixture fitted by EM with missing entries, K chosen on held-out entries, as a candidate of EMFlow's <see cref="InitialImputation.Auto"/>
/// start ("gmm"): the blend then weighs it per feature beside Gaussian EM, kNN and any other candidate, on the entries
/// the fit held out, which the mixture never sees.
/// </summary>
/// <example>
/// <code>
/// using var imputer = new EMFlowImputer(new EMFlowOptions { Seed = 1 }, new IStartCandidate[] { new MixtureStart() });
/// double[,] completed = imputer.FitTransform(table);   // imputer.StartNames: gaussian-em, knn, gmm
/// </code>
/// </example>
public sealed class MixtureStart : IStartCandidate
{
    /// <summary>The numbers of components tried, in order; K is chosen among them on 5% of the observed entries held
    /// out (seeded, never a row's last one), and the mixture of that K is then refitted on every observed entry.
    /// A K with fewer than 2 (p + 1) rows per component is not tried.</summary>
    public static IReadOnlyList<int> Components { get; } = new[] { 1, 2, 4, 8, 16 };

    /// <summary>"gmm".</summary>
    public string Name => "gmm";

    /// <inheritdoc />
    /// <remarks>Groups of indicator columns are treated as numeric columns. Progress comes after each K tried; the
    /// token is checked before each EM sweep.</remarks>
    public Tuple<IFittedStartCandidate, Tensor> Fit(Tensor x, Tensor mask, int[] groups, long seed,
        IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        var values = WithNaN(x, mask);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (mixture, _, _) = GaussianMixture.Choose(values, seed, ct, (done, count) =>
            progress?.Report(new TrainingProgress("mixture components tried", done, count, 0, 0, double.NaN, double.NaN, clock.Elapsed)));
        var fitted = new Fitted(mixture);
        return Tuple.Create<IFittedStartCandidate, Tensor>(fitted, Tensors.ofArray2D(mixture.Impute(values)));
    }

    // The mixture works on arrays with NaN where an entry is missing; the start hands over scaled rows and a mask.
    private static double[,] WithNaN(Tensor x, Tensor mask)
    {
        var values = Tensors.toArray2D(x);
        var missing = Tensors.toArray2D(mask);
        for (int i = 0; i < values.GetLength(0); i++)
            for (int j = 0; j < values.GetLength(1); j++)
                if (missing[i, j] > 0.5) values[i, j] = double.NaN;
        return values;
    }

    /// <inheritdoc />
    public IFittedStartCandidate Load(byte[] bytes)
    {
        using var r = new BinaryReader(new MemoryStream(bytes));
        return new Fitted(GaussianMixture.Read(r));
    }

    private sealed class Fitted(GaussianMixture mixture) : IFittedStartCandidate
    {
        public Tensor Fill(Tensor x, Tensor mask, CancellationToken ct)
        {
            return Tensors.ofArray2D(mixture.Impute(WithNaN(x, mask)));
        }

        public byte[] Save()
        {
            var stream = new MemoryStream();
            using (var w = new BinaryWriter(stream)) mixture.Write(w);
            return stream.ToArray();
        }

        public void Dispose() { }
    }
}
