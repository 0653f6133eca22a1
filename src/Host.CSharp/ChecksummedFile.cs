using System.Security.Cryptography;
using System.Text;

namespace EMFlow;

/// <summary>
/// The container every model file of the library uses: a header (magic text, format version), the SHA-256 of the
/// payload (32 bytes) and the payload's length (int64), then the payload. Written through a temporary file, so a
/// failure never leaves a half-written model behind; read back only when length and checksum match.
/// </summary>
internal static class ChecksummedFile
{
    /// <summary>Writes <paramref name="payload"/>'s bytes under the header to <paramref name="path"/>.</summary>
    public static void Write(string path, string magic, int version, Action<BinaryWriter> payload)
    {
        var content = new MemoryStream();
        using (var w = new BinaryWriter(content, Encoding.UTF8, leaveOpen: true)) payload(w);
        var bytes = content.GetBuffer().AsSpan(0, (int)content.Length);
        var tmp = path + ".tmp";
        using (var w = new BinaryWriter(File.Create(tmp), Encoding.UTF8))
        {
            w.Write(magic);
            w.Write(version);
            w.Write(SHA256.HashData(bytes));
            w.Write((long)bytes.Length);
            w.Write(bytes);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads the magic text at the start of <paramref name="header"/>'s stream; "" when there is none.</summary>
    public static string ReadMagic(BinaryReader header)
    {
        try { return header.ReadString(); }
        catch (Exception e) when (e is EndOfStreamException or IOException or FormatException) { return ""; }
    }

    /// <summary>After the version: the checksum, the length and the payload of <paramref name="file"/>, checked.</summary>
    /// <param name="damaged">Builds the exception for a damaged file from the reason.</param>
    /// <returns>The payload's bytes.</returns>
    public static byte[] ReadPayload(FileStream file, BinaryReader header, Func<string, InvalidDataException> damaged)
    {
        try
        {
            var expected = header.ReadBytes(32);
            if (expected.Length < 32 || file.Length - file.Position < 8) throw damaged("it ends inside its header (truncated)");
            long length = header.ReadInt64();
            long left = file.Length - file.Position;
            if (length != left)
                throw damaged(length > left ? $"it is truncated ({left} of {length} content bytes)" : $"its content length {length} does not match the {left} bytes present");
            var content = new byte[length];
            file.ReadExactly(content);
            if (!SHA256.HashData(content).AsSpan().SequenceEqual(expected)) throw damaged("its SHA-256 checksum does not match its content");
            return content;
        }
        catch (EndOfStreamException) { throw damaged("it ends inside its header"); }
    }

    /// <summary>A length-prefixed array of doubles.</summary>
    public static void WriteArray(BinaryWriter w, double[] a)
    {
        w.Write(a.Length);
        foreach (var v in a) w.Write(v);
    }

    /// <summary>The array <see cref="WriteArray"/> wrote; a length that cannot fit in the rest of the stream is damage.</summary>
    public static double[] ReadArray(BinaryReader r)
    {
        int length = r.ReadInt32();
        if (length < 0 || (long)length * sizeof(double) > r.BaseStream.Length - r.BaseStream.Position)
            throw new InvalidDataException($"an array length of {length} does not fit in the rest of the file");
        var a = new double[length];
        for (int i = 0; i < a.Length; i++) a[i] = r.ReadDouble();
        return a;
    }
}
