using System.Globalization;

namespace EMFlow.Tests;

/// <summary>A seeded mixed table x, y, colour, z made in code: colour (red, green, blue) depends on x and y, z on all
/// three, so a good imputer predicts a missing colour from the other columns far better than the mode does.</summary>
internal static class MixedTestData
{
    public static readonly string[] Colours = { "blue", "green", "red" };   // codes 0, 1, 2: Table's (ordinal) order

    /// <summary>(n, 4): x, y, colour code (index into <see cref="Colours"/>), z; the copy with each cell missing with
    /// probability <paramref name="rate"/> (rows may lose every cell).</summary>
    public static (double[,] Complete, double[,] WithMissing) Table(int n, int seed, double rate = 0.15)
    {
        var rng = new Random(seed);
        var complete = new double[n, 4];
        var withMissing = new double[n, 4];
        for (int i = 0; i < n; i++)
        {
            double x = Normal(rng), y = 0.3 * x + Normal(rng);
            // The colour whose score is largest, with noise: red where x is large, green where y is, blue elsewhere.
            var score = new[] { -x - y + 0.5 * Normal(rng), 1.5 * y + 0.5 * Normal(rng), 1.5 * x + 0.5 * Normal(rng) };
            int colour = Array.IndexOf(score, score.Max());
            double z = x - y + 2.0 * (colour - 1) + 0.3 * Normal(rng);
            complete[i, 0] = 10 + 2 * x;
            complete[i, 1] = y;
            complete[i, 2] = colour;
            complete[i, 3] = z;
            for (int j = 0; j < 4; j++)
                withMissing[i, j] = rng.NextDouble() < rate ? double.NaN : complete[i, j];
        }
        return (complete, withMissing);
    }

    public static readonly ColumnKind[] Kinds = { ColumnKind.Numeric, ColumnKind.Numeric, ColumnKind.Categorical, ColumnKind.Numeric };

    /// <summary>The table as CSV text: colours as their names, numbers in round-trip form, missing cells empty.</summary>
    public static string Csv(double[,] data)
    {
        var lines = new List<string> { "x,y,colour,z" };
        for (int i = 0; i < data.GetLength(0); i++)
            lines.Add(string.Join(",", Enumerable.Range(0, 4).Select(j =>
                double.IsNaN(data[i, j]) ? "" : j == 2 ? Colours[(int)data[i, j]] : data[i, j].ToString("R", CultureInfo.InvariantCulture))));
        return string.Join("\n", lines) + "\n";
    }

    public static readonly string[] Names = { "x", "y", "colour", "z" };

    /// <summary>(n, 5): x, colour code, y, grade, z, and the copy with each cell missing with probability
    /// <paramref name="rate"/>. Two categorical columns: colour, as in the x, y, colour, z table, and grade, a number
    /// that is a category (codes 10, 20, 30, rising with y), so an imputer that returned a code's index or an
    /// indicator's value instead of the category would show.</summary>
    public static (double[,] Complete, double[,] WithMissing) Graded(int n, int seed, double rate = 0.15)
    {
        var (colours, _) = Table(n, seed, 0);
        var rng = new Random(seed + 1000);
        var complete = new double[n, 5];
        var withMissing = new double[n, 5];
        for (int i = 0; i < n; i++)
        {
            double y = colours[i, 1], noisy = y + 0.3 * Normal(rng);
            double grade = noisy < -0.5 ? 10 : noisy < 0.5 ? 20 : 30;
            complete[i, 0] = colours[i, 0];
            complete[i, 1] = colours[i, 2];
            complete[i, 2] = y;
            complete[i, 3] = grade;
            complete[i, 4] = colours[i, 3] + (grade - 20) / 10;
            for (int j = 0; j < 5; j++)
                withMissing[i, j] = rng.NextDouble() < rate ? double.NaN : complete[i, j];
        }
        return (complete, withMissing);
    }

    public static readonly ColumnKind[] GradedKinds = { ColumnKind.Numeric, ColumnKind.Categorical, ColumnKind.Numeric, ColumnKind.Categorical, ColumnKind.Numeric };

    public static readonly string[] GradedNames = { "x", "colour", "y", "grade", "z" };

    /// <summary>The graded table as CSV text: colours as their names, grades as integers (to be declared
    /// categorical), other numbers in round-trip form, missing cells empty.</summary>
    public static string GradedCsv(double[,] data)
    {
        var lines = new List<string> { string.Join(",", GradedNames) };
        for (int i = 0; i < data.GetLength(0); i++)
            lines.Add(string.Join(",", Enumerable.Range(0, 5).Select(j =>
                double.IsNaN(data[i, j]) ? "" : j == 1 ? Colours[(int)data[i, j]] : j == 3 ? ((int)data[i, j]).ToString(CultureInfo.InvariantCulture) : data[i, j].ToString("R", CultureInfo.InvariantCulture))));
        return string.Join("\n", lines) + "\n";
    }

    /// <summary>Share of the hidden colours imputed right.</summary>
    public static double Accuracy(double[,] complete, double[,] withMissing, double[,] imputed)
    {
        int right = 0, hidden = 0;
        for (int i = 0; i < complete.GetLength(0); i++)
            if (double.IsNaN(withMissing[i, 2]))
            {
                hidden++;
                if (imputed[i, 2] == complete[i, 2]) right++;
            }
        return (double)right / hidden;
    }

    /// <summary>Share of the hidden colours the mode of the observed colours gets right.</summary>
    public static double ModeAccuracy(double[,] complete, double[,] withMissing)
    {
        var counts = new int[3];
        for (int i = 0; i < withMissing.GetLength(0); i++)
            if (!double.IsNaN(withMissing[i, 2])) counts[(int)withMissing[i, 2]]++;
        int mode = Array.IndexOf(counts, counts.Max());
        var imputed = (double[,])withMissing.Clone();
        for (int i = 0; i < imputed.GetLength(0); i++)
            if (double.IsNaN(imputed[i, 2])) imputed[i, 2] = mode;
        return Accuracy(complete, withMissing, imputed);
    }

    private static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
