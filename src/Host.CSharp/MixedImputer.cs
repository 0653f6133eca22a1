using System.Globalization;

namespace EMFlow;

/// <summary>
/// Imputes a table of numeric and categorical columns with any numeric imputer: each categorical column is one-hot
/// encoded (one 0/1 column per category observed at Fit), the inner imputer completes the encoded table, and each
/// missing categorical cell takes the category whose imputed indicator is largest.
/// </summary>
/// <remarks>
/// <para>What each imputer makes of the indicators: Gaussian EM and EMFlow impute their conditional means, which
/// estimate the category probabilities given the row's observed cells; kNN averages them over the k neighbours, so
/// the category is the neighbours' majority vote, with a distance in which a different category counts as two
/// numeric columns a full range apart; the mean imputer's indicator means are the category frequencies, so it
/// imputes the mode; the forest (EMFlow.Forest) regresses each indicator on every other column.</para>
/// <para>Probabilities (<see cref="CategoryProbabilities"/>): the imputed indicators, negative values set to 0,
/// divided by their sum; when every one is 0 or less, the category frequencies at Fit. The imputed category is the
/// most probable; ties go to the category more frequent at Fit, then to the first.</para>
/// <para>Observed cells come back bit for bit; an imputed categorical cell is always one of the column's categories
/// at Fit. A category not seen at Fit in a row given to Transform is an <see cref="ArgumentException"/> naming the
/// column and the value: it has no indicator to put it in.</para>
/// <para>The inner imputer is owned: Fit refits it on the encoded table and Dispose disposes it. Its own settings
/// (seed, threads) apply; with the same settings the same table gives the same result.</para>
/// </remarks>
/// <example>
/// <code>
/// // (n, 3): x, y numeric; column 2 a category code (0 = red, 1 = green, 2 = blue); NaN = missing
/// using var imputer = new MixedImputer(new GaussianEmImputer());
/// double[,] completed = imputer.FitTransform(data, new[] { ColumnKind.Numeric, ColumnKind.Numeric, ColumnKind.Categorical });
///
/// var table = Table.Read("shop.csv", categorical: new[] { "store" });   // text columns are categorical too
/// using var knn = new MixedImputer(new KnnImputer());
/// knn.FitTransform(table).Write("shop-completed.csv");                 // imputed categories written as their text
/// </code>
/// </example>
public sealed class MixedImputer : IDisposable
{
    private Encoding? _encoding;
    private bool _disposed;

    /// <summary>A mixed-table imputer over <paramref name="inner"/>, which it owns from now on.</summary>
    /// <param name="inner">Any imputer: <see cref="GaussianEmImputer"/>, <see cref="EMFlowImputer"/>,
    /// <see cref="KnnImputer"/>, <see cref="MeanImputer"/>, EMFlow.Forest's ForestImputer or one of your own.</param>
    /// <exception cref="ArgumentNullException"><paramref name="inner"/> is null.</exception>
    public MixedImputer(Imputer inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        Inner = inner;
    }

    /// <summary>The imputer that completes the encoded table; after Fit its columns are <see cref="EncodedColumnNames"/>.</summary>
    public Imputer Inner { get; }

    /// <summary>True once Fit has completed.</summary>
    /// <exception cref="ObjectDisposedException">After Dispose.</exception>
    public bool IsFitted
    {
        get
        {
            ThrowIfDisposed();
            return _encoding is not null;
        }
    }

    /// <summary>The kind of each column (p) at Fit.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public IReadOnlyList<ColumnKind> ColumnKinds => Fitted.Kinds;

    /// <summary>The column names given to Fit (or the table's <see cref="Table.ImputedColumns"/>); null when fitted without names.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public IReadOnlyList<string>? ColumnNames => Fitted.Names;

    /// <summary>The name of each column of the encoded table the inner imputer sees, e.g. <c>x</c>, <c>colour=red</c>
    /// (without names, the column's index: <c>0</c>, <c>2=1</c>): to read the inner imputer's per-feature output.</summary>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    public IReadOnlyList<string> EncodedColumnNames
    {
        get
        {
            var e = Fitted;
            var names = new List<string>(e.Width);
            for (int j = 0; j < e.Kinds.Length; j++)
            {
                var name = e.Names?[j] ?? j.ToString(CultureInfo.InvariantCulture);
                if (e.Kinds[j] == ColumnKind.Numeric) { names.Add(name); continue; }
                for (int k = 0; k < e.Categories[j].Length; k++)
                    names.Add($"{name}={(e.Labels is { } l ? l[j]![k] : e.Categories[j][k].ToString("R", CultureInfo.InvariantCulture))}");
            }
            return names;
        }
    }

