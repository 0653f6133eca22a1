using static TorchSharp.torch;

namespace EMFlow.Evaluation;

/// <summary>Settings of one <see cref="Protocol.Run"/>.</summary>
public sealed record ProtocolOptions
{
    /// <summary>Number of folds. Default 5, as in the paper.</summary>
    public int Folds { get; init; } = 5;
    /// <summary>Seed of the row shuffle that assigns folds and of the simulated mask.</summary>
    public long Seed { get; init; }
    /// <summary>How entries are hidden. Default MCAR 0.2. Ignored when <see cref="Mask"/> is given.</summary>
    public Mechanism Mechanism { get; init; } = Mechanism.Mcar(0.2);
    /// <summary>Optional explicit mask (n, p) over the table as given (before any column or row is dropped), true =
    /// hide this entry; replaces the simulated mask so results can be compared with other tools.</summary>
    public bool[,]? Mask { get; init; }
    /// <summary>Optional fold id per row of the table as given (n), values 0 … Folds − 1; replaces the shuffle.</summary>
    public int[]? FoldIds { get; init; }
    /// <summary>Columns whose share of unknown cells exceeds this are dropped before anything else. Default 0.5.</summary>
    public double MaxColumnMissingFraction { get; init; } = 0.5;
    /// <summary>Run only these folds (0-based); null runs all. A quick check can run one fold of five.</summary>
    public IReadOnlyList<int>? OnlyFolds { get; init; }
    /// <summary>Optional sink for one line per finished fold.</summary>
    public IProgress<string>? Log { get; init; }
    /// <summary>Optional kind of each column of the table as given (p); null means every column is numeric. A
    /// categorical column holds its category's code in each cell (any finite number, e.g. <see cref="Table.ToMixedMatrix()"/>'s
    /// indices); it is not scaled, its hidden cells are scored by accuracy rather than by the RMSE, and every method
    /// must take categorical columns (<see cref="IMixedImputationMethod"/>).</summary>
    public IReadOnlyList<ColumnKind>? ColumnKinds { get; init; }
}

/// <summary>A table after the protocol's clean-up, min-max scaling and masking.</summary>
/// <param name="Values">(n, p) complete data, numeric columns scaled to [0, 1], categorical columns holding their
/// category codes as given; NaN where the truth is unknown.</param>
/// <param name="Hidden">(n, p) true where an entry with known truth is hidden from the methods and scored.</param>
/// <param name="KeptColumns">Indices (into the table as given) of the columns kept.</param>
/// <param name="DroppedColumns">Indices of the columns dropped for having too many unknown cells.</param>
/// <param name="KeptRows">Indices of the rows kept.</param>
/// <param name="DroppedRows">Number of rows dropped for having no known cell (after the column drop).</param>
/// <param name="Kinds">(p) the kind of each kept column; null when every column is numeric.</param>
public sealed record PreparedTable(double[,] Values, bool[,] Hidden, int[] KeptColumns, int[] DroppedColumns, int[] KeptRows, int DroppedRows,
    IReadOnlyList<ColumnKind>? Kinds = null)
{
    /// <summary>True when a kept column is categorical: its hidden cells are scored by accuracy.</summary>
    public bool HasCategorical => Kinds is { } k && k.Contains(ColumnKind.Categorical);

    /// <summary>The kind of each kept column (p), every one numeric when <see cref="Kinds"/> is null.</summary>
    public IReadOnlyList<ColumnKind> ColumnKinds => Kinds ?? Enumerable.Repeat(ColumnKind.Numeric, Values.GetLength(1)).ToArray();

    /// <summary>Hidden entries / entries with known truth.</summary>
    public double HiddenRate => Count(0, Values.GetLength(1)).Rate;

    /// <summary>The hidden rate over the last p − floor(0.7 p) features, the ones MAR can hide.</summary>
    public double TrailingHiddenRate => Count(Missingness.marObservedFeatures(Values.GetLength(1)), Values.GetLength(1)).Rate;

    /// <summary>Share of the kept table's cells whose truth is unknown (real missing values, as in Air Quality).</summary>
    public double UnknownRate
    {
        get
        {
            int n = Values.GetLength(0), p = Values.GetLength(1), unknown = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < p; j++) if (double.IsNaN(Values[i, j])) unknown++;
            return n * p == 0 ? 0 : unknown / (double)(n * p);
        }
    }

    private (double Rate, int Hidden) Count(int from, int to)
    {
        int hidden = 0, known = 0;
        for (int i = 0; i < Values.GetLength(0); i++)
            for (int j = from; j < to; j++)
                if (!double.IsNaN(Values[i, j])) { known++; if (Hidden[i, j]) hidden++; }
        return (known == 0 ? 0 : hidden / (double)known, hidden);
    }

    /// <summary>What a method may see: the scaled values with NaN at hidden and unknown entries, (n, p).</summary>
    public double[,] Input()
    {
        var x = (double[,])Values.Clone();
        for (int i = 0; i < x.GetLength(0); i++)
            for (int j = 0; j < x.GetLength(1); j++)
                if (Hidden[i, j]) x[i, j] = double.NaN;
        return x;
    }
}

