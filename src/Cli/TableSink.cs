using System.Globalization;
using System.Text;
using Parquet.Schema;

namespace EMFlow.Cli;

/// <summary>
/// The completed table's destination, CSV or Parquet by the file's extension, written block by block into a temporary
/// file beside it that replaces the destination only at <see cref="Commit"/>: a failure or a cancellation leaves no
/// half-written file (dispose without committing). Blocks come either as CSV fields as written (a CSV input, its
/// missing cells already replaced by the imputed values' round-trip text) or as typed columns (a Parquet input, its
/// missing cells already set).
/// </summary>
internal abstract class TableSink : IDisposable
{
    /// <summary>A sink for a table with these columns. <paramref name="numeric"/> marks the imputed numeric columns
    /// (a Parquet output from CSV gives them double columns, and the others string columns); <paramref name="schema"/>,
    /// for a Parquet input, is kept by a Parquet output; <paramref name="rawHeader"/>, for a CSV input, is the header
    /// a CSV output writes back as it was, with the input's <paramref name="separator"/> and <paramref name="newLine"/>.</summary>
    public static TableSink Create(string path, IReadOnlyList<string> names, bool[] numeric, ParquetSchema? schema,
        IReadOnlyList<string>? rawHeader, char separator, string newLine) =>
        ParquetFiles.IsParquet(path)
            ? new ParquetSink(path, schema ?? new ParquetSchema(names.Select((n, j) => numeric[j] ? (Field)new DataField<double?>(n) : new DataField<string>(n, nullable: true))), numeric)
            : new CsvSink(path, rawHeader ?? names.Select(n => ParquetFiles.Field(n, separator)).ToArray(), separator, newLine);

    /// <summary>Rows as CSV fields (quotes included), one array per row.</summary>
    public abstract void WriteFields(IReadOnlyList<string[]> rows);

    /// <summary>Rows as typed columns (<see cref="ParquetFiles"/>), one array per column.</summary>
    public abstract void WriteColumns(Array[] columns);

    /// <summary>Completes the file and moves it to its destination.</summary>
    public abstract void Commit();

    public abstract void Dispose();

    private sealed class CsvSink : TableSink
    {
        private readonly string _path, _tmp;
        private readonly StreamWriter _writer;
        private readonly char _separator;
        private readonly string _newLine;
        private bool _done;

        public CsvSink(string path, IReadOnlyList<string> header, char separator, string newLine)
        {
            _path = Path.GetFullPath(path);
            _tmp = Path.Combine(Path.GetDirectoryName(_path)!, $".{Path.GetFileName(_path)}.{Guid.NewGuid():N}.tmp");
            _separator = separator;
            _newLine = newLine;
            _writer = new StreamWriter(_tmp, false, new UTF8Encoding(false), 1 << 16);
            Record(header);
        }

        private void Record(IReadOnlyList<string> fields)
        {
            for (int j = 0; j < fields.Count; j++)
            {
                if (j > 0) _writer.Write(_separator);
                _writer.Write(fields[j]);
            }
            _writer.Write(_newLine);
        }

        public override void WriteFields(IReadOnlyList<string[]> rows)
        {
            foreach (var row in rows) Record(row);
        }

        public override void WriteColumns(Array[] columns)
        {
            int n = columns.Length == 0 ? 0 : columns[0].Length;
            var row = new string[columns.Length];
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < columns.Length; j++) row[j] = ParquetFiles.Text(columns[j], i, _separator);
                Record(row);
            }
        }

        public override void Commit()
        {
            _writer.Dispose();
            File.Move(_tmp, _path, overwrite: true);
            _done = true;
        }

        public override void Dispose()
        {
            if (_done) return;
            _writer.Dispose();
            if (File.Exists(_tmp)) File.Delete(_tmp);
        }
    }

    private sealed class ParquetSink(string path, ParquetSchema schema, bool[] numeric) : TableSink
    {
        private readonly ParquetFiles.Writer _writer = new(path, schema);

        public override void WriteFields(IReadOnlyList<string[]> rows)
        {
            // A CSV input: its numeric columns hold numbers or imputed values by now; its text is written unquoted,
            // an empty cell as null.
            var columns = new Array[numeric.Length];
            for (int j = 0; j < numeric.Length; j++)
            {
                if (numeric[j])
                {
                    var values = new double?[rows.Count];
                    for (int i = 0; i < rows.Count; i++)
                        values[i] = double.Parse(ParquetFiles.Unquoted(rows[i][j]).Trim(), NumberStyles.Float, CultureInfo.InvariantCulture);
                    columns[j] = values;
                }
                else
                {
                    var text = new string?[rows.Count];
                    for (int i = 0; i < rows.Count; i++)
                    {
                        var value = ParquetFiles.Unquoted(rows[i][j]);
                        text[i] = value.Length == 0 ? null : value;
                    }
                    columns[j] = text;
                }
            }
            _writer.WriteGroup(columns);
        }

        public override void WriteColumns(Array[] columns) => _writer.WriteGroup(columns);

        public override void Commit() => _writer.Commit();

        public override void Dispose() => _writer.Dispose();
    }
}