    /// <summary>The categories observed at Fit in a categorical column, in increasing order: the values it can impute
    /// (for a table, the indices of <see cref="Table.Categories"/>).</summary>
    /// <param name="column">Index of a categorical column, 0 to p − 1.</param>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException">Not the index of a categorical column.</exception>
    public IReadOnlyList<double> Categories(int column)
    {
        var e = Fitted;
        if (column < 0 || column >= e.Kinds.Length || e.Kinds[column] != ColumnKind.Categorical)
            throw new ArgumentOutOfRangeException(nameof(column), column, $"Expected the index of a categorical column ({string.Join(", ", CategoricalIndices(e))}); got {column}.");
        return e.Categories[column];
    }

    /// <summary>Fits on a table (n, p) whose columns are numeric or categorical.</summary>
    /// <param name="data">(n, p) values, NaN (or <paramref name="missing"/>) marking missing cells; a categorical cell's
    /// value is its category (any finite number, e.g. an integer code).</param>
    /// <param name="kinds">The kind of each column (p).</param>
    /// <param name="missing">Optional (n, p) mask, true where missing.</param>
    /// <param name="columnNames">Optional p distinct, non-empty names, used in messages and <see cref="EncodedColumnNames"/>.</param>
    /// <param name="progress">Optional progress of the inner fit.</param>
    /// <param name="cancellationToken">Stops the inner fit with <see cref="OperationCanceledException"/>.</param>
    /// <remarks>A Fit that throws leaves this imputer as it was.</remarks>
    /// <exception cref="ArgumentException">The kinds or names do not match the columns, an observed value is not
    /// finite, or a column has no observed value (the message names them); or as the inner imputer's Fit.</exception>
    public void Fit(double[,] data, IReadOnlyList<ColumnKind> kinds, bool[,]? missing = null, IReadOnlyList<string>? columnNames = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        FitCore(data, kinds, missing, columnNames, null, progress, cancellationToken);
    }

    private void FitCore(double[,] data, IReadOnlyList<ColumnKind> kinds, bool[,]? missing, IReadOnlyList<string>? columnNames,
        string[]?[]? labels, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(kinds);
        int n = data.GetLength(0), p = data.GetLength(1);
        if (kinds.Count != p)
            throw new ArgumentException($"Expected {p} column kinds, one per column of data; got {kinds.Count}.", nameof(kinds));
        for (int j = 0; j < p; j++)
            if (!Enum.IsDefined(kinds[j]))
                throw new ArgumentOutOfRangeException(nameof(kinds), kinds[j], $"Column {j}: unknown column kind {kinds[j]}.");
        var names = columnNames is null ? null : Imputer.CheckNames(nameof(columnNames), columnNames, p);
        var isMissing = MissingCells(data, missing, names);
        var categories = new double[p][];
        var counts = new int[p][];
        for (int j = 0; j < p; j++)
        {
            int observed = 0;
            for (int i = 0; i < n; i++) if (!isMissing[i, j]) observed++;
            if (observed == 0)
                throw new ArgumentException($"{ColumnName(names, j)} has no observed value; nothing can be learned about it: drop it.", nameof(data));
            if (kinds[j] != ColumnKind.Categorical) { categories[j] = Array.Empty<double>(); counts[j] = Array.Empty<int>(); continue; }
            var tally = new SortedDictionary<double, int>();
            for (int i = 0; i < n; i++)
                if (!isMissing[i, j]) tally[data[i, j]] = tally.GetValueOrDefault(data[i, j]) + 1;
            categories[j] = tally.Keys.ToArray();
            counts[j] = tally.Values.ToArray();
        }
        var encoding = new Encoding(kinds.ToArray(), categories, counts, names, labels);
        var encoded = encoding.Encode(data, isMissing, nameof(data));
        cancellationToken.ThrowIfCancellationRequested();
        Inner.FitGrouped(encoded, encoding.Groups(), progress, cancellationToken);
        _encoding = encoding;
    }

