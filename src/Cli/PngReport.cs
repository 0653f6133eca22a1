using ScottPlot;

namespace EMFlow.Cli;

/// <summary>The report's figures as PNG files, drawn by ScottPlot without a browser.</summary>
internal static class PngReport
{
    private static readonly Color[] Palette = { Colors.C0, Colors.C1, Colors.C2, Colors.C3, Colors.C4, Colors.C5 };

    /// <summary>Writes one PNG per figure into <paramref name="folder"/> (created if needed) and returns their paths.</summary>
    public static IReadOnlyList<string> Write(string folder, ReportData d)
    {
        Directory.CreateDirectory(folder);
        var files = new List<string>();
        void Save(Plot plot, string name, int width, int height)
        {
            var path = Path.Combine(folder, name);
            var tmp = path + ".tmp.png";
            plot.SavePng(tmp, width, height);
            File.Move(tmp, path, overwrite: true);
            files.Add(path);
        }
        if (d.Epochs.Count > 0) Save(Losses(d), "training-loss.png", 900, 400);
        if (d.Iterations.Count > 0) Save(Iterations(d), "iterations.png", 900, 400);
        if (d.Scores.Count > 0) Save(PerFeature(d), "per-feature-rmse.png", 900, 400);
        for (int j = 0; j < d.Features.Count; j++)
            if (Histogram(d, j) is { } h) Save(h, $"distribution-{Safe(d.Features[j])}.png", 500, 350);
        if (d.LatentCorrelation() is not null) Save(Correlation(d), "latent-correlation.png", 650, 550);
        if (d.Scores.Count > 0 && d.Epochs.Count > 0)
        {
            var path = Path.Combine(folder, "summary.png");
            Summary(d).SavePng(path, 1400, 900);
            files.Add(path);
        }
        return files;
    }

    /// <summary>One picture of the demo: per-feature RMSE, the loss curve, the per-iteration scores, two distributions and the latent correlations.</summary>
    public static Multiplot Summary(ReportData d)
    {
        var m = new Multiplot();
        // A new Multiplot holds one empty plot: replace it instead of adding beside it.
        m.Reset(PerFeature(d));
        m.AddPlot(Losses(d));
        // Without a finite hold-out score the panel would show only the log-likelihood: a third distribution says more.
        bool scored = d.Iterations.Any(h => double.IsFinite(h.ValidationRmse));
        if (scored) m.AddPlot(Iterations(d));
        var hist = Enumerable.Range(0, d.Features.Count).Select(j => Histogram(d, j)).Where(h => h is not null).Take(scored ? 2 : 3).ToList();
        foreach (var h in hist) m.AddPlot(h!);
        m.AddPlot(Correlation(d));
        m.Layout = new ScottPlot.MultiplotLayouts.Grid(2, 3);
        return m;
    }

    private static Plot Losses(ReportData d)
    {
        var plot = new Plot();
        int k = 0;
        foreach (var g in d.Epochs.GroupBy(e => e.Iteration))
        {
            var s = plot.Add.Scatter(g.Select(e => (double)e.Epoch).ToArray(), g.Select(e => e.MeanL1).ToArray());
            s.LegendText = $"iteration {g.Key}";
            s.Color = Palette[k++ % Palette.Length];
        }
        return Labelled(plot, "EMFlow training loss (L1) per epoch", "epoch", "mean -log p(x)");
    }

    private static Plot Iterations(ReportData d)
    {
        var plot = new Plot();
        var its = new[] { 0.0 }.Concat(d.Iterations.Select(h => (double)h.Iteration)).ToArray();
        var rmse = new[] { d.InitialValidationRmse }.Concat(d.Iterations.Select(h => h.ValidationRmse)).ToArray();
        var s = plot.Add.Scatter(its, rmse);
        s.LegendText = "hold-out RMSE";
        var ll = plot.Add.Scatter(its.Skip(1).ToArray(), d.Iterations.Select(h => h.LatentLogLikelihood).ToArray());
        ll.LegendText = "log-likelihood (right axis)";
        ll.Axes.YAxis = plot.Axes.Right;
        plot.Axes.Right.Label.Text = "mean log p(x)";
        return Labelled(plot, $"Per iteration (0 = the start; kept: {d.SelectedIteration})", "iteration", "hold-out RMSE");
    }

