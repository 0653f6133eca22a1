using System.Text;
using System.Text.Json;
using FeatureModel = EMFlow.ForestImputer.FeatureModel;
using LinearBase = EMFlow.ForestImputer.LinearBase;

namespace EMFlow;

/// <summary>
/// The one-file format of a fitted <see cref="ForestImputer"/>, laid out like EMFlow's own model file: a header
/// (magic, version), the SHA-256 of the payload (32 bytes) and the payload's length (int64), then the payload: the
/// options as JSON, the scaler, the training means, the feature order, each kept sweep's models, the complete
/// features' models, the sweep changes and the column names. Each tree model is the bytes ML.NET's
/// <c>Model.Save</c> writes. Format 2 adds the models of categorical columns (one classifier, or constants, per group
/// of K indicator columns, stored at the group's first column); format 3 adds <see cref="ForestOptions.LinearBase"/>
/// and the ridge part of each numeric model fitted with it; format 4 appends the further runs of
/// <see cref="ForestOptions.Repeats"/> after the column names. Files of formats 1 and 2 still load, as fitted without the
/// linear base, and files of formats 1 to 3 as one run. A file whose checksum or length does not match, or whose content cannot be read, raises
/// <see cref="InvalidDataException"/> naming the file.
/// </summary>
internal static class ForestModelFile
{
    private const string Magic = "EMFLOW-FOREST";
    private const int Version = 4;