    /// <summary>Imputes rows (m, p) with the fitted model only (nothing is refitted).</summary>
    /// <param name="data">(m, p) values as at Fit; every observed categorical value must be a category seen at Fit.</param>
    /// <param name="missing">Optional (m, p) mask, true where missing.</param>
    /// <param name="cancellationToken">Passed to the inner imputer's Transform.</param>
    /// <returns>A new (m, p) table: observed cells copied bit for bit, numeric cells imputed by the inner imputer,
    /// categorical cells imputed as their most probable category.</returns>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="ArgumentException">Another number of columns, a non-finite observed value, or a category not
    /// seen at Fit (the message names the column and the value).</exception>
    public double[,] Transform(double[,] data, bool[,]? missing = null, CancellationToken cancellationToken = default)
    {
        var (completed, isMissing, e) = InnerTransform(data, missing, cancellationToken);
        var result = (double[,])data.Clone();
        int m = data.GetLength(0);
        for (int j = 0; j < e.Kinds.Length; j++)
            for (int i = 0; i < m; i++)
            {
                if (!isMissing[i, j]) continue;
                result[i, j] = e.Kinds[j] == ColumnKind.Numeric
                    ? completed[i, e.Offsets[j]]
                    : e.Categories[j][e.MostProbable(j, e.Probabilities(completed, i, j))];
            }
        return result;
    }

    /// <summary>Fits on <paramref name="data"/> and returns its completed table; see <see cref="Fit"/> and <see cref="Transform(double[,], bool[,], CancellationToken)"/>.</summary>
    public double[,] FitTransform(double[,] data, IReadOnlyList<ColumnKind> kinds, bool[,]? missing = null, IReadOnlyList<string>? columnNames = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        Fit(data, kinds, missing, columnNames, progress, cancellationToken);
        return Transform(data, missing, cancellationToken);
    }

    /// <summary>The probability of each category of a categorical column, per row, given the row's observed cells.</summary>
    /// <param name="data">(m, p) rows as for Transform.</param>
    /// <param name="column">Index of a categorical column.</param>
    /// <param name="missing">Optional (m, p) mask, true where missing.</param>
    /// <returns>(m, K) over the column's <see cref="Categories"/>, each row summing to 1; a row whose cell is observed
    /// has 1 at its category.</returns>
    /// <exception cref="ArgumentOutOfRangeException">Not the index of a categorical column.</exception>
    public double[,] CategoryProbabilities(double[,] data, int column, bool[,]? missing = null)
    {
        var categories = Categories(column);
        var (completed, isMissing, e) = InnerTransform(data, missing, CancellationToken.None);
        int m = data.GetLength(0);
        var result = new double[m, categories.Count];
        for (int i = 0; i < m; i++)
        {
            if (!isMissing[i, column]) { result[i, e.Code(column, data[i, column])] = 1; continue; }
            var prob = e.Probabilities(completed, i, column);
            for (int k = 0; k < prob.Length; k++) result[i, k] = prob[k];
        }
        return result;
    }

