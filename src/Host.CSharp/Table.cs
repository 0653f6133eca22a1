using System.Globalization;
using System.Text;

namespace EMFlow;

/// <summary>
/// A CSV table with a header row, read for imputation: numeric columns become a <c>double[,]</c> with NaN at missing
/// cells, text columns become categorical, and every cell keeps its original text, so that a completed table writes
/// observed cells back exactly as they were (same digits, same quoting) and changes only the cells that were missing.
/// </summary>
/// <remarks>
/// <para>Fields follow RFC 4180: separated by a comma (or another separator), optionally enclosed in double quotes,
/// in which separators, line breaks and doubled quotes ("") are literal. The file is read one record at a time;
/// it is never held as one string.</para>
/// <para>A cell is missing when its text, trimmed, is empty, <c>NA</c> or <c>NaN</c> in any letter case (<c>nan</c>,
/// <c>na</c>), or one of the caller's tokens. A column is numeric when every other cell parses as a number (invariant
/// culture, e.g. <c>-1.5e3</c>). An infinite cell (<c>inf</c>, <c>-Infinity</c>, <c>1e999</c>) is rejected with
/// <see cref="FormatException"/> naming its line and column: observed values must be finite.</para>
/// <para>Column kinds: a column none of whose observed cells is a number is categorical (colour, city), and so is
/// every column the caller declares categorical (integer codes stay numeric unless declared). A category is the
/// cell's text, trimmed, compared exactly: <c>red</c> and <c>Red</c>, or <c>1</c> and <c>1.0</c> in a declared
/// column, are different categories. A column that mixes numbers and text is rejected naming its first text cell,
/// since that is most often an unmarked missing value; declare it categorical or mark the value missing. With
/// <c>skipNonNumeric</c>, undeclared text columns are passed through untouched instead (their blanks stay blank).</para>
/// <para>Header names must be distinct. Blank lines at the end of the file are ignored (with one column, a blank line
/// before a non-blank one is a missing cell). A header that is one column holding a semicolon, tab or bar is taken
/// for a file separated by that character and rejected, unless the separator is given explicitly.</para>
/// </remarks>
/// <example>
/// <code>
/// var table = Table.Read("survey.csv", missingTokens: new[] { "?" });
/// using var imputer = new GaussianEmImputer();
/// table.WithImputed(imputer.FitTransform(table.ToMatrix())).Write("survey-completed.csv");   // numeric columns only
///
/// using var mixed = new MixedImputer(new KnnImputer());           // numeric and categorical columns
/// mixed.FitTransform(table).Write("survey-completed.csv");
/// </code>
/// </example>
public sealed class Table
{
    internal static readonly HashSet<string> DefaultMissing = new(StringComparer.OrdinalIgnoreCase) { "", "NA", "NaN" };
    private static readonly char[] LikelySeparators = { ';', '\t', '|' };

    private readonly string[] _header;          // raw header fields, as written
    private readonly List<string[]> _cells;     // raw fields of each row, as written
    private readonly int[] _numeric;            // indices of the numeric columns
    private readonly bool[,] _missing;          // (n, numeric count)
    private readonly double[,] _values;         // (n, numeric count), NaN where missing
    private readonly int[] _categorical;        // indices of the categorical columns
    private readonly string?[][] _labels;       // per categorical column, each row's category (trimmed text), null where missing
    private readonly string[][] _categories;    // per categorical column, its observed categories in order
    private readonly Dictionary<string, int>[] _codes;  // per categorical column, category → its index in _categories
    private readonly int[] _imputed;            // numeric and categorical columns, in file order
    private readonly char _separator;
    private readonly string _newLine;

    private Table(string[] header, string[] names, List<string[]> cells, int[] numeric, bool[,] missing, double[,] values,
        int[] categorical, string?[][] labels, char separator, string newLine)
    {
        _header = header;
        ColumnNames = names;
        _cells = cells;
        _numeric = numeric;
        _missing = missing;
        _values = values;
        _categorical = categorical;
        _labels = labels;
        _categories = labels.Select(OrderedCategories).ToArray();
        _codes = _categories.Select(c => c.Select((label, k) => (label, k)).ToDictionary(e => e.label, e => e.k, StringComparer.Ordinal)).ToArray();
        _imputed = numeric.Concat(categorical).Order().ToArray();
        _separator = separator;
        _newLine = newLine;
        NumericColumns = numeric.Select(j => names[j]).ToArray();
        CategoricalColumns = categorical.Select(j => names[j]).ToArray();
        ImputedColumns = _imputed.Select(j => names[j]).ToArray();
        ColumnKinds = _imputed.Select(j => categorical.Contains(j) ? ColumnKind.Categorical : ColumnKind.Numeric).ToArray();
    }

