using Microsoft.FSharp.Core;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace EMFlow;

/// <summary>
/// The one-file format of a fitted <see cref="EMFlowImputer"/>: a header, the options as JSON, the scaler, the
/// Gaussian-EM fit, and each kept iteration's latent Gaussian and flow parameters (by name), all little-endian.
/// </summary>
/// <remarks>Format 3 (4 when the start has candidates from other assemblies, which it adds after the kNN donors:
/// each candidate's type, name and saved state, and the blend weights; 5 when that start was averaged over several
/// hold-out draws, which adds their count after the weights): the header (magic, version), the SHA-256 of the payload (32 bytes) and the payload's length
/// (int64), then the payload, which ends with the column names (count, −1 for none, then each name). A file whose
/// checksum or length does not match, or whose content cannot be read, raises <see cref="InvalidDataException"/>
/// naming the file. Formats 1 and 2 carry no checksum and no names; they still load, and damage found while reading
/// them raises the same exception.</remarks>
internal static class ModelFile
{
    private const string Magic = "EMFLOW-MODEL";
    // Format 2 adds the start the fit used and, for a kNN start, the donor rows; format 3 a checksum and the column
    // names; format 4 the start's other candidates (their type, name and saved state) and blend weights; format 5 the
    // number of hold-out draws the start was averaged over. Formats 1 to 4 still load.
    private const int Version = 5;

    internal sealed record Contents(EMFlowOptions Options, Scaler.MinMax Scaler, FitResult Fit, string[]? ColumnNames);

