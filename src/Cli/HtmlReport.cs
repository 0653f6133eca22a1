using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Json;

namespace EMFlow.Cli;

/// <summary>
/// A one-file HTML report that opens offline: plotly.js is inlined from the copy Plotly.NET ships inside its
/// assembly, and each figure is a plotly.js figure (data and layout) written as JSON.
/// </summary>
internal static class HtmlReport
{
    private static readonly string[] Palette = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b" };

    /// <summary>Writes the report to a temporary file beside <paramref name="path"/>, then moves it into place.</summary>
    public static void Write(string path, ReportData data)
    {
        var html = Render(data);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"report folder not found: {dir}");
        var tmp = full + ".tmp";
        File.WriteAllText(tmp, html, new UTF8Encoding(false));
        File.Move(tmp, full, overwrite: true);
    }

    /// <summary>The plotly.js bundle embedded in Plotly.NET, so the page needs no network.</summary>
    internal static string PlotlyJs()
    {
        var assembly = typeof(Plotly.NET.GenericChart).Assembly;
        var name = assembly.GetManifestResourceNames().FirstOrDefault(n => n.EndsWith(".min.js", StringComparison.Ordinal))
            ?? throw new InvalidOperationException("Plotly.NET carries no plotly.js bundle.");
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(stream);
        // A literal "</script" inside the bundle would end the inline script early.
        return reader.ReadToEnd().Replace("</script", "<\\/script", StringComparison.OrdinalIgnoreCase);
    }

    public static string Render(ReportData data)
    {
        var figures = Figures(data);
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>")
          .Append(WebUtility.HtmlEncode(data.Title)).Append("</title>\n<style>")
          .Append("body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}")
          .Append("h1{font-size:1.5em}h2{font-size:1.15em;margin-top:28px}")
          .Append("table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}")
          .Append(".grid{display:flex;flex-wrap:wrap;gap:8px}.small{width:370px;height:280px}.wide{width:100%;height:380px}.square{width:560px;height:500px}")
          .Append("</style>\n<script>").Append(PlotlyJs()).Append("</script>\n</head>\n<body>\n<h1>")
          .Append(WebUtility.HtmlEncode(data.Title)).Append("</h1>\n");
        foreach (var note in data.Notes) sb.Append("<p>").Append(WebUtility.HtmlEncode(note)).Append("</p>\n");
        if (data.Scores.Count > 0)
        {
            sb.Append("<table><tr><th>Method</th><th>RMSE (hidden cells, [0, 1] scale)</th><th>Seconds</th></tr>\n");
            foreach (var s in data.Scores)
                sb.Append("<tr><td>").Append(WebUtility.HtmlEncode(s.Method)).Append("</td><td>").Append(F(s.Rmse, "F4"))
                  .Append("</td><td>").Append(F(s.Seconds, "F1")).Append("</td></tr>\n");
            sb.Append("</table>\n");
        }
        int id = 0;
        foreach (var section in figures)
        {
            sb.Append("<h2>").Append(WebUtility.HtmlEncode(section.Heading)).Append("</h2>\n");
            if (section.Preface is not null) sb.Append(section.Preface);
            sb.Append("<div class=\"grid\">\n");
            foreach (var fig in section.Figures)
            {
                var div = $"fig{id++}";
                var style = fig.Style is null ? "" : $" style=\"{fig.Style}\"";
                sb.Append($"<div id=\"{div}\" class=\"{section.Css}\"{style}></div>\n<script>Plotly.newPlot(\"{div}\", ")
                  .Append(JsonSerializer.Serialize(fig.Data)).Append(", ").Append(JsonSerializer.Serialize(fig.Layout))
                  .Append(section.Css == "small" ? ", {\"displayModeBar\": false}" : ", {\"responsive\": true, \"displaylogo\": false}")
                  .Append(");</script>\n");
            }
            sb.Append("</div>\n");
        }
        sb.Append("</body>\n</html>\n");
        return sb.ToString();
    }

    private sealed record Figure(object[] Data, object Layout, string? Style = null);
    private sealed record Section(string Heading, string Css, List<Figure> Figures, string? Preface = null);

    private static List<Section> Figures(ReportData d)
    {
        var sections = new List<Section>();
        if (d.Epochs.Count > 0)
        {
            var traces = d.Epochs.GroupBy(e => e.Iteration).Select((g, k) => (object)new
            {
                type = "scatter", mode = "lines+markers", name = $"iteration {g.Key}",
                x = g.Select(e => (double)e.Epoch).ToArray(), y = Finite(g.Select(e => e.MeanL1)),
                line = new { color = Palette[k % Palette.Length] },
            }).ToArray();
            sections.Add(new("Training loss per epoch", "wide", new()
            {
                new(traces, Layout("L1 = mean −log p_X(x̂) over the epoch's batches", "epoch", "L1 loss")),
            }));
        }
        if (d.Iterations.Count > 0)
        {
            var its = new[] { 0.0 }.Concat(d.Iterations.Select(h => (double)h.Iteration)).ToArray();
            var rmse = Finite(new[] { d.InitialValidationRmse }.Concat(d.Iterations.Select(h => h.ValidationRmse)));
            var ll = Finite(d.Iterations.Select(h => h.LatentLogLikelihood));
            var data = new object[]
            {
                new { type = "scatter", mode = "lines+markers", name = "hold-out RMSE", x = its, y = rmse, line = new { color = Palette[0] } },
                new { type = "scatter", mode = "lines+markers", name = "log-likelihood", x = its.Skip(1).ToArray(), y = ll, yaxis = "y2", line = new { color = Palette[1] } },
            };
            var layout = new
            {
                title = new { text = $"Per iteration (0 = the start; kept: iteration {d.SelectedIteration})" },
                xaxis = new { title = new { text = "iteration" }, dtick = 1 },
                yaxis = new { title = new { text = "hold-out RMSE, [0, 1] scale" } },
                yaxis2 = new { title = new { text = "mean log p_X(x̂)" }, overlaying = "y", side = "right" },
                legend = new { orientation = "h", y = -0.2 },
                margin = new { t = 50, r = 70 },
            };
            sections.Add(new("Hold-out error and latent log-likelihood per iteration", "wide", new() { new(data, layout) }));
        }
        if (d.Scores.Count > 0)
        {
            var bars = d.Scores.Select((s, k) => (object)new
            {
                type = "bar", name = s.Method, x = d.Features.ToArray(), y = Finite(s.PerFeature), marker = new { color = Palette[k % Palette.Length] },
            }).ToArray();
            sections.Add(new("RMSE per feature (hidden cells, [0, 1] scale)", "wide", new()
            {
                new(bars, new { barmode = "group", yaxis = new { title = new { text = "RMSE" } }, margin = new { t = 30 } }),
            }));
        }
        var hist = new List<Figure>();
        for (int j = 0; j < d.Features.Count; j++)
        {
            var (observed, imputed) = d.Split(j);
            if (imputed.Length == 0) continue;
            var axis = HistogramAxis(observed.Concat(imputed.Where(double.IsFinite)).ToArray());
            // Both histograms share the bins, so their densities compare; a clipped axis bins only its own range.
            object bins = axis.Range is { } clip ? new { start = clip[0], end = clip[1], size = (clip[1] - clip[0]) / 40 } : new { };
            var data = new object[]
            {
                new { type = "histogram", name = "observed", x = observed, histnorm = "probability density", opacity = 0.6, marker = new { color = Palette[0] }, nbinsx = 40, xbins = bins },
                new { type = "histogram", name = $"imputed ({d.ImputedBy})", x = Finite(imputed), histnorm = "probability density", opacity = 0.6, marker = new { color = Palette[1] }, nbinsx = 40, xbins = bins },
            };
            hist.Add(new(data, new
            {
                title = new { text = $"{d.Features[j]} ({imputed.Length} imputed)" },
                xaxis = axis.Range is { } range
                    ? (object)new { range, title = new { text = axis.Title, font = new { size = 10 } } }
                    : new { title = new { text = axis.Title, font = new { size = 10 } } },
                barmode = "overlay", showlegend = j == 0, margin = new { t = 40, l = 40, r = 10, b = 45 },
                legend = new { x = 0.55, y = 1 },
            }));
        }
        if (hist.Count > 0) sections.Add(new("Observed and imputed values per feature", "small", hist));
        var categoryBars = d.Categorical.Where(c => c.Imputed.Sum() > 0).Select((c, k) =>
        {
            var data = new object[]
            {
                Shares("observed", c.Categories, c.Observed, Palette[0]),
                Shares($"imputed ({d.ImputedBy})", c.Categories, c.Imputed, Palette[1]),
            };
            return new Figure(data, new
            {
                title = new { text = $"{c.Column} ({c.Imputed.Sum()} imputed)" },
                barmode = "group", showlegend = k == 0, yaxis = new { title = new { text = "share of cells" } },
                xaxis = new { type = "category", automargin = true }, margin = new { t = 40, l = 50, r = 10, b = 45 }, legend = new { x = 0.55, y = 1 },
            });
        }).ToList();
        if (categoryBars.Count > 0)
            sections.Add(new("Observed and imputed categories per categorical column", "small", categoryBars, CountTables(d.Categorical)));
        if (d.LatentCorrelation() is { } r)
        {
            int p = r.GetLength(0);
            var z = Enumerable.Range(0, p).Select(i => Enumerable.Range(0, p).Select(j => Math.Round(r[i, j], 3)).ToArray()).ToArray();
            var names = d.Features.Count == p ? d.Features.ToArray() : Enumerable.Range(1, p).Select(i => $"z{i}").ToArray();
            var data = new object[]
            {
                new { type = "heatmap", z, x = names, y = names, zmin = -1, zmax = 1, colorscale = "RdBu", reversescale = true, texttemplate = "%{z:.2f}" },
            };
            // Margins from the longest name, so no label is clipped (about 7 px per character at plotly's 12 px font).
            int margin = LabelMargin(names);
            int side = 400 + margin;
            sections.Add(new("Latent correlation matrix (learned Σ as correlations)", "square", new()
            {
                new(data, new { yaxis = new { autorange = "reversed", automargin = true }, xaxis = new { tickangle = -45, automargin = true }, margin = new { t = 20, l = margin, b = margin, r = 20 } },
                    Style: $"width:{side + 120}px;height:{side}px"),
            }));
        }
        return sections;
    }

    /// <summary>Each categorical column's cells per category, observed and imputed: the exact counts beside the
    /// figures, which show shares so that observed and imputed compare at a glance.</summary>
    private static string CountTables(IReadOnlyList<CategoryCounts> columns)
    {
        var sb = new StringBuilder("<div class=\"grid\">\n");
        foreach (var c in columns)
        {
            sb.Append("<table><tr><th>").Append(WebUtility.HtmlEncode(c.Column)).Append("</th><th>observed</th><th>imputed</th></tr>\n");
            for (int k = 0; k < c.Categories.Count; k++)
                sb.Append("<tr><td>").Append(WebUtility.HtmlEncode(c.Categories[k])).Append("</td><td>").Append(c.Observed[k])
                  .Append("</td><td>").Append(c.Imputed[k]).Append("</td></tr>\n");
            sb.Append("<tr><th>total</th><th>").Append(c.Observed.Sum()).Append("</th><th>").Append(c.Imputed.Sum()).Append("</th></tr>\n</table>\n");
        }
        return sb.Append("</div>\n").ToString();
    }

    /// <summary>A bar per category: its share of the cells counted, the count in the hover text.</summary>
    private static object Shares(string name, IReadOnlyList<string> categories, int[] counts, string color)
    {
        double total = Math.Max(1, counts.Sum());
        return new
        {
            type = "bar", name, x = categories.ToArray(), y = counts.Select(c => Math.Round(c / total, 4)).ToArray(),
            text = counts.Select(c => c.ToString(CultureInfo.InvariantCulture)).ToArray(), hovertemplate = "%{x}: %{text} cells (%{y:.1%})",
            marker = new { color },
        };
    }

    /// <summary>Left and bottom margin, in pixels, that fits the longest of <paramref name="labels"/>.</summary>
    internal static int LabelMargin(IEnumerable<string> labels) =>
        Math.Max(60, 7 * labels.Select(l => l.Length).DefaultIfEmpty(0).Max() + 20);

    /// <summary>
    /// The x axis of a feature's histogram: the whole range, unless a few outliers would squash the bulk of the values
    /// into a few bins (the whole range more than 1.25 times the 1st–99th percentile range); then the 1st–99th
    /// percentile range, and the axis title says so and how many values lie outside.
    /// </summary>
    internal static (double[]? Range, string Title) HistogramAxis(double[] values)
    {
        if (values.Length < 20) return (null, "value");
        var sorted = values.OrderBy(v => v).ToArray();
        double lo = Quantile(sorted, 0.01), hi = Quantile(sorted, 0.99), min = sorted[0], max = sorted[^1];
        if (!(hi > lo) || max - min <= 1.25 * (hi - lo)) return (null, "value");
        int outside = sorted.Count(v => v < lo || v > hi);
        return (new[] { lo, hi }, $"value; axis: 1st–99th percentile ({outside} outside, range {G(min)} to {G(max)})");
    }

    private static double Quantile(double[] sorted, double q)
    {
        double at = q * (sorted.Length - 1);
        int k = (int)Math.Floor(at);
        return k + 1 < sorted.Length ? sorted[k] + (at - k) * (sorted[k + 1] - sorted[k]) : sorted[k];
    }

    private static string G(double v) => v.ToString("G4", CultureInfo.InvariantCulture);

    private static object Layout(string title, string x, string y) => new
    {
        title = new { text = title },
        xaxis = new { title = new { text = x } },
        yaxis = new { title = new { text = y } },
        margin = new { t = 50 },
    };

    /// <summary>JSON has no NaN; plotly.js draws null as a gap.</summary>
    private static double?[] Finite(IEnumerable<double> values) => values.Select(v => double.IsFinite(v) ? v : (double?)null).ToArray();

    private static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "–";
}
