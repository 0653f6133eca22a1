using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace EMFlow.Tests;

/// <summary>What a run of a notebook in the .NET Interactive kernel gave.</summary>
/// <param name="Succeeded">True when nbconvert finished and no cell produced an error output.</param>
/// <param name="FailedCell">The first failing code cell (its index among all cells, markdown included), or null.</param>
/// <param name="Error">The failing cell's source, error and stream output, or nbconvert's own error.</param>
/// <param name="Executed">The executed copy of the notebook (outputs included), or null when nbconvert wrote none.</param>
/// <param name="Seconds">Wall-clock seconds, kernel start included.</param>
/// <param name="CellSeconds">Seconds per executed code cell, by cell index.</param>
internal sealed record NotebookRun(bool Succeeded, int? FailedCell, string Error, JsonObject? Executed, double Seconds, IReadOnlyDictionary<int, double> CellSeconds)
{
    /// <summary>A failure message naming the notebook and the cell.</summary>
    public string Describe(string notebook) =>
        $"{notebook} failed in cell {(FailedCell is int c ? c.ToString(CultureInfo.InvariantCulture) : "?")} (cells counted from 0, markdown included).\n{Error}";

    /// <summary>One line: total seconds and the slowest cells.</summary>
    public string Timing() =>
        $"{Seconds:F1} s in all; cells: " + string.Join(", ", CellSeconds.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}: {kv.Value:F1} s"));
}

/// <summary>
/// Runs a notebook the way a user's Jupyter does: <c>jupyter nbconvert --execute</c> (Debian's Jupyter,
/// <c>/usr/bin/jupyter</c>) with the project-local kernelspecs that <c>./build.sh kernel</c> writes to
/// <c>.jupyter/kernels</c>, so the stock .NET Interactive kernel (the local tool) runs every cell. Errors are kept
/// in the executed copy (<c>--allow-errors</c>), which is then read for the first failing cell, its compiler
/// diagnostics (the kernel prints them as stream output) and the per-cell timings.
/// </summary>
internal static class NotebookRunner
{
    /// <summary>Debian's Jupyter; the first python3 on PATH may be another interpreter without it.</summary>
    public const string Jupyter = "/usr/bin/jupyter";