    private static Plot PerFeature(ReportData d)
    {
        var plot = new Plot();
        int methods = d.Scores.Count, p = d.Features.Count;
        double width = 0.8 / methods;
        for (int k = 0; k < methods; k++)
        {
            var positions = Enumerable.Range(0, p).Select(j => j - 0.4 + width * (k + 0.5)).ToArray();
            var values = d.Scores[k].PerFeature.Select(v => double.IsFinite(v) ? v : 0).ToArray();
            var bars = plot.Add.Bars(positions, values);
            bars.LegendText = d.Scores[k].Method;
            bars.Color = Palette[k % Palette.Length];
            foreach (var b in bars.Bars) b.Size = width;
        }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, p).Select(j => (double)j).ToArray(), d.Features.ToArray());
        Slanted(plot.Axes.Bottom);
        plot.Axes.Margins(bottom: 0);
        plot.Legend.Alignment = Alignment.UpperRight;
        return Labelled(plot, "RMSE per feature (hidden cells, [0, 1] scale)");
    }

    private static Plot? Histogram(ReportData d, int j)
    {
        var (observed, imputed) = d.Split(j);
        imputed = imputed.Where(double.IsFinite).ToArray();
        if (imputed.Length == 0 || observed.Length == 0) return null;
        double lo = Math.Min(observed.Min(), imputed.Min()), hi = Math.Max(observed.Max(), imputed.Max());
        const int bins = 30;
        double step = hi > lo ? (hi - lo) / bins : 1;
        var plot = new Plot();
        void Add(double[] values, string label, Color color)
        {
            var density = new double[bins];
            foreach (var v in values) density[Math.Min(bins - 1, (int)((v - lo) / step))] += 1.0 / (values.Length * step);
            var bars = plot.Add.Bars(Enumerable.Range(0, bins).Select(b => lo + (b + 0.5) * step).ToArray(), density);
            bars.LegendText = label;
            bars.Color = color.WithAlpha(0.55);
            foreach (var b in bars.Bars) { b.Size = step; b.LineWidth = 0; }
        }
        Add(observed, "observed", Palette[0]);
        Add(imputed, $"imputed ({d.ImputedBy})", Palette[1]);
        plot.Axes.Margins(bottom: 0);
        return Labelled(plot, $"{d.Features[j]}: observed vs imputed", y: "density");
    }

    private static Plot Correlation(ReportData d)
    {
        var r = d.LatentCorrelation()!;
        var plot = new Plot();
        var hm = plot.Add.Heatmap(r);
        hm.Colormap = new ScottPlot.Colormaps.Viridis();
        hm.ManualRange = new ScottPlot.Range(-1, 1);
        plot.Add.ColorBar(hm);
        int p = r.GetLength(0);
        var names = d.Features.Count == p ? d.Features.ToArray() : Enumerable.Range(1, p).Select(i => $"z{i}").ToArray();
        var ticks = Enumerable.Range(0, p).Select(i => (double)i).ToArray();
        plot.Axes.Bottom.SetTicks(ticks, names);
        Slanted(plot.Axes.Bottom);
        // Heatmap rows are drawn bottom-up: row 0 sits at the top when the labels run in reverse.
        plot.Axes.Left.SetTicks(ticks, names.Reverse().ToArray());
        plot.Title("Latent correlation (learned Σ)");
        return plot;
    }

    /// <summary>Titles a plot, labels the axes given and shows the legend; returns the plot.</summary>
    private static Plot Labelled(Plot plot, string title, string? x = null, string? y = null)
    {
        plot.Title(title);
        if (x is not null) plot.XLabel(x);
        if (y is not null) plot.YLabel(y);
        plot.ShowLegend();
        return plot;
    }

    /// <summary>Feature names are long next to their bars: slant them so they do not run into each other.</summary>
    private static void Slanted(IXAxis axis)
    {
        axis.TickLabelStyle.Rotation = 35;
        axis.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        axis.MinimumSize = 90;
    }

    private static string Safe(string name) =>
        new(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());
}
