using System.Text;

namespace EMFlow.Tests;

/// <summary>Model files (format 3): column names stored with the model, a SHA-256 checksum over the content, and any
/// damaged or truncated file refused with <see cref="InvalidDataException"/> naming it; format 2 still loads.</summary>
public sealed class ModelFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("emflow-model-").FullName;
    private static readonly string[] Names = { "a", "b", "c", "d" };

    public void Dispose() => Directory.Delete(_dir, true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    // Offsets in a format-3 file: the magic as a length-prefixed string (1 + 12 bytes), the version (4), the SHA-256
    // (32) and the content length (8); the content follows.
    private const int VersionAt = 13, LengthAt = 49, ContentAt = 57;

    private (EMFlowImputer Imputer, double[,] Data, string Path) Saved(bool withNames = true)
    {
        var (_, data) = TestData.Table(120);
        var imputer = new EMFlowImputer(TestData.QuickEMFlow() with { InitialImputation = InitialImputation.GaussianEm });
        if (withNames) imputer.Fit(data, Names); else imputer.Fit(data);
        var path = PathOf(withNames ? "named.model" : "plain.model");
        imputer.Save(path);
        return (imputer, data, path);
    }

    private static void AssertDamaged(string path)
    {
        var e = Assert.Throws<InvalidDataException>(() => EMFlowImputer.Load(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Names_are_stored_and_a_loaded_model_matches_columns_by_name()
    {
        var (imputer, data, path) = Saved();
        using var _ = imputer;
        using var loaded = EMFlowImputer.Load(path);
        Assert.Equal(Names, loaded.ColumnNames);
        var expected = imputer.Transform(data);
        var reversed = new double[120, 4];
        for (int i = 0; i < 120; i++)
            for (int j = 0; j < 4; j++) reversed[i, j] = data[i, 3 - j];
        var byName = loaded.Transform(reversed, new[] { "d", "c", "b", "a" });
        for (int i = 0; i < 120; i++)
            for (int j = 0; j < 4; j++) Assert.Equal(expected[i, 3 - j], byName[i, j]);
        var e = Assert.Throws<ArgumentException>(() => loaded.Transform(reversed, new[] { "d", "c", "b", "x" }));
        Assert.Contains("'a'", e.Message);
        Assert.Contains("'x'", e.Message);
    }

    [Fact]
    public void Names_can_be_given_to_Save_when_Fit_had_none()
    {
        var (imputer, _, _) = Saved(withNames: false);
        using var _ = imputer;
        Assert.Null(imputer.ColumnNames);
        var path = PathOf("given.model");
        imputer.Save(path, Names);
        using var loaded = EMFlowImputer.Load(path);
        Assert.Equal(Names, loaded.ColumnNames);
        Assert.Throws<ArgumentException>(() => imputer.Save(PathOf("bad.model"), new[] { "a", "b" }));
    }

    [Fact]
    public void A_flipped_byte_in_the_middle_is_refused_naming_the_file()
    {
        var (imputer, _, path) = Saved();
        imputer.Dispose();
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(path, bytes);
        AssertDamaged(path);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.999)]
    [InlineData(0.01)]
    public void A_truncated_file_is_refused_naming_the_file(double keep)
    {
        var (imputer, _, path) = Saved();
        imputer.Dispose();
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
        AssertDamaged(path);
    }

    [Fact]
    public void A_damaged_length_is_refused_naming_the_file()
    {
        var (imputer, _, path) = Saved();
        imputer.Dispose();
        var bytes = File.ReadAllBytes(path);
        BitConverter.GetBytes(long.MaxValue / 3).CopyTo(bytes, LengthAt);
        File.WriteAllBytes(path, bytes);
        AssertDamaged(path);
    }

    /// <summary>The same model in format 2: no checksum, no names (the content of format 3 without its last field).</summary>
    private static byte[] AsFormat2(byte[] format3)
    {
        Assert.Equal(3, BitConverter.ToInt32(format3, VersionAt));
        Assert.Equal(-1, BitConverter.ToInt32(format3, format3.Length - 4));
        return format3[..VersionAt].Concat(BitConverter.GetBytes(2)).Concat(format3[ContentAt..^4]).ToArray();
    }

    [Fact]
    public void Format_2_files_still_load_and_their_damage_is_refused_naming_the_file()
    {
        var (imputer, data, path) = Saved(withNames: false);
        using var _ = imputer;
        var old = PathOf("old.model");
        var bytes = AsFormat2(File.ReadAllBytes(path));
        File.WriteAllBytes(old, bytes);
        using (var loaded = EMFlowImputer.Load(old))
        {
            Assert.Null(loaded.ColumnNames);
            Assert.Equal(imputer.Transform(data), loaded.Transform(data));
        }

        // The first array length (the scaler's minimum) follows the options, a length-prefixed string.
        using var reader = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        reader.ReadString();
        reader.ReadInt32();
        reader.ReadString();
        int at = (int)reader.BaseStream.Position;
        var damaged = (byte[])bytes.Clone();
        BitConverter.GetBytes(int.MaxValue).CopyTo(damaged, at);
        File.WriteAllBytes(old, damaged);
        AssertDamaged(old);

        File.WriteAllBytes(old, bytes[..(bytes.Length * 2 / 3)]);
        AssertDamaged(old);
    }

    [Fact]
    public void A_file_whose_options_predate_float32_and_relu_networks_loads_with_float64_tanh_networks()
    {
        var (_, data) = TestData.Table(120);
        using var imputer = new EMFlowImputer(TestData.QuickEMFlow() with
        {
            InitialImputation = InitialImputation.GaussianEm,
            FlowPrecision = FlowPrecision.Float64,
            HiddenActivation = HiddenActivation.Tanh,
            ValidationFraction = 0,
        });
        imputer.Fit(data);
        var path = PathOf("float64.model");
        imputer.Save(path);
        var bytes = AsFormat2(File.ReadAllBytes(path));

        // The options are the length-prefixed JSON string after the magic and the version.
        using var reader = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        reader.ReadString();
        reader.ReadInt32();
        int jsonAt = (int)reader.BaseStream.Position;
        var json = System.Text.Json.Nodes.JsonNode.Parse(reader.ReadString())!.AsObject();
        int afterJson = (int)reader.BaseStream.Position;
        Assert.True(json.Remove(nameof(EMFlowOptions.FlowPrecision)));
        Assert.True(json.Remove(nameof(EMFlowOptions.HiddenActivation)));
        var rewritten = new MemoryStream();
        using (var w = new BinaryWriter(rewritten, Encoding.UTF8, true)) w.Write(json.ToJsonString());
        var old = PathOf("old-float64.model");
        File.WriteAllBytes(old, bytes[..jsonAt].Concat(rewritten.ToArray()).Concat(bytes[afterJson..]).ToArray());

        using var loaded = EMFlowImputer.Load(old);
        Assert.Equal(FlowPrecision.Float64, loaded.Options.FlowPrecision);
        Assert.Equal(HiddenActivation.Tanh, loaded.Options.HiddenActivation);
        TestData.AssertBitForBit(imputer.Transform(data), loaded.Transform(data));
    }
}
