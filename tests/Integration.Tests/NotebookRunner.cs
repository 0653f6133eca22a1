using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace EMFlow.Tests;

/// <summary>One code cell of a notebook: its position among the code cells, among all cells, and its lines.</summary>
internal sealed record CodeCell(int CodeIndex, int CellIndex, string[] Lines);

/// <summary>What a headless run of a notebook gave.</summary>
/// <param name="Succeeded">True when every cell ran without error.</param>
/// <param name="FailedCell">The failing code cell (its index among the notebook's cells, markdown included), or null.</param>
/// <param name="Output">Standard output of the run.</param>
/// <param name="Errors">Standard error of the run (compiler errors, exceptions).</param>
/// <param name="Seconds">Wall-clock seconds, build included.</param>
internal sealed record NotebookRun(bool Succeeded, int? FailedCell, string Output, string Errors, double Seconds)
{
    /// <summary>A failure message naming the notebook and the cell, with the tail of both streams.</summary>
    public string Describe(string notebook) =>
        $"{notebook} failed in cell {(FailedCell is int c ? c.ToString() : "?")} (cells counted from 0, markdown included)."
        + $"\n--- stderr (tail) ---\n{Tail(Errors)}\n--- stdout (tail) ---\n{Tail(Output)}";

    private static string Tail(string s, int chars = 4000) => s.Length <= chars ? s : "..." + s[^chars..];
}

/// <summary>
/// Runs a notebook's code cells in order without a .NET Interactive kernel (which cannot be started on CI
/// machines). F# notebooks become one script for <c>dotnet fsi</c>, each cell its own submission (cells are
/// separated by <c>;;</c>), so <c>#r</c> may appear in any cell as it may in a kernel. C# notebooks become the
/// top-level statements of a generated console project: <c>#r</c> lines turn into references and <c>using</c>
/// directives are hoisted to the top. Both get a <c>display</c> fallback that prints the value, the kernel's
/// own being absent, and print a marker before each cell, so a runtime failure is traced to the last marker
/// seen and a compile error to the line range of its cell.
/// </summary>
internal static class NotebookRunner
{
    private const string Marker = "__CELL__ ";

