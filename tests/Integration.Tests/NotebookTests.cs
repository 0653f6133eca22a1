using System.Text.Json;
using Xunit.Abstractions;

namespace EMFlow.Tests;

/// <summary>
/// Every notebook in notebooks/ runs headless, in quick mode, against the library built from this commit, and
/// is committed without outputs.
/// </summary>
public sealed class NotebookTests
{
    private static readonly string Root = NotebookRunner.RepositoryRoot();
    private static readonly string Folder = Path.Combine(Root, "notebooks");
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
            ? Directory.GetFiles(Folder, "*.ipynb").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!
            : [];

    /// <summary>Quick mode and one torch thread, as CI runs them; the caller's other settings pass through.</summary>
    private static Dictionary<string, string> Environment() => new()
    {
        ["EMFLOW_QUICK"] = "1",
        ["OMP_NUM_THREADS"] = "1",
        ["MKL_NUM_THREADS"] = "1",
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
        ["DOTNET_NOLOGO"] = "1",
    };

    [Fact]
    public void The_notebook_folder_holds_the_teaching_set()
    {
        var names = NotebookNames();
        Assert.True(names.Length >= 7, $"Expected the seven teaching notebooks in {Folder}; found {names.Length}.");
        Assert.Contains(names, n => n.StartsWith("07-", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void Notebook_runs_headless(string notebook)
    {
        var library = Path.Combine(Root, "src", "Host.CSharp", "bin", "Release", "net10.0", "EMFlow.dll");
        Assert.True(File.Exists(library), $"The notebooks reference {library}; build the library first (./build.sh build).");
        var run = NotebookRunner.Run(Path.Combine(Folder, notebook), Environment(), TimeSpan.FromMinutes(4));
        _log.WriteLine($"{notebook}: {run.Seconds:F1} s");
        _log.WriteLine(run.Output);
        Assert.True(run.Succeeded, run.Describe(notebook));
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

    /// <summary>A notebook whose second code cell throws: the run fails and names that cell, not a later one.</summary>
    [Fact]
    public void A_failing_cell_is_named()
    {
        var dir = Directory.CreateTempSubdirectory("emflow-notebook-test");
        try
        {
            var path = Path.Combine(dir.FullName, "broken.ipynb");
            File.WriteAllText(path, FSharpNotebook("let a = 1", "if a = 1 then failwithf \"boom %d\" a", "printfn \"after\""));
            var run = NotebookRunner.Run(path, Environment(), TimeSpan.FromMinutes(2));
            Assert.False(run.Succeeded);
            Assert.Equal(2, run.FailedCell);   // cell 0 is markdown
            Assert.Contains("boom 1", run.Errors + run.Output);
            Assert.DoesNotContain("after", run.Output);

            File.WriteAllText(path, FSharpNotebook("let a = 1", "printfn \"fine\"", "let b: int = \"not an int\""));
            var compile = NotebookRunner.Run(path, Environment(), TimeSpan.FromMinutes(2));
            Assert.False(compile.Succeeded);
            Assert.Equal(3, compile.FailedCell);
        }
        finally
        {
            dir.Delete(true);
        }
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
