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
/// imputes the mode; the forest (EMFlow.Forest) classifies the column on the columns outside its indicators. The inner
/// imputer learns which encoded columns form one categorical column (<see cref="Imputer.ColumnGroups"/>): EMFlow holds
/// out and blends them together.</para>
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
    /// <param name="spread">Factor on the inner EMFlow's latent conditional standard deviations
    /// (<see cref="EMFlowImputer.SampleImputations"/>); <see cref="ChooseSpread"/> calibrates it.</param>
    /// <remarks>Categories are drawn given each row's observed cells, independently of the numeric draws of the same
    /// row.</remarks>
    /// <exception cref="NotSupportedException">The inner imputer is not an <see cref="EMFlowImputer"/>, the one
    /// imputer here that draws.</exception>
    public IReadOnlyList<double[,]> SampleImputations(double[,] data, int count, long seed = 0, bool[,]? missing = null, double spread = 1)
    {
        // Disposed first: after Dispose every member says so, whatever imputer is inside.
        ThrowIfDisposed();
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be at least 1; got {count}.");
        if (Inner is not EMFlowImputer flow)
            throw new NotSupportedException($"Drawing imputations needs an EMFlowImputer inside; this MixedImputer holds a {Inner.GetType().Name}.");
        var (completed, isMissing, e) = InnerTransform(data, missing, CancellationToken.None);
        var encoded = e.Encode(data, isMissing, nameof(data));
        var numericDraws = flow.SampleImputations(encoded, count, seed, spread: spread);
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
        var (matrix, order, categories) = Matched(table);
        var completed = Transform(Reordered(matrix, order), cancellationToken: cancellationToken);
        return table.WithImputedMixed(Restored(completed, order), categories);
    }

    /// <summary>The table's numeric and categorical cells (n, p) in its own column order, each categorical cell coded by
    /// its index in the fitted categories; for each fitted column its index in the table; and the fitted category texts
    /// of the table's categorical columns, in the table's order. Columns are matched by name, so a table whose columns
    /// come in another order is imputed as the fitted one; a missing or extra column, or one of another kind, throws.</summary>
    private (double[,] Matrix, int[] Order, IReadOnlyList<string>[] Categories) Matched(Table table)
    {
        ArgumentNullException.ThrowIfNull(table);
        var e = Fitted;
        if (e.Labels is null)
            throw new InvalidOperationException("This MixedImputer was fitted on an array; fit it on a table (Fit(Table)) to transform tables.");
        var names = e.Names!;
        var given = table.ImputedColumns;
        var missingNames = names.Where(n => !given.Contains(n, StringComparer.Ordinal)).ToArray();
        var extra = given.Where(n => !names.Contains(n, StringComparer.Ordinal)).ToArray();
        if (missingNames.Length > 0 || extra.Length > 0)
            throw new ArgumentException($"The table's numeric and categorical columns ({Described(given, table.ColumnKinds)}) are not the fitted ones ({Described(names, e.Kinds)})"
                + (missingNames.Length > 0 ? $"; missing: {string.Join(", ", missingNames.Select(n => $"'{n}'"))}" : "")
                + (extra.Length > 0 ? $"; not fitted: {string.Join(", ", extra.Select(n => $"'{n}'"))}" : "") + ".", nameof(table));
        var order = names.Select(n => given.ToList().IndexOf(n)).ToArray();
        for (int j = 0; j < names.Length; j++)
            if (table.ColumnKinds[order[j]] != e.Kinds[j])
                throw new ArgumentException($"Column '{names[j]}' is {table.ColumnKinds[order[j]].ToString().ToLowerInvariant()} in the table and was {e.Kinds[j].ToString().ToLowerInvariant()} at Fit.", nameof(table));
        var categories = Enumerable.Range(0, given.Count).Where(k => table.ColumnKinds[k] == ColumnKind.Categorical)
            .Select(k => (IReadOnlyList<string>)e.Labels[Array.IndexOf(names, given[k])]!).ToArray();
        return (table.ToMixedMatrix(categories, nameof(table)), order, categories);
    }

    /// <summary>Columns of <paramref name="matrix"/> (n, p) in the fitted order: column j is the table's column order[j].</summary>
    private static double[,] Reordered(double[,] matrix, int[] order)
    {
        int n = matrix.GetLength(0), p = order.Length;
        var result = new double[n, p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++) result[i, j] = matrix[i, order[j]];
        return result;
    }

    /// <summary>The inverse of <see cref="Reordered"/>: back to the table's column order.</summary>
    private static double[,] Restored(double[,] matrix, int[] order)
    {
        int n = matrix.GetLength(0), p = order.Length;
        var result = new double[n, p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++) result[i, order[j]] = matrix[i, j];
        return result;
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
    public IReadOnlyList<Table> SampleImputations(Table table, int count, long seed = 0, double spread = 1)
    {
        var (matrix, order, categories) = Matched(table);
        return SampleImputations(Reordered(matrix, order), count, seed, spread: spread)
            .Select(d => table.WithImputedMixed(Restored(d, order), categories)).ToArray();
    }

    /// <summary>The inner EMFlow's <see cref="EMFlowImputer.ChooseSpread"/> on the table it was fitted on, encoded as
    /// at Fit (its hold-out hides a categorical cell's indicators together, as the fit's did).</summary>
    /// <param name="table">The table given to <see cref="Fit(Table, IProgress{TrainingProgress}, CancellationToken)"/>.</param>
    /// <param name="draws">Draws per interval, at least 2.</param>
    /// <param name="cancellationToken">Stops the search.</param>
    /// <returns>The spread factor and the coverage it reaches on the held-out numeric and indicator entries.</returns>
    /// <exception cref="NotSupportedException">The inner imputer is not an <see cref="EMFlowImputer"/>.</exception>
    /// <exception cref="ArgumentException">Not the fitted table.</exception>
    public (double Spread, double HeldOutCoverage) ChooseSpread(Table table, int draws = 20, CancellationToken cancellationToken = default)
    {
        if (Inner is not EMFlowImputer flow)
            throw new NotSupportedException($"Choosing a spread needs an EMFlowImputer inside; this MixedImputer holds a {Inner.GetType().Name}.");
        var (matrix, order, _) = Matched(table);
        var data = Reordered(matrix, order);
        var e = Fitted;
        return flow.ChooseSpread(e.Encode(data, MissingCells(data, null, e.Names), nameof(table)), draws, cancellationToken: cancellationToken);
    }

    private const string Magic = "EMFLOW-MIXED";
    private const int Version = 1;

    /// <summary>Writes the fitted encoding (column kinds, names, each categorical column's categories, their counts
    /// and texts) and the inner imputer's own model file to one file with a SHA-256 checksum of its content.</summary>
    /// <param name="path">File to write (replaced if present); written to a temporary file first.</param>
    /// <remarks>The inner imputer must save: <see cref="EMFlowImputer"/> or EMFlow.Forest's ForestImputer.</remarks>
    /// <exception cref="InvalidOperationException">Before Fit.</exception>
    /// <exception cref="NotSupportedException">The inner imputer keeps no model file (mean, median, kNN, Gaussian EM).</exception>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var e = Fitted;
        if (Directory.Exists(path)) throw new ArgumentException($"'{path}' is a folder; give a file name for the model.", nameof(path));
        var save = Inner.GetType().GetMethod("Save", new[] { typeof(string), typeof(IReadOnlyList<string>) });
        if (Inner is not EMFlowImputer && (save is null || Inner.GetType().GetMethod("Load", new[] { typeof(string) }) is null))
            throw new NotSupportedException($"A {Inner.GetType().Name} keeps no model file; the imputers that do are EMFlowImputer and ForestImputer.");
        var innerFile = Path.GetTempFileName();
        try
        {
            save!.Invoke(Inner, new object?[] { innerFile, null });
            var innerBytes = File.ReadAllBytes(innerFile);
            ChecksummedFile.Write(path, Magic, Version, w =>
            {
                w.Write(e.Kinds.Length);
                for (int j = 0; j < e.Kinds.Length; j++)
                {
                    w.Write((int)e.Kinds[j]);
                    ChecksummedFile.WriteArray(w, e.Categories[j]);
                    ChecksummedFile.WriteArray(w, e.Counts[j].Select(c => (double)c).ToArray());
                    WriteTexts(w, e.Names is null ? null : new[] { e.Names[j] });
                    WriteTexts(w, e.Labels?[j]);
                }
                w.Write(e.Labels is null ? 0 : 1);
                w.Write(Inner.GetType().AssemblyQualifiedName is { } t ? $"{Inner.GetType().FullName}, {Inner.GetType().Assembly.GetName().Name}" : "");
                w.Write(innerBytes.Length);
                w.Write(innerBytes);
            });
        }
        catch (System.Reflection.TargetInvocationException ex) when (ex.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(ex.InnerException);
        }
        finally
        {
            File.Delete(innerFile);
        }
    }

    /// <summary>Reads a model written by <see cref="Save"/>: it transforms arrays and tables exactly as the saved one
    /// did (tables matched by column name).</summary>
    /// <exception cref="InvalidDataException">Not a mixed-table model file, or a damaged one; the message names the file.</exception>
    /// <exception cref="TypeLoadException">The inner imputer's assembly (EMFlow.Forest for a forest) is not loaded.</exception>
    public static MixedImputer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] content;
        using (var file = File.OpenRead(path))
        using (var header = new BinaryReader(file, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            if (ChecksummedFile.ReadMagic(header) != Magic) throw new InvalidDataException($"'{path}' is not an EMFlow mixed-table model file.");
            int version;
            try { version = header.ReadInt32(); }
            catch (EndOfStreamException) { throw Damaged(path, "it ends inside its header"); }
            if (version != Version) throw new InvalidDataException($"'{path}' has mixed-table model format {version}; this library reads format {Version}.");
            content = ChecksummedFile.ReadPayload(file, header, why => Damaged(path, why));
        }
        Encoding encoding;
        string typeName;
        byte[] innerBytes;
        try
        {
            using var r = new BinaryReader(new MemoryStream(content, writable: false), System.Text.Encoding.UTF8);
            int p = r.ReadInt32();
            if (p < 1 || p > content.Length) throw new InvalidDataException($"it stores {p} columns");
            var kinds = new ColumnKind[p];
            var categories = new double[p][];
            var counts = new int[p][];
            var names = new string?[p];
            var labels = new string[]?[p];
            for (int j = 0; j < p; j++)
            {
                kinds[j] = (ColumnKind)r.ReadInt32();
                if (!Enum.IsDefined(kinds[j])) throw new InvalidDataException($"column {j} has kind {(int)kinds[j]}");
                categories[j] = ChecksummedFile.ReadArray(r);
                counts[j] = ChecksummedFile.ReadArray(r).Select(c => (int)c).ToArray();
                if (counts[j].Length != categories[j].Length) throw new InvalidDataException($"column {j} stores {categories[j].Length} categories and {counts[j].Length} counts");
                names[j] = ReadTexts(r)?.Single();
                labels[j] = ReadTexts(r);
            }
            bool hasLabels = r.ReadInt32() == 1;
            typeName = r.ReadString();
            int length = r.ReadInt32();
            if (length < 0 || length > r.BaseStream.Length - r.BaseStream.Position) throw new InvalidDataException($"an inner model length of {length} does not fit in the rest of the file");
            innerBytes = r.ReadBytes(length);
            if (r.BaseStream.Position != r.BaseStream.Length) throw new InvalidDataException("unread bytes follow the content");
            encoding = new Encoding(kinds, categories, counts, names.All(n => n is not null) ? names.ToArray()! : null, hasLabels ? labels : null);
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException or InvalidDataException or InvalidOperationException)
        {
            throw Damaged(path, ex.Message.TrimEnd('.'), ex);
        }
        var innerFile = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(innerFile, innerBytes);
            Imputer inner;
            if (typeName == typeof(EMFlowImputer).FullName + ", " + typeof(EMFlowImputer).Assembly.GetName().Name)
            {
                var flow = EMFlowImputer.Load(innerFile);
                if (flow.FeatureCount == encoding.Width) flow.RestoreColumnGroups(encoding.Groups());
                inner = flow;
            }
            else
            {
                var assembly = typeName[(typeName.LastIndexOf(',') + 1)..].Trim();
                var fullName = typeName[..Math.Max(0, typeName.LastIndexOf(','))];
                // Hosts such as notebooks load packages into the process without putting them on the probing path.
                var type = Type.GetType(typeName, throwOnError: false)
                    ?? AppDomain.CurrentDomain.GetAssemblies().Where(a => a.GetName().Name == assembly).Select(a => a.GetType(fullName)).FirstOrDefault(t => t is not null)
                    ?? throw new TypeLoadException($"'{path}' was fitted with {typeName}; load the assembly {assembly} (for example, reference its package) before loading the model.");
                var load = type.GetMethod("Load", new[] { typeof(string) });
                if (load is null || !typeof(Imputer).IsAssignableFrom(type)) throw Damaged(path, $"{typeName} is not an imputer that loads");
                try { inner = (Imputer)load.Invoke(null, new object[] { innerFile })!; }
                catch (System.Reflection.TargetInvocationException ex) when (ex.InnerException is InvalidDataException bad) { throw Damaged(path, bad.Message.TrimEnd('.'), bad); }
            }
            if (inner.FeatureCount != encoding.Width)
            {
                inner.Dispose();
                throw Damaged(path, $"its inner model has {inner.FeatureCount} columns for an encoding of {encoding.Width}");
            }
            return new MixedImputer(inner) { _encoding = encoding };
        }
        catch (InvalidDataException ex) when (!ex.Message.Contains(path, StringComparison.Ordinal))
        {
            throw Damaged(path, ex.Message.TrimEnd('.'), ex);
        }
        finally
        {
            File.Delete(innerFile);
        }
    }

    private static InvalidDataException Damaged(string path, string why, Exception? inner = null) =>
        new($"'{path}' is a damaged EMFlow mixed-table model file: {why}.", inner);

    /// <summary>True when <paramref name="path"/> starts as a file written by <see cref="Save"/> does (its content is
    /// checked by <see cref="Load"/>); false for any other file, an EMFlow or forest model included.</summary>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static bool IsModelFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.OpenRead(path);
        using var header = new BinaryReader(file, System.Text.Encoding.UTF8);
        return ChecksummedFile.ReadMagic(header) == Magic;
    }

    private static void WriteTexts(BinaryWriter w, IReadOnlyList<string>? texts)
    {
        w.Write(texts?.Count ?? -1);
        foreach (var t in texts ?? Array.Empty<string>()) w.Write(t);
    }

    private static string[]? ReadTexts(BinaryReader r)
    {
        int count = r.ReadInt32();
        if (count < -1 || count > r.BaseStream.Length - r.BaseStream.Position) throw new InvalidDataException($"a text count of {count} does not fit in the rest of the file");
        if (count < 0) return null;
        var texts = new string[count];
        for (int k = 0; k < count; k++) texts[k] = r.ReadString();
        return texts;
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