    /// <summary>Multiple imputation: <paramref name="count"/> completed copies of the rows, numeric cells drawn by the
    /// inner <see cref="EMFlowImputer"/> (<see cref="EMFlowImputer.SampleImputations"/>) and each missing categorical
    /// cell drawn from its <see cref="CategoryProbabilities"/>.</summary>
    /// <param name="data">(m, p) rows as for Transform.</param>
    /// <param name="count">Number of draws, at least 1.</param>
    /// <param name="seed">Seed of the draws: the same seed gives the same draws.</param>
    /// <param name="missing">Optional (m, p) mask, true where missing.</param>
    /// <returns><paramref name="count"/> tables (m, p), observed cells copied bit for bit.</returns>
    /// <remarks>Categories are drawn given each row's observed cells, independently of the numeric draws of the same
    /// row.</remarks>
    /// <exception cref="NotSupportedException">The inner imputer is not an <see cref="EMFlowImputer"/>, the one
    /// imputer here that draws.</exception>
    public IReadOnlyList<double[,]> SampleImputations(double[,] data, int count, long seed = 0, bool[,]? missing = null)
    {
        // Disposed first: after Dispose every member says so, whatever imputer is inside.
        ThrowIfDisposed();
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be at least 1; got {count}.");
        if (Inner is not EMFlowImputer flow)
            throw new NotSupportedException($"Drawing imputations needs an EMFlowImputer inside; this MixedImputer holds a {Inner.GetType().Name}.");
        var (completed, isMissing, e) = InnerTransform(data, missing, CancellationToken.None);
        var encoded = e.Encode(data, isMissing, nameof(data));
        var numericDraws = flow.SampleImputations(encoded, count, seed);
        var rng = new Random((int)(Tensors.deriveSeed(seed, 13) & 0x7FFFFFFF));
        int m = data.GetLength(0);
        var result = new List<double[,]>(count);
        for (int d = 0; d < count; d++)
        {
            var draw = (double[,])data.Clone();
            for (int j = 0; j < e.Kinds.Length; j++)
                for (int i = 0; i < m; i++)
                {
                    if (!isMissing[i, j]) continue;
                    if (e.Kinds[j] == ColumnKind.Numeric) { draw[i, j] = numericDraws[d][i, e.Offsets[j]]; continue; }
                    var prob = e.Probabilities(completed, i, j);
                    double u = rng.NextDouble(), sum = 0;
                    int k = 0;
                    while (k < prob.Length - 1 && (sum += prob[k]) <= u) k++;
                    draw[i, j] = e.Categories[j][k];
                }
            result.Add(draw);
        }
        return result;
    }

    /// <summary>Fits on the numeric and categorical columns of a table (<see cref="Table.ImputedColumns"/>), keeping their
    /// names and each categorical column's categories, so that <see cref="Transform(Table, CancellationToken)"/> can
    /// read other tables of the same columns.</summary>
    /// <param name="table">The table; passed-through columns are ignored.</param>
    /// <param name="progress">Optional progress of the inner fit.</param>
    /// <param name="cancellationToken">Stops the inner fit.</param>
    /// <exception cref="ArgumentException">The table has no numeric or categorical column, or a column has no observed
    /// value; or as the inner imputer's Fit.</exception>
    public void Fit(Table table, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(table);
        if (table.ImputedColumns.Count == 0)
            throw new ArgumentException("The table has no numeric or categorical column to impute.", nameof(table));
        var labels = table.ImputedColumns.Zip(table.ColumnKinds)
            .Select(c => c.Second == ColumnKind.Categorical ? table.Categories(c.First).ToArray() : null).ToArray();
        FitCore(table.ToMixedMatrix(), table.ColumnKinds, null, table.ImputedColumns, labels, progress, cancellationToken);
    }

    /// <summary>Imputes a table with the model fitted on a table: its missing numeric and categorical cells filled,
    /// imputed categories written as their text, every other cell as it was.</summary>
    /// <param name="table">A table with the numeric and categorical columns of the fitted one, in the same order.</param>
    /// <param name="cancellationToken">Passed to the inner imputer's Transform.</param>
    /// <returns>A new table; <paramref name="table"/> is unchanged.</returns>
    /// <exception cref="InvalidOperationException">Before Fit, or fitted on an array rather than a table.</exception>
    /// <exception cref="ArgumentException">The columns or their kinds differ from the fitted ones, or a categorical cell
    /// holds a category not seen at Fit (the message names the column and the value).</exception>
    public Table Transform(Table table, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(table);
        var e = Fitted;
        if (e.Labels is null)
            throw new InvalidOperationException("This MixedImputer was fitted on an array; fit it on a table (Fit(Table)) to transform tables.");
        if (!table.ImputedColumns.SequenceEqual(e.Names!, StringComparer.Ordinal) || !table.ColumnKinds.SequenceEqual(e.Kinds))
            throw new ArgumentException($"The table's numeric and categorical columns ({Described(table.ImputedColumns, table.ColumnKinds)}) are not the fitted ones ({Described(e.Names!, e.Kinds)}).", nameof(table));
        var categories = e.Labels.Where(l => l is not null).Select(l => (IReadOnlyList<string>)l!).ToArray();
        var completed = Transform(table.ToMixedMatrix(categories, nameof(table)), cancellationToken: cancellationToken);
        return table.WithImputedMixed(completed, categories);
    }