    /// <summary>Distinct categories, in numeric order when every one of them is a number (declared integer codes),
    /// in ordinal text order otherwise: an order that does not depend on the order of the rows.</summary>
    private static string[] OrderedCategories(string?[] labels)
    {
        var distinct = labels.Where(l => l is not null).Select(l => l!).Distinct(StringComparer.Ordinal).ToArray();
        var numbers = distinct.Select(l => double.TryParse(l, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : double.NaN).ToArray();
        return numbers.All(double.IsFinite)
            ? distinct.Zip(numbers).OrderBy(e => e.Second).ThenBy(e => e.First, StringComparer.Ordinal).Select(e => e.First).ToArray()
            : distinct.Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>Every column name, in file order.</summary>
    public IReadOnlyList<string> ColumnNames { get; }

    /// <summary>The names of the numeric columns, in file order: the columns of <see cref="ToMatrix"/>.</summary>
    public IReadOnlyList<string> NumericColumns { get; }

    /// <summary>The names of the categorical columns, in file order: text columns (unless passed through) and those
    /// declared categorical.</summary>
    public IReadOnlyList<string> CategoricalColumns { get; }

    /// <summary>The numeric and categorical columns, in file order: the columns of <see cref="ToMixedMatrix"/> and
    /// of <see cref="MixedImputer"/>'s table overloads. Passed-through columns are not among them.</summary>
    public IReadOnlyList<string> ImputedColumns { get; }

    /// <summary>The kind of each of the <see cref="ImputedColumns"/>, in the same order.</summary>
    public IReadOnlyList<ColumnKind> ColumnKinds { get; }

    /// <summary>Number of data rows n (the header excluded).</summary>
    public int RowCount => _cells.Count;

    /// <summary>Number of missing cells over the numeric and categorical columns.</summary>
    public int MissingCount => _missing.Cast<bool>().Count(m => m) + _labels.Sum(c => c.Count(l => l is null));

    /// <summary>The observed categories of a categorical column: its distinct texts (trimmed), in numeric order when
    /// every one is a number, in ordinal text order otherwise. Category k is coded k in <see cref="ToMixedMatrix"/>.</summary>
    /// <param name="column">The name of one of the <see cref="CategoricalColumns"/>.</param>
    /// <exception cref="ArgumentException">Not a categorical column of the table.</exception>
    public IReadOnlyList<string> Categories(string column)
    {
        ArgumentNullException.ThrowIfNull(column);
        int k = Array.IndexOf(CategoricalColumns.ToArray(), column);
        if (k < 0)
            throw new ArgumentException($"'{column}' is not a categorical column; the categorical columns are {Quoted(CategoricalColumns)}.", nameof(column));
        return _categories[k];
    }

    private static string Quoted(IEnumerable<string> names)
    {
        var list = names.Select(n => $"'{n}'").ToArray();
        return list.Length == 0 ? "none" : string.Join(", ", list);
    }

    /// <summary>Reads a CSV file with a header row.</summary>
    /// <param name="path">The file; UTF-8 unless it starts with another byte-order mark.</param>
    /// <param name="missingTokens">Further texts that mark a missing cell, besides empty, <c>NA</c> and <c>NaN</c>.</param>
    /// <param name="skipNonNumeric">Pass undeclared text columns through untouched instead of reading them as categorical.</param>
    /// <param name="separator">Field separator. Default (null) comma, rejecting a file that looks separated by another character.</param>
    /// <param name="categorical">Names of columns to read as categorical even when their cells are numbers (integer codes).</param>
    /// <returns>The table.</returns>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="FormatException">A malformed record, an infinite cell, repeated header names, a file that looks
    /// separated by another character, or (without <paramref name="skipNonNumeric"/>) a column mixing numbers and
    /// text; the message names the line and the column.</exception>
    /// <exception cref="ArgumentException">A name in <paramref name="categorical"/> is not a column of the file.</exception>
    public static Table Read(string path, IEnumerable<string>? missingTokens = null, bool skipNonNumeric = false, char? separator = null, IEnumerable<string>? categorical = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return Read(reader, missingTokens, skipNonNumeric, separator, categorical);
    }

    /// <summary>Reads CSV text with a header row from a reader, one record at a time.</summary>
    /// <param name="reader">The text; read to its end, not disposed.</param>
    /// <param name="missingTokens">Further texts that mark a missing cell, besides empty, <c>NA</c> and <c>NaN</c>.</param>
    /// <param name="skipNonNumeric">Pass undeclared text columns through untouched instead of reading them as
    /// categorical, and a column mixing numbers and text instead of rejecting it.</param>
    /// <param name="separator">Field separator. Default (null) comma, rejecting a one-column header that holds a
    /// semicolon, tab or bar (the file is then most likely separated by it); a quote or line break is rejected.</param>
    /// <param name="categorical">Names of columns to read as categorical even when their cells are numbers (integer codes).</param>
    /// <returns>The table.</returns>
    /// <exception cref="FormatException">No header, a malformed record, an infinite cell, repeated header names, a file
    /// that looks separated by another character, or (without <paramref name="skipNonNumeric"/>) a column mixing
    /// numbers and text.</exception>
    /// <exception cref="ArgumentException">A name in <paramref name="categorical"/> is not a column of the text.</exception>
    public static Table Read(TextReader reader, IEnumerable<string>? missingTokens = null, bool skipNonNumeric = false, char? separator = null, IEnumerable<string>? categorical = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        if (separator is '"' or '\r' or '\n')
            throw new ArgumentOutOfRangeException(nameof(separator), separator, "The separator cannot be a quote or a line break.");
        bool guessed = separator is null;
        char sep = separator ?? ',';
        var tokens = new HashSet<string>(StringComparer.Ordinal);
        if (missingTokens is not null)
            foreach (var t in missingTokens) tokens.Add((t ?? throw new ArgumentException("A missing token is null.", nameof(missingTokens))).Trim());
        var declaredNames = categorical?.Select(c => c ?? throw new ArgumentException("A categorical column name is null.", nameof(categorical))).ToArray() ?? Array.Empty<string>();

        var records = new RecordReader(reader, sep);
        if (!records.Next(out var header, out var headerValues, out _))
            throw new FormatException("The CSV has no header row.");
        var names = headerValues.Select(v => v.Trim()).ToArray();
        int p = names.Length;
        string newLine = records.LastLineEnding ?? "\n";
        CheckHeader(names, sep, guessed);
        var unknown = declaredNames.Where(d => !names.Contains(d, StringComparer.Ordinal)).Distinct(StringComparer.Ordinal).ToArray();
        if (unknown.Length > 0)
            throw new ArgumentException($"Column{(unknown.Length > 1 ? "s" : "")} {Quoted(unknown)} declared categorical {(unknown.Length > 1 ? "are" : "is")} not in the table; its columns are {Quoted(names)}.", nameof(categorical));
        var declared = names.Select(n => declaredNames.Contains(n, StringComparer.Ordinal)).ToArray();

        var cells = new List<string[]>();
        var columns = Enumerable.Range(0, p).Select(_ => new List<double>()).ToArray();
        // Each column's trimmed texts, null where missing, while the column may still turn out categorical (declared,
        // or no number so far): what a column becomes is known only at the end of the file.
        var texts = Enumerable.Range(0, p).Select(_ => (List<string?>?)new List<string?>()).ToArray();
        var numberSeen = new bool[p];
        var firstText = new (int Line, string Value)?[p];
        // With one column a blank line is a missing cell, unless only blank lines follow it to the end of the file.
        int pendingBlank = 0;
        while (records.Next(out var raw, out var values, out int line))
        {
            // A blank line (one empty field) is not a record of a table with several columns.
            if (raw.Length == 1 && raw[0].Length == 0)
            {
                if (p == 1) pendingBlank++;
                continue;
            }
            for (; pendingBlank > 0; pendingBlank--)
            {
                columns[0].Add(double.NaN);
                texts[0]?.Add(null);
                cells.Add(new[] { "" });
            }
            if (raw.Length != p)
                throw new FormatException($"Line {line} has {raw.Length} fields; the header has {p}.");
            for (int j = 0; j < p; j++)
            {
                var text = values[j].Trim();
                if (DefaultMissing.Contains(text) || tokens.Contains(text))
                {
                    columns[j].Add(double.NaN);
                    texts[j]?.Add(null);
                    continue;
                }
                texts[j]?.Add(text);
                if (declared[j]) continue;
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && !double.IsNaN(v))
                {
                    if (double.IsInfinity(v))
                        throw new FormatException($"Column '{names[j]}', line {line}: '{values[j]}' is {(v > 0 ? "+" : "-")}∞; observed values must be finite (mark a missing value with an empty cell, NA or NaN).");
                    columns[j].Add(v);
                    numberSeen[j] = true;
                    texts[j] = null;
                    continue;
                }
                if (IsInfinityText(text))
                    throw new FormatException($"Column '{names[j]}', line {line}: '{values[j]}' is {(text.StartsWith('-') ? "-" : "+")}∞; observed values must be finite (mark a missing value with an empty cell, NA or NaN).");
                columns[j].Add(double.NaN);
                firstText[j] ??= (line, values[j]);
            }
            cells.Add(raw);
        }

        var numeric = new List<int>();
        var categoricalColumns = new List<int>();
        for (int j = 0; j < p; j++)
        {
            if (declared[j]) categoricalColumns.Add(j);
            else if (firstText[j] is not { } first) numeric.Add(j);
            else if (skipNonNumeric) continue;
            else if (!numberSeen[j]) categoricalColumns.Add(j);
            else
                throw new FormatException($"Column '{names[j]}' mixes numbers and text: line {first.Line} holds '{first.Value}'. Mark missing values with a token (missingTokens), declare the column categorical (categorical) or pass it through (skipNonNumeric).");
        }
        int n = cells.Count;
        var matrix = new double[n, numeric.Count];
        var missing = new bool[n, numeric.Count];
        for (int k = 0; k < numeric.Count; k++)
        {
            var col = columns[numeric[k]];
            for (int i = 0; i < n; i++)
            {
                matrix[i, k] = col[i];
                missing[i, k] = double.IsNaN(col[i]);
            }
        }
        var labels = categoricalColumns.Select(j => declared[j] ? SameNumberSameLabel(texts[j]!) : texts[j]!.ToArray()).ToArray();
        return new Table(header, names, cells, numeric.ToArray(), missing, matrix, categoricalColumns.ToArray(), labels, sep, newLine);
    }

    /// <summary>A declared column's labels with every number written as the first text of its value in the column, so
    /// that 1, 1.0 and 01 are one category (written 1 where imputed); other texts as they are.</summary>
    private static string?[] SameNumberSameLabel(List<string?> texts)
    {
        var first = new Dictionary<double, string>();
        var result = new string?[texts.Count];
        for (int i = 0; i < texts.Count; i++)
        {
            var t = texts[i];
            if (t is not null && TryNumber(t, out var v))
            {
                if (!first.TryGetValue(v, out var label)) first[v] = label = t;
                t = label;
            }
            result[i] = t;
        }
        return result;
    }

    /// <summary>The index of the category whose text is the same number as <paramref name="label"/> (1.0 for a fitted
    /// 1), or −1 when the label is no number or no category has its value.</summary>
    private static int CodeOfSameNumber(IReadOnlyList<string> categories, string label)
    {
        if (!TryNumber(label, out var v)) return -1;
        for (int k = 0; k < categories.Count; k++)
            if (TryNumber(categories[k], out var w) && w == v) return k;
        return -1;
    }

    /// <summary>A cell's text as a finite number, by the invariant culture's rules.</summary>
    internal static bool TryNumber(string text, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

    /// <summary>Rejects a header whose names repeat, or that is one column holding another likely separator than
    /// <paramref name="separator"/> (given, or the comma when <paramref name="guessed"/>): a table read with the wrong
    /// separator is one text column, which would otherwise be imputed as a category. <see cref="FormatException"/>
    /// naming them.</summary>
    internal static void CheckHeader(string[] names, char separator, bool guessed)
    {
        if (names.Length == 1 && names[0].IndexOfAny(LikelySeparators.Append(',').Where(c => c != separator).ToArray()) is int at and >= 0)
        {
            static string Name(char c) => c == '\t' ? "tab" : $"'{c}'";
            var likely = Name(names[0][at]);
            throw new FormatException(guessed
                ? $"The header '{names[0]}' reads as one column: the file looks separated by {likely}, not by commas. Give the separator (Table.Read's separator, emflow's --separator)."
                : $"The header '{names[0]}' reads as one column with the separator {Name(separator)}: the file looks separated by {likely}. Check the separator (Table.Read's separator, emflow's --separator).");
        }
        var repeated = names.GroupBy(n => n, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => $"'{g.Key}'").ToArray();
        if (repeated.Length > 0)
            throw new FormatException($"The header repeats column name{(repeated.Length > 1 ? "s" : "")} {string.Join(", ", repeated)}; each column needs its own name.");
    }

    /// <summary>The header's fields as written, for writers that keep them.</summary>
    internal IReadOnlyList<string> RawHeader => _header;

    /// <summary>Each row's fields as written (quotes included), for writers that keep them.</summary>
    internal IReadOnlyList<string[]> RawRows => _cells;

    /// <summary>The field separator the table was read with.</summary>
    internal char Separator => _separator;

    /// <summary>The line ending of the file the table was read from.</summary>
    internal string NewLine => _newLine;

    /// <summary>inf, Inf, +inf, -INF, infinity, ∞ and the like, which double.TryParse does not all take.</summary>
    internal static bool IsInfinityText(string text)
    {
        var t = text.TrimStart('+', '-');
        return t.Equals("inf", StringComparison.OrdinalIgnoreCase) || t.Equals("infinity", StringComparison.OrdinalIgnoreCase) || t == "∞";
    }

    /// <summary>The numeric columns as a matrix.</summary>
    /// <returns>A new (n, q) array over the q <see cref="NumericColumns"/>, NaN at missing cells.</returns>
    public double[,] ToMatrix() => (double[,])_values.Clone();

    /// <summary>The missing cells of the numeric columns.</summary>
    /// <returns>A new (n, q) mask, true where missing.</returns>
    public bool[,] MissingMask() => (bool[,])_missing.Clone();

    /// <summary>The numeric and categorical columns as one matrix, for <see cref="MixedImputer"/>: a numeric cell is its
    /// value, a categorical cell the index of its category in <see cref="Categories"/> (0, 1, …).</summary>
    /// <returns>A new (n, q + c) array over the <see cref="ImputedColumns"/>, NaN at missing cells.</returns>
    public double[,] ToMixedMatrix() => ToMixedMatrix(_categories, "categories");

    /// <summary>As <see cref="ToMixedMatrix()"/>, each categorical cell coded by its index in the given category list
    /// of its column (one list per categorical column, in the order of <see cref="CategoricalColumns"/>).</summary>
    /// <exception cref="ArgumentException">A cell holds a category that is not in its column's list; the message names
    /// the column and the value; <paramref name="paramName"/> is the exception's parameter.</exception>
    internal double[,] ToMixedMatrix(IReadOnlyList<IReadOnlyList<string>> categories, string paramName)
    {
        int n = RowCount;
        var result = new double[n, _imputed.Length];
        var codes = categories.Select(c => c.Select((label, k) => (label, k)).ToDictionary(e => e.label, e => e.k, StringComparer.Ordinal)).ToArray();
        for (int m = 0; m < _imputed.Length; m++)
        {
            int j = _imputed[m];
            int k = Array.IndexOf(_numeric, j);
            if (k >= 0)
            {
                for (int i = 0; i < n; i++) result[i, m] = _values[i, k];
                continue;
            }
            int c = Array.IndexOf(_categorical, j);
            for (int i = 0; i < n; i++)
            {
                var label = _labels[c][i];
                if (label is null) { result[i, m] = double.NaN; continue; }
                // A number code matches the fitted category of the same value (1.0 in a file written by another tool
                // is the fitted 1).
                if (!codes[c].TryGetValue(label, out var code) && (code = CodeOfSameNumber(categories[c], label)) < 0)
                    throw new ArgumentException($"Column '{ColumnNames[j]}' holds '{label}' (data row {i + 1}), a category not seen at Fit; the fitted categories are {Quoted(categories[c])}.", paramName);
                result[i, m] = code;
            }
        }
        return result;
    }

    /// <summary>The missing cells of the numeric and categorical columns.</summary>
    /// <returns>A new (n, q + c) mask over the <see cref="ImputedColumns"/>, true where missing.</returns>
    public bool[,] MixedMissingMask()
    {
        var data = ToMixedMatrix();
        var mask = new bool[data.GetLength(0), data.GetLength(1)];
        for (int i = 0; i < mask.GetLength(0); i++)
            for (int m = 0; m < mask.GetLength(1); m++) mask[i, m] = double.IsNaN(data[i, m]);
        return mask;
    }

    /// <summary>A copy of the table whose missing numeric cells take their values from <paramref name="completed"/>.</summary>
    /// <param name="completed">(n, q) values over the <see cref="NumericColumns"/>, e.g. an imputer's output; only its
    /// entries at missing cells are used, so observed cells keep their original text. Categorical cells are left as
    /// they are (see <see cref="WithImputedMixed(double[,])"/>).</param>
    /// <returns>A new table; this one is unchanged.</returns>
    /// <exception cref="ArgumentException">The shape is not (n, q), or a value at a missing cell is NaN or infinite.</exception>
    public Table WithImputed(double[,] completed)
    {
        ArgumentNullException.ThrowIfNull(completed);
        int n = RowCount, q = _numeric.Length;
        if (completed.GetLength(0) != n || completed.GetLength(1) != q)
            throw new ArgumentException($"Expected a ({n}, {q}) matrix over the numeric columns, got ({completed.GetLength(0)}, {completed.GetLength(1)}).", nameof(completed));
        var cells = _cells.Select(r => (string[])r.Clone()).ToList();
        var values = FillNumeric(cells, completed, k => k);
        return new Table(_header, ColumnNames.ToArray(), cells, _numeric, new bool[n, q], values, _categorical, _labels, _separator, _newLine);
    }

    /// <summary>A copy of the table whose missing numeric and categorical cells take their values from
    /// <paramref name="completed"/>, e.g. a <see cref="MixedImputer"/>'s output: a categorical cell is written as the
    /// text of its category.</summary>
    /// <param name="completed">(n, q + c) values over the <see cref="ImputedColumns"/>, categorical ones as category
    /// indices (<see cref="ToMixedMatrix()"/>); only its entries at missing cells are used, so observed cells keep
    /// their original text.</param>
    /// <returns>A new table; this one is unchanged.</returns>
    /// <exception cref="ArgumentException">The shape is not (n, q + c), a numeric value at a missing cell is NaN or
    /// infinite, or a categorical one is not the index of one of the column's categories.</exception>
    public Table WithImputedMixed(double[,] completed) => WithImputedMixed(completed, _categories);

    /// <summary>As <see cref="WithImputedMixed(double[,])"/>, categorical cells indexing the given category lists (one
    /// per categorical column, in the order of <see cref="CategoricalColumns"/>).</summary>
    internal Table WithImputedMixed(double[,] completed, IReadOnlyList<IReadOnlyList<string>> categories)
    {
        ArgumentNullException.ThrowIfNull(completed);
        int n = RowCount, q = _numeric.Length;
        if (completed.GetLength(0) != n || completed.GetLength(1) != _imputed.Length)
            throw new ArgumentException($"Expected a ({n}, {_imputed.Length}) matrix over the numeric and categorical columns, got ({completed.GetLength(0)}, {completed.GetLength(1)}).", nameof(completed));
        var cells = _cells.Select(r => (string[])r.Clone()).ToList();
        var values = FillNumeric(cells, completed, k => Array.IndexOf(_imputed, _numeric[k]));
        var labels = new string?[_categorical.Length][];
        for (int c = 0; c < _categorical.Length; c++)
        {
            int j = _categorical[c], m = Array.IndexOf(_imputed, j);
            labels[c] = (string?[])_labels[c].Clone();
            for (int i = 0; i < n; i++)
            {
                if (labels[c][i] is not null) continue;
                double v = completed[i, m];
                if (!(v >= 0 && v < categories[c].Count && v == Math.Floor(v)))
                    throw new ArgumentException($"The value for row {i}, column '{ColumnNames[j]}' is {v}; a categorical column takes the index of one of its {categories[c].Count} categories.", nameof(completed));
                var label = categories[c][(int)v];
                labels[c][i] = label;
                cells[i][j] = Field(label);
            }
        }
        return new Table(_header, ColumnNames.ToArray(), cells, _numeric, new bool[n, q], values, _categorical, labels, _separator, _newLine);
    }

    /// <summary>Writes the imputed numeric values into <paramref name="cells"/>; <paramref name="columnOf"/> maps a
    /// numeric column to its column in <paramref name="completed"/>. Returns the completed numeric values (n, q).</summary>
    private double[,] FillNumeric(List<string[]> cells, double[,] completed, Func<int, int> columnOf)
    {
        int n = RowCount, q = _numeric.Length;
        var values = (double[,])_values.Clone();
        for (int k = 0; k < q; k++)
        {
            int m = columnOf(k);
            for (int i = 0; i < n; i++)
            {
                if (!_missing[i, k]) continue;
                double v = completed[i, m];
                if (!double.IsFinite(v))
                    throw new ArgumentException($"The value for row {i}, column '{NumericColumns[k]}' is {v}; imputed values must be finite.", nameof(completed));
                // Round-trip format: the written number reads back as exactly the imputed double.
                cells[i][_numeric[k]] = v.ToString("R", CultureInfo.InvariantCulture);
                values[i, k] = v;
            }
        }
        return values;
    }

    /// <summary>A category's text as a field: quoted (quotes doubled) when it holds the separator, a quote or a line break.</summary>
    private string Field(string text) =>
        text.IndexOfAny(new[] { _separator, '"', '\r', '\n' }) >= 0 ? "\"" + text.Replace("\"", "\"\"") + "\"" : text;

    /// <summary>Writes the table as CSV, with the header and line endings of the file it was read from.</summary>
    /// <param name="writer">The destination; not disposed.</param>
    public void Write(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        WriteRecord(writer, _header);
        foreach (var row in _cells) WriteRecord(writer, row);
        writer.Flush();
    }

    /// <summary>Writes the table to a CSV file (UTF-8, no byte-order mark). The text goes to a temporary file in the
    /// same folder that replaces <paramref name="path"/> only when complete, so a failure never leaves a half-written file.</summary>
    /// <param name="path">File to create or overwrite.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public void Write(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var w = new StreamWriter(tmp, false, new UTF8Encoding(false))) Write(w);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    private void WriteRecord(TextWriter w, string[] fields)
    {
        for (int j = 0; j < fields.Length; j++)
        {
            if (j > 0) w.Write(_separator);
            w.Write(fields[j]);
        }
        w.Write(_newLine);
    }

    /// <summary>Splits CSV text into records, keeping each field's raw text (quotes included) and its value.</summary>
    internal sealed class RecordReader(TextReader reader, char separator)
    {
        private int _line = 1;

        /// <summary>The line ending of the first record, so that writing keeps the file's convention.</summary>
        public string? LastLineEnding { get; private set; }

        public bool Next(out string[] raw, out string[] values, out int line)
        {
            line = _line;
            var raws = new List<string>();
            var vals = new List<string>();
            var r = new StringBuilder();
            var v = new StringBuilder();
            int c = reader.Read();
            if (c < 0)
            {
                raw = values = Array.Empty<string>();
                return false;
            }
            bool quoted = false, afterQuote = false;
            while (true)
            {
                if (quoted)
                {
                    if (c < 0) throw new FormatException($"Line {line}: a quoted field is not closed before the end of the file.");
                    r.Append((char)c);
                    if (c == '"')
                    {
                        if (reader.Peek() == '"') { r.Append((char)reader.Read()); v.Append('"'); }
                        else { quoted = false; afterQuote = true; }
                    }
                    else
                    {
                        if (c == '\n') _line++;
                        v.Append((char)c);
                    }
                }
                else if (c < 0 || c == '\n' || c == '\r' || c == separator)
                {
                    raws.Add(r.ToString());
                    vals.Add(v.ToString());
                    r.Clear(); v.Clear();
                    afterQuote = false;
                    if (c != separator)
                    {
                        if (c == '\r' && reader.Peek() == '\n') { reader.Read(); LastLineEnding ??= "\r\n"; }
                        else if (c >= 0) LastLineEnding ??= c == '\r' ? "\r" : "\n";
                        _line++;
                        break;
                    }
                }
                else if (c == '"' && r.Length == 0)
                {
                    quoted = true;
                    r.Append('"');
                }
                else
                {
                    if (afterQuote && !char.IsWhiteSpace((char)c))
                        throw new FormatException($"Line {line}: text follows the closing quote of a field.");
                    r.Append((char)c);
                    v.Append((char)c);
                }
                c = reader.Read();
            }
            raw = raws.ToArray();
            values = vals.ToArray();
            return true;
        }
    }
}
