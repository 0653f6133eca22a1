using System.Net.Http;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace EMFlow.Tests;

/// <summary>
/// Every notebook in notebooks/ runs top to bottom in the stock .NET Interactive kernel through Jupyter
/// (<c>nbconvert --execute</c> with the kernelspecs of <c>./build.sh kernel</c>), in quick mode, against the library
/// built from this commit; its charts draw offline; it is committed without outputs. The executed copies are kept
/// in artifacts/notebooks/ (CI exports them to HTML and renders them in headless Chromium: .ci/notebooks-html).
/// </summary>
public sealed class NotebookTests
{
    private static readonly string Root = NotebookRunner.RepositoryRoot();
    private static readonly string Folder = Path.Combine(Root, "notebooks");
    private static readonly string Executed = Path.Combine(Root, "artifacts", "notebooks");
    private readonly ITestOutputHelper _log;

    public NotebookTests(ITestOutputHelper log) => _log = log;

    /// <summary>The notebook file names, one test case each.</summary>
    public static TheoryData<string> Notebooks()
    {
        var data = new TheoryData<string>();
        foreach (var name in NotebookNames()) data.Add(name);
        return data;
    }

    private static string[] NotebookNames() =>
        Directory.Exists(Folder)
            ? Directory.GetFiles(Folder, "*.ipynb").Select(Path.GetFileName).Where(n => !n!.EndsWith(".out.ipynb", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToArray()!
            : [];

    /// <summary>Quick mode and one torch thread, as CI runs them; Jupyter passes the environment on to the kernel.</summary>
    private static Dictionary<string, string> Environment() => new()
    {
        ["EMFLOW_QUICK"] = "1",
        ["OMP_NUM_THREADS"] = "1",
        ["MKL_NUM_THREADS"] = "1",
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
        ["DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT"] = "1",
        ["DOTNET_NOLOGO"] = "1",
    };

    private static void RequireSetup()
    {
        var missing = NotebookRunner.MissingSetup();
        Assert.True(missing is null, missing);
        foreach (var dll in new[] { "src/Host.CSharp/bin/Release/net10.0/EMFlow.dll", "src/Notebooks.FSharp/bin/Release/net10.0/EMFlow.Notebooks.dll" })
            Assert.True(File.Exists(Path.Combine(Root, dll)), $"The notebooks reference {dll}; build first (./build.sh kernel or ./build.sh build).");
    }

    [Fact]
    public void The_notebook_folder_holds_the_teaching_set()
    {
        var names = NotebookNames();
        Assert.True(names.Length >= 7, $"Expected the seven teaching notebooks in {Folder}; found {names.Length}.");
        Assert.Contains(names, n => n.StartsWith("07-", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void Notebook_runs_in_the_kernel_and_its_charts_draw_offline(string notebook)
    {
        RequireSetup();
        var run = NotebookRunner.Run(Path.Combine(Folder, notebook), Environment(), TimeSpan.FromMinutes(10), Executed);
        _log.WriteLine($"{notebook}: {run.Timing()}");
        Assert.True(run.Succeeded, run.Describe(notebook));
        var problems = ChartOutputs.Problems(run.Executed!);
        Assert.True(problems.Count == 0, $"{notebook}: " + string.Join("\n", problems));
        _log.WriteLine($"{notebook}: {ChartOutputs.ChartCells(run.Executed!)} chart cells, each with a rich output");
    }

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void Notebook_is_stored_without_outputs(string notebook)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, notebook)));
        var root = doc.RootElement;
        Assert.Equal(4, root.GetProperty("nbformat").GetInt32());
        int index = 0;
        foreach (var cell in root.GetProperty("cells").EnumerateArray())
        {
            if (cell.GetProperty("cell_type").GetString() == "code")
            {
                Assert.True(cell.GetProperty("outputs").GetArrayLength() == 0, $"{notebook}: cell {index} has stored outputs; clear them before committing.");
                Assert.True(cell.GetProperty("execution_count").ValueKind == JsonValueKind.Null, $"{notebook}: cell {index} has an execution count; clear outputs before committing.");
            }
            index++;
        }
    }

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void Notebook_opens_by_saying_what_it_teaches_and_how_quick_mode_works(string notebook)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, notebook)));
        var first = doc.RootElement.GetProperty("cells")[0];
        Assert.Equal("markdown", first.GetProperty("cell_type").GetString());
        Assert.Contains("EMFLOW_QUICK", NotebookRunner.Source(first));
    }

    /// <summary>
    /// An F# notebook's first code cell redirects FSharp.Core to the kernel's copy, before any #r: without it the
    /// stock kernel (FSharp.Core 10.0.0.0) fails to load the library and Plotly.NET (built against 10.1.0.0).
    /// No notebook copies the chart helper: it is EMFlow.Notebooks' Charts.show.
    /// </summary>
    [Theory]
    [MemberData(nameof(Notebooks))]
    public void An_FSharp_notebook_starts_with_the_FSharp_Core_redirect_and_calls_the_chart_library(string notebook)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, notebook)));
        if (doc.RootElement.GetProperty("metadata").GetProperty("kernelspec").GetProperty("name").GetString() != ".net-fsharp") return;
        var code = doc.RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.GetProperty("cell_type").GetString() == "code").Select(NotebookRunner.Source).ToList();
        Assert.Contains("add_Resolving", code[0]);
        Assert.DoesNotContain("#r", code[0]);
        Assert.DoesNotContain(code, c => c.Contains("nuget:", StringComparison.Ordinal));
        Assert.DoesNotContain(code, c => c.Contains("GenericChart.toChartHTML", StringComparison.Ordinal));
        Assert.Contains(code, c => c.Contains("EMFlow.Notebooks.dll", StringComparison.Ordinal));
    }

    /// <summary>A notebook whose second code cell throws, then one with a compile error: the failure names the cell.</summary>
    [Fact]
    public void A_failing_cell_is_named()
    {
        RequireSetup();
        // Under the repository: the kernelspec runs the local tool, which `dotnet interactive` finds from the notebook's folder upwards.
        var dir = Directory.CreateDirectory(Path.Combine(Root, "artifacts", "notebook-test-" + Guid.NewGuid().ToString("N")[..8]));
        try
        {
            var path = Path.Combine(dir.FullName, "broken.ipynb");
            File.WriteAllText(path, FSharpNotebook("let a = 1", "if a = 1 then failwithf \"boom %d\" a", "printfn \"after\""));
            var run = NotebookRunner.Run(path, Environment(), TimeSpan.FromMinutes(4), dir.FullName);
            Assert.False(run.Succeeded);
            Assert.Equal(2, run.FailedCell);   // cell 0 is markdown
            Assert.Contains("boom 1", run.Describe("broken.ipynb"));

            File.WriteAllText(path, FSharpNotebook("let a = 1", "printfn \"fine\"", "let b: int = \"not an int\""));
            var compile = NotebookRunner.Run(path, Environment(), TimeSpan.FromMinutes(4), dir.FullName);
            Assert.False(compile.Succeeded);
            Assert.Equal(3, compile.FailedCell);
            Assert.Contains("not an int", compile.Describe("broken.ipynb"));
        }
        finally
        {
            dir.Delete(true);
        }
    }

    private static JsonObject ExecutedNotebook(params string[][] outputsPerCell) => new()
    {
        ["cells"] = new JsonArray(outputsPerCell.Select(outputs => (JsonNode)new JsonObject
        {
            ["cell_type"] = "code",
            ["source"] = "show \"chart\" c",
            ["outputs"] = new JsonArray(outputs.Select(html => (JsonNode)new JsonObject
            {
                ["output_type"] = "display_data",
                ["data"] = new JsonObject { ["text/html"] = html },
            }).ToArray()),
        }).ToArray()),
    };

    private const string PlotlyJsSource = "<script>/**\n* plotly.js v2.28.0\n*/ !function(){ window.Plotly = {}; }()</script>";
    private const string ChartDiv = "<div><div id=\"c\"></div><script>Plotly.newPlot('c', data, layout);</script></div>";

    /// <summary>The chart check itself: plotting calls without plotly.js before them, a chart cell with no rich output, a CDN script.</summary>
    [Fact]
    public void A_chart_without_the_library_that_draws_it_is_a_failure()
    {
        Assert.Empty(ChartOutputs.Problems(ExecutedNotebook([PlotlyJsSource + ChartDiv], [ChartDiv])));

        var missing = ChartOutputs.Problems(ExecutedNotebook([ChartDiv], [ChartDiv]));
        Assert.Equal(2, missing.Count);
        Assert.Contains("cell 0", missing[0]);
        Assert.Contains("plotly.js", missing[0]);

        var late = ChartOutputs.Problems(ExecutedNotebook([ChartDiv + PlotlyJsSource], [ChartDiv]));
        Assert.Single(late);   // the library after the call in the same output does not count for it

        var blank = ChartOutputs.Problems(ExecutedNotebook([PlotlyJsSource + ChartDiv], []));
        Assert.Contains(blank, p => p.Contains("cell 1 shows a chart", StringComparison.Ordinal));

        var cdn = ChartOutputs.Problems(ExecutedNotebook(["<script src=\"https://cdn.plot.ly/plotly-2.28.0.min.js\"></script>" + ChartDiv]));
        Assert.Contains(cdn, p => p.Contains("network", StringComparison.Ordinal));
    }

    private static string FSharpNotebook(params string[] code)
    {
        var cells = new List<object> { new { cell_type = "markdown", metadata = new { }, source = new[] { "A test notebook." } } };
        cells.AddRange(code.Select(c => (object)new
        {
            cell_type = "code",
            execution_count = (int?)null,
            metadata = new { dotnet_interactive = new { language = "fsharp" } },
            outputs = Array.Empty<object>(),
            source = new[] { c },
        }));
        return JsonSerializer.Serialize(new
        {
            cells,
            metadata = new { kernelspec = new { display_name = ".NET (F#)", language = "F#", name = ".net-fsharp" } },
            nbformat = 4,
            nbformat_minor = 5,
        });
    }
}