    /// <summary>Fits on a table and returns it completed; see <see cref="Fit(Table, IProgress{TrainingProgress}, CancellationToken)"/>
    /// and <see cref="Transform(Table, CancellationToken)"/>.</summary>
    public Table FitTransform(Table table, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        Fit(table, progress, cancellationToken);
        return Transform(table, cancellationToken);
    }

    /// <summary>Multiple imputation of a table (<see cref="SampleImputations(double[,], int, long, bool[,])"/>): <paramref name="count"/>
    /// completed copies.</summary>
    /// <exception cref="NotSupportedException">The inner imputer is not an <see cref="EMFlowImputer"/>.</exception>
    public IReadOnlyList<Table> SampleImputations(Table table, int count, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(table);
        var e = Fitted;
        if (e.Labels is null)
            throw new InvalidOperationException("This MixedImputer was fitted on an array; fit it on a table (Fit(Table)) to draw tables.");
        var categories = e.Labels.Where(l => l is not null).Select(l => (IReadOnlyList<string>)l!).ToArray();
        return SampleImputations(table.ToMixedMatrix(categories, nameof(table)), count, seed)
            .Select(d => table.WithImputedMixed(d, categories)).ToArray();
    }

    private static string Described(IEnumerable<string> names, IEnumerable<ColumnKind> kinds) =>
        string.Join(", ", names.Zip(kinds).Select(c => $"'{c.First}' {c.Second.ToString().ToLowerInvariant()}"));

    /// <summary>Checks rows against the fitted encoding and runs the inner imputer on them: its completed encoded
    /// table (m, width), the rows' missing cells (m, p) and the encoding.</summary>
    private (double[,] Completed, bool[,] Missing, Encoding Encoding) InnerTransform(double[,] data, bool[,]? missing, CancellationToken cancellationToken)
    {
        var e = Fitted;
        ArgumentNullException.ThrowIfNull(data);
        if (data.GetLength(1) != e.Kinds.Length)
            throw new ArgumentException($"Expected {e.Kinds.Length} columns, as at Fit; got {data.GetLength(1)}.", nameof(data));
        var isMissing = MissingCells(data, missing, e.Names);
        var encoded = e.Encode(data, isMissing, nameof(data));
        return (Inner.Transform(encoded, cancellationToken: cancellationToken), isMissing, e);
    }

