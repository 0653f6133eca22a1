using System.Globalization;
using System.Text;

namespace EMFlow.Cli;

/// <summary>
/// <c>emflow impute INPUT -o OUTPUT --stream</c>: the numeric columns of a CSV or Parquet file read block by block for
/// <see cref="EMFlowImputer.FitStream"/>, so that neither the fit nor the transform that follows holds the table.
/// </summary>
/// <remarks>
/// A CSV file is read once first to tell its columns apart, by the rules of a table read whole: a column with a cell
/// that is neither a number nor missing is text, passed through with <c>--skip-non-numeric</c> and an error otherwise
/// (categorical columns need the whole table). A Parquet file's column types say it.
/// </remarks>
internal static class StreamFit
{
    /// <summary>Rows per block given to the fit: the rows are shuffled within a block, so a block is the fit's
    /// shuffle buffer; (65536, 16) doubles are 8 MiB.</summary>
    public const int BlockRows = 65_536;

    /// <summary>The file's numeric columns, in file order, and a function that reads them as blocks (m, q), NaN where
    /// missing, from the first row each time it is called; and the other columns, passed through.</summary>
    public static (string[] Columns, string[] Passed, Func<IEnumerable<double[,]>> Read) Open(string input, string? token, bool skip, char? separator, CancellationToken ct)
    {
        var tokens = new HashSet<string>(StringComparer.Ordinal);
        if (token is not null) tokens.Add(token.Trim());
        return ParquetFiles.IsParquet(input) ? OpenParquet(input, tokens, skip, ct) : OpenCsv(input, tokens, skip, separator, ct);
    }

    private static bool Missing(string text, HashSet<string> tokens) => Table.DefaultMissing.Contains(text) || tokens.Contains(text);

