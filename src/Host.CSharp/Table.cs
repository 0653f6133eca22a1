using System.Globalization;
using System.Text;

namespace EMFlow;

/// <summary>
/// A CSV table with a header row, read for imputation: numeric columns become a <c>double[,]</c> with NaN at missing
/// cells, and every cell keeps its original text, so that a completed table writes observed cells back exactly as
/// they were (same digits, same quoting) and changes only the cells that were missing.
/// </summary>
/// <remarks>
/// <para>Fields follow RFC 4180: separated by a comma (or another separator), optionally enclosed in double quotes,
/// in which separators, line breaks and doubled quotes ("") are literal. The file is read one record at a time;
/// it is never held as one string.</para>
/// <para>A cell is missing when its text, trimmed, is empty, <c>NA</c> or <c>NaN</c> in any letter case (<c>nan</c>,
/// <c>na</c>), or one of the caller's tokens. A column is numeric when every other cell parses as a number (invariant
/// culture, e.g. <c>-1.5e3</c>). An infinite cell (<c>inf</c>, <c>-Infinity</c>, <c>1e999</c>) is rejected with
/// <see cref="FormatException"/> naming its line and column: observed values must be finite.</para>
/// <para>Header names must be distinct. Blank lines at the end of the file are ignored (with one column, a blank line
/// before a non-blank one is a missing cell). A header that is one column holding a semicolon, tab or bar is taken
/// for a file separated by that character and rejected, unless the separator is given explicitly.</para>
/// </remarks>
/// <example>
/// <code>
/// var table = Table.Read("survey.csv", missingTokens: new[] { "?" });
/// using var imputer = new GaussianEmImputer();
/// table.WithImputed(imputer.FitTransform(table.ToMatrix())).Write("survey-completed.csv");
/// </code>
/// </example>
public sealed class Table
{
    private static readonly HashSet<string> DefaultMissing = new(StringComparer.OrdinalIgnoreCase) { "", "NA", "NaN" };
    private static readonly char[] LikelySeparators = { ';', '\t', '|' };

    private readonly string[] _header;          // raw header fields, as written
    private readonly List<string[]> _cells;     // raw fields of each row, as written
    private readonly int[] _numeric;            // indices of the numeric columns
    private readonly bool[,] _missing;          // (n, numeric count)
    private readonly double[,] _values;         // (n, numeric count), NaN where missing
    private readonly char _separator;
    private readonly string _newLine;

    private Table(string[] header, string[] names, List<string[]> cells, int[] numeric, bool[,] missing, double[,] values, char separator, string newLine)
    {
        _header = header;
        ColumnNames = names;
        _cells = cells;
        _numeric = numeric;
        _missing = missing;
        _values = values;
        _separator = separator;
        _newLine = newLine;
        NumericColumns = numeric.Select(j => names[j]).ToArray();
    }

    /// <summary>Every column name, in file order.</summary>
    public IReadOnlyList<string> ColumnNames { get; }

    /// <summary>The names of the numeric columns, in file order: the columns of <see cref="ToMatrix"/>.</summary>
    public IReadOnlyList<string> NumericColumns { get; }

    /// <summary>Number of data rows n (the header excluded).</summary>
    public int RowCount => _cells.Count;

    /// <summary>Number of missing cells over the numeric columns.</summary>
    public int MissingCount => _missing.Cast<bool>().Count(m => m);

    /// <summary>Reads a CSV file with a header row.</summary>
    /// <param name="path">The file; UTF-8 unless it starts with another byte-order mark.</param>
    /// <param name="missingTokens">Further texts that mark a missing cell, besides empty, <c>NA</c> and <c>NaN</c>.</param>
    /// <param name="skipNonNumeric">Keep non-numeric columns as text, untouched, instead of rejecting them.</param>
    /// <param name="separator">Field separator. Default (null) comma, rejecting a file that looks separated by another character.</param>
    /// <returns>The table.</returns>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="FormatException">A malformed record, an infinite cell, repeated header names, a file that looks
    /// separated by another character, or (without <paramref name="skipNonNumeric"/>) a non-numeric column; the
    /// message names the line and the column.</exception>
    public static Table Read(string path, IEnumerable<string>? missingTokens = null, bool skipNonNumeric = false, char? separator = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return Read(reader, missingTokens, skipNonNumeric, separator);
    }