/// <summary>One fold of one method.</summary>
/// <param name="Fold">Fold id, from 0.</param>
/// <param name="Rmse">RMSE over the fold's hidden numeric entries, on [0, 1]; NaN when the fold hides none.</param>
/// <param name="FitSeconds">Seconds of Fit on the other folds' rows.</param>
/// <param name="TransformSeconds">Seconds of Transform on the fold's rows.</param>
/// <param name="Scored">Number of hidden entries scored by the RMSE (the numeric ones).</param>
/// <param name="TrainRows">Rows the method was fitted on.</param>
/// <param name="TestRows">Rows imputed and scored.</param>
/// <param name="Accuracy">Share of the fold's hidden categorical entries imputed as their true category; NaN when the
/// fold hides none (always, in a numeric table).</param>
/// <param name="CategoricalScored">Number of hidden categorical entries scored.</param>
public sealed record FoldResult(int Fold, double Rmse, double FitSeconds, double TransformSeconds, int Scored, int TrainRows, int TestRows,
    double Accuracy = double.NaN, int CategoricalScored = 0)
{
    /// <summary>(p) the accuracy of each categorical column over the fold's hidden cells, indexed like the prepared
    /// table's columns; NaN for a numeric column and for one with no hidden cell. Null in a numeric table.</summary>
    public IReadOnlyList<double>? ColumnAccuracy { get; init; }
}

/// <summary>One method over the folds.</summary>
/// <param name="Method">The method's name.</param>
/// <param name="Folds">Per-fold results.</param>
/// <param name="PeakWorkingSetBytes">Largest working set of the process seen while the method ran (sampled every 20 ms,
/// so it includes the data and everything else the process holds).</param>
public sealed record MethodResult(string Method, IReadOnlyList<FoldResult> Folds, long PeakWorkingSetBytes)
{
    /// <summary>Mean RMSE over the folds that scored something.</summary>
    public double MeanRmse => Scored.DefaultIfEmpty(double.NaN).Average();

    /// <summary>Standard deviation of the fold RMSEs (population form, dividing by the number of folds, as numpy's default).</summary>
    public double StdRmse => PopulationStd(Scored);

    /// <summary>Mean seconds per fold, fit plus impute.</summary>
    public double SecondsPerFold => Folds.Count == 0 ? double.NaN : Folds.Average(f => f.FitSeconds + f.TransformSeconds);

    /// <summary>Mean accuracy over the folds that scored a categorical cell; NaN when none did.</summary>
    public double MeanAccuracy => Accuracies.DefaultIfEmpty(double.NaN).Average();

    /// <summary>Standard deviation of the fold accuracies (population form, as <see cref="StdRmse"/>).</summary>
    public double StdAccuracy => PopulationStd(Accuracies);