    /// <summary>The repository root: the nearest folder above the test assembly holding EMFlow.sln.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "EMFlow.sln"))) return dir.FullName;
        throw new InvalidOperationException($"No EMFlow.sln above {AppContext.BaseDirectory}.");
    }

    /// <summary>The kernel language of a notebook, from its kernelspec: "fsharp" or "csharp".</summary>
    public static string Language(JsonElement notebook)
    {
        var name = notebook.GetProperty("metadata").GetProperty("kernelspec").GetProperty("name").GetString();
        return name switch
        {
            ".net-fsharp" => "fsharp",
            ".net-csharp" => "csharp",
            _ => throw new InvalidDataException($"Unsupported kernelspec '{name}'; expected .net-fsharp or .net-csharp."),
        };
    }

    /// <summary>The code cells in order; a cell in another language than the notebook's is an error.</summary>
    public static List<CodeCell> CodeCells(JsonElement notebook)
    {
        var language = Language(notebook);
        var cells = new List<CodeCell>();
        int index = 0;
        foreach (var cell in notebook.GetProperty("cells").EnumerateArray())
        {
            if (cell.GetProperty("cell_type").GetString() == "code")
            {
                if (cell.TryGetProperty("metadata", out var meta) && meta.TryGetProperty("dotnet_interactive", out var di)
                    && di.TryGetProperty("language", out var lang) && lang.GetString() != language)
                    throw new InvalidDataException($"Cell {index} is {lang.GetString()}; the runner executes {language} notebooks only in {language}.");
                cells.Add(new CodeCell(cells.Count, index, Source(cell).Replace("\r\n", "\n").Split('\n')));
            }
            index++;
        }
        return cells;
    }

    /// <summary>A cell's source, stored either as one string or as a list of lines.</summary>
    public static string Source(JsonElement cell)
    {
        var source = cell.GetProperty("source");
        return source.ValueKind == JsonValueKind.Array
            ? string.Concat(source.EnumerateArray().Select(l => l.GetString()))
            : source.GetString() ?? "";
    }

    /// <summary>Runs the notebook at <paramref name="path"/> with its folder as working directory.</summary>
    public static NotebookRun Run(string path, IReadOnlyDictionary<string, string> environment, TimeSpan timeout)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var cells = CodeCells(doc.RootElement);
        var workDir = Path.Combine(Path.GetTempPath(), "emflow-notebooks", Path.GetFileNameWithoutExtension(path) + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(workDir);
        try
        {
            return Language(doc.RootElement) == "fsharp"
                ? RunFSharp(path, cells, workDir, environment, timeout)
                : RunCSharp(path, cells, workDir, environment, timeout);
        }
        finally
        {
            try { Directory.Delete(workDir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    // `#r "path"` / `#load "path"`; nuget references are left to the tool.
    private static readonly Regex Directive = new(@"^(\s*#(?:r|load)\s+@?"")([^""]+)("".*)$");

    /// <summary>A <c>#r</c>/<c>#load</c> path made absolute against the notebook's folder: the generated script lives elsewhere.</summary>
    private static string AbsolutePaths(string line, string notebookDir)
    {
        var m = Directive.Match(line);
        if (!m.Success || m.Groups[2].Value.StartsWith("nuget:", StringComparison.Ordinal) || Path.IsPathRooted(m.Groups[2].Value)) return line;
        return m.Groups[1].Value + Path.GetFullPath(Path.Combine(notebookDir, m.Groups[2].Value)) + m.Groups[3].Value;
    }

    private static NotebookRun RunFSharp(string path, List<CodeCell> cells, string workDir, IReadOnlyDictionary<string, string> env, TimeSpan timeout)
    {
        var notebookDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var script = new List<string>
        {
            "let display (value: obj) = printfn \"%O\" value; value",
            ";;",
        };
        var ranges = new List<(int First, int Last, CodeCell Cell)>();
        foreach (var cell in cells)
        {
            script.Add($"printfn \"{Marker}{cell.CodeIndex}\"");
            script.Add(";;");
            int first = script.Count + 1;
            script.AddRange(cell.Lines.Select(l => AbsolutePaths(l, notebookDir)));
            ranges.Add((first, script.Count, cell));
            script.Add(";;");
        }
        var file = Path.Combine(workDir, Path.GetFileNameWithoutExtension(path) + ".fsx");
        File.WriteAllLines(file, script);
        var clock = Stopwatch.StartNew();
        var (exit, stdout, stderr) = Execute("dotnet", ["fsi", "--nologo", file], notebookDir, env, timeout);
        bool compileError = Regex.IsMatch(stderr, @"error FS\d+");
        bool ok = exit == 0 && !compileError;
        return new NotebookRun(ok, ok ? null : Locate(stderr, stdout, Regex.Escape(Path.GetFileName(file)), ranges, cells), stdout, stderr, clock.Elapsed.TotalSeconds);
    }

    // A `using` directive (not a using statement or declaration): `using A.B;`, `using static A.B;`, `using X = A.B;`.
    private static readonly Regex UsingDirective = new(@"^\s*using\s+(static\s+)?[A-Za-z_][\w.]*(\s*=\s*[\w.<>, ]+)?\s*;\s*$");

    private static NotebookRun RunCSharp(string path, List<CodeCell> cells, string workDir, IReadOnlyDictionary<string, string> env, TimeSpan timeout)
    {
        var notebookDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var references = new List<string>();
        var usings = new List<string>();
        var bodies = new List<(CodeCell Cell, List<string> Lines)>();
        foreach (var cell in cells)
        {
            var lines = new List<string>();
            foreach (var raw in cell.Lines)
            {
                var m = Directive.Match(raw);
                if (m.Success)
                {
                    if (m.Groups[2].Value.StartsWith("nuget:", StringComparison.Ordinal))
                        throw new InvalidDataException($"Cell {cell.CellIndex}: the C# runner does not resolve '#r \"nuget:\"' references.");
                    references.Add(Path.GetFullPath(Path.Combine(notebookDir, m.Groups[2].Value)));
                    lines.Add("");   // keeps the cell's line numbers
                }
                else if (UsingDirective.IsMatch(raw))
                {
                    if (!usings.Contains(raw.Trim())) usings.Add(raw.Trim());
                    lines.Add("");
                }
                else lines.Add(raw);
            }
            bodies.Add((cell, lines));
        }
        var program = new List<string>(usings);
        var ranges = new List<(int First, int Last, CodeCell Cell)>();
        foreach (var (cell, lines) in bodies)
        {
            program.Add($"System.Console.WriteLine(\"{Marker}{cell.CodeIndex}\");");
            int first = program.Count + 1;
            program.AddRange(lines);
            ranges.Add((first, program.Count, cell));
        }
        // The kernel's display renders rich output; headless, the value's text is all there is to show.
        program.Add("static object display(object value) { System.Console.WriteLine(value); return value; }");
        File.WriteAllLines(Path.Combine(workDir, "Program.cs"), program);
        var refs = string.Concat(references.Distinct().Select(r => $"\n    <Reference Include=\"{r}\" />"));
        File.WriteAllText(Path.Combine(workDir, "Notebook.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>disable</Nullable>
                <NoWarn>CS8321</NoWarn>
                <AssemblyName>Notebook</AssemblyName>
              </PropertyGroup>
              <ItemGroup>{refs}
              </ItemGroup>
            </Project>
            """);
        var clock = Stopwatch.StartNew();
        var (buildExit, buildOut, buildErr) = Execute("dotnet", ["build", "-c", "Release", "-nologo", "-v", "q", "-clp:ErrorsOnly"], workDir, env, timeout);
        if (buildExit != 0)
        {
            var all = buildOut + buildErr;
            return new NotebookRun(false, Locate(all, "", "Program\\.cs", ranges, cells), buildOut, buildErr, clock.Elapsed.TotalSeconds);
        }
        var output = Path.Combine(workDir, "bin", "Release", "net10.0");
        // Native torch libraries and the F# runtime sit beside the referenced assemblies, not in any reference's
        // dependency list: copy those folders whole.
        foreach (var folder in references.Select(Path.GetDirectoryName).Distinct())
            CopyMissing(folder!, output);
        var remaining = timeout - clock.Elapsed;
        var (exit, stdout, stderr) = Execute("dotnet", [Path.Combine(output, "Notebook.dll")], notebookDir, env, remaining > TimeSpan.Zero ? remaining : TimeSpan.FromSeconds(1));
        bool ok = exit == 0;
        return new NotebookRun(ok, ok ? null : Locate(stderr, stdout, "Program\\.cs", ranges, cells), stdout, stderr, clock.Elapsed.TotalSeconds);
    }

    private static void CopyMissing(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            if (File.Exists(target)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    /// <summary>
    /// The failing cell (index among all cells): the cell whose lines hold the first reported compile error,
    /// else the cell after the last marker printed (it started and did not finish).
    /// </summary>
    private static int? Locate(string errors, string output, string fileRegex, List<(int First, int Last, CodeCell Cell)> ranges, List<CodeCell> cells)
    {
        var error = Regex.Match(errors, fileRegex + @"\((\d+),\d+\): error");
        if (error.Success)
        {
            int line = int.Parse(error.Groups[1].Value);
            foreach (var (first, last, cell) in ranges)
                if (line >= first && line <= last) return cell.CellIndex;
        }
        var markers = Regex.Matches(output, "^" + Marker + @"(\d+)\s*$", RegexOptions.Multiline);
        if (markers.Count == 0) return null;
        int code = int.Parse(markers[^1].Groups[1].Value);
        return cells[code].CellIndex;
    }

    /// <summary>Runs a process to completion or to the timeout (then kills its whole tree), capturing both streams.</summary>
    private static (int Exit, string Stdout, string Stderr) Execute(string file, string[] args, string workDir, IReadOnlyDictionary<string, string> env, TimeSpan timeout)
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
