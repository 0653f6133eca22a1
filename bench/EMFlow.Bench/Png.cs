using System.Buffers.Binary;
using System.IO.Compression;

namespace EMFlow.Bench;

/// <summary>
/// A minimal PNG writer (8-bit RGB, no filtering, one zlib IDAT chunk). A few dozen lines with
/// System.IO.Compression keep the benchmark free of a plotting dependency for what is only a grid of pixels.
/// </summary>
internal static class Png
{
    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>Writes an RGB image; <paramref name="rgb"/> is (height, width, 3) bytes.</summary>
    public static void Write(string path, byte[,,] rgb)
    {
        int h = rgb.GetLength(0), w = rgb.GetLength(1);
        var raw = new byte[h * (1 + 3 * w)];
        for (int y = 0, o = 0; y < h; y++)
        {
            raw[o++] = 0; // filter type: none
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) raw[o++] = rgb[y, x, c];
        }
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true)) z.Write(raw);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(0), w);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), h);
        header[8] = 8; header[9] = 2; // bit depth 8, colour type RGB; compression, filter, interlace 0
        using var f = File.Create(path);
        f.Write(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A });
        Chunk(f, "IHDR", header);
        Chunk(f, "IDAT", compressed.ToArray());
        Chunk(f, "IEND", Array.Empty<byte>());
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> four = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(four, data.Length);
        s.Write(four);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        uint crc = 0xFFFFFFFFu;
        foreach (var b in typeBytes.Concat(data)) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        BinaryPrimitives.WriteUInt32BigEndian(four, crc ^ 0xFFFFFFFFu);
        s.Write(four);
    }
}