    /// <summary>Population standard deviation (dividing by the count); NaN for no values.</summary>
    private static double PopulationStd(IEnumerable<double> values)
    {
        var v = values.ToArray();
        if (v.Length == 0) return double.NaN;
        double m = v.Average();
        return Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / v.Length);
    }

    private IEnumerable<double> Scored => Folds.Where(f => !double.IsNaN(f.Rmse)).Select(f => f.Rmse);

    private IEnumerable<double> Accuracies => Folds.Where(f => !double.IsNaN(f.Accuracy)).Select(f => f.Accuracy);
}

/// <summary>The outcome of <see cref="Protocol.Run"/> on one table and mechanism.</summary>
/// <param name="Mechanism">Label of the mechanism, or "mask-file" for an explicit mask.</param>
/// <param name="Table">The prepared table (kept rows and columns, hidden entries, realised rates).</param>
/// <param name="Folds">Fold id of each kept row.</param>
/// <param name="Methods">One result per method, in the order given.</param>
public sealed record EvaluationResult(string Mechanism, PreparedTable Table, int[] Folds, IReadOnlyList<MethodResult> Methods);

/// <summary>One fold's rows: ids into the prepared table and the inputs (hidden cells NaN).</summary>
/// <param name="TrainRowIds">Rows that train.</param>
/// <param name="TestRowIds">Rows of the test fold.</param>
/// <param name="TrainRows">(train rows, p) inputs.</param>
/// <param name="TestRows">(test rows, p) inputs; their hidden cells are scored.</param>
public sealed record FoldSplit(int[] TrainRowIds, int[] TestRowIds, double[,] TrainRows, double[,] TestRows);

/// <summary>
/// The paper's evaluation protocol for tables (section 4): min-max scaling to [0, 1] on the complete data, a simulated
/// mask (MCAR, MAR per appendix E, or self-masking MNAR) or an explicit one, k-fold cross-validation with rows shuffled
/// by a seed, each method fitted on the other folds' rows and asked only to impute the test fold, RMSE over the test
/// fold's hidden entries, mean ± std over folds, time per fold and peak memory.
/// </summary>
/// <remarks>
/// <para>Tables with real missing cells (NaN in the input, e.g. Air Quality): columns with more than
/// <see cref="ProtocolOptions.MaxColumnMissingFraction"/> unknown are dropped (nothing reliable can be scored or
/// learned there), then rows with no known cell; the remaining unknown cells stay missing for every method and are
/// never scored. The simulated mask hides known cells only. For MAR and MNAR, which need a complete table to
/// compute probabilities or thresholds, unknown cells count as their column's mean of known values (zero after
/// standardisation, so they do not push a MAR probability either way).</para>
/// <para>The test fold's hidden truth is only read when scoring: methods see the test rows with NaN there.</para>
/// <para>Tables with categorical columns (<see cref="ProtocolOptions.ColumnKinds"/>): the mechanism hides their cells
/// like any other (for MAR and MNAR a categorical cell counts as its code); numeric columns are scaled and scored by
/// the RMSE over their hidden cells, categorical ones keep their codes and are scored by the accuracy, the share of
/// their hidden cells imputed as the true category. A test row's observed category that no training row of the fold
/// shows reaches the method as missing (a model cannot read a category it never saw) and is not scored; a hidden cell
/// whose true category no training row shows is scored, and is necessarily wrong.</para>
/// </remarks>
/// <example>
/// <code>
/// var result = Protocol.Run(table, new[] { Method.Standard("mean"), Method.Standard("knn") },
///                           new ProtocolOptions { Seed = 0, Mechanism = Mechanism.Mcar(0.2) });
/// foreach (var m in result.Methods) Console.WriteLine($"{m.Method}: {m.MeanRmse:F3} ± {m.StdRmse:F3}");
/// </code>
/// </example>
public static class Protocol
{
    /// <summary>Drops columns with too many unknown cells and rows with none known, then min-max scales each kept column
    /// to [0, 1] over its known values (a constant column becomes 0).</summary>
    /// <param name="data">(n, p) table, NaN = unknown truth.</param>
    /// <param name="maxColumnMissingFraction">Columns with a larger share of NaN are dropped.</param>
    /// <returns>The scaled (n', p') values, kept column indices, dropped column indices, kept row indices.</returns>
    /// <exception cref="ArgumentException">The table is empty, holds ±∞, or nothing is left after dropping.</exception>
    public static (double[,] Scaled, int[] KeptColumns, int[] DroppedColumns, int[] KeptRows) Clean(double[,] data, double maxColumnMissingFraction = 0.5) =>
        CleanCore(data, null, maxColumnMissingFraction);

