using System.Diagnostics;

namespace EMFlow.Evaluation;

/// <summary>
/// The largest resident set while a method ran. On Linux the kernel's high-water mark (VmHWM) is reset when the
/// method starts and read when it ends, so nothing runs beside the method: a sampling thread would allocate, and a
/// collection it triggers can finalize a temporary TorchSharp Scalar while a native call still uses it.
/// Elsewhere (or where the reset is refused) the process's peak working set so far, an upper bound.
/// </summary>
internal sealed class PeakMemory : IDisposable
{
    private readonly bool _reset;

    public PeakMemory()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            _reset = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            _reset = false;
        }
    }

    public long Stop()
    {
        if (_reset)
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal)
                    && long.TryParse(line[6..].Trim().Split(' ')[0], out var kb))
                    return kb * 1024;
        using var p = Process.GetCurrentProcess();
        return p.PeakWorkingSet64;
    }

    public void Dispose() { }
}
