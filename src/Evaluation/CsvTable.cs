using System.Globalization;

namespace EMFlow.Evaluation;

/// <summary>
/// The files the protocol shares with other tools: numeric tables (read by <see cref="Table"/>), 0/1 mask files and
/// one-id-per-line fold files, so that identical masks and folds can be scored elsewhere.
/// </summary>
public static class CsvTable
{
    /// <summary>Reads a numeric table with a header row.</summary>
    /// <param name="path">The CSV file.</param>
    /// <returns>Column names (p) and values (n, p), NaN for empty cells (also "NA" and "NaN").</returns>
    /// <exception cref="FormatException">A row with another number of cells, or a cell that is not a number (the message names line and column).</exception>
    public static (string[] Columns, double[,] Values) Read(string path)
    {
        // The library's reader: one set of rules for cells, missing spellings and error messages everywhere.
        var table = Table.Read(path);
        if (table.CategoricalColumns.Count > 0)
            throw new FormatException($"Column '{table.CategoricalColumns[0]}' of {path} is not numeric; the protocol scores tables of numeric columns (drop it first).");
        return (table.ColumnNames.ToArray(), table.ToMatrix());
    }

    /// <summary>Reads a table of numeric and categorical columns with a header row: a column with no number in it is
    /// categorical, and so is each column named in <paramref name="categorical"/> (<see cref="Table.Read(string, IEnumerable{string}, bool, char?, IEnumerable{string})"/>'s rules).</summary>
    /// <param name="path">The CSV file.</param>
    /// <param name="categorical">Names of numeric columns to read as categorical (integer codes); null for none.</param>
    /// <returns>Column names (p), values (n, p) with NaN for missing cells and each categorical cell the index of its
    /// category in that column's list of categories, the kind of each column (p), and per column its
    /// categories in code order (null for a numeric column).</returns>
    /// <exception cref="FormatException">As <see cref="Table.Read(string, IEnumerable{string}, bool, char?, IEnumerable{string})"/>:
    /// a ragged row, an infinite cell, or a column mixing numbers and text (the message names line and column).</exception>
    /// <exception cref="ArgumentException">A name in <paramref name="categorical"/> is not a column of the file.</exception>
    public static (string[] Columns, double[,] Values, ColumnKind[] Kinds, IReadOnlyList<string>?[] Categories) ReadMixed(string path, IEnumerable<string>? categorical = null)
    {
        var table = Table.Read(path, categorical: categorical);
        var columns = table.ImputedColumns.ToArray();
        var kinds = table.ColumnKinds.ToArray();
        var categories = columns.Select((c, j) => kinds[j] == ColumnKind.Categorical ? table.Categories(c) : null).ToArray();
        return (columns, table.ToMixedMatrix(), kinds, categories);
    }

    /// <summary>Reads a 0/1 mask with a header row (1 = missing, the entry to hide).</summary>
    /// <param name="path">The CSV file, (n, p) cells after the header.</param>
    /// <returns>(n, p) true where the file holds 1.</returns>
    /// <exception cref="FormatException">A cell other than 0 or 1, or a ragged row.</exception>
    public static bool[,] ReadMask(string path)
    {
        var (columns, v) = Read(path);
        var mask = new bool[v.GetLength(0), v.GetLength(1)];
        for (int i = 0; i < v.GetLength(0); i++)
            for (int j = 0; j < v.GetLength(1); j++)
                mask[i, j] = v[i, j] switch
                {
                    0.0 => false,
                    1.0 => true,
                    _ => throw new FormatException($"{path}, line {i + 2}, column '{columns[j]}': a mask cell must be 0 or 1; got {v[i, j]}."),
                };
        return mask;
    }

    /// <summary>Reads one integer fold id per line; a first line that is not an integer is taken as a header.</summary>
    /// <param name="path">The file.</param>
    /// <returns>(n) fold ids in file order.</returns>
    /// <exception cref="FormatException">A later line that is not an integer.</exception>
    public static int[] ReadFolds(string path)
    {
        var lines = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        if (lines.Count > 0 && !int.TryParse(lines[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out _)) lines.RemoveAt(0);
        return lines.Select((l, i) => int.TryParse(l, NumberStyles.Integer, CultureInfo.InvariantCulture, out var f)
            ? f
            : throw new FormatException($"{path}: '{l}' is not an integer fold id (data line {i + 1}).")).ToArray();
    }

    /// <summary>Writes a 0/1 mask with a header row c0, c1, …, the format <see cref="ReadMask"/> reads.</summary>
    public static void WriteMask(string path, bool[,] mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        using var w = new StreamWriter(path);
        w.WriteLine(string.Join(",", Enumerable.Range(0, mask.GetLength(1)).Select(j => $"c{j}")));
        for (int i = 0; i < mask.GetLength(0); i++)
            w.WriteLine(string.Join(",", Enumerable.Range(0, mask.GetLength(1)).Select(j => mask[i, j] ? "1" : "0")));
    }
}