    /// <summary>Reads CSV text with a header row from a reader, one record at a time.</summary>
    /// <param name="reader">The text; read to its end, not disposed.</param>
    /// <param name="missingTokens">Further texts that mark a missing cell, besides empty, <c>NA</c> and <c>NaN</c>.</param>
    /// <param name="skipNonNumeric">Keep non-numeric columns as text, untouched, instead of rejecting them.</param>
    /// <param name="separator">Field separator. Default (null) comma, rejecting a one-column header that holds a
    /// semicolon, tab or bar (the file is then most likely separated by it); a quote or line break is rejected.</param>
    /// <returns>The table.</returns>
    /// <exception cref="FormatException">No header, a malformed record, an infinite cell, repeated header names, a file
    /// that looks separated by another character, or (without <paramref name="skipNonNumeric"/>) a non-numeric column.</exception>
    public static Table Read(TextReader reader, IEnumerable<string>? missingTokens = null, bool skipNonNumeric = false, char? separator = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        if (separator is '"' or '\r' or '\n')
            throw new ArgumentOutOfRangeException(nameof(separator), separator, "The separator cannot be a quote or a line break.");
        bool guessed = separator is null;
        char sep = separator ?? ',';
        var tokens = new HashSet<string>(StringComparer.Ordinal);
        if (missingTokens is not null)
            foreach (var t in missingTokens) tokens.Add((t ?? throw new ArgumentException("A missing token is null.", nameof(missingTokens))).Trim());

        var records = new RecordReader(reader, sep);
        if (!records.Next(out var header, out var headerValues, out _))
            throw new FormatException("The CSV has no header row.");
        var names = headerValues.Select(v => v.Trim()).ToArray();
        int p = names.Length;
        string newLine = records.LastLineEnding ?? "\n";
        if (guessed && p == 1 && names[0].IndexOfAny(LikelySeparators) is int at and >= 0)
        {
            var likely = names[0][at] == '\t' ? "tab" : $"'{names[0][at]}'";
            throw new FormatException($"The header '{names[0]}' reads as one column: the file looks separated by {likely}, not by commas. Give the separator (Table.Read's separator, emflow's --separator).");
        }
        var repeated = names.GroupBy(n => n, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => $"'{g.Key}'").ToArray();
        if (repeated.Length > 0)
            throw new FormatException($"The header repeats column name{(repeated.Length > 1 ? "s" : "")} {string.Join(", ", repeated)}; each column needs its own name.");

        var cells = new List<string[]>();
        var numericSoFar = Enumerable.Repeat(true, p).ToArray();
        var columns = Enumerable.Range(0, p).Select(_ => new List<double>()).ToArray();
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
                if (numericSoFar[0]) columns[0].Add(double.NaN);
                cells.Add(new[] { "" });
            }
            if (raw.Length != p)
                throw new FormatException($"Line {line} has {raw.Length} fields; the header has {p}.");
            for (int j = 0; j < p; j++)
            {
                if (!numericSoFar[j]) continue;
                var text = values[j].Trim();
                if (DefaultMissing.Contains(text) || tokens.Contains(text)) { columns[j].Add(double.NaN); continue; }
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && !double.IsNaN(v))
                {
                    if (double.IsInfinity(v))
                        throw new FormatException($"Column '{names[j]}', line {line}: '{values[j]}' is {(v > 0 ? "+" : "-")}∞; observed values must be finite (mark a missing value with an empty cell, NA or NaN).");
                    columns[j].Add(v);
                    continue;
                }
                if (IsInfinityText(text))
                    throw new FormatException($"Column '{names[j]}', line {line}: '{values[j]}' is {(text.StartsWith('-') ? "-" : "+")}∞; observed values must be finite (mark a missing value with an empty cell, NA or NaN).");
                if (!skipNonNumeric)
                    throw new FormatException($"Column '{names[j]}' is not numeric: line {line} holds '{values[j]}'. Mark missing values with a token or pass non-numeric columns through (skipNonNumeric).");
                numericSoFar[j] = false;
                columns[j].Clear();
            }
            cells.Add(raw);
        }

        var numeric = Enumerable.Range(0, p).Where(j => numericSoFar[j]).ToArray();
        int n = cells.Count;
        var matrix = new double[n, numeric.Length];
        var missing = new bool[n, numeric.Length];
        for (int k = 0; k < numeric.Length; k++)
        {
            var col = columns[numeric[k]];
            for (int i = 0; i < n; i++)
            {
                matrix[i, k] = col[i];
                missing[i, k] = double.IsNaN(col[i]);
            }
        }
        return new Table(header, names, cells, numeric, missing, matrix, sep, newLine);
    }

    /// <summary>inf, Inf, +inf, -INF, infinity, ∞ and the like, which double.TryParse does not all take.</summary>
    private static bool IsInfinityText(string text)
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

    /// <summary>A copy of the table whose missing numeric cells take their values from <paramref name="completed"/>.</summary>
    /// <param name="completed">(n, q) values over the <see cref="NumericColumns"/>, e.g. an imputer's output; only its
    /// entries at missing cells are used, so observed cells keep their original text.</param>
    /// <returns>A new table; this one is unchanged.</returns>
    /// <exception cref="ArgumentException">The shape is not (n, q), or a value at a missing cell is NaN or infinite.</exception>
    public Table WithImputed(double[,] completed)
    {
        ArgumentNullException.ThrowIfNull(completed);
        int n = RowCount, q = _numeric.Length;
        if (completed.GetLength(0) != n || completed.GetLength(1) != q)
            throw new ArgumentException($"Expected a ({n}, {q}) matrix over the numeric columns, got ({completed.GetLength(0)}, {completed.GetLength(1)}).", nameof(completed));
        var cells = new List<string[]>(n);
        var values = (double[,])_values.Clone();
        for (int i = 0; i < n; i++)
        {
            var row = (string[])_cells[i].Clone();
            for (int k = 0; k < q; k++)
            {
                if (!_missing[i, k]) continue;
                double v = completed[i, k];
                if (!double.IsFinite(v))
                    throw new ArgumentException($"The value for row {i}, column '{NumericColumns[k]}' is {v}; imputed values must be finite.", nameof(completed));
                // Round-trip format: the written number reads back as exactly the imputed double.
                row[_numeric[k]] = v.ToString("R", CultureInfo.InvariantCulture);
                values[i, k] = v;
            }
            cells.Add(row);
        }
        return new Table(_header, ColumnNames.ToArray(), cells, _numeric, new bool[n, q], values, _separator, _newLine);
    }

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
    private sealed class RecordReader(TextReader reader, char separator)
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