    /// <summary>The repository root: the nearest folder above the test assembly holding EMFlow.sln.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "EMFlow.sln"))) return dir.FullName;
        throw new InvalidOperationException($"No EMFlow.sln above {AppContext.BaseDirectory}.");
    }

    /// <summary>The folder that holds the project-local kernelspecs (JUPYTER_PATH).</summary>
    public static string JupyterPath => Path.Combine(RepositoryRoot(), ".jupyter");

    /// <summary>Null when Jupyter and both kernelspecs are in place, else what is missing and the command that fixes it.</summary>
    public static string? MissingSetup()
    {
        if (!File.Exists(Jupyter))
            return $"{Jupyter} was not found: install Debian's Jupyter (see README, Notebooks) and run ./build.sh kernel.";
        foreach (var lang in new[] { "fsharp", "csharp" })
        {
            var spec = Path.Combine(JupyterPath, "kernels", $".net-{lang}", "kernel.json");
            if (!File.Exists(spec)) return $"The kernelspec {spec} is missing: run ./build.sh kernel.";
        }
        return null;
    }

    /// <summary>A cell's source, stored either as one string or as a list of lines.</summary>
    public static string Source(JsonElement cell)
    {
        var source = cell.GetProperty("source");
        return source.ValueKind == JsonValueKind.Array
            ? string.Concat(source.EnumerateArray().Select(l => l.GetString()))
            : source.GetString() ?? "";
    }

    /// <summary>A cell's source or an output's text, stored either as one string or as a list of lines.</summary>
    public static string Text(JsonNode? node) => node switch
    {
        JsonArray lines => string.Concat(lines.Select(l => l?.GetValue<string>())),
        JsonValue value => value.GetValue<string>(),
        _ => "",
    };

    /// <summary>
    /// Executes the notebook at <paramref name="path"/> in its own folder (so its relative <c>#r</c> paths hold) and
    /// writes the executed copy to <paramref name="outputDir"/> as NAME.out.ipynb.
    /// </summary>
    public static NotebookRun Run(string path, IReadOnlyDictionary<string, string> environment, TimeSpan timeout, string outputDir)
    {
        Directory.CreateDirectory(outputDir);
        var name = Path.GetFileNameWithoutExtension(path);
        var executedPath = Path.Combine(outputDir, name + ".out.ipynb");
        if (File.Exists(executedPath)) File.Delete(executedPath);
        var env = new Dictionary<string, string>(environment)
        {
            ["JUPYTER_PATH"] = JupyterPath,
            ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1",
        };
        var cellTimeout = (int)Math.Max(60, timeout.TotalSeconds);
        var clock = Stopwatch.StartNew();
        var (exit, stdout, stderr) = Execute(Jupyter,
            ["nbconvert", "--to", "notebook", "--execute", "--allow-errors",
             $"--ExecutePreprocessor.timeout={cellTimeout}", "--ExecutePreprocessor.startup_timeout=300",
             "--output-dir", outputDir, "--output", name + ".out.ipynb", Path.GetFullPath(path)],
            Path.GetDirectoryName(Path.GetFullPath(path))!, env, timeout);
        var seconds = clock.Elapsed.TotalSeconds;
        if (!File.Exists(executedPath))
            return new NotebookRun(false, null, $"nbconvert exited with {exit} and wrote no executed copy.\n--- nbconvert ---\n{Tail(stderr + stdout)}", null, seconds, new Dictionary<int, double>());
        var executed = JsonNode.Parse(File.ReadAllText(executedPath))!.AsObject();
        var (failed, error) = FirstError(executed);
        if (failed is null && exit != 0)
            error = $"nbconvert exited with {exit}.\n--- nbconvert ---\n{Tail(stderr + stdout)}";
        return new NotebookRun(exit == 0 && failed is null, failed, error, executed, seconds, CellSeconds(executed));
    }

    /// <summary>The first code cell with an error output, and a description: its source, the error and its stream output.</summary>
    public static (int? Cell, string Error) FirstError(JsonObject notebook)
    {
        var cells = notebook["cells"]!.AsArray();
        for (int i = 0; i < cells.Count; i++)
        {
            var outputs = cells[i]!["outputs"] as JsonArray;
            if (outputs is null) continue;
            var error = outputs.FirstOrDefault(o => (string?)o!["output_type"] == "error");
            if (error is null) continue;
            var streams = string.Concat(outputs.Where(o => (string?)o!["output_type"] == "stream").Select(o => Text(o!["text"])));
            var traceback = error["traceback"] is JsonArray tb ? string.Join("\n", tb.Select(l => (string?)l)) : "";
            return (i, $"--- cell {i} ---\n{Text(cells[i]!["source"])}\n--- error ---\n{(string?)error["ename"]}: {(string?)error["evalue"]}\n{traceback}\n--- output ---\n{Tail(streams)}");
        }
        return (null, "");
    }

    /// <summary>Seconds per executed code cell, from the timings nbclient records in each cell's metadata.</summary>
    private static Dictionary<int, double> CellSeconds(JsonObject notebook)
    {
        var result = new Dictionary<int, double>();
        var cells = notebook["cells"]!.AsArray();
        for (int i = 0; i < cells.Count; i++)
        {
            var execution = cells[i]!["metadata"]?["execution"];
            if (execution?["iopub.execute_input"] is JsonValue start && execution["shell.execute_reply"] is JsonValue end
                && DateTimeOffset.TryParse(start.GetValue<string>(), CultureInfo.InvariantCulture, out var t0)
                && DateTimeOffset.TryParse(end.GetValue<string>(), CultureInfo.InvariantCulture, out var t1))
                result[i] = (t1 - t0).TotalSeconds;
        }
        return result;
    }

    private static string Tail(string s, int chars = 6000) => s.Length <= chars ? s : "..." + s[^chars..];

    /// <summary>Runs a process to completion or to the timeout (then kills its whole tree), capturing both streams.</summary>
    public static (int Exit, string Stdout, string Stderr) Execute(string file, string[] args, string workDir, IReadOnlyDictionary<string, string> env, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file)
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (k, v) in env) info.Environment[k] = v;
        using var process = new Process { StartInfo = info };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            lock (stderr) stderr.AppendLine($"[runner] killed after {timeout.TotalSeconds:F0} s");
            return (-1, stdout.ToString(), stderr.ToString());
        }
        process.WaitForExit();   // drains the asynchronous readers
        return (process.ExitCode, stdout.ToString(), stderr.ToString());
    }
}