/// <summary><c>./build.sh jupyter</c>, started headless for a moment: Jupyter Notebook serves and lists both .NET kernels.</summary>
public sealed class JupyterCommandTests
{
    [Fact]
    public async Task The_jupyter_command_serves_the_notebooks_with_the_dotnet_kernels()
    {
        var missing = NotebookRunner.MissingSetup();
        Assert.True(missing is null, missing);
        var root = NotebookRunner.RepositoryRoot();
        int port;
        using (var probe = new TcpListener(System.Net.IPAddress.Loopback, 0)) { probe.Start(); port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port; probe.Stop(); }
        var token = Guid.NewGuid().ToString("N");
        var home = Directory.CreateTempSubdirectory("emflow-jupyter-home");
        var info = new System.Diagnostics.ProcessStartInfo("bash")
        {
            WorkingDirectory = root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { Path.Combine(root, "build.sh"), "jupyter", "--no-browser", "--ip=127.0.0.1", $"--port={port}", "--port-retries=0" }) info.ArgumentList.Add(a);
        info.Environment["JUPYTER_TOKEN"] = token;
        info.Environment["JUPYTER_RUNTIME_DIR"] = Path.Combine(home.FullName, "runtime");
        info.Environment["JUPYTER_CONFIG_DIR"] = Path.Combine(home.FullName, "config");
        using var process = System.Diagnostics.Process.Start(info)!;
        var log = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            string? specs = null;
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
            while (specs is null && DateTime.UtcNow < deadline && !process.HasExited)
            {
                try { specs = await http.GetStringAsync($"http://127.0.0.1:{port}/api/kernelspecs?token={token}"); }
                catch (HttpRequestException) { await Task.Delay(500); }
                catch (TaskCanceledException) { }
            }
            Assert.True(specs is not null, $"./build.sh jupyter did not serve on port {port}.\n{log}");
            Assert.Contains(".net-fsharp", specs);
            Assert.Contains(".net-csharp", specs);
            var tree = await http.GetStringAsync($"http://127.0.0.1:{port}/api/contents?token={token}");
            Assert.Contains("01-missing-data.ipynb", tree);
        }
        finally
        {
            if (!process.HasExited) { process.Kill(entireProcessTree: true); process.WaitForExit(); }
            home.Delete(true);
        }
    }
}
