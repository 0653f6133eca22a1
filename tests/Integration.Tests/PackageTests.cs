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
            foreach (var project in new[] { "src/Core.FSharp/Core.FSharp.fsproj", "src/Host.CSharp/Host.CSharp.csproj" })
                Run(root, "dotnet", $"pack {project} -c Release --no-build -o \"{feed}\" -p:Version={version} -nologo");
            Assert.True(File.Exists(Path.Combine(feed, $"EMFlow.{version}.nupkg")));

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
            var numbers = output.Trim().Split('\n')[^1].Split(' ').Select(double.Parse).ToArray();
            // The two columns are exactly proportional (b = 2a), so Gaussian EM recovers 4 and 4.
            Assert.Equal(4.0, numbers[0], 1);
            Assert.Equal(4.0, numbers[1], 1);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static string Run(string directory, string file, string arguments)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
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
