using System.Globalization;
using System.Text;
using Parquet;
using Parquet.Schema;

namespace EMFlow.Cli;

/// <summary>
/// Parquet files for <c>emflow impute</c>, through Parquet.Net (managed code only; bench/README.md, "Streaming
/// transform", says why not ParquetSharp). Flat schemas of double, float, 32- and 64-bit integer and string columns are
/// read; a column of any other type, or a nested one, is rejected naming it. Each column's values come as a nullable
/// array of its type (<c>double?[]</c>, <c>float?[]</c>, <c>int?[]</c>, <c>long?[]</c>, <c>string?[]</c>), whether the
/// file declares it nullable or not, so that observed values travel untouched from reader to writer.
/// </summary>
internal static class ParquetFiles
{
    /// <summary>True when the path names a Parquet file (its extension, in any letter case).</summary>
    public static bool IsParquet(string path) => Path.GetExtension(path).Equals(".parquet", StringComparison.OrdinalIgnoreCase);

    /// <summary>The kinds of column read: the numeric ones are imputed, strings are text.</summary>
    private static readonly Type[] Supported = { typeof(double), typeof(float), typeof(int), typeof(long), typeof(string), typeof(ReadOnlyMemory<char>) };

    /// <summary>True for string columns, which a file's schema gives as <c>ReadOnlyMemory&lt;char&gt;</c>.</summary>
    public static bool IsText(DataField field) => field.ClrType == typeof(string) || field.ClrType == typeof(ReadOnlyMemory<char>);

    /// <summary>True for double, float, int and long columns.</summary>
    public static bool IsNumeric(DataField field) => !IsText(field);

    /// <summary>Parquet.Net is asynchronous; the command line is not. A pool thread keeps any synchronisation
    /// context of the caller (a test runner's) out of the continuations.</summary>
    internal static T Sync<T>(Func<Task<T>> work) => Task.Run(work).GetAwaiter().GetResult();

    internal static void Sync(Func<Task> work) => Task.Run(work).GetAwaiter().GetResult();

    /// <summary>A Parquet file open for reading one row group at a time.</summary>
    internal sealed class Reader : IDisposable
    {
        private readonly string _path;
        private readonly ParquetReader _reader;

        private Reader(string path, ParquetReader reader, DataField[] fields)
        {
            _path = path;
            _reader = reader;
            Fields = fields;
            RowGroups = reader.RowGroupCount;
            Rows = reader.RowGroups.Sum(g => g.RowCount);
        }

        /// <summary>The columns, in file order.</summary>
        public DataField[] Fields { get; }

        /// <summary>The schema, to write a file with the same columns.</summary>
        public ParquetSchema Schema => _reader.Schema;

        /// <summary>Number of row groups.</summary>
        public int RowGroups { get; }

        /// <summary>Number of rows over all row groups.</summary>
        public long Rows { get; }

        /// <summary>Opens a file; a file that is not Parquet, or is damaged, is an <see cref="InvalidDataException"/>
        /// naming it, and a column that cannot be read a <see cref="UsageException"/> naming the column.</summary>
        public static Reader Open(string path)
        {
            ParquetReader reader;
            try
            {
                reader = Sync(() => ParquetReader.CreateAsync(path));
            }
            catch (Exception e) when (e is not (OperationCanceledException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException))
            {
                throw new InvalidDataException($"{path} is not a readable Parquet file: {e.Message}", e);
            }
            try
            {
                var top = reader.Schema.Fields;
                foreach (var field in top)
                {
                    if (field is not DataField data || data.IsArray)
                        throw new UsageException($"column '{field.Name}' of {path} is a nested or repeated Parquet column; emflow reads flat columns of numbers and strings (convert the table to CSV)");
                    if (!Supported.Contains(data.ClrType))
                        throw new UsageException($"column '{field.Name}' of {path} holds {data.ClrType.Name} values; emflow reads Parquet columns of double, float, int32, int64 and string (convert the column, or the table to CSV)");
                }
                return new Reader(path, reader, top.Cast<DataField>().ToArray());
            }
            catch
            {
                Sync(async () => await reader.DisposeAsync());
                throw;
            }
        }

        /// <summary>The rows of one row group: per column, a nullable array of its type, (rows) each.</summary>
        public Array[] ReadGroup(int group)
        {
            try
            {
                return Sync(async () =>
                {
                    using var rg = _reader.OpenRowGroupReader(group);
                    int rows = checked((int)rg.RowCount);
                    var columns = new Array[Fields.Length];
                    for (int j = 0; j < Fields.Length; j++) columns[j] = await ReadColumn(rg, Fields[j], rows);
                    return columns;
                });
            }
            catch (Exception e) when (e is not (OperationCanceledException or UsageException))
            {
                throw new InvalidDataException($"{_path}: row group {group} cannot be read: {e.Message}", e);
            }
        }

