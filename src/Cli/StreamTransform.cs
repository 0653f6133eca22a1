using System.Diagnostics;
using System.Globalization;
using System.Text;
using Spectre.Console;

namespace EMFlow.Cli;

/// <summary>
/// <c>emflow impute INPUT --load MODEL -o OUTPUT</c> for a model that stores its column names: the rows are read,
/// imputed and written a block at a time (<see cref="DefaultBlockRows"/> rows, or a Parquet input's row groups), so
/// memory does not grow with the number of rows. Every imputer imputes each row from the fitted model and that row
/// alone; blocks of the default size gave the whole table's output byte for byte on every table tried (the
/// command-line tests compare them), while much smaller blocks can change the last digits, since batched linear
/// algebra rounds by the batch it is given.
/// </summary>
/// <remarks>
/// The same rules as a table read whole: the model's columns must hold numbers or missing cells, a CSV column that
/// the model does not know is an error unless it holds text and <c>--skip-non-numeric</c> passes it through, a
/// model column with no observed value and a table with no rows are errors. Some of these are known only at the end
/// of the file; the output goes to a temporary file that replaces OUTPUT only when all is well, so an error or a
/// cancellation leaves nothing written.
/// </remarks>
internal static class StreamTransform
{
    /// <summary>Rows per block: two of the 4096-row chunks in which a whole-table pass goes through the flow
    /// (Training.fs), so that blocks cut the table where that pass cuts it too; (8192, 16) doubles are 1 MiB.</summary>
    public const int DefaultBlockRows = 8192;

    /// <summary>What the transform did, for the summary line.</summary>
    public sealed record Summary(long Rows, long MissingCells, int Columns);

    /// <summary>Streams <paramref name="input"/> through <paramref name="imputer"/> (fitted with column names) into
    /// <paramref name="output"/>.</summary>
    /// <param name="blockRows">Rows per block of a CSV input, and per row group of a Parquet output written from CSV
    /// (a Parquet input keeps its row groups, cut into blocks of at most this many rows).</param>
    /// <param name="progress">Rows done and the fraction of the input read, or null.</param>
    public static Summary Run(Imputer imputer, string input, string output, string? token, bool skip, char? separator, int blockRows,
        Action<long, double>? progress, CancellationToken ct)
    {
        var fitted = imputer.ColumnNames ?? throw new InvalidOperationException("The model stores no column names.");
        return ParquetFiles.IsParquet(input)
            ? RunParquet(imputer, fitted, input, output, token, skip, blockRows, progress, ct)
            : RunCsv(imputer, fitted, input, output, token, skip, separator, blockRows, progress, ct);
    }

    /// <summary>The file's columns that the model imputes (file order), or an exception naming what does not match.</summary>
    private static int[] ModelColumns(IReadOnlyList<string> fitted, string[] names, string input)
    {
        // The library's own message naming the missing and the unknown columns, as the whole-table path gives it
        // (text columns, which the whole-table path would have passed through, are named among the unknown ones).
        var model = names.Select((n, j) => (n, j)).Where(e => fitted.Contains(e.n, StringComparer.Ordinal)).Select(e => e.j).ToArray();
        if (model.Length != fitted.Count)
            Imputer.ColumnOrder("columnNames", fitted, names, names.Length);
        return model;
    }

