using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace EMFlow.Bench;

/// <summary>
/// One L1 step of the flow, the project's TorchSharp code against the same step in PyTorch (bench/step/step.py):
/// the ridge added to the latent covariance, <c>Training.l1Loss</c> (x → f⁻¹(x) through the default flow, −mean log
/// density under the latent Gaussian), zeroed gradients, backward, gradient-norm clipping and <c>Optim.Adam</c>,
/// with the default architecture, batch, learning rate and clipping of <see cref="EMFlowOptions"/>, float64, one
/// torch thread. It is the flow-training part of <c>Training.trainStep</c>; the E-step and M-step that follow it there
/// have no PyTorch counterpart here and are timed on the TorchSharp side only, for scale.
/// </summary>
internal static class StepBench
{
    public static int Run(Args a)
    {
        set_num_threads(1);
        int rounds = a.Int("rounds", 3), steps = a.Int("steps", 50), warmup = a.Int("warmup", 10);
        var featureList = (a.List("features") ?? new[] { "16" }).Select(int.Parse).ToArray();
        var python = FindPython(a.Get("python"));
        if (python is null)
        {
            Console.Error.WriteLine(
                $"error: the step benchmark needs python3 with PyTorch (import torch failed for {a.Get("python") ?? "python3 and /usr/bin/python3"}).\n" +
                "  Debian/Ubuntu: apt-get install -y --no-install-recommends python3-torch libopenblas0-pthread\n" +
                "  (without an optimised BLAS, Debian's torch runs on the reference BLAS); or name an interpreter with --python PATH.");
            return 2;
        }
        var script = FindScript();
        var options = new EMFlowOptions();
        var (tsBlas, tsVersion) = TorchSharpBuild();
        Console.WriteLine($"One flow training step (L1: forward, NLL, backward, clip, Adam), {rounds} rounds of {steps} steps after {warmup} warm-up steps, median; 1 torch thread; {Report.Machine}");
        Console.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version} on libtorch {tsVersion}, BLAS {tsBlas}");
        var rows = new List<IReadOnlyList<string>>();
        string pyVersion = "unknown";
        foreach (var p in featureList)
        {
            var fit = options.ToFitSettings(p);
            var cfg = fit.Flow;
            int batch = a.Int("batch", fit.BatchSize);
            using var x = Data(p, batch);
            var init = Path.Combine(Path.GetTempPath(), $"emflow-step-{Environment.ProcessId}-{p}");
            var ts = new List<double>();
            var py = new List<double>();
            double[]? tsLosses = null;
            JsonElement pyLast = default;
            try
            {
                WriteInit(init, cfg, x);
                for (int r = 0; r < rounds; r++)
                {
                    // Alternating the sides within each round spreads the load of a shared machine over both.
                    var (ms, losses) = TimeTorchSharp(cfg, fit.LearningRate, fit.Step.MaxGradNorm, fit.Step.Ridge, x, warmup, steps);
                    ts.Add(ms);
                    tsLosses ??= losses;
                    pyLast = RunPython(python, script, init, cfg, fit, warmup, steps);
                    py.Add(pyLast.GetProperty("ms_per_step_median").GetDouble());
                    Console.Error.WriteLine($"  p = {p}, round {r + 1}: TorchSharp {ms:F1} ms, PyTorch {py[^1]:F1} ms");
                }
            }
            finally
            {
                if (Directory.Exists(init)) Directory.Delete(init, true);
            }
            var pyLosses = pyLast.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            double lossDiff = tsLosses!.Zip(pyLosses, (u, v) => Math.Abs(u - v) / Math.Max(Math.Abs(u), 1e-300)).DefaultIfEmpty(double.NaN).Max();
            double full = TimeFullStep(fit, x, warmup, steps);
            double tsMs = Report.Median(ts), pyMs = Report.Median(py), ratio = tsMs / pyMs;
            var pyBlas = PythonBlas(pyLast);
            pyVersion = pyLast.GetProperty("torch_version").GetString()!;
            rows.Add(new[]
            {
                p.ToString(), $"{tsMs:F1}", $"{pyMs:F1}", $"{ratio:F2}x", "1", "float64", batch.ToString(),
                $"{tsBlas} / {pyBlas}", $"{lossDiff:E1}", $"{full:F1}",
            });
            Report.AppendJson(a.Get("out"), new
            {
                bench = "step", measured = "l1-step", features = p, batch, layers = cfg.Layers, hidden = cfg.Hidden, depth = cfg.Depth,
                dtype = "float64", threads = 1, learning_rate = fit.LearningRate, max_grad_norm = fit.Step.MaxGradNorm, ridge = fit.Step.Ridge,
                rounds, steps, warmup,
                torchsharp_ms_median = tsMs, pytorch_ms_median = pyMs, ratio_torchsharp_over_pytorch = ratio,
                torchsharp_ms_rounds = ts, pytorch_ms_rounds = py,
                max_rel_diff_warmup_losses = lossDiff, torchsharp_full_train_step_ms = full,
                torchsharp_version = typeof(torch).Assembly.GetName().Version?.ToString(), libtorch_version = tsVersion, torchsharp_blas = tsBlas,
                pytorch_version = pyVersion, pytorch_blas = pyBlas, python,
                machine = Report.Machine, date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
            });
        }
        Console.WriteLine();
        Console.WriteLine(Report.Table(new[]
        {
            "p", "TorchSharp ms/step", "PyTorch ms/step", "ratio (TS / PT)", "threads", "dtype", "batch", "BLAS (TS / PT)",
            "max rel diff, warm-up L1", "TorchSharp full trainStep ms",
        }, rows));
        Console.WriteLine($"PyTorch {pyVersion} ({python} {script}).");
        Console.WriteLine("ratio > 1: TorchSharp is slower. The last column is the project's whole default step (L1 step, latent E-step, online M-step; no L2 step) at 20% MCAR, for scale.");
        return 0;
    }

    /// <summary>Rows the step trains on: standard normal, as a scaled table's spread is immaterial to the time.</summary>
    private static Tensor Data(int p, int batch)
    {
        using var gen = new Generator(12345UL + (ulong)p);
        return randn(new long[] { batch, p }, dtype: float64, generator: gen);
    }

    /// <summary>The latent Gaussian the first step of a training phase sees: the sample moments of f⁻¹(x̂).</summary>
    private static OnlineEm.Estimate Latent(Flow.Flow flow, Tensor x) => Training.initialEstimate(flow, 0.0, x);

    private static (double Ms, double[] Losses) TimeTorchSharp(Flow.FlowConfig cfg, double lr, double maxNorm, double ridge, Tensor x, int warmup, int steps)
    {
        using var flow = Flow.create(cfg);
        var ps = Flow.parameters(flow);
        using var opt = new Optim.Adam(ps, lr);
        var latent = Latent(flow, x);
        try
        {
            // Training.trainStep's L1 half, call for call (its clipAndStep is private to the module).
            double Step()
            {
                using var scope = NewDisposeScope();
                var e = GaussianEm.withRidge(ridge, latent);
                var l1 = Training.l1Loss(flow, e, x);
                opt.ZeroGrad();
                l1.backward();
                var norm = nn.utils.clip_grad_norm_(ps, maxNorm);
                if (double.IsFinite(norm)) opt.Step();
                else opt.ZeroGrad();
                return l1.item<double>();
            }
            var losses = new double[warmup];
            for (int i = 0; i < warmup; i++) losses[i] = Step();
            return (TimeSteps(steps, () => Step()), losses);
        }
        finally
        {
            OnlineEm.disposeEstimate(latent);
        }
    }

    /// <summary>The project's whole default step, <c>Training.trainStep</c>, on the same rows with 20% MCAR entries.</summary>
    private static double TimeFullStep(FitSettings fit, Tensor x, int warmup, int steps)
    {
        using var flow = Flow.create(fit.Flow);
        var ps = Flow.parameters(flow);
        using var optL1 = new Optim.Adam(ps, fit.LearningRate);
        using var optL2 = new Optim.Adam(ps, fit.LearningRate);
        using var mask = Missingness.mcar(7L, 0.2, (int)x.shape[0], (int)x.shape[1]);
        var state = OnlineEm.init(fit.Form, fit.SuperBatch, Latent(flow, x));
        void Step()
        {
            var (next, _) = Training.trainStep(fit.Step, flow, optL1, optL2, state, x, mask);
            OnlineEm.release(state, Microsoft.FSharp.Core.FSharpOption<OnlineEm.State>.Some(next));
            state = next;
        }
        try
        {
            for (int i = 0; i < warmup; i++) Step();
            return TimeSteps(steps, Step);
        }
        finally
        {
            OnlineEm.release(state, Microsoft.FSharp.Core.FSharpOption<OnlineEm.State>.None);
        }
    }

    /// <summary>Median milliseconds of one call over <paramref name="steps"/> calls.</summary>
    private static double TimeSteps(int steps, Action step)
    {
        var times = new List<double>(steps);
        for (int i = 0; i < steps; i++)
        {
            var sw = Stopwatch.StartNew();
            step();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        return Report.Median(times);
    }

    /// <summary>
    /// The rows, the latent Gaussian and every parameter of a fresh flow, as float64 in one file plus a manifest, so
    /// the PyTorch side starts from the same point and its first losses can be checked against these.
    /// </summary>
    private static void WriteInit(string dir, Flow.FlowConfig cfg, Tensor x)
    {
        Directory.CreateDirectory(dir);
        using var flow = Flow.create(cfg);
        var latent = Latent(flow, x);
        var named = new List<(string Name, Tensor T)> { ("x", x), ("mu", latent.Mu), ("sigma", latent.Sigma) };
        foreach (var (name, prm) in flow.named_parameters()) named.Add((name, prm));
        using (var data = File.Create(Path.Combine(dir, "data.bin")))
        {
            foreach (var (_, t) in named)
            {
                using var c = t.detach().contiguous();
                data.Write(MemoryMarshal.AsBytes(c.data<double>().ToArray().AsSpan()));
            }
        }
        var manifest = new
        {
            features = cfg.Features, batch = x.shape[0],
            tensors = named.Select(n => new { name = n.Name, shape = n.T.shape }).ToArray(),
        };
        File.WriteAllText(Path.Combine(dir, "manifest.json"), JsonSerializer.Serialize(manifest));
        OnlineEm.disposeEstimate(latent);
    }

    private static JsonElement RunPython(string python, string script, string init, Flow.FlowConfig cfg, FitSettings fit, int warmup, int steps)
    {
        var psi = new ProcessStartInfo(python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     script, "--init", init, "--layers", cfg.Layers.ToString(), "--hidden", cfg.Hidden.ToString(),
                     "--depth", cfg.Depth.ToString(), "--lr", fit.LearningRate.ToString("R"),
                     "--max-grad-norm", fit.Step.MaxGradNorm.ToString("R"), "--ridge", fit.Step.Ridge.ToString("R"),
                     "--warmup", warmup.ToString(), "--steps", steps.ToString(),
                 })
            psi.ArgumentList.Add(arg);
        // One thread for every pool the interpreter's torch may use, whatever the caller's environment says.
        psi.Environment["OMP_NUM_THREADS"] = "1";
        psi.Environment["MKL_NUM_THREADS"] = "1";
        psi.Environment["OPENBLAS_NUM_THREADS"] = "1";
        using var proc = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {python}");
        var stderr = proc.StandardError.ReadToEndAsync();
        var stdout = proc.StandardOutput.ReadToEnd();
        proc.WaitForExit();
        if (proc.ExitCode != 0)
            throw new InvalidOperationException($"{python} {script} exited with {proc.ExitCode}:\n{stderr.Result}");
        var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last();
        return JsonDocument.Parse(last).RootElement.Clone();
    }

    /// <summary>
    /// The build's BLAS_INFO and, where that is Debian's "generic" (libblas.so.3, resolved by the alternatives system
    /// to the reference BLAS or to OpenBLAS), the library actually mapped into the process.
    /// </summary>
    private static string PythonBlas(JsonElement r)
    {
        var info = r.GetProperty("blas").GetString() ?? "unknown";
        var loaded = r.GetProperty("blas_loaded").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var openblas = loaded.Select(Path.GetFileName).FirstOrDefault(n => n!.StartsWith("libopenblas"));
        if (openblas is not null)
        {
            var version = openblas.Split("-r").ElementAtOrDefault(1)?.Replace(".so", "");
            return $"openblas {version} ({info} build)";
        }
        var blas = loaded.FirstOrDefault(n => n.EndsWith("libblas.so.3"));
        return blas is null ? info : $"{blas} ({info} build)";
    }

    /// <summary>A python3 whose torch imports: the one named, then python3 on the PATH, then the system's.</summary>
    private static string? FindPython(string? given)
    {
        var candidates = given is not null ? new[] { given } : new[] { "python3", "/usr/bin/python3" };
        foreach (var c in candidates)
        {
            try
            {
                var psi = new ProcessStartInfo(c) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                psi.ArgumentList.Add("-c");
                psi.ArgumentList.Add("import torch");
                using var proc = Process.Start(psi);
                if (proc is null) continue;
                proc.StandardOutput.ReadToEnd();
                proc.StandardError.ReadToEnd();
                proc.WaitForExit();
                if (proc.ExitCode == 0) return c;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // Not installed under that name: try the next.
            }
        }
        return null;
    }

    private static string FindScript()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                var f = Path.Combine(d.FullName, "bench", "step", "step.py");
                if (File.Exists(f)) return f;
            }
        }
        throw new FileNotFoundException("bench/step/step.py not found above the working directory or the bench's binaries");
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate IntPtr StringReturning(IntPtr result);

    /// <summary>
    /// BLAS_INFO and TORCH_VERSION from libtorch's own <c>at::show_config()</c>, the text PyTorch's
    /// <c>torch.__config__.show()</c> prints. TorchSharp does not bind it, so it is called through its exported
    /// symbol: the Itanium C++ ABI returns the std::string through a hidden first pointer to 32 bytes, whose first
    /// two words are the character pointer and the length. The string's storage is left to the process's end.
    /// </summary>
    private static (string Blas, string Version) TorchSharpBuild()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return ("unknown", "unknown");
        try
        {
            var candidates = new[] { "libtorch_cpu.so", Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libtorch_cpu.so") };
            foreach (var lib in candidates)
            {
                if (!NativeLibrary.TryLoad(lib, out var handle)) continue;
                if (!NativeLibrary.TryGetExport(handle, "_ZN2at11show_configB5cxx11Ev", out var fn)) continue;
                var show = Marshal.GetDelegateForFunctionPointer<StringReturning>(fn);
                var buffer = Marshal.AllocHGlobal(32);
                try
                {
                    show(buffer);
                    var text = Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(buffer, 0), (int)Marshal.ReadInt64(buffer, 8));
                    string Setting(string key) =>
                        text.Split(new[] { ',', '\n', ' ' }, StringSplitOptions.RemoveEmptyEntries)
                            .FirstOrDefault(s => s.StartsWith(key + "="))?[(key.Length + 1)..] ?? "unknown";
                    var mkl = text.Split('\n').FirstOrDefault(l => l.Contains("Math Kernel Library Version"));
                    var blas = Setting("BLAS_INFO");
                    if (mkl is not null)
                    {
                        var words = mkl.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                        var at = Array.IndexOf(words, "Version");
                        if (at >= 0 && at + 1 < words.Length) blas += " " + words[at + 1].Split('-')[0];
                    }
                    return (blas, Setting("TORCH_VERSION"));
                }
                finally
                {
                    Marshal.FreeHGlobal(buffer);
                }
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            // Reported as unknown below.
        }
        return ("unknown", "unknown");
    }
}