        private static async Task<Array> ReadColumn(ParquetRowGroupReader rg, DataField field, int rows)
        {
            var type = field.ClrType;
            if (IsText(field))
            {
                var text = new string[rows];
                await rg.ReadAsync(field, text.AsMemory());
                return text;
            }
            if (type == typeof(double)) return await Read<double>(rg, field, rows);
            if (type == typeof(float)) return await Read<float>(rg, field, rows);
            if (type == typeof(int)) return await Read<int>(rg, field, rows);
            return await Read<long>(rg, field, rows);
        }

        private static async Task<T?[]> Read<T>(ParquetRowGroupReader rg, DataField field, int rows) where T : struct
        {
            var values = new T?[rows];
            if (field.IsNullable)
            {
                await rg.ReadAsync<T>(field, values.AsMemory());
                return values;
            }
            var required = new T[rows];
            await rg.ReadAsync<T>(field, required.AsMemory());
            for (int i = 0; i < rows; i++) values[i] = required[i];
            return values;
        }

        public void Dispose() => Sync(async () => await _reader.DisposeAsync());
    }

    /// <summary>A Parquet file written one row group at a time into a temporary file beside it, which replaces the
    /// destination only at <see cref="Commit"/>: a failure or a cancellation leaves no half-written file.</summary>
    internal sealed class Writer : IDisposable
    {
        private readonly string _path, _tmp;
        private readonly FileStream _stream;
        private readonly ParquetWriter _writer;
        private readonly DataField[] _fields;
        private bool _done;

        public Writer(string path, ParquetSchema schema)
        {
            _path = Path.GetFullPath(path);
            _tmp = Path.Combine(Path.GetDirectoryName(_path)!, $".{Path.GetFileName(_path)}.{Guid.NewGuid():N}.tmp");
            _fields = schema.GetDataFields();
            _stream = File.Create(_tmp);
            try
            {
                _writer = Sync(() => ParquetWriter.CreateAsync(schema, _stream));
            }
            catch
            {
                _stream.Dispose();
                File.Delete(_tmp);
                throw;
            }
        }

        /// <summary>Writes one row group: per column a nullable array of its type, all of one length; a column that
        /// the schema declares required must hold no null.</summary>
        public void WriteGroup(Array[] columns) => Sync(async () =>
        {
            using var rg = _writer.CreateRowGroup();
            for (int j = 0; j < _fields.Length; j++)
            {
                var f = _fields[j];
                switch (columns[j])
                {
                    case string?[] text: await rg.WriteAsync(f, text!); break;
                    case double?[] d: await Write(rg, f, d); break;
                    case float?[] s: await Write(rg, f, s); break;
                    case int?[] i: await Write(rg, f, i); break;
                    case long?[] l: await Write(rg, f, l); break;
                    default: throw new InvalidOperationException($"Column '{f.Name}': no writer for {columns[j].GetType().Name}.");
                }
            }
        });

        private static async Task Write<T>(ParquetRowGroupWriter rg, DataField field, T?[] values) where T : struct
        {
            if (field.IsNullable)
            {
                await rg.WriteAsync<T>(field, new ReadOnlyMemory<T?>(values));
                return;
            }
            var required = new T[values.Length];
            for (int i = 0; i < values.Length; i++) required[i] = values[i]!.Value;
            await rg.WriteAsync<T>(field, new ReadOnlyMemory<T>(required));
        }

        /// <summary>Closes the file and moves it to its destination.</summary>
        public void Commit()
        {
            Sync(async () => await _writer.DisposeAsync());
            _stream.Dispose();
            File.Move(_tmp, _path, overwrite: true);
            _done = true;
        }

        public void Dispose()
        {
            if (_done) return;
            try { Sync(async () => await _writer.DisposeAsync()); } catch (Exception) { /* the file is discarded anyway */ }
            _stream.Dispose();
            if (File.Exists(_tmp)) File.Delete(_tmp);
        }
    }

    /// <summary>A cell of a typed column as CSV text: numbers in round-trip form (a float's own shortest form),
    /// strings quoted when they hold the separator, a quote or a line break, null and NaN as <paramref name="missing"/>.</summary>
    public static string Text(Array column, int row, char separator, string missing = "") => column switch
    {
        double?[] d => d[row] is double v && !double.IsNaN(v) ? v.ToString("R", CultureInfo.InvariantCulture) : missing,
        float?[] s => s[row] is float v && !float.IsNaN(v) ? v.ToString("R", CultureInfo.InvariantCulture) : missing,
        int?[] i => i[row]?.ToString(CultureInfo.InvariantCulture) ?? missing,
        long?[] l => l[row]?.ToString(CultureInfo.InvariantCulture) ?? missing,
        string?[] t => t[row] is { } text ? Field(text, separator) : missing,
        _ => throw new InvalidOperationException($"No text form for {column.GetType().Name}."),
    };

