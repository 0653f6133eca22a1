using System.Globalization;
using EMFlow.Cli;
using Parquet;
using Parquet.Schema;

namespace EMFlow.Tests;

/// <summary>emflow impute on Parquet files, and the streamed transform of <c>--load</c>.</summary>
public sealed class ParquetStreamingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("emflow-parquet-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = App.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private static readonly string[] Quick = { "--iterations", "1", "--epochs", "1", "--batch-size", "64", "--threads", "1", "--seed", "4", "--start", "auto", "--quiet" };

    /// <summary>Correlated columns of five types: d (double, nulls and a NaN), f (float, nulls), i (int32, nulls),
    /// l (int64, required, complete) and s (string, a few nulls).</summary>
    private static (DataField[] Fields, Array[] Columns) Typed(int n, int seed)
    {
        var rng = new Random(seed);
        var d = new double?[n];
        var f = new float?[n];
        var i = new int?[n];
        var l = new long?[n];
        var s = new string?[n];
        for (int r = 0; r < n; r++)
        {
            double a = rng.NextDouble() * 10;
            d[r] = r % 7 == 3 ? null : r == 5 ? double.NaN : a + rng.NextDouble() * 0.1;
            f[r] = r % 5 == 1 ? null : (float)(2 * a + rng.NextDouble());
            i[r] = r % 6 == 2 ? null : (int)Math.Round(a * a);
            l[r] = 1_000_000_007L * r + (long)(a * 1000);
            s[r] = r % 9 == 4 ? null : $"item, \"{r}\"";
        }
        var fields = new DataField[] { new DataField<double?>("d"), new DataField<float?>("f"), new DataField<int?>("i"), new DataField<long>("l"), new DataField<string>("s", nullable: true) };
        return (fields, new Array[] { d, f, i, l, s });
    }

    private static void WriteParquet(string path, DataField[] fields, Array[] columns) => Task.Run(async () =>
    {
        await using var stream = File.Create(path);
        await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(fields), stream);
        using var rg = writer.CreateRowGroup();
        for (int j = 0; j < fields.Length; j++)
        {
            switch (columns[j])
            {
                case double?[] d: await rg.WriteAsync<double>(fields[j], new ReadOnlyMemory<double?>(d)); break;
                case float?[] f: await rg.WriteAsync<float>(fields[j], new ReadOnlyMemory<float?>(f)); break;
                case int?[] i: await rg.WriteAsync<int>(fields[j], new ReadOnlyMemory<int?>(i)); break;
                case long?[] l: await rg.WriteAsync<long>(fields[j], new ReadOnlyMemory<long>(l.Select(v => v!.Value).ToArray())); break;
                case string?[] s: await rg.WriteAsync(fields[j], s!); break;
            }
        }
    }).GetAwaiter().GetResult();

    /// <summary>A file's fields and, per column, its values over every row group as a nullable array of its type.</summary>
    private static (DataField[] Fields, Array[] Columns) ReadParquet(string path) => Task.Run(async () =>
    {
        await using var reader = await ParquetReader.CreateAsync(path);
        var fields = reader.Schema.GetDataFields();
        var parts = fields.Select(_ => new List<Array>()).ToArray();
        for (int g = 0; g < reader.RowGroupCount; g++)
        {
            using var rg = reader.OpenRowGroupReader(g);
            int n = (int)rg.RowCount;
            for (int j = 0; j < fields.Length; j++)
            {
                var t = fields[j].ClrType;
                if (t == typeof(string) || t == typeof(ReadOnlyMemory<char>)) { var v = new string[n]; await rg.ReadAsync(fields[j], v.AsMemory()); parts[j].Add(v); }
                else if (t == typeof(double)) parts[j].Add(await Column<double>(rg, fields[j], n));
                else if (t == typeof(float)) parts[j].Add(await Column<float>(rg, fields[j], n));
                else if (t == typeof(int)) parts[j].Add(await Column<int>(rg, fields[j], n));
                else parts[j].Add(await Column<long>(rg, fields[j], n));
            }
        }
        var columns = parts.Select(p =>
        {
            var all = Array.CreateInstance(p[0].GetType().GetElementType()!, p.Sum(a => a.Length));
            int at = 0;
            foreach (var a in p) { Array.Copy(a, 0, all, at, a.Length); at += a.Length; }
            return all;
        }).ToArray();
        return (fields, columns);
    }).GetAwaiter().GetResult();

    private static async Task<T?[]> Column<T>(ParquetRowGroupReader rg, DataField field, int n) where T : struct
    {
        var values = new T?[n];
        if (field.IsNullable) { await rg.ReadAsync<T>(field, values.AsMemory()); return values; }
        var required = new T[n];
        await rg.ReadAsync<T>(field, required.AsMemory());
        for (int i = 0; i < n; i++) values[i] = required[i];
        return values;
    }

    private static bool Missing(object? v) => v is null || (v is double d && double.IsNaN(d)) || (v is float f && float.IsNaN(f));

    [Theory]
    [InlineData("gaussian-em")]
    [InlineData("emflow")]
    public void A_Parquet_round_trip_keeps_names_types_and_observed_values_bit_for_bit_and_imputes_nulls(string method)
    {
        var (fields, columns) = Typed(120, 1);
        var input = PathOf("in.parquet");
        WriteParquet(input, fields, columns);
        var output = PathOf("out.parquet");
        var args = new[] { "impute", input, "-o", output, "--method", method, "--skip-non-numeric", "--quiet" };
        var (code, _, err) = Run(method == "emflow" ? args.Concat(Quick).ToArray() : args);
        Assert.True(code == 0, err);

        var (outFields, outColumns) = ReadParquet(output);
        var (inFields, _) = ReadParquet(input);
        Assert.Equal(new[] { "d", "f", "i", "l", "s" }, outFields.Select(f => f.Name));
        Assert.Equal(inFields.Select(f => (f.Name, f.ClrType, f.IsNullable)), outFields.Select(f => (f.Name, f.ClrType, f.IsNullable)));
        Assert.Equal(new[] { typeof(double), typeof(float), typeof(int), typeof(long) }, outFields.Take(4).Select(f => f.ClrType));
        for (int j = 0; j < fields.Length; j++)
            for (int i = 0; i < 120; i++)
            {
                var before = columns[j].GetValue(i);
                var after = outColumns[j].GetValue(i);
                if (j == 4) Assert.Equal(before, after);     // passed through, nulls kept
                else if (Missing(before)) Assert.False(Missing(after), $"column {fields[j].Name}, row {i} is still missing");
                else if (before is double d) Assert.Equal(BitConverter.DoubleToInt64Bits(d), BitConverter.DoubleToInt64Bits((double)after!));
                else if (before is float f) Assert.Equal(BitConverter.SingleToInt32Bits(f), BitConverter.SingleToInt32Bits((float)after!));
                else Assert.Equal(before, after);
            }

        // The same table as CSV: observed numbers read back as the same values, imputed ones as the Parquet output's.
        var csv = PathOf("out.csv");
        (code, _, err) = Run(args.Take(3).Concat(new[] { csv, "--method", method, "--skip-non-numeric", "--quiet" }).Concat(method == "emflow" ? Quick : Array.Empty<string>()).ToArray());
        Assert.True(code == 0, err);
        var lines = File.ReadAllLines(csv);
        Assert.Equal("d,f,i,l,s", lines[0]);
        Assert.Equal(121, lines.Length);
        var row0 = lines[1].Split(',');
        Assert.Equal(((double)outColumns[0].GetValue(0)!).ToString("R", CultureInfo.InvariantCulture), row0[0]);
        Assert.Equal(((long)outColumns[3].GetValue(0)!).ToString(CultureInfo.InvariantCulture), row0[3]);
    }

    [Fact]
    public void A_Parquet_string_column_is_imputed_as_categorical_like_a_CSV_text_column()
    {
        var n = 90;
        var x = new double?[n];
        var colour = new string?[n];
        for (int i = 0; i < n; i++)
        {
            var k = i % 3;
            // x is missing only where the colour is observed, so every missing colour has an x to go by.
            x[i] = i % 8 == 0 && i % 7 != 2 ? null : k * 10 + (i % 5) * 0.1;
            colour[i] = i % 7 == 2 ? null : new[] { "red", "green", "blue" }[k];
        }
        var input = PathOf("shop.parquet");
        WriteParquet(input, new DataField[] { new DataField<double?>("x"), new DataField<string>("colour", nullable: true) }, new Array[] { x, colour });
        var output = PathOf("shop-done.parquet");
        var (code, _, err) = Run("impute", input, "-o", output, "--method", "knn", "--quiet");
        Assert.True(code == 0, err);
        var (_, columns) = ReadParquet(output);
        var done = (string?[])columns[1];
        for (int i = 0; i < n; i++)
            Assert.Equal(colour[i] ?? new[] { "red", "green", "blue" }[i % 3], done[i]);
    }

    /// <summary>A CSV of n rows over a, b, c with cells missing in every column, in a seeded pattern.</summary>
    [Fact]
    public void A_streamed_fit_reads_a_Parquet_file_and_writes_it_back_with_its_types_and_observed_values()
    {
        var (fields, columns) = Typed(150, 2);
        var input = PathOf("in.parquet");
        WriteParquet(input, fields, columns);
        var output = PathOf("out.parquet");
        var (code, _, err) = Run(new[] { "impute", input, "-o", output, "--stream", "--sample-rows", "60", "--skip-non-numeric" }
            .Concat(Quick).ToArray());
        Assert.True(code == 0, err);
        var (outFields, outColumns) = ReadParquet(output);
        Assert.Equal(fields.Select(f => (f.Name, f.ClrType)), outFields.Select(f => (f.Name, f.ClrType)));
        for (int j = 0; j < fields.Length; j++)
            for (int i = 0; i < 150; i++)
            {
                var before = columns[j].GetValue(i);
                var after = outColumns[j].GetValue(i);
                if (j == 4) Assert.Equal(before, after);
                else if (Missing(before)) Assert.False(Missing(after), $"column {fields[j].Name}, row {i} is still missing");
                else Assert.Equal(before, after);
            }

        // Without --skip-non-numeric the string column is named, in one line.
        (code, _, err) = Run(new[] { "impute", input, "-o", PathOf("o2.parquet"), "--stream" }.Concat(Quick).ToArray());
        Assert.Equal(App.BadInput, code);
        Assert.Contains("'s'", err);
        Assert.Single(err.TrimEnd().Split('\n'));
    }

    [Fact]
    public void A_string_column_of_numbers_is_numeric_on_every_path_as_in_a_CSV_file()
    {
        int n = 120;
        var rng = new Random(5);
        var a = new double?[n];
        var t = new string?[n];
        for (int r = 0; r < n; r++)
        {
            double v = rng.NextDouble() * 10;
            a[r] = r % 7 == 3 ? null : v;
            t[r] = r % 9 == 4 ? null : r % 11 == 6 ? "x" : (2 * v + rng.NextDouble()).ToString("R", CultureInfo.InvariantCulture);
        }
        var fields = new DataField[] { new DataField<double?>("a"), new DataField<string>("t", nullable: true) };
        var input = PathOf("strings.parquet");
        WriteParquet(input, fields, new Array[] { a, t });
        var model = PathOf("m.emflow");
        var (code, _, err) = Run(new[] { "impute", input, "-o", PathOf("fit.parquet"), "--missing", "x", "--model", model }.Concat(Quick).ToArray());
        Assert.True(code == 0, err);
        foreach (var args in new[] { new[] { "--load", model, "-q" }, new[] { "--stream" }.Concat(Quick).ToArray() })
        {
            var output = PathOf($"out-{args[0].TrimStart('-')}.parquet");
            (code, _, err) = Run(new[] { "impute", input, "-o", output, "--missing", "x" }.Concat(args).ToArray());
            Assert.True(code == 0, $"{args[0]}: {err}");
            var (_, outColumns) = ReadParquet(output);
            for (int r = 0; r < n; r++)
            {
                var before = t[r];
                var after = (string?)outColumns[1].GetValue(r);
                if (before is null || before == "x") Assert.True(double.TryParse(after, NumberStyles.Float, CultureInfo.InvariantCulture, out _), $"{args[0]}: row {r} holds '{after}'");
                else Assert.Equal(before, after);
            }
        }

        // Text among the numbers: named with its row on the streamed paths too.
        t[50] = "oops";
        WriteParquet(input, fields, new Array[] { a, t });
        (code, _, err) = Run(new[] { "impute", input, "-o", PathOf("bad.parquet"), "--missing", "x", "--stream" }.Concat(Quick).ToArray());
        Assert.Equal(App.BadInput, code);
        Assert.Contains("row 51 holds 'oops'", err);
        (code, _, err) = Run("impute", input, "-o", PathOf("bad.parquet"), "--missing", "x", "--load", model, "-q");
        Assert.Equal(App.BadInput, code);
        Assert.Contains("'oops'", err);
    }

    private string WriteCsv(string name, int n, int seed)
    {
        var rng = new Random(seed);
        using var w = new StreamWriter(PathOf(name));
        w.Write("a,b,c\n");
        for (int i = 0; i < n; i++)
        {
            double a = rng.NextDouble() * 4, b = Math.Sin(a) + 0.1 * rng.NextDouble(), c = a * b + rng.NextDouble();
            string Cell(double v) => rng.NextDouble() < 0.15 ? "" : v.ToString("F4", CultureInfo.InvariantCulture);
            w.Write($"{Cell(a)},{Cell(b)},{Cell(c)}\n");
        }
        return PathOf(name);
    }

    [Fact]
    public void A_streamed_load_over_several_blocks_writes_the_bytes_the_whole_table_gives()
    {
        var model = PathOf("m.emflow");
        var (code, _, err) = Run(new[] { "impute", WriteCsv("train.csv", 400, 1), "-o", PathOf("train-done.csv"), "--model", model }.Concat(Quick).ToArray());
        Assert.True(code == 0, err);
        // 20000 rows: three blocks of the default 8192, against one block holding the whole table.
        var big = WriteCsv("big.csv", 20_000, 2);
        (code, _, err) = Run("impute", big, "-o", PathOf("streamed.csv"), "--load", model, "--quiet");
        Assert.True(code == 0, err);
        (code, _, err) = Run("impute", big, "-o", PathOf("whole.csv"), "--load", model, "--block-rows", "1000000", "--quiet");
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(PathOf("whole.csv")), File.ReadAllBytes(PathOf("streamed.csv")));

        // The same table as Parquet, streamed into Parquet and into CSV: the same values.
        (code, _, err) = Run("impute", PathOf("whole.csv"), "-o", PathOf("complete.parquet"), "--method", "mean", "--quiet");
        Assert.True(code == 0, err);
        var (fields, complete) = ReadParquet(PathOf("complete.parquet"));
        var holes = complete.Select(c => (Array)c.Clone()).ToArray();
        var original = File.ReadAllLines(big).Skip(1).Select(l => l.Split(',')).ToArray();
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < original.Length; i++)
                if (original[i][j] == "") holes[j].SetValue(null, i);
        WriteParquet(PathOf("big.parquet"), fields, holes);
        (code, _, err) = Run("impute", PathOf("big.parquet"), "-o", PathOf("streamed.parquet"), "--load", model, "--quiet");
        Assert.True(code == 0, err);
        var (_, streamed) = ReadParquet(PathOf("streamed.parquet"));
        for (int j = 0; j < 3; j++) Assert.Equal((double?[])complete[j], (double?[])streamed[j]);
        (code, _, err) = Run("impute", PathOf("big.parquet"), "-o", PathOf("streamed-from-parquet.csv"), "--load", model, "--quiet");
        Assert.True(code == 0, err);
        var back = File.ReadAllLines(PathOf("streamed-from-parquet.csv")).Skip(1).Select(l => l.Split(',').Select(t => double.Parse(t, CultureInfo.InvariantCulture)).ToArray()).ToArray();
        for (int i = 0; i < back.Length; i += 97)
            for (int j = 0; j < 3; j++) Assert.Equal(((double?[])complete[j])[i], back[i][j]);
    }

    [Fact]
    public void A_streamed_load_reports_progress_as_plain_lines_and_a_cancelled_one_writes_nothing()
    {
        var model = PathOf("m.emflow");
        var (code, _, err) = Run(new[] { "impute", WriteCsv("train.csv", 200, 1), "-o", PathOf("t.csv"), "--model", model }.Concat(Quick).ToArray());
        Assert.True(code == 0, err);
        var input = WriteCsv("new.csv", 300, 5);
        var o = new StringWriter();
        var e = new StringWriter();
        code = App.Run(new[] { "impute", input, "-o", PathOf("o.csv"), "--load", model }, o, e);
        Assert.True(code == 0, e.ToString());
        Assert.Contains("rows imputed", e.ToString());
        Assert.Contains("of 300 rows with the model in", o.ToString());

        code = App.Run(new[] { "impute", input, "-o", PathOf("c.csv"), "--load", model }, new StringWriter(), e, new CancellationToken(canceled: true));
        Assert.Equal(App.Cancelled, code);
        Assert.False(File.Exists(PathOf("c.csv")));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("truncated")]
    public void A_bad_Parquet_file_exits_2_with_one_line_and_writes_nothing(string damage)
    {
        var good = PathOf("good.parquet");
        var (fields, columns) = Typed(50, 2);
        WriteParquet(good, fields, columns);
        var bad = PathOf("bad.parquet");
        File.WriteAllBytes(bad, damage == "garbage" ? "a,b\n1,2\n"u8.ToArray() : File.ReadAllBytes(good)[..200]);
        var (code, _, err) = Run("impute", bad, "-o", PathOf("o.parquet"), "--method", "mean");
        Assert.Equal(App.BadInput, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains("bad.parquet", err);
        Assert.False(File.Exists(PathOf("o.parquet")));
    }

    [Fact]
    public void A_Parquet_column_of_another_type_exits_2_naming_it()
    {
        var input = PathOf("flags.parquet");
        Task.Run(async () =>
        {
            var x = new DataField<double?>("x");
            var flag = new DataField<bool>("flag");
            await using var stream = File.Create(input);
            await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(x, flag), stream);
            using var rg = writer.CreateRowGroup();
            await rg.WriteAsync<double>(x, new ReadOnlyMemory<double?>(new double?[] { 1, null, 3 }));
            await rg.WriteAsync<bool>(flag, new ReadOnlyMemory<bool>(new[] { true, false, true }));
        }).GetAwaiter().GetResult();
        var (code, _, err) = Run("impute", input, "-o", PathOf("o.csv"), "--method", "mean");
        Assert.Equal(App.BadInput, code);
        Assert.Contains("'flag'", err);
        Assert.Contains("CSV", err);
    }
}