    /// <summary>Writes the fit with the iterations up to the selected one; later ones are not saved.</summary>
    public static void Save(string path, EMFlowOptions options, Scaler.MinMax scaler, FitResult fit, IReadOnlyList<string>? columnNames = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path)) throw new ArgumentException($"'{path}' is a folder; give a file name for the model.", nameof(path));
        // A model is written in the oldest format that holds it, so older readers still open it.
        bool candidates = fit.Start.Extra.Length > 0 || fit.Start.Weights is not null;
        int version = fit.Start.Draws > 1 ? 5 : candidates ? 4 : 3;
        ChecksummedFile.Write(path, Magic, version, w =>
        {
            w.Write(JsonSerializer.Serialize(options));
            ChecksummedFile.WriteArray(w, scaler.Min);
            ChecksummedFile.WriteArray(w, scaler.Max);
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
            if (candidates) WriteCandidates(w, fit.Start);
            if (version >= 5) w.Write(fit.Start.Draws);
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
            w.Write(columnNames?.Count ?? -1);
            foreach (var name in columnNames ?? Array.Empty<string>()) w.Write(name);
        });
    }

    // Format 4: each candidate's type (to create it when loading), name and saved state, then the blend weights.
    private static void WriteCandidates(BinaryWriter w, Start start)
    {
        w.Write(start.Extra.Length);
        foreach (var (candidate, fitted) in start.Extra.Select(e => e.ToValueTuple()))
        {
            var type = candidate.GetType();
            w.Write($"{type.FullName}, {type.Assembly.GetName().Name}");
            w.Write(candidate.Name);
            var bytes = fitted.Save();
            w.Write(bytes.Length);
            w.Write(bytes);
        }
        var weights = start.Weights?.Value;
        w.Write(weights is not null);
        if (weights is not null) WriteTensor(w, weights);
    }

    public static Contents Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.OpenRead(path);
        using var header = new BinaryReader(file, Encoding.UTF8, leaveOpen: true);
        if (ChecksummedFile.ReadMagic(header) != Magic) throw new InvalidDataException($"'{path}' is not an EMFlow model file.");
        int version;
        try { version = header.ReadInt32(); }
        catch (EndOfStreamException) { throw Damaged(path, "it ends inside its header"); }
        if (version is < 1 or > Version) throw new InvalidDataException($"'{path}' has model format {version}; this library reads formats 1 to {Version} (a damaged file, or one written by a newer version).");
        Stream body = file;
        if (version >= 3)
        {
            var content = ChecksummedFile.ReadPayload(file, header, why => Damaged(path, why));
            body = new MemoryStream(content, writable: false);
        }
        try
        {
            using var r = new BinaryReader(body, Encoding.UTF8, leaveOpen: true);
            var contents = Read(r, version);
            if (version >= 3 && body.Position != body.Length) throw new InvalidDataException("unread bytes follow the content");
            return contents;
        }
        catch (Exception e) when (e is not OutOfMemoryException and not MissingStartCandidateException)
        {
            throw Damaged(path, e.Message.TrimEnd('.'), e);
        }
        catch (MissingStartCandidateException e)
        {
            throw new TypeLoadException($"'{path}' was fitted with {e.Message}", e);
        }
    }

    private sealed class MissingStartCandidateException(string message) : Exception(message);

    // The candidate's own assembly reads its state; a model file names the type, which must be loadable here.
    private static IStartCandidate CreateCandidate(string typeName, string name)
    {
        var assembly = typeName[(typeName.LastIndexOf(',') + 1)..].Trim();
        var fullName = typeName[..Math.Max(0, typeName.LastIndexOf(','))];
        // Hosts such as notebooks load packages into the process without putting them on the probing path.
        var type = Type.GetType(typeName, throwOnError: false)
            ?? AppDomain.CurrentDomain.GetAssemblies().Where(a => a.GetName().Name == assembly).Select(a => a.GetType(fullName)).FirstOrDefault(t => t is not null);
        if (type is null)
        {
            throw new MissingStartCandidateException($"the start candidate '{name}' ({typeName}); load the assembly {assembly} (for example, reference its package) before loading the model.");
        }
        if (!typeof(IStartCandidate).IsAssignableFrom(type) || type.GetConstructor(Type.EmptyTypes) is null)
            throw new InvalidDataException($"{typeName} is not a start candidate with a parameterless constructor");
        return (IStartCandidate)Activator.CreateInstance(type)!;
    }

    private static InvalidDataException Damaged(string path, string why, Exception? inner = null) =>
        new($"'{path}' is a damaged EMFlow model file: {why}.", inner);

    private static Contents Read(BinaryReader r, int version)
    {
        var json = r.ReadString();
        var options = JsonSerializer.Deserialize<EMFlowOptions>(json) ?? throw new InvalidDataException("Missing options.");
        // Files written before the networks could compute in float32, or take ReLU, were fitted in float64 with tanh;
        // the properties' defaults are not what they ran with.
        using (var document = JsonDocument.Parse(json))
        {
            if (!document.RootElement.TryGetProperty(nameof(EMFlowOptions.FlowPrecision), out _))
                options = options with { FlowPrecision = FlowPrecision.Float64 };
            if (!document.RootElement.TryGetProperty(nameof(EMFlowOptions.HiddenActivation), out _))
                options = options with { HiddenActivation = HiddenActivation.Tanh };
        }
        var scaler = new Scaler.MinMax(ChecksummedFile.ReadArray(r), ChecksummedFile.ReadArray(r));
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
                donors = Knn.keep(Knn.donors(x, Tensors.oneMinus(observed)));
            }
        }
        var extra = new List<Tuple<IStartCandidate, IFittedStartCandidate>>();
        Tensor? weights = null;
        if (version >= 4)
        {
            for (int c = r.ReadInt32(); c > 0; c--)
            {
                var typeName = r.ReadString();
                var name = r.ReadString();
                int length = r.ReadInt32();
                if (length < 0 || length > r.BaseStream.Length - r.BaseStream.Position) throw new InvalidDataException($"a start candidate length of {length} does not fit in the rest of the file");
                var bytes = r.ReadBytes(length);
                var candidate = CreateCandidate(typeName, name);
                extra.Add(Tuple.Create(candidate, candidate.Load(bytes)));
            }
            if (r.ReadBoolean()) weights = ReadTensor(r);
        }
        int draws = 1;
        if (version >= 5)
        {
            draws = r.ReadInt32();
            if (draws < 1 || extra.Count % draws != 0) throw new InvalidDataException($"a start averaged over {draws} draws cannot hold {extra.Count} candidates");
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
            donors is null ? FSharpOption<Knn.Donors>.None : FSharpOption<Knn.Donors>.Some(donors),
            extra.ToArray(),
            weights is null ? FSharpOption<Tensor>.None : FSharpOption<Tensor>.Some(weights), draws);
        var fit = new FitResult(startState, models.ToArray(), models.Count, history.ToArray(), epochs.ToArray(), double.NaN, initialRmse);
        string[]? names = null;
        if (version >= 3)
        {
            int nameCount = r.ReadInt32();
            if (nameCount >= 0)
            {
                if (nameCount != p) throw new InvalidDataException($"it stores {nameCount} column names for {p} columns");
                names = new string[nameCount];
                for (int j = 0; j < nameCount; j++) names[j] = r.ReadString();
            }
        }
        return new Contents(options, scaler, fit, names);
    }

    private static void WriteTensor(BinaryWriter w, Tensor t)
    {
        w.Write(t.shape.Length);
        foreach (var d in t.shape) w.Write(d);
        ChecksummedFile.WriteArray(w, Tensors.toArray(t));
    }

    private static Tensor ReadTensor(BinaryReader r)
    {
        int rank = r.ReadInt32();
        if (rank is < 0 or > 8) throw new InvalidDataException($"a tensor rank of {rank} is not one this format writes");
        var shape = new long[rank];
        for (int i = 0; i < shape.Length; i++) shape[i] = r.ReadInt64();
        return tensor(ChecksummedFile.ReadArray(r), dtype: float64).reshape(shape).DetachFromDisposeScope();
    }

    private static void WriteEstimate(BinaryWriter w, OnlineEm.Estimate e)
    {
        WriteTensor(w, e.Mu);
        WriteTensor(w, e.Sigma);
    }

    private static OnlineEm.Estimate ReadEstimate(BinaryReader r) => new(ReadTensor(r), ReadTensor(r));
}