    private static Summary RunCsv(Imputer imputer, IReadOnlyList<string> fitted, string input, string output, string? token, bool skip, char? separator,
        int blockRows, Action<long, double>? progress, CancellationToken ct)
    {
        var tokens = new HashSet<string>(StringComparer.Ordinal);
        if (token is not null) tokens.Add(token.Trim());
        using var file = new FileStream(input, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var reader = new StreamReader(file, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        char sep = separator ?? ',';
        var records = new Table.RecordReader(reader, sep);
        if (!records.Next(out var header, out var headerValues, out _))
            throw new FormatException("The CSV has no header row.");
        var names = headerValues.Select(v => v.Trim()).ToArray();
        int p = names.Length;
        Table.CheckHeader(names, sep, separator is null);
        string newLine = records.LastLineEnding ?? "\n";
        var model = ModelColumns(fitted, names, input);
        var extra = Enumerable.Range(0, p).Except(model).ToArray();
        if (extra.Length > 0 && !skip)
            throw new UsageException($"--load imputes the model's columns ({string.Join(", ", fitted.Select(n => $"'{n}'"))}); {input} also has {string.Join(", ", extra.Select(j => $"'{names[j]}'"))}: "
                + "a numeric column the model was not fitted on must be removed from the file, and text columns can pass through with --skip-non-numeric");
        bool[] numeric = Enumerable.Range(0, p).Select(j => model.Contains(j)).ToArray();
        var modelNames = model.Select(j => names[j]).ToArray();
        var observed = new bool[model.Length];
        var hasText = new bool[p];

        using var sink = TableSink.Create(output, names, numeric, null, header, sep, newLine);
        var rows = new List<string[]>(blockRows);
        var parsed = new List<double[]>(blockRows);
        long done = 0, missingCells = 0;
        int pendingBlank = 0;

        void Flush()
        {
            if (rows.Count == 0) return;
            ct.ThrowIfCancellationRequested();
            var values = new double[rows.Count, model.Length];
            for (int i = 0; i < rows.Count; i++)
                for (int k = 0; k < model.Length; k++) values[i, k] = parsed[i][k];
            var completed = imputer.Transform(values, modelNames, cancellationToken: ct);
            for (int i = 0; i < rows.Count; i++)
                for (int k = 0; k < model.Length; k++)
                    if (double.IsNaN(values[i, k]))
                        rows[i][model[k]] = completed[i, k].ToString("R", CultureInfo.InvariantCulture);
            sink.WriteFields(rows);
            done += rows.Count;
            progress?.Invoke(done, file.Length == 0 ? 1 : (double)file.Position / file.Length);
            rows.Clear();
            parsed.Clear();
        }

        // The model's cells of one record as numbers, NaN where missing, by Table.Read's rules.
        double[] Parse(string[] cells, int line)
        {
            var row = new double[model.Length];
            for (int k = 0; k < model.Length; k++)
            {
                var text = cells[model[k]].Trim();
                if (Table.DefaultMissing.Contains(text) || tokens.Contains(text))
                {
                    row[k] = double.NaN;
                    missingCells++;
                    continue;
                }
                bool number = double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && !double.IsNaN(v);
                if ((number && double.IsInfinity(v)) || (!number && Table.IsInfinityText(text)))
                    throw new FormatException($"Column '{modelNames[k]}', line {line}: '{cells[model[k]]}' is {(text.StartsWith('-') ? "-" : "+")}∞; observed values must be finite (mark a missing value with an empty cell, NA or NaN).");
                if (!number)
                    throw new FormatException($"Column '{modelNames[k]}', which the model imputes as numeric, holds text: line {line} holds '{cells[model[k]]}'. Mark missing values with a token (--missing) or fix the cell.");
                row[k] = v;
                observed[k] = true;
            }
            return row;
        }

        while (records.Next(out var raw, out var cells, out int line))
        {
            // Blank lines as Table.Read takes them: not records of a table with several columns; with one column,
            // missing cells unless only blank lines follow.
            if (raw.Length == 1 && raw[0].Length == 0)
            {
                if (p == 1) pendingBlank++;
                continue;
            }
            for (; pendingBlank > 0; pendingBlank--)
            {
                rows.Add(new[] { "" });
                parsed.Add(Parse(new[] { "" }, line));
                if (rows.Count == blockRows) Flush();
            }
            if (raw.Length != p)
                throw new FormatException($"Line {line} has {raw.Length} fields; the header has {p}.");
            foreach (var j in extra)
                if (!hasText[j])
                {
                    var text = cells[j].Trim();
                    hasText[j] = !(Table.DefaultMissing.Contains(text) || tokens.Contains(text))
                        && !(double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && !double.IsNaN(v));
                }
            rows.Add(raw);
            parsed.Add(Parse(cells, line));
            if (rows.Count == blockRows) Flush();
        }
        Flush();
        Finish(input, done, observed, modelNames);
        // A passed-through column must be text: one of numbers only would be a numeric column the model does not know.
        if (extra.FirstOrDefault(j => !hasText[j], -1) is var numberOnly and >= 0)
            Imputer.ColumnOrder("columnNames", fitted, modelNames.Append(names[numberOnly]).ToArray(), modelNames.Length + 1);
        sink.Commit();
        return new Summary(done, missingCells, model.Length);
    }

    private static void Finish(string input, long rows, bool[] observed, string[] names)
    {
        if (rows == 0) throw new UsageException($"{input} has a header but no rows");
        for (int k = 0; k < observed.Length; k++)
            if (!observed[k])
                throw new UsageException($"column '{names[k]}' has no observed value, so it cannot be imputed; drop it or fill it");
    }

    private static Summary RunParquet(Imputer imputer, IReadOnlyList<string> fitted, string input, string output, string? token, bool skip, int blockRows,
        Action<long, double>? progress, CancellationToken ct)
    {
        var tokens = new HashSet<string>(StringComparer.Ordinal);
        if (token is not null) tokens.Add(token.Trim());
        using var reader = ParquetFiles.Reader.Open(input);
        var names = reader.Fields.Select(f => f.Name).ToArray();
        var model = ModelColumns(fitted, names, input);
        var extra = Enumerable.Range(0, names.Length).Except(model).ToArray();
        if (extra.FirstOrDefault(j => ParquetFiles.IsNumeric(reader.Fields[j]), -1) is var unknown and >= 0)
            Imputer.ColumnOrder("columnNames", fitted, model.Select(j => names[j]).Append(names[unknown]).ToArray(), model.Length + 1);
        if (extra.Length > 0 && !skip)
            throw new UsageException($"--load imputes the model's columns ({string.Join(", ", fitted.Select(n => $"'{n}'"))}); {input} also has {string.Join(", ", extra.Select(j => $"'{names[j]}'"))}: "
                + "a numeric column the model was not fitted on must be removed from the file, and string columns can pass through with --skip-non-numeric");
        var modelNames = model.Select(j => names[j]).ToArray();
        var numeric = Enumerable.Range(0, names.Length).Select(j => model.Contains(j)).ToArray();
        var observed = new bool[model.Length];

        using var sink = TableSink.Create(output, names, numeric, reader.Schema, null, ',', "\n");
        long done = 0, missingCells = 0;
        for (int g = 0; g < reader.RowGroups; g++)
        {
            ct.ThrowIfCancellationRequested();
            var columns = reader.ReadGroup(g);
            int n = columns.Length == 0 ? 0 : columns[0].Length;
            for (int start = 0; start < n; start += blockRows)
            {
                ct.ThrowIfCancellationRequested();
                int len = Math.Min(blockRows, n - start);
                var values = new double[len, model.Length];
                for (int k = 0; k < model.Length; k++)
                    for (int i = 0; i < len; i++)
                    {
                        // A string column of the model holds numbers, as the whole-table read found when it was fitted.
                        double v;
                        if (columns[model[k]] is string?[] strings)
                        {
                            if (!ParquetFiles.TryNumber(strings, start + i, tokens, out v))
                                throw new FormatException($"Column '{modelNames[k]}', which the model imputes as numeric, holds text: row {done + i + 1} holds '{strings[start + i]}'. Mark missing values with a token (--missing) or fix the cell.");
                        }
                        else v = ParquetFiles.Value(columns[model[k]], start + i);
                        if (double.IsInfinity(v))
                            throw new FormatException($"Column '{modelNames[k]}', row {done + i + 1}: {v}; observed values must be finite (mark a missing value with a null or NaN).");
                        values[i, k] = v;
                        if (double.IsNaN(v)) missingCells++;
                        else observed[k] = true;
                    }
                var completed = imputer.Transform(values, modelNames, cancellationToken: ct);
                for (int k = 0; k < model.Length; k++)
                    for (int i = 0; i < len; i++)
                        if (double.IsNaN(values[i, k])) ParquetFiles.SetImputed(columns[model[k]], start + i, completed[i, k]);
                done += len;
                progress?.Invoke(done, reader.Rows == 0 ? 1 : (double)done / reader.Rows);
            }
            sink.WriteColumns(columns);
        }
        Finish(input, done, observed, modelNames);
        sink.Commit();
        return new Summary(done, missingCells, model.Length);
    }

    /// <summary>Runs the transform under a progress bar on a terminal, or with a plain line on stderr at most every
    /// <see cref="Fitting.PlainInterval"/> otherwise.</summary>
    public static Summary WithProgress(IAnsiConsole console, bool showProgress, string title, TextWriter? plain, Func<Action<long, double>?, Summary> run)
    {
        if (!showProgress)
        {
            if (plain is null) return run(null);
            var clock = Stopwatch.StartNew();
            TimeSpan? last = null;
            return run((rows, fraction) =>
            {
                // The first block, then at most one line per interval.
                if (last is { } before && clock.Elapsed - before < Fitting.PlainInterval) return;
                last = clock.Elapsed;
                plain.WriteLine(string.Create(CultureInfo.InvariantCulture, $"emflow: {title}: {rows} rows imputed, {fraction * 100:F0}% of the input read after {clock.Elapsed.TotalSeconds:F0} s"));
                plain.Flush();
            });
        }
        Summary? result = null;
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1.0);
                result = run((rows, fraction) =>
                {
                    task.Value = fraction;
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"{title}: {rows} rows"));
                });
                task.Value = 1.0;
            });
        return result!;
    }
}