    /// <summary>As <see cref="Clean(double[,], double)"/> on a table of numeric and categorical columns: categorical
    /// columns are dropped by the same rule but not scaled, so their cells keep their category codes.</summary>
    /// <param name="data">(n, p) table, NaN = unknown truth.</param>
    /// <param name="kinds">(p) the kind of each column.</param>
    /// <param name="maxColumnMissingFraction">Columns with a larger share of NaN are dropped.</param>
    /// <returns>The (n', p') values, kept column indices, dropped column indices, kept row indices.</returns>
    /// <exception cref="ArgumentException">As <see cref="Clean(double[,], double)"/>, or not one kind per column.</exception>
    public static (double[,] Scaled, int[] KeptColumns, int[] DroppedColumns, int[] KeptRows) Clean(double[,] data, IReadOnlyList<ColumnKind> kinds, double maxColumnMissingFraction = 0.5)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(kinds);
        if (kinds.Count != data.GetLength(1))
            throw new ArgumentException($"Expected {data.GetLength(1)} column kinds, one per column of data; got {kinds.Count}.", nameof(kinds));
        return CleanCore(data, kinds, maxColumnMissingFraction);
    }

    private static (double[,] Scaled, int[] KeptColumns, int[] DroppedColumns, int[] KeptRows) CleanCore(double[,] data, IReadOnlyList<ColumnKind>? kinds, double maxColumnMissingFraction)
    {
        ArgumentNullException.ThrowIfNull(data);
        int n = data.GetLength(0), p = data.GetLength(1);
        if (n == 0 || p == 0) throw new ArgumentException($"Expected a table with at least one row and one column; got {n} x {p}.", nameof(data));
        if (!(maxColumnMissingFraction >= 0 && maxColumnMissingFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(maxColumnMissingFraction), maxColumnMissingFraction, $"maxColumnMissingFraction must be in [0, 1]; got {maxColumnMissingFraction}.");
        var kept = new List<int>();
        var dropped = new List<int>();
        for (int j = 0; j < p; j++)
        {
            int unknown = 0;
            for (int i = 0; i < n; i++)
            {
                if (double.IsInfinity(data[i, j])) throw new ArgumentException($"Entry ({i}, {j}) is infinite; the protocol needs finite values or NaN.", nameof(data));
                if (double.IsNaN(data[i, j])) unknown++;
            }
            (unknown > maxColumnMissingFraction * n || unknown == n ? dropped : kept).Add(j);
        }
        var rows = Enumerable.Range(0, n).Where(i => kept.Any(j => !double.IsNaN(data[i, j]))).ToArray();
        if (kept.Count == 0 || rows.Length == 0) throw new ArgumentException("No column or row is left after dropping mostly missing columns and rows.", nameof(data));
        var scaled = new double[rows.Length, kept.Count];
        for (int c = 0; c < kept.Count; c++)
        {
            int j = kept[c];
            if (kinds?[j] == ColumnKind.Categorical)
            {
                for (int r = 0; r < rows.Length; r++) scaled[r, c] = data[rows[r], j];
                continue;
            }
            double lo = double.PositiveInfinity, hi = double.NegativeInfinity;
            foreach (var i in rows) { var v = data[i, j]; if (!double.IsNaN(v)) { lo = Math.Min(lo, v); hi = Math.Max(hi, v); } }
            double range = hi > lo ? hi - lo : 1.0;
            for (int r = 0; r < rows.Length; r++)
            {
                var v = data[rows[r], j];
                scaled[r, c] = double.IsNaN(v) ? double.NaN : (v - lo) / range;
            }
        }
        return (scaled, kept.ToArray(), dropped.ToArray(), rows);
    }

    /// <summary>Draws the mask of a mechanism on a (possibly incomplete) scaled table; only known cells can be hidden.</summary>
    /// <param name="scaled">(n, p) values, NaN = unknown truth.</param>
    /// <param name="mechanism">The mechanism.</param>
    /// <param name="seed">Seed of the draw; same seed, same table, same mask.</param>
    /// <returns>(n, p) true = hidden.</returns>
    /// <exception cref="ArgumentException">MAR on fewer than two columns.</exception>
    public static bool[,] DrawMask(double[,] scaled, Mechanism mechanism, long seed)
    {
        ArgumentNullException.ThrowIfNull(scaled);
        ArgumentNullException.ThrowIfNull(mechanism);
        int n = scaled.GetLength(0), p = scaled.GetLength(1);
        using var scope = NewDisposeScope();
        Tensor mask;
        switch (mechanism.Kind)
        {
            case MechanismKind.Mcar:
                mask = Missingness.mcar(seed, mechanism.Rate, n, p);
                break;
            case MechanismKind.Mar:
                if (p < 2) throw new ArgumentException($"MAR needs at least 2 columns; got {p}.", nameof(scaled));
                mask = double.IsNaN(mechanism.Rate)
                    ? Missingness.mar(seed, Tensors.ofArray2D(FillUnknownWithColumnMean(scaled)))
                    : Missingness.marAtRate(seed, mechanism.Rate, Tensors.ofArray2D(FillUnknownWithColumnMean(scaled)));
                break;
            default:
                mask = Missingness.mnar(seed, mechanism.Quantile, mechanism.Probability, Tensors.ofArray2D(FillUnknownWithColumnMean(scaled)));
                break;
        }
        var m = Tensors.toArray2D(mask);
        var hidden = new bool[n, p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
                hidden[i, j] = m[i, j] > 0.5 && !double.IsNaN(scaled[i, j]);
        return hidden;
    }

    /// <summary>Assigns n rows to folds: a seeded shuffle, then fold = position mod folds, so fold sizes differ by at most one.</summary>
    /// <param name="n">Number of rows, at least <paramref name="folds"/>.</param>
    /// <param name="folds">Number of folds, at least 2.</param>
    /// <param name="seed">Seed of the shuffle.</param>
    /// <returns>(n) fold id per row, in 0 … folds − 1.</returns>
    /// <exception cref="ArgumentOutOfRangeException">folds below 2 or above n.</exception>
    public static int[] AssignFolds(int n, int folds, long seed)
    {
        if (folds < 2) throw new ArgumentOutOfRangeException(nameof(folds), folds, $"folds must be at least 2; got {folds}.");
        if (n < folds) throw new ArgumentOutOfRangeException(nameof(n), n, $"n must be at least the number of folds ({folds}); got {n}.");
        var order = Enumerable.Range(0, n).ToArray();
        // Seeded System.Random is deterministic across runs and platforms; the seed is folded to 32 bits.
        var rng = new Random(unchecked((int)(seed ^ (seed >> 32))));
        for (int i = n - 1; i > 0; i--)
        {
            int k = rng.Next(i + 1);
            (order[i], order[k]) = (order[k], order[i]);
        }
        var fold = new int[n];
        for (int pos = 0; pos < n; pos++) fold[order[pos]] = pos % folds;
        return fold;
    }

    /// <summary>Cleans, scales and masks a table as <see cref="Run"/> does, without running any method.</summary>
    /// <param name="data">(n, p) table as given; NaN = unknown truth.</param>
    /// <param name="options">Protocol settings (mask, mechanism, seed, column-drop threshold).</param>
    /// <exception cref="ArgumentException">Bad table, an explicit mask of another shape, or column kinds that are not
    /// one per column.</exception>
    public static PreparedTable Prepare(double[,] data, ProtocolOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(data);
        var kinds = options.ColumnKinds;
        if (kinds is not null && kinds.Count != data.GetLength(1))
            throw new ArgumentException($"ColumnKinds must give one kind per column of the table ({data.GetLength(1)}); got {kinds.Count}.", nameof(options));
        var (scaled, cols, dropped, rows) = kinds is null ? Clean(data, options.MaxColumnMissingFraction) : Clean(data, kinds, options.MaxColumnMissingFraction);
        bool[,] hidden;
        if (options.Mask is { } given)
        {
            if (given.GetLength(0) != data.GetLength(0) || given.GetLength(1) != data.GetLength(1))
                throw new ArgumentException($"The mask must have the table's shape {data.GetLength(0)} x {data.GetLength(1)}; got {given.GetLength(0)} x {given.GetLength(1)}.", nameof(options));
            hidden = new bool[rows.Length, cols.Length];
            for (int r = 0; r < rows.Length; r++)
                for (int c = 0; c < cols.Length; c++)
                    hidden[r, c] = given[rows[r], cols[c]] && !double.IsNaN(scaled[r, c]);
        }
        else hidden = DrawMask(scaled, options.Mechanism, Tensors.deriveSeed(options.Seed, 0));
        var keptKinds = kinds is null ? null : cols.Select(j => kinds[j]).ToArray();
        return new PreparedTable(scaled, hidden, cols, dropped, rows, data.GetLength(0) - rows.Length, keptKinds);
    }

    /// <summary>Runs every method over the folds of one table and mechanism.</summary>
    /// <param name="data">(n, p) complete table on its original scale; NaN marks cells whose truth is unknown.</param>
    /// <param name="methods">Methods to compare, all on the same mask and folds.</param>
    /// <param name="options">Protocol settings.</param>
    /// <returns>Per-method, per-fold RMSE and timings, with the prepared table and the folds.</returns>
    /// <exception cref="ArgumentException">Bad table, mask or folds (wrong length, ids outside 0 … Folds − 1, an empty
    /// fold), or a table with categorical columns and a method that takes numeric tables only (named).</exception>
    public static EvaluationResult Run(double[,] data, IReadOnlyList<Method> methods, ProtocolOptions options)
    {
        ArgumentNullException.ThrowIfNull(methods);
        ArgumentNullException.ThrowIfNull(options);
        var table = Prepare(data, options);
        var folds = FoldsFor(data.GetLength(0), table.KeptRows, options);
        var which = options.OnlyFolds ?? Enumerable.Range(0, options.Folds).ToArray();
        foreach (var f in which)
            if (f < 0 || f >= options.Folds) throw new ArgumentOutOfRangeException(nameof(options), f, $"OnlyFolds entries must be in 0 … {options.Folds - 1}; got {f}.");
        if (table.HasCategorical)
            foreach (var method in methods)
            {
                // Before any fold runs, so that a long run never stops at its last method.
                using var probe = method.Create();
                if (probe is not IMixedImputationMethod)
                    throw new ArgumentException($"Method '{method.Name}' takes numeric tables only; this table has categorical columns.", nameof(methods));
            }
        var results = new List<MethodResult>();
        foreach (var method in methods)
        {
            var perFold = new List<FoldResult>();
            using var sampler = new PeakMemory();
            foreach (var f in which)
            {
                var r = RunFold(method, table, folds, f);
                perFold.Add(r);
                options.Log?.Report(table.HasCategorical
                    ? FormattableString.Invariant($"{method.Name} fold {f}: RMSE {r.Rmse:F4}, accuracy {r.Accuracy:F3}, fit {r.FitSeconds:F1} s, impute {r.TransformSeconds:F2} s")
                    : FormattableString.Invariant($"{method.Name} fold {f}: RMSE {r.Rmse:F4}, fit {r.FitSeconds:F1} s, impute {r.TransformSeconds:F2} s"));
            }
            results.Add(new MethodResult(method.Name, perFold, sampler.Stop()));
        }
        var label = options.Mask is null ? options.Mechanism.ToString() : "mask-file";
        return new EvaluationResult(label, table, folds, results);
    }

    /// <summary>The rows of one fold: the fold's rows are the test set, every other row trains.</summary>
    /// <param name="table">A table from <see cref="Prepare"/>.</param>
    /// <param name="folds">One fold id per kept row (<see cref="AssignFolds"/>, or a folds file).</param>
    /// <param name="fold">The test fold.</param>
    /// <returns>Row ids into the prepared table and the (rows, p) inputs, hidden cells NaN; in a categorical column,
    /// also a test row's observed category that no training row shows.</returns>
    public static FoldSplit Split(PreparedTable table, int[] folds, int fold)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(folds);
        var input = table.Input();
        var test = Enumerable.Range(0, folds.Length).Where(i => folds[i] == fold).ToArray();
        var train = Enumerable.Range(0, folds.Length).Where(i => folds[i] != fold).ToArray();
        var trainRows = Rows(input, train);
        var testRows = Rows(input, test);
        if (table.HasCategorical) HideUnseenCategories(trainRows, testRows, table.ColumnKinds);
        return new FoldSplit(train, test, trainRows, testRows);
    }

    /// <summary>Sets to NaN each observed categorical cell of <paramref name="test"/> whose category no row of
    /// <paramref name="train"/> shows in that column.</summary>
    private static void HideUnseenCategories(double[,] train, double[,] test, IReadOnlyList<ColumnKind> kinds)
    {
        for (int j = 0; j < kinds.Count; j++)
        {
            if (kinds[j] != ColumnKind.Categorical) continue;
            var seen = new HashSet<double>();
            for (int i = 0; i < train.GetLength(0); i++) if (!double.IsNaN(train[i, j])) seen.Add(train[i, j]);
            for (int i = 0; i < test.GetLength(0); i++) if (!double.IsNaN(test[i, j]) && !seen.Contains(test[i, j])) test[i, j] = double.NaN;
        }
    }

    /// <summary>RMSE of <paramref name="imputed"/> test rows over their hidden numeric cells, on the [0, 1] scale; NaN
    /// when none is hidden.</summary>
    /// <param name="table">The prepared table holding the truth.</param>
    /// <param name="split">The split whose test rows were imputed.</param>
    /// <param name="imputed">(test rows, p) completed test rows.</param>
    /// <exception cref="InvalidOperationException"><paramref name="imputed"/> has another shape than the test rows.</exception>
    public static double HiddenRmse(PreparedTable table, FoldSplit split, double[,] imputed)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(split);
        ArgumentNullException.ThrowIfNull(imputed);
        var test = split.TestRowIds;
        int p = table.Values.GetLength(1);
        if (imputed.GetLength(0) != test.Length || imputed.GetLength(1) != p)
            throw new InvalidOperationException($"Got {imputed.GetLength(0)} x {imputed.GetLength(1)} imputed rows for {test.Length} x {p} test rows.");
        var hidden = Rows(table.Hidden, test);
        return Metrics.rmseOf(Rows(table.Values, test), imputed, table.HasCategorical ? Scoring.Only(hidden, table.ColumnKinds, ColumnKind.Numeric) : hidden);
    }

    /// <summary>Share of the hidden categorical cells of <paramref name="imputed"/> test rows imputed as their true
    /// category; NaN when none is hidden.</summary>
    /// <param name="table">The prepared table holding the truth.</param>
    /// <param name="split">The split whose test rows were imputed.</param>
    /// <param name="imputed">(test rows, p) completed test rows.</param>
    /// <exception cref="InvalidOperationException"><paramref name="imputed"/> has another shape than the test rows.</exception>
    public static double HiddenAccuracy(PreparedTable table, FoldSplit split, double[,] imputed)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(split);
        ArgumentNullException.ThrowIfNull(imputed);
        var test = split.TestRowIds;
        int p = table.Values.GetLength(1);
        if (imputed.GetLength(0) != test.Length || imputed.GetLength(1) != p)
            throw new InvalidOperationException($"Got {imputed.GetLength(0)} x {imputed.GetLength(1)} imputed rows for {test.Length} x {p} test rows.");
        var hidden = Scoring.Only(Rows(table.Hidden, test), table.ColumnKinds, ColumnKind.Categorical);
        return Scoring.AccuracyAndCount(Rows(table.Values, test), imputed, hidden).Accuracy;
    }

    private static FoldResult RunFold(Method method, PreparedTable table, int[] folds, int fold)
    {
        var split = Split(table, folds, fold);
        using var m = method.Create();
        var test = split.TestRowIds;
        var s = table.HasCategorical
            ? Scoring.FitAndScore(m as IMixedImputationMethod ?? throw new ArgumentException($"Method '{method.Name}' takes numeric tables only; this table has categorical columns.", nameof(method)), split.TrainRows, split.TestRows, Rows(table.Values, test), Rows(table.Hidden, test), table.ColumnKinds, method.Name)
            : Scoring.FitAndScore(m, split.TrainRows, split.TestRows, Rows(table.Values, test), Rows(table.Hidden, test), name: method.Name);
        return new FoldResult(fold, s.Rmse, s.FitSeconds, s.TransformSeconds, s.Scored, split.TrainRowIds.Length, test.Length, s.Accuracy, s.CategoricalScored)
        {
            ColumnAccuracy = s.ColumnAccuracy,
        };
    }

    private static int[] FoldsFor(int originalRows, int[] keptRows, ProtocolOptions options)
    {
        if (options.FoldIds is null) return AssignFolds(keptRows.Length, options.Folds, Tensors.deriveSeed(options.Seed, 1));
        var ids = options.FoldIds;
        if (ids.Length != originalRows)
            throw new ArgumentException($"The folds must give one id per row of the table ({originalRows}); got {ids.Length}.", nameof(options));
        var folds = keptRows.Select(i => ids[i]).ToArray();
        for (int i = 0; i < ids.Length; i++)
            if (ids[i] < 0 || ids[i] >= options.Folds)
                throw new ArgumentException($"Fold ids must be in 0 … {options.Folds - 1}; row {i} has {ids[i]}.", nameof(options));
        for (int f = 0; f < options.Folds; f++)
            if (!folds.Contains(f)) throw new ArgumentException($"Fold {f} has no row.", nameof(options));
        return folds;
    }

    private static T[,] Rows<T>(T[,] x, int[] rows)
    {
        int p = x.GetLength(1);
        var r = new T[rows.Length, p];
        for (int i = 0; i < rows.Length; i++)
            for (int j = 0; j < p; j++)
                r[i, j] = x[rows[i], j];
        return r;
    }

    private static double[,] FillUnknownWithColumnMean(double[,] x)
    {
        int n = x.GetLength(0), p = x.GetLength(1);
        var r = (double[,])x.Clone();
        for (int j = 0; j < p; j++)
        {
            double s = 0; int c = 0;
            for (int i = 0; i < n; i++) if (!double.IsNaN(x[i, j])) { s += x[i, j]; c++; }
            double mean = c == 0 ? 0 : s / c;
            for (int i = 0; i < n; i++) if (double.IsNaN(r[i, j])) r[i, j] = mean;
        }
        return r;
    }
}