/// <summary>Checks on the outputs of an executed notebook: charts that draw, offline.</summary>
internal static class ChartOutputs
{
    /// <summary>A code cell that shows a chart: it calls the notebooks' <c>show</c> (EMFlow.Notebooks' Charts.show).</summary>
    private static readonly Regex ShowCall = new(@"^\s*(show|Charts\.show\s+\w+)\s+""[^""]+""", RegexOptions.Multiline);

    /// <summary>The banner at the top of plotly.js's source (minified builds keep it).</summary>
    private static readonly Regex PlotlyJs = new(@"\*\s*plotly\.js v\d+\.\d+\.\d+");

    /// <summary>A plotting call that needs plotly.js on the page.</summary>
    private static readonly Regex PlottingCall = new(@"\bPlotly\.(newPlot|react|plot)\s*\(");

    /// <summary>A script fetched from the network: it would not load offline.</summary>
    private static readonly Regex RemoteScript = new(@"<script[^>]*\bsrc\s*=\s*[""']?(https?:)?//", RegexOptions.IgnoreCase);

    private static IEnumerable<string> RichTexts(JsonNode output)
    {
        if (output["data"] is not JsonObject data) yield break;
        foreach (var (mime, value) in data)
            if (mime is "text/html" or "application/javascript" or "image/svg+xml") yield return NotebookRunner.Text(value);
    }

    /// <summary>
    /// Every problem found: a chart cell without a renderable rich output (a text/html output with a plotting
    /// call and its div, or an image), a plotting call with no plotly.js source in that output or an earlier one
    /// of the notebook, a script loaded from the network. Empty when the charts draw offline.
    /// </summary>
    public static List<string> Problems(JsonObject notebook)
    {
        var problems = new List<string>();
        bool libraryLoaded = false;
        var cells = notebook["cells"]!.AsArray();
        for (int i = 0; i < cells.Count; i++)
        {
            var cell = cells[i]!;
            if ((string?)cell["cell_type"] != "code") continue;
            bool chartShown = false;
            foreach (var output in (cell["outputs"] as JsonArray ?? []).Select(o => o!))
            {
                if (output["data"] is JsonObject data && (data.ContainsKey("image/png") || data.ContainsKey("image/svg+xml"))) chartShown = true;
                foreach (var text in RichTexts(output))
                {
                    var library = PlotlyJs.Match(text);
                    var call = PlottingCall.Match(text);
                    if (call.Success)
                    {
                        if (!libraryLoaded && !(library.Success && library.Index < call.Index))
                            problems.Add($"cell {i}: an output calls Plotly.{call.Groups[1].Value} but no output up to it carries plotly.js; the chart would stay blank.");
                        if (text.Contains("<div", StringComparison.Ordinal)) chartShown = true;
                    }
                    if (library.Success) libraryLoaded = true;
                    if (RemoteScript.IsMatch(text))
                        problems.Add($"cell {i}: an output loads a script from the network; it would not draw offline.");
                }
            }
            if (ShowCall.IsMatch(NotebookRunner.Text(cell["source"])) && !chartShown)
                problems.Add($"cell {i} shows a chart but has no renderable rich output (text/html with a plotting call and its div, or an image).");
        }
        return problems;
    }

    /// <summary>The code cells that show a chart.</summary>
    public static int ChartCells(JsonObject notebook) =>
        notebook["cells"]!.AsArray().Count(c => (string?)c!["cell_type"] == "code" && ShowCall.IsMatch(NotebookRunner.Text(c["source"])));
}