    /// <summary>A text as a CSV field: quoted (quotes doubled) when it holds the separator, a quote or a line break.</summary>
    public static string Field(string text, char separator) =>
        text.IndexOfAny(new[] { separator, '"', '\r', '\n' }) >= 0 ? "\"" + text.Replace("\"", "\"\"") + "\"" : text;

    /// <summary>The value of a raw CSV field: the quotes of a quoted field removed and doubled quotes undone.</summary>
    public static string Unquoted(string raw)
    {
        var t = raw.Trim();
        return t.Length >= 2 && t[0] == '"' && t[^1] == '"' ? t[1..^1].Replace("\"\"", "\"") : raw;
    }

    /// <summary>A cell of a numeric column as a double, NaN where null or NaN (both missing).</summary>
    public static double Value(Array column, int row) => column switch
    {
        double?[] d => d[row] ?? double.NaN,
        float?[] s => s[row] is float v ? v : double.NaN,
        int?[] i => i[row] is int v ? v : double.NaN,
        long?[] l => l[row] is long v ? v : double.NaN,
        _ => throw new InvalidOperationException($"Not a numeric column: {column.GetType().Name}."),
    };

    /// <summary>A cell of a string column read as a number by a CSV's rules: NaN where null, blank, NA, NaN or one of
    /// <paramref name="tokens"/>; false when it holds other text.</summary>
    public static bool TryNumber(string?[] column, int row, HashSet<string> tokens, out double value)
    {
        value = double.NaN;
        var text = column[row]?.Trim();
        if (text is null || Table.DefaultMissing.Contains(text) || tokens.Contains(text)) return true;
        return Table.TryNumber(text, out value);
    }

    /// <summary>Sets a missing cell of a numeric column to an imputed value in the column's type: floats rounded to
    /// the nearest float, integers to the nearest integer (ties to even) within the type's range.</summary>
    public static void SetImputed(Array column, int row, double v)
    {
        switch (column)
        {
            case double?[] d: d[row] = v; break;
            case float?[] s: s[row] = (float)v; break;
            case int?[] i: i[row] = (int)Math.Clamp(Math.Round(v, MidpointRounding.ToEven), int.MinValue, int.MaxValue); break;
            case long?[] l: l[row] = (long)Math.Clamp(Math.Round(v, MidpointRounding.ToEven), -9.2e18, 9.2e18); break;
            // A string column of numbers, as a CSV file would hold them: the imputed value in round-trip form.
            case string?[] t: t[row] = v.ToString("R", CultureInfo.InvariantCulture); break;
            default: throw new InvalidOperationException($"Not a numeric column: {column.GetType().Name}.");
        }
    }

    /// <summary>How <see cref="AsCsv"/> writes a null: a text that Table.Read always takes for a missing cell.</summary>
    public const string CsvMissing = "NA";

    /// <summary>Every row group of a file as one table: per column a nullable array of its type, (n) each.</summary>
    public static Array[] ReadAll(Reader reader)
    {
        var groups = Enumerable.Range(0, reader.RowGroups).Select(reader.ReadGroup).ToArray();
        var n = checked((int)reader.Rows);
        var columns = new Array[reader.Fields.Length];
        for (int j = 0; j < columns.Length; j++)
        {
            columns[j] = Array.CreateInstance(groups.Length > 0 ? groups[0][j].GetType().GetElementType()! : typeof(object), n);
            int at = 0;
            foreach (var g in groups)
            {
                Array.Copy(g[j], 0, columns[j], at, g[j].Length);
                at += g[j].Length;
            }
        }
        return columns;
    }

    /// <summary>A whole Parquet table as CSV text with a header, so that <see cref="Table.Read(TextReader, IEnumerable{string}, bool, char?, IEnumerable{string})"/>
    /// applies the same rules to it as to a CSV file: nulls and NaN are <see cref="CsvMissing"/> (not empty, which in a
    /// one-column table would make blank lines, and trailing ones would be dropped), numbers in round-trip form.</summary>
    public static string AsCsv(DataField[] fields, Array[] columns)
    {
        var text = new StringBuilder();
        text.Append(string.Join(',', fields.Select(f => Field(f.Name, ',')))).Append('\n');
        int n = columns.Length == 0 ? 0 : columns[0].Length;
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < columns.Length; j++)
            {
                if (j > 0) text.Append(',');
                text.Append(Text(columns[j], i, ',', CsvMissing));
            }
            text.Append('\n');
        }
        return text.ToString();
    }
}