    public static void Save(string path, Scaler.MinMax scaler, ForestImputer.Fitted f, IReadOnlyList<string>? names, Func<FeatureModel, int, byte[]> serialize)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path)) throw new ArgumentException($"'{path}' is a folder; give a file name for the model.", nameof(path));
        ChecksummedFile.Write(path, Magic, Version, w => WritePayload(w, scaler, f, names, serialize));
    }

    /// <summary>The payload alone: what a file holds after its header, and what an EMFlow model file embeds for a
    /// forest start (<see cref="ForestStart"/>).</summary>
    public static void WritePayload(BinaryWriter w, Scaler.MinMax scaler, ForestImputer.Fitted f, IReadOnlyList<string>? names, Func<FeatureModel, int, byte[]> serialize)
    {
        int p = scaler.Features;
        {
            w.Write(JsonSerializer.Serialize(f.Options));
            ChecksummedFile.WriteArray(w, scaler.Min);
            ChecksummedFile.WriteArray(w, scaler.Max);
            WriteRun(w, f, p, serialize);
            w.Write(names?.Count ?? -1);
            foreach (var name in names ?? Array.Empty<string>()) w.Write(name);
            // Format 4: the further runs of ForestOptions.Repeats, each as the first run's part above.
            if (f.Others.Length > 0)
            {
                w.Write(f.Others.Length);
                foreach (var run in f.Others) WriteRun(w, run, p, serialize);
            }
        }
    }

    private static void WriteRun(BinaryWriter w, ForestImputer.Fitted f, int p, Func<FeatureModel, int, byte[]> serialize)
    {
        ChecksummedFile.WriteArray(w, f.Means);
        w.Write(f.Order.Length);
        foreach (var j in f.Order) w.Write(j);
        w.Write(f.Sweeps.Length);
        foreach (var sweep in f.Sweeps)
            foreach (var m in sweep) WriteModel(w, m, p, serialize);
        foreach (var m in f.Complete) WriteModel(w, m, p, serialize);
        ChecksummedFile.WriteArray(w, f.Changes);
    }

    public static (Scaler.MinMax Scaler, ForestImputer.Fitted Fitted, string[]? Names) Load(string path, Func<byte[], int, LinearBase?, FeatureModel> deserialize)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.OpenRead(path);
        using var header = new BinaryReader(file, Encoding.UTF8, leaveOpen: true);
        if (ChecksummedFile.ReadMagic(header) != Magic) throw new InvalidDataException($"'{path}' is not an EMFlow forest model file.");
        int version;
        try { version = header.ReadInt32(); }
        catch (EndOfStreamException) { throw Damaged(path, "it ends inside its header"); }
        if (version is < 1 or > Version) throw new InvalidDataException($"'{path}' has forest model format {version}; this library reads formats 1 to {Version}.");
        var content = ChecksummedFile.ReadPayload(file, header, why => Damaged(path, why));
        try
        {
            return ReadPayload(content, deserialize);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw Damaged(path, e.Message.TrimEnd('.'), e);
        }
    }

    /// <summary>Reads what <see cref="WritePayload"/> wrote; damage raises <see cref="InvalidDataException"/> or an
    /// <see cref="IOException"/>.</summary>
    public static (Scaler.MinMax Scaler, ForestImputer.Fitted Fitted, string[]? Names) ReadPayload(byte[] content, Func<byte[], int, LinearBase?, FeatureModel> deserialize)
    {
        {
            using var r = new BinaryReader(new MemoryStream(content, writable: false), Encoding.UTF8);
            var json = r.ReadString();
            var options = JsonSerializer.Deserialize<ForestOptions>(json) ?? throw new InvalidDataException("missing options");
            // Options written before the linear base existed lack it: those models were fitted without one, whatever
            // the default is now.
            using (var document = JsonDocument.Parse(json))
                if (!document.RootElement.TryGetProperty(nameof(ForestOptions.LinearBase), out _)) options = options with { LinearBase = ForestLinearBase.None };
            var scaler = new Scaler.MinMax(ChecksummedFile.ReadArray(r), ChecksummedFile.ReadArray(r));
            int p = scaler.Features;
            var first = ReadRun(r, options, p, deserialize);
            string[]? names = null;
            int nameCount = r.ReadInt32();
            if (nameCount >= 0)
            {
                if (nameCount != p) throw new InvalidDataException($"it stores {nameCount} column names for {p} columns");
                names = new string[nameCount];
                for (int j = 0; j < nameCount; j++) names[j] = r.ReadString();
            }
            var others = Array.Empty<ForestImputer.Fitted>();
            if (r.BaseStream.Position != r.BaseStream.Length)
            {
                int count = r.ReadInt32();
                if (count != options.Repeats - 1) throw new InvalidDataException($"it stores {count} further runs for {options.Repeats} repeats");
                others = new ForestImputer.Fitted[count];
                for (int k = 0; k < count; k++) others[k] = ReadRun(r, options, p, deserialize);
            }
            else if (options.Repeats != 1) throw new InvalidDataException($"it stores 1 run for {options.Repeats} repeats");
            if (r.BaseStream.Position != r.BaseStream.Length) throw new InvalidDataException("unread bytes follow the content");
            return (scaler, first with { Others = others }, names);
        }
    }

    private static ForestImputer.Fitted ReadRun(BinaryReader r, ForestOptions options, int p, Func<byte[], int, LinearBase?, FeatureModel> deserialize)
    {
        var means = ChecksummedFile.ReadArray(r);
        int count = r.ReadInt32();
        // Only a group's first column is in the order, so a table with categorical columns lists fewer than p.
        if (count < 1 || count > p || means.Length != p) throw new InvalidDataException($"it stores {count} features in its order for {p} columns");
        var order = new int[count];
        for (int k = 0; k < count; k++)
        {
            order[k] = r.ReadInt32();
            if (order[k] < 0 || order[k] >= p) throw new InvalidDataException($"feature {order[k]} is out of range");
        }
        int sweeps = r.ReadInt32();
        if (sweeps < 1 || sweeps > Math.Max(1, options.MaxSweeps)) throw new InvalidDataException($"{sweeps} kept sweeps is not a count this format writes");
        var models = new FeatureModel?[sweeps][];
        for (int s = 0; s < sweeps; s++)
        {
            models[s] = new FeatureModel?[p];
            for (int j = 0; j < p; j++) models[s][j] = ReadModel(r, p, deserialize);
        }
        var complete = new FeatureModel?[p];
        for (int j = 0; j < p; j++) complete[j] = ReadModel(r, p, deserialize);
        var changes = ChecksummedFile.ReadArray(r);
        return new ForestImputer.Fitted(options, means, order, models, complete, changes);
    }

    private static InvalidDataException Damaged(string path, string why, Exception? inner = null) =>
        new($"'{path}' is a damaged EMFlow forest model file: {why}.", inner);

    private static void WriteModel(BinaryWriter w, FeatureModel? m, int p, Func<FeatureModel, int, byte[]> serialize)
    {
        if (m is null) { w.Write((byte)0); return; }
        if (m.Model is null && m.Width == 1) { w.Write((byte)1); w.Write(m.Values[0]); return; }
        if (m.Model is null) { w.Write((byte)3); ChecksummedFile.WriteArray(w, m.Values); return; }
        w.Write((byte)(m.Linear is not null ? 5 : m.Width == 1 ? 2 : 4));
        if (m.Width > 1) w.Write(m.Width);
        if (m.Linear is { } linear)
        {
            w.Write(linear.Intercept);
            ChecksummedFile.WriteArray(w, linear.Weights);
            w.Write(linear.Low);
            w.Write(linear.High);
        }
        var bytes = serialize(m, p - m.Width);
        w.Write(bytes.Length);
        w.Write(bytes);
    }

    private static FeatureModel? ReadModel(BinaryReader r, int p, Func<byte[], int, LinearBase?, FeatureModel> deserialize)
    {
        switch (r.ReadByte())
        {
            case 0: return null;
            case 1: return FeatureModel.Constant(new[] { r.ReadDouble() });
            case 3:
                var values = ChecksummedFile.ReadArray(r);
                if (values.Length < 2) throw new InvalidDataException($"a categorical column's constants number {values.Length}");
                return FeatureModel.Constant(values);
            case var tag and (2 or 4 or 5):
                int width = tag == 4 ? r.ReadInt32() : 1;
                if (width < 1) throw new InvalidDataException($"a model predicts {width} columns");
                LinearBase? linear = null;
                if (tag == 5)
                {
                    double intercept = r.ReadDouble();
                    var weights = ChecksummedFile.ReadArray(r);
                    double low = r.ReadDouble(), high = r.ReadDouble();
                    if (weights.Length != p - 1) throw new InvalidDataException($"a linear base has {weights.Length} weights for {p - 1} predictors");
                    if (!(low <= high)) throw new InvalidDataException($"a linear base's range [{low}, {high}] is empty");
                    linear = new LinearBase(intercept, weights, low, high);
                }
                int length = r.ReadInt32();
                if (length < 0 || length > r.BaseStream.Length - r.BaseStream.Position) throw new InvalidDataException($"a model length of {length} does not fit in the rest of the file");
                return deserialize(r.ReadBytes(length), width, linear);
            case var tag: throw new InvalidDataException($"model tag {tag} is not one this format writes");
        }
    }
}
