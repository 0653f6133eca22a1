using System.Diagnostics;

namespace EMFlow.Tests;

/// <summary>How a C# developer first meets the project: the NuGet packages, referenced by a fresh console app.</summary>
public class PackageTests
{
    [Fact]
    public void A_fresh_console_app_imputes_a_table_through_the_packages_from_a_local_folder()
    {
        var root = NotebookRunner.RepositoryRoot();
        var work = Directory.CreateTempSubdirectory("emflow-package-");
        try
        {
            // A version of its own, so a package cached by an earlier run cannot stand in for this build.
            var version = $"0.1.0-check.{DateTime.UtcNow:yyyyMMddHHmmss}";
            var feed = Path.Combine(work.FullName, "packages");
            foreach (var project in new[] { "src/Core.FSharp/Core.FSharp.fsproj", "src/Host.CSharp/Host.CSharp.csproj", "src/Deedle.FSharp/Deedle.FSharp.fsproj" })
            {
                // Without NUGET_V3_FEED (build.sh sets it, a plain dotnet pack does not), packing is still quiet about it.
                var log = Run(root, "dotnet", $"pack {project} -c Release --no-build -o \"{feed}\" -p:Version={version} -nologo", new() { ["NUGET_V3_FEED"] = null });
                Assert.DoesNotContain("NUGET_V3_FEED", log);
            }
            Assert.True(File.Exists(Path.Combine(feed, $"EMFlow.{version}.nupkg")));
            foreach (var id in new[] { "EMFlow.Core", "EMFlow", "EMFlow.Deedle" })
            {
                using var package = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"{id}.{version}.nupkg"));
                using var reader = new StreamReader(package.GetEntry($"{id}.nuspec")!.Open());
                var nuspec = reader.ReadToEnd();
                Assert.Contains("<readme>README.md</readme>", nuspec);
                Assert.NotNull(package.GetEntry("README.md"));
                Assert.Contains("<license type=\"expression\">MIT</license>", nuspec);
                // No <repository> check: paket's repack (PaketOverrideNuspec) drops the element that RepositoryType
                // and the commit put in the SDK's nuspec.
                Assert.Matches("<description>.{40,}</description>", nuspec);
                Assert.Matches("<tags>.*imputation.*</tags>", nuspec);
            }

            var app = Directory.CreateDirectory(Path.Combine(work.FullName, "app")).FullName;
            File.WriteAllText(Path.Combine(app, "app.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <ImplicitUsings>enable</ImplicitUsings>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="EMFlow" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            // EMFlow packages come from the local folder only; their dependencies from the packages already on this machine.
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed}" />
                    <add key="machine" value="{GlobalPackages()}" />
                  </packageSources>
                  <packageSourceMapping>
                    <packageSource key="local"><package pattern="EMFlow*" /></packageSource>
                    <packageSource key="machine"><package pattern="*" /></packageSource>
                  </packageSourceMapping>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                using EMFlow;
                var table = new double[,] { { 1, 2 }, { 2, double.NaN }, { 3, 6 }, { double.NaN, 8 }, { 5, 10 }, { 6, 12 } };
                using var imputer = new GaussianEmImputer();
                var done = imputer.FitTransform(table);
                Console.WriteLine($"{done[1, 1]:F2} {done[3, 0]:F2}");
                """);
            var output = Run(app, "dotnet", "run -c Release");
            AssertImputed(output);

            // Published, the app must not lean on the NuGet cache: TorchSharp falls back to the cache under $HOME when
            // the shim beside the app fails to load, so run it with an empty HOME and no NUGET_PACKAGES.
            var published = Path.Combine(work.FullName, "published");
            Run(app, "dotnet", $"publish -c Release -o \"{published}\" -nologo");
            var home = Directory.CreateDirectory(Path.Combine(work.FullName, "empty-home")).FullName;
            AssertImputed(Run(published, "dotnet", "app.dll", new() { ["HOME"] = home, ["NUGET_PACKAGES"] = null, ["DOTNET_CLI_HOME"] = null }));

            // NUGET_PACKAGES without a trailing slash: the targets must still find TorchSharp's shim in the cache.
            var cache = Path.TrimEndingDirectorySeparator(GlobalPackages());
            var build = Run(app, "dotnet", "build -c Release -nologo -v:n", new() { ["NUGET_PACKAGES"] = cache });
            var checkedLine = build.Split('\n').FirstOrDefault(l => l.Contains("TorchSharp shims checked", StringComparison.Ordinal));
            Assert.True(checkedLine is not null, build);
            Assert.Contains(Path.Combine(cache, "torchsharp") + "/", checkedLine);
            AssertImputed(Run(app, "dotnet", "run -c Release --no-build", new() { ["NUGET_PACKAGES"] = cache }));
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>The app prints the two imputed cells; the columns are exactly proportional (b = 2a), so Gaussian EM
    /// recovers 4 and 4.</summary>
    private static void AssertImputed(string output)
    {
        var numbers = output.Trim().Split('\n')[^1].Split(' ').Select(s => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(4.0, numbers[0], 1);
        Assert.Equal(4.0, numbers[1], 1);
    }

    private static string Run(string directory, string file, string arguments, Dictionary<string, string?>? environment = null)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (name, value) in environment ?? new())
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5))) { process.Kill(true); throw new TimeoutException($"{file} {arguments}"); }
        Assert.True(process.ExitCode == 0, $"{file} {arguments} exited {process.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
        return stdout.Result;
    }

    private static string GlobalPackages() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
}