    private static (string[], string[], Func<IEnumerable<double[,]>>) OpenCsv(string input, HashSet<string> tokens, bool skip, char? separator, CancellationToken ct)
    {
        char sep = separator ?? ',';
        string[] names;
        bool[] text;
        using (var reader = new StreamReader(input, Encoding.UTF8, detectEncodingFromByteOrderMarks: true))
        {
            var records = new Table.RecordReader(reader, sep);
            if (!records.Next(out _, out var header, out _)) throw new FormatException("The CSV has no header row.");
            names = header.Select(v => v.Trim()).ToArray();
            Table.CheckHeader(names, sep, separator is null);
            text = new bool[names.Length];
            var number = new bool[names.Length];
            var firstText = new (int Line, string Value)?[names.Length];
            while (records.Next(out var raw, out var cells, out int line))
            {
                if (raw.Length == 1 && raw[0].Length == 0) continue;
                if (raw.Length != names.Length) throw new FormatException($"Line {line} has {raw.Length} fields; the header has {names.Length}.");
                for (int j = 0; j < names.Length; j++)
                {
                    if (text[j] && number[j]) continue;
                    var cell = cells[j].Trim();
                    if (Missing(cell, tokens) || Table.IsInfinityText(cell)) continue;
                    if (double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && !double.IsNaN(v)) number[j] = true;
                    else
                    {
                        text[j] = true;
                        firstText[j] ??= (line, cells[j]);
                    }
                }
                if ((line & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            }
            // As a table read whole: numbers and text in one column is an error unless such columns are passed through.
            for (int j = 0; j < names.Length; j++)
                if (text[j] && number[j] && !skip && firstText[j] is { } first)
                    throw new FormatException($"Column '{names[j]}' mixes numbers and text: line {first.Line} holds '{first.Value}'. Mark missing values with a token (--missing) or pass the column through (--skip-non-numeric).");
        }
        var numeric = Enumerable.Range(0, names.Length).Where(j => !text[j]).ToArray();
        var textNames = Enumerable.Range(0, names.Length).Where(j => text[j]).Select(j => $"'{names[j]}'").ToArray();
        if (textNames.Length > 0 && !skip)
            throw new UsageException($"--stream imputes numeric columns; {input} has text column{(textNames.Length > 1 ? "s" : "")} {string.Join(", ", textNames)} (pass them through with --skip-non-numeric; categorical columns need the whole table)");
        if (numeric.Length == 0) throw new UsageException($"{input} has no numeric column to impute");

        IEnumerable<double[,]> Read()
        {
            using var reader = new StreamReader(input, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
            var records = new Table.RecordReader(reader, sep);
            records.Next(out _, out _, out _);
            var rows = new List<double[]>(BlockRows);
            while (records.Next(out var raw, out var cells, out int line))
            {
                if (raw.Length == 1 && raw[0].Length == 0) continue;
                var row = new double[numeric.Length];
                for (int k = 0; k < numeric.Length; k++)
                {
                    var cell = cells[numeric[k]].Trim();
                    if (Missing(cell, tokens)) { row[k] = double.NaN; continue; }
                    if (Table.IsInfinityText(cell))
                        throw new FormatException($"Column '{names[numeric[k]]}', line {line}: '{cells[numeric[k]]}' is ±∞; observed values must be finite (mark a missing value with an empty cell, NA or NaN).");
                    row[k] = double.Parse(cell, NumberStyles.Float, CultureInfo.InvariantCulture);
                }
                rows.Add(row);
                if (rows.Count == BlockRows)
                {
                    ct.ThrowIfCancellationRequested();
                    yield return Block(rows);
                    rows.Clear();
                }
            }
            if (rows.Count > 0) yield return Block(rows);
        }
        return (numeric.Select(j => names[j]).ToArray(), names.Where((_, j) => !numeric.Contains(j)).ToArray(), Read);
    }

    private static (string[], string[], Func<IEnumerable<double[,]>>) OpenParquet(string input, HashSet<string> tokens, bool skip, CancellationToken ct)
    {
        string[] names;
        int[] numeric;
        using (var reader = ParquetFiles.Reader.Open(input))
        {
            names = reader.Fields.Select(f => f.Name).ToArray();
            // A string column of numbers is numeric, as in a CSV file: its cells tell, read once.
            var stringColumns = Enumerable.Range(0, names.Length).Where(j => !ParquetFiles.IsNumeric(reader.Fields[j])).ToArray();
            var number = new bool[names.Length];
            var firstText = new (long Row, string Value)?[names.Length];
            long offset = 0;
            for (int g = 0; g < reader.RowGroups && stringColumns.Length > 0; g++)
            {
                ct.ThrowIfCancellationRequested();
                var columns = reader.ReadGroup(g);
                foreach (var j in stringColumns)
                {
                    var cells = (string?[])columns[j];
                    for (int i = 0; i < cells.Length; i++)
                        if (!ParquetFiles.TryNumber(cells, i, tokens, out var v)) firstText[j] ??= (offset + i + 1, cells[i]!);
                        else if (!double.IsNaN(v)) number[j] = true;
                }
                offset += columns.Length == 0 ? 0 : columns[0].Length;
            }
            foreach (var j in stringColumns)
                if (number[j] && firstText[j] is { } first && !skip)
                    throw new FormatException($"Column '{names[j]}' mixes numbers and text: row {first.Row} holds '{first.Value}'. Mark missing values with a token (--missing) or pass the column through (--skip-non-numeric).");
            numeric = Enumerable.Range(0, names.Length).Where(j => ParquetFiles.IsNumeric(reader.Fields[j]) || firstText[j] is null).ToArray();
            var strings = Enumerable.Range(0, names.Length).Except(numeric).Select(j => $"'{names[j]}'").ToArray();
            if (strings.Length > 0 && !skip)
                throw new UsageException($"--stream imputes numeric columns; {input} has string column{(strings.Length > 1 ? "s" : "")} {string.Join(", ", strings)} (pass them through with --skip-non-numeric; categorical columns need the whole table)");
        }
        if (numeric.Length == 0) throw new UsageException($"{input} has no numeric column to impute");

        IEnumerable<double[,]> Read()
        {
            using var reader = ParquetFiles.Reader.Open(input);
            var rows = new List<double[]>(BlockRows);
            for (int g = 0; g < reader.RowGroups; g++)
            {
                ct.ThrowIfCancellationRequested();
                var columns = reader.ReadGroup(g);
                int n = columns.Length == 0 ? 0 : columns[0].Length;
                for (int i = 0; i < n; i++)
                {
                    var row = new double[numeric.Length];
                    for (int k = 0; k < numeric.Length; k++)
                        row[k] = columns[numeric[k]] is string?[] cells
                            ? ParquetFiles.TryNumber(cells, i, tokens, out var v) ? v : double.NaN
                            : ParquetFiles.Value(columns[numeric[k]], i);
                    rows.Add(row);
                    if (rows.Count == BlockRows)
                    {
                        yield return Block(rows);
                        rows.Clear();
                    }
                }
            }
            if (rows.Count > 0) yield return Block(rows);
        }
        return (numeric.Select(j => names[j]).ToArray(), names.Where((_, j) => !numeric.Contains(j)).ToArray(), Read);
    }

    private static double[,] Block(List<double[]> rows)
    {
        int q = rows[0].Length;
        var block = new double[rows.Count, q];
        for (int i = 0; i < rows.Count; i++)
            for (int k = 0; k < q; k++) block[i, k] = rows[i][k];
        return block;
    }
}