    /// <summary>The missing cells (n, p): the mask, or NaN. Throws naming the cell for a non-finite observed value.</summary>
    private static bool[,] MissingCells(double[,] data, bool[,]? missing, string[]? names)
    {
        int n = data.GetLength(0), p = data.GetLength(1);
        if (missing is not null && (missing.GetLength(0) != n || missing.GetLength(1) != p))
            throw new ArgumentException($"The mask must have the data's shape ({n}, {p}); got ({missing.GetLength(0)}, {missing.GetLength(1)}).", nameof(missing));
        var result = new bool[n, p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
            {
                result[i, j] = missing?[i, j] ?? double.IsNaN(data[i, j]);
                if (!result[i, j] && !double.IsFinite(data[i, j]))
                    throw new ArgumentException($"{ColumnName(names, j)}, row {i}: the observed value {data[i, j]} is not finite.", nameof(data));
            }
        return result;
    }

    private static string ColumnName(string[]? names, int j) =>
        names is null ? $"Column {j}" : $"Column '{names[j]}'";

    private static IEnumerable<int> CategoricalIndices(Encoding e) =>
        Enumerable.Range(0, e.Kinds.Length).Where(j => e.Kinds[j] == ColumnKind.Categorical);

    private Encoding Fitted
    {
        get
        {
            ThrowIfDisposed();
            return _encoding ?? throw new InvalidOperationException("MixedImputer is not fitted yet; call Fit first.");
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Disposes the inner imputer.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Inner.Dispose();
    }

    /// <summary>The fitted one-hot layout: per column its kind, categories (increasing) and their counts at Fit, and
    /// where its columns start in the encoded table.</summary>
    private sealed class Encoding
    {
        public Encoding(ColumnKind[] kinds, double[][] categories, int[][] counts, string[]? names, string[]?[]? labels)
        {
            Kinds = kinds;
            Categories = categories;
            Counts = counts;
            Names = names;
            Labels = labels;
            Offsets = new int[kinds.Length];
            Codes = new Dictionary<double, int>[kinds.Length];
            int width = 0;
            for (int j = 0; j < kinds.Length; j++)
            {
                Offsets[j] = width;
                width += kinds[j] == ColumnKind.Categorical ? categories[j].Length : 1;
                Codes[j] = categories[j].Select((c, k) => (c, k)).ToDictionary(e => e.c, e => e.k);
            }
            Width = width;
        }

        public ColumnKind[] Kinds { get; }
        public double[][] Categories { get; }
        public int[][] Counts { get; }
        public string[]? Names { get; }
        /// <summary>Per column, the table's category texts (null for numeric columns); null when fitted on an array.</summary>
        public string[]?[]? Labels { get; }
        public int[] Offsets { get; }
        public Dictionary<double, int>[] Codes { get; }
        public int Width { get; }

        public int Code(int j, double value) => Codes[j][value];

        /// <summary>Per encoded column (width), its group: each numeric column alone, a categorical column's
        /// indicators together (<see cref="Imputer.ColumnGroups"/>).</summary>
        public int[] Groups()
        {
            var groups = new int[Width];
            for (int j = 0; j < Kinds.Length; j++)
                for (int k = 0; k < (Kinds[j] == ColumnKind.Categorical ? Categories[j].Length : 1); k++)
                    groups[Offsets[j] + k] = j;
            return groups;
        }

        /// <summary>The encoded table (n, width): numeric cells as they are, each categorical cell as its indicators,
        /// NaN across the block where it is missing.</summary>
        public double[,] Encode(double[,] data, bool[,] missing, string paramName)
        {
            int n = data.GetLength(0);
            var encoded = new double[n, Width];
            for (int j = 0; j < Kinds.Length; j++)
            {
                int o = Offsets[j];
                for (int i = 0; i < n; i++)
                {
                    if (Kinds[j] == ColumnKind.Numeric)
                    {
                        encoded[i, o] = missing[i, j] ? double.NaN : data[i, j];
                        continue;
                    }
                    if (missing[i, j])
                    {
                        for (int k = 0; k < Categories[j].Length; k++) encoded[i, o + k] = double.NaN;
                        continue;
                    }
                    if (!Codes[j].TryGetValue(data[i, j], out var code))
                    {
                        var seen = Labels?[j] is { } l ? string.Join(", ", l.Select(t => $"'{t}'")) : string.Join(", ", Categories[j].Select(c => c.ToString("R", CultureInfo.InvariantCulture)));
                        throw new ArgumentException($"{ColumnName(Names, j)}, row {i}: {data[i, j].ToString("R", CultureInfo.InvariantCulture)} is a category not seen at Fit; the fitted categories are {seen}.", paramName);
                    }
                    encoded[i, o + code] = 1;
                }
            }
            return encoded;
        }

        /// <summary>Row i's category probabilities in column j from the imputed indicators (see the class remarks).</summary>
        public double[] Probabilities(double[,] completed, int i, int j)
        {
            int K = Categories[j].Length, o = Offsets[j];
            var prob = new double[K];
            double sum = 0;
            for (int k = 0; k < K; k++)
            {
                double v = completed[i, o + k];
                prob[k] = v > 0 ? v : 0;   // NaN too
                sum += prob[k];
            }
            if (!(sum > 0) || !double.IsFinite(sum))
            {
                sum = 0;
                for (int k = 0; k < K; k++) sum += prob[k] = Counts[j][k];
            }
            for (int k = 0; k < K; k++) prob[k] /= sum;
            return prob;
        }

        /// <summary>The most probable category's index; ties to the more frequent at Fit, then to the first.</summary>
        public int MostProbable(int j, double[] prob)
        {
            int best = 0;
            for (int k = 1; k < prob.Length; k++)
                if (prob[k] > prob[best] || (prob[k] == prob[best] && Counts[j][k] > Counts[j][best])) best = k;
            return best;
        }
    }
}
