using static TorchSharp.torch;

namespace EMFlow;

/// <summary>
/// A K-component Gaussian mixture fitted by EM with missing entries: each row's responsibilities come from the
/// marginal densities of its observed entries, and the M-step adds each component's conditional covariance of the
/// missing block. A missing entry is imputed by the responsibilities' mix of the components' conditional means. With
/// an identity flow this is what a latent Gaussian mixture imputes. Plain arrays on the [0, 1] scale, one thread;
/// a sweep costs about n · K · (o² + m³) for o observed and m missing entries per row.
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

    // Per component, the precision Λ = Σ⁻¹ (p, p) and log det Σ: a row's E-step then factors only the missing block of Λ
    // (m of p entries) instead of the observed block of Σ (o = p − m), since Σ_OO⁻¹ = Λ_OO − Λ_OM Λ_MM⁻¹ Λ_MO,
    // det Σ_OO = det Σ · det Λ_MM, the conditional mean of x_M is μ_M − Λ_MM⁻¹ Λ_MO (x_O − μ_O) and its covariance
    // Λ_MM⁻¹. At 20% missing that is about o² + m³ operations a row and component instead of o³ / 3 + o² m.
    private readonly double[][,] _precisions;
    private readonly double[] _logDets;

    private GaussianMixture(double[] weights, double[][] means, double[][,] covariances)
    {
        _weights = weights;
        _means = means;
        _covariances = covariances;
        int p = means[0].Length;
        _precisions = new double[weights.Length][,];
        _logDets = new double[weights.Length];
        var l = new double[p, p];
        var inverse = new double[p, p];
        for (int c = 0; c < weights.Length; c++)
        {
            _logDets[c] = 2 * Cholesky(covariances[c], p, l, null, 1e-12);
            InvertLower(l, p, inverse);
            // Λ = Σ⁻¹ = L⁻ᵀ L⁻¹.
            var lambda = new double[p, p];
            GramOfLower(inverse, p, lambda);
            _precisions[c] = lambda;
        }
    }

    // The lower Cholesky factor of the (n, n) block m[at[a], at[b]] (m itself when at is null) into l; returns the sum
    // of the logs of its diagonal (half the log-determinant). A pivot below floor is raised to it, so a near-singular
    // block stays factorable.
    private static double Cholesky(double[,] m, int n, double[,] l, int[]? at, double floor)
    {
        double halfLogDet = 0;
        for (int a = 0; a < n; a++)
            for (int b = 0; b <= a; b++)
            {
                double v = at is null ? m[a, b] : m[at[a], at[b]];
                for (int t = 0; t < b; t++) v -= l[a, t] * l[b, t];
                if (a == b)
                {
                    l[a, a] = Math.Sqrt(Math.Max(v, floor));
                    halfLogDet += Math.Log(l[a, a]);
                }
                else l[a, b] = v / l[b, b];
            }
        return halfLogDet;
    }

    // wᵀ w of the (n, n) lower-triangular w into the symmetric g: (wᵀ w)[a, b] sums w[t, a] w[t, b] over t ≥ max(a, b).
    private static void GramOfLower(double[,] w, int n, double[,] g)
    {
        for (int a = 0; a < n; a++)
            for (int b = 0; b <= a; b++)
            {
                double v = 0;
                for (int t = a; t < n; t++) v += w[t, a] * w[t, b];
                g[a, b] = v;
                g[b, a] = v;
            }
    }

    // The inverse of the (n, n) lower-triangular l into w, itself lower-triangular.
    private static void InvertLower(double[,] l, int n, double[,] w)
    {
        for (int a = 0; a < n; a++)
        {
            w[a, a] = 1 / l[a, a];
            for (int b = 0; b < a; b++)
            {
                double v = 0;
                for (int t = b; t < a; t++) v -= l[a, t] * w[t, b];
                w[a, b] = v / l[a, a];
            }
            for (int b = a + 1; b < n; b++) w[a, b] = 0;
        }
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
            Deviation = new double[p];
            Correction = new double[p];
        }
        public readonly int[] Observed, Missing;
        public int ObservedCount, MissingCount;
        public readonly double[] Resp;
        // x_O − μ_O, and Λ_MO (x_O − μ_O) solved in place into the conditional mean's correction Λ_MM⁻¹ Λ_MO (x_O − μ_O).
        public readonly double[] Deviation, Correction;
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
        var observed = row.Observed;
        var missing = row.Missing;
        var logs = row.Resp;
        var d = row.Deviation;
        var r = row.Correction;
        var L = row.L;
        for (int c = 0; c < k; c++)
        {
            var mu = _means[c];
            var lambda = _precisions[c];
            // d = x_O − μ_O; the observed block's quadratic form starts as dᵀ Λ_OO d.
            for (int a = 0; a < o; a++) d[a] = x[i, observed[a]] - mu[observed[a]];
            double quad = 0;
            for (int a = 0; a < o; a++)
            {
                int ja = observed[a];
                double v = 0;
                for (int b = 0; b < o; b++) v += lambda[ja, observed[b]] * d[b];
                quad += d[a] * v;
            }
            double logDet = _logDets[c];
            var z = row.Completed[c];
            for (int a = 0; a < o; a++) z[observed[a]] = x[i, observed[a]];
            if (m > 0)
            {
                logDet += 2 * Cholesky(lambda, m, L, missing, 1e-300);
                // r = Λ_MO d, then y = L⁻¹ r in place (rᵀ Λ_MM⁻¹ r = |y|², taken off the quadratic form), then
                // u = L⁻ᵀ y = Λ_MM⁻¹ r in place: the conditional mean is μ_M − u.
                for (int a = 0; a < m; a++)
                {
                    int ja = missing[a];
                    double v = 0;
                    for (int b = 0; b < o; b++) v += lambda[ja, observed[b]] * d[b];
                    r[a] = v;
                }
                for (int a = 0; a < m; a++)
                {
                    double v = r[a];
                    for (int t = 0; t < a; t++) v -= L[a, t] * r[t];
                    r[a] = v / L[a, a];
                    quad -= r[a] * r[a];
                }
                for (int a = m - 1; a >= 0; a--)
                {
                    double v = r[a];
                    for (int t = a + 1; t < m; t++) v -= L[t, a] * r[t];
                    r[a] = v / L[a, a];
                }
                for (int a = 0; a < m; a++) z[missing[a]] = mu[missing[a]] - r[a];
                if (covariance)
                {
                    // Conditional covariance Λ_MM⁻¹ = L⁻ᵀ L⁻¹ = Wᵀ W with W = L⁻¹.
                    InvertLower(L, m, row.W);
                    GramOfLower(row.W, m, row.ConditionalCov[c]);
                }
            }
            logs[c] = Math.Log(_weights[c]) - 0.5 * (quad + logDet + o * Math.Log(2 * Math.PI));
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
