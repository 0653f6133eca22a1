using Microsoft.FSharp.Core;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace EMFlow;

/// <summary>
/// The one-file format of a fitted <see cref="EMFlowImputer"/>: a header, the options as JSON, the scaler, the
/// Gaussian-EM fit, and each kept iteration's latent Gaussian and flow parameters (by name), all little-endian.
/// </summary>
internal static class ModelFile
{
    private const string Magic = "EMFLOW-MODEL";
    // Format 2 adds the start the fit used and, for a kNN start, the donor rows; format 1 files still load.
    private const int Version = 2;

    internal sealed record Contents(EMFlowOptions Options, Scaler.MinMax Scaler, FitResult Fit);

    /// <summary>Writes the fit with the iterations up to the selected one; later ones are not saved.</summary>
    public static void Save(string path, EMFlowOptions options, Scaler.MinMax scaler, FitResult fit)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // Written to a temporary file first so a failure never leaves a half-written model behind.
        var tmp = path + ".tmp";
        using (var w = new BinaryWriter(File.Create(tmp), Encoding.UTF8))
        {
            w.Write(Magic);
            w.Write(Version);
            w.Write(JsonSerializer.Serialize(options));
            WriteArray(w, scaler.Min);
            WriteArray(w, scaler.Max);
            w.Write(fit.InitialValidationRmse);
            WriteEstimate(w, fit.Start.Gaussian);
            w.Write((int)fit.Start.Kind);
            var knnShare = fit.Start.KnnShare?.Value;
            w.Write(knnShare is not null);
            if (knnShare is not null) WriteTensor(w, knnShare);
            var donors = fit.Start.Donors?.Value;
            w.Write(donors is not null);
            if (donors is not null)
            {
                WriteTensor(w, donors.X);
                WriteTensor(w, donors.Observed);
            }
            w.Write(fit.Selected);
            foreach (var model in fit.Models.Take(fit.Selected))
            {
                WriteEstimate(w, model.Latent);
                var state = Flow.state(model.Flow);
                w.Write(state.Count);
                foreach (var (name, t) in state)
                {
                    w.Write(name);
                    WriteTensor(w, t);
                    t.Dispose();
                }
            }
            w.Write(fit.History.Length);
            foreach (var h in fit.History)
            {
                w.Write(h.Iteration); w.Write(h.MeanL1); w.Write(h.MeanL2); w.Write(h.LatentLogLikelihood);
                w.Write(h.ValidationRmse); w.Write(h.Seconds); w.Write(h.Diverged);
            }
            w.Write(fit.Epochs.Length);
            foreach (var e in fit.Epochs)
            {
                w.Write(e.Iteration); w.Write(e.Epoch); w.Write(e.MeanL1); w.Write(e.MeanL2); w.Write(e.MeanReconstruction);
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    public static Contents Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        string magic;
        try { magic = r.ReadString(); }
        catch (EndOfStreamException) { magic = ""; }
        if (magic != Magic) throw new InvalidDataException($"'{path}' is not an EMFlow model file.");
        int version = r.ReadInt32();
        if (version is < 1 or > Version) throw new InvalidDataException($"'{path}' has model format {version}; this library reads formats 1 to {Version}.");
        var options = JsonSerializer.Deserialize<EMFlowOptions>(r.ReadString()) ?? throw new InvalidDataException("Missing options.");
        var scaler = new Scaler.MinMax(ReadArray(r), ReadArray(r));
        double initialRmse = r.ReadDouble();
        var gaussian = ReadEstimate(r);
        var start = options.InitialImputation;
        Knn.Donors? donors = null;
        Tensor? knnShare = null;
        if (version >= 2)
        {
            start = (InitialImputation)r.ReadInt32();
            if (r.ReadBoolean()) knnShare = ReadTensor(r);
            if (r.ReadBoolean())
            {
                using var x = ReadTensor(r);
                using var observed = ReadTensor(r);
                donors = Knn.keep(Knn.donors(x, 1.0 - observed));
            }
        }
        int count = r.ReadInt32();
        var models = new List<Model>();
        int p = scaler.Min.Length;
        for (int i = 0; i < count; i++)
        {
            var estimate = ReadEstimate(r);
            int k = r.ReadInt32();
            var state = new Dictionary<string, Tensor>();
            for (int j = 0; j < k; j++) state[r.ReadString()] = ReadTensor(r);
            var flow = Flow.create(options.FlowConfig(p, 0));
            Flow.loadState(flow, state);
            foreach (var t in state.Values) t.Dispose();
            models.Add(new Model(flow, estimate));
        }
        var history = new List<IterationRecord>();
        for (int i = r.ReadInt32(); i > 0; i--)
            history.Add(new IterationRecord(r.ReadInt32(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadBoolean()));
        var epochs = new List<EpochRecord>();
        for (int i = r.ReadInt32(); i > 0; i--)
            epochs.Add(new EpochRecord(r.ReadInt32(), r.ReadInt32(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble()));
        var startState = new Start(start, gaussian,
            knnShare is null ? FSharpOption<Tensor>.None : FSharpOption<Tensor>.Some(knnShare),
            donors is null ? FSharpOption<Knn.Donors>.None : FSharpOption<Knn.Donors>.Some(donors));
        var fit = new FitResult(startState, models.ToArray(), models.Count, history.ToArray(), epochs.ToArray(), double.NaN, initialRmse);
        return new Contents(options, scaler, fit);
    }

    private static void WriteArray(BinaryWriter w, double[] a)
    {
        w.Write(a.Length);
        foreach (var v in a) w.Write(v);
    }

    private static double[] ReadArray(BinaryReader r)
    {
        var a = new double[r.ReadInt32()];
        for (int i = 0; i < a.Length; i++) a[i] = r.ReadDouble();
        return a;
    }

    private static void WriteTensor(BinaryWriter w, Tensor t)
    {
        w.Write(t.shape.Length);
        foreach (var d in t.shape) w.Write(d);
        WriteArray(w, Tensors.toArray(t));
    }

    private static Tensor ReadTensor(BinaryReader r)
    {
        var shape = new long[r.ReadInt32()];
        for (int i = 0; i < shape.Length; i++) shape[i] = r.ReadInt64();
        return tensor(ReadArray(r), dtype: float64).reshape(shape).DetachFromDisposeScope();
    }

    private static void WriteEstimate(BinaryWriter w, OnlineEm.Estimate e)
    {
        WriteTensor(w, e.Mu);
        WriteTensor(w, e.Sigma);
    }

    private static OnlineEm.Estimate ReadEstimate(BinaryReader r) => new(ReadTensor(r), ReadTensor(r));
}
