using System.Globalization;

namespace EMFlow.Cli;

/// <summary>A command line or input the user must fix; the app prints the message on one line and exits with 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// The parsed words after the command name: positional words, <c>--name value</c> options and <c>--flag</c> switches.
/// Every option must be consumed by the command; a leftover one is reported, so a typo never passes silently.
/// </summary>
internal sealed class Arguments
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    /// <summary>Positional words, in order.</summary>
    public List<string> Positional { get; } = new();

    /// <param name="words">The words after the command name.</param>
    /// <param name="flags">Option names that take no value.</param>
    /// <param name="aliases">Short names and the long names they stand for, e.g. "-o" for "--output".</param>
    public Arguments(IReadOnlyList<string> words, IReadOnlySet<string> flags, IReadOnlyDictionary<string, string> aliases)
    {
        for (int i = 0; i < words.Count; i++)
        {
            var w = words[i];
            if (aliases.TryGetValue(w, out var longName)) w = longName;
            if (!w.StartsWith("--", StringComparison.Ordinal) || w == "--")
            {
                Positional.Add(w);
                continue;
            }
            string name = w, value = "";
            int eq = w.IndexOf('=');
            if (eq > 0) { name = w[..eq]; value = w[(eq + 1)..]; }
            if (flags.Contains(name))
            {
                if (eq > 0) throw new UsageException($"option {name} takes no value; got '{value}'");
                _flags.Add(name);
                continue;
            }
            if (eq < 0)
            {
                if (i + 1 >= words.Count) throw new UsageException($"option {name} needs a value");
                value = words[++i];
            }
            if (!_values.TryAdd(name, value)) throw new UsageException($"option {name} is given twice");
        }
    }

    /// <summary>Whether a switch was given.</summary>
    public bool Flag(string name)
    {
        _used.Add(name);
        return _flags.Contains(name);
    }

    /// <summary>The text of an option, or null when absent.</summary>
    public string? Text(string name)
    {
        _used.Add(name);
        return _values.TryGetValue(name, out var v) ? v : null;
    }

    /// <summary>An integer option within [min, max], or <paramref name="fallback"/> when absent.</summary>
    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        var text = Text(name);
        if (text is null) return fallback;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            throw new UsageException($"option {name} must be an integer; got '{text}'");
        if (v < min || v > max)
            throw new UsageException(max == int.MaxValue ? $"option {name} must be at least {min}; got {v}" : $"option {name} must be between {min} and {max}; got {v}");
        return v;
    }

    /// <summary>A 64-bit integer option, or <paramref name="fallback"/> when absent.</summary>
    public long Long(string name, long fallback)
    {
        var text = Text(name);
        if (text is null) return fallback;
        if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            throw new UsageException($"option {name} must be an integer; got '{text}'");
        return v;
    }

    /// <summary>A positive finite number option, or <paramref name="fallback"/> when absent.</summary>
    public double Positive(string name, double fallback)
    {
        var text = Text(name);
        if (text is null) return fallback;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v) || v <= 0)
            throw new UsageException($"option {name} must be a positive number; got '{text}'");
        return v;
    }

    /// <summary>Throws when an option was given that no command read, or when there are more positional words than expected.</summary>
    public void RejectUnknown(int positionalAllowed)
    {
        var unknown = _values.Keys.Concat(_flags).Where(k => !_used.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).FirstOrDefault();
        if (unknown is not null) throw new UsageException($"unknown option {unknown}");
        if (Positional.Count > positionalAllowed)
            throw new UsageException($"unexpected argument '{Positional[positionalAllowed]}'");
    }
}
