using System.Buffers.Binary;
using System.IO.Compression;

namespace EMFlow.Data;

/// <summary>Images read from an IDX file: one row per image, pixels in row-major order scaled to [0, 1].</summary>
/// <param name="Pixels">(n, rows · cols) values in [0, 1]: pixel (r, c) of image i at [i, r · cols + c], byte / 255.</param>
/// <param name="Rows">Image height in pixels (rows).</param>
/// <param name="Columns">Image width in pixels (cols).</param>
public sealed record IdxImages(double[,] Pixels, int Rows, int Columns)
{
    /// <summary>Number of images n.</summary>
    public int Count => Pixels.GetLength(0);
}

/// <summary>
/// Reader of the IDX format of MNIST and Fashion-MNIST (LeCun et al.): a 4-byte magic number (two zero bytes, a
/// type code 0x08 for unsigned bytes, the number of dimensions), one big-endian 32-bit size per dimension, then
/// the values. Files ending in <c>.gz</c> are decompressed transparently.
/// </summary>
/// <example>
/// <code>
/// var images = Idx.ReadImages("mnist/t10k-images-idx3-ubyte.gz");   // (10000, 784), [0, 1]
/// int[] labels = Idx.ReadLabels("mnist/t10k-labels-idx1-ubyte.gz");  // 10000 labels 0-9
/// </code>
/// </example>
public static class Idx
{
    private const byte UnsignedByte = 0x08;

    /// <summary>Reads an image file (idx3: n × rows × cols unsigned bytes).</summary>
    /// <param name="path">An IDX file, gzip-compressed when its name ends in <c>.gz</c>.</param>
    /// <returns>Images (n, rows · cols) scaled to [0, 1] by dividing each byte by 255.</returns>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The magic number is not that of a 3-D unsigned-byte IDX file, a size is
    /// zero or too large, or the file is shorter than its header says; the message names the file.</exception>
    public static IdxImages ReadImages(string path)
    {
        var (dims, data) = Read(path, 3);
        int n = dims[0], rows = dims[1], cols = dims[2], p = rows * cols;
        var pixels = new double[n, p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
                pixels[i, j] = data[(long)i * p + j] / 255.0;
        return new IdxImages(pixels, rows, cols);
    }

    /// <summary>Reads a label file (idx1: n unsigned bytes).</summary>
    /// <param name="path">An IDX file, gzip-compressed when its name ends in <c>.gz</c>.</param>
    /// <returns>n labels (0-255; 0-9 for MNIST).</returns>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The magic number is not that of a 1-D unsigned-byte IDX file, or the
    /// file is shorter than its header says; the message names the file.</exception>
    public static int[] ReadLabels(string path)
    {
        var (_, data) = Read(path, 1);
        return data.Select(b => (int)b).ToArray();
    }

    /// <summary>Writes images (n, rows · cols) with values in [0, 1] as an uncompressed (or, for a <c>.gz</c> name,
    /// gzip-compressed) idx3 file, each value rounded to the nearest of 0/255 … 255/255.</summary>
    /// <exception cref="ArgumentException">rows · cols differs from the number of columns, or a value lies outside [0, 1].</exception>
    public static void WriteImages(string path, double[,] pixels, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (rows < 1 || cols < 1 || rows * cols != pixels.GetLength(1))
            throw new ArgumentException($"rows × cols must equal the {pixels.GetLength(1)} columns of pixels; got {rows} × {cols}.", nameof(rows));
        int n = pixels.GetLength(0), p = pixels.GetLength(1);
        var bytes = new byte[(long)n * p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
            {
                double v = pixels[i, j];
                if (!(v >= 0 && v <= 1)) throw new ArgumentException($"Pixel values must lie in [0, 1]; got {v} at ({i}, {j}).", nameof(pixels));
                bytes[(long)i * p + j] = (byte)Math.Round(v * 255);
            }
        Write(path, new[] { n, rows, cols }, bytes);
    }

    /// <summary>Writes labels (0-255) as an idx1 file (gzip-compressed for a <c>.gz</c> name).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A label outside 0-255.</exception>
    public static void WriteLabels(string path, int[] labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        foreach (var l in labels)
            if (l is < 0 or > 255) throw new ArgumentOutOfRangeException(nameof(labels), l, $"Labels must lie in 0-255; got {l}.");
        Write(path, new[] { labels.Length }, labels.Select(l => (byte)l).ToArray());
    }

    private static void Write(string path, int[] dims, byte[] data)
    {
        using var file = File.Create(path);
        using Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionLevel.Fastest) : file;
        s.Write(new byte[] { 0, 0, UnsignedByte, (byte)dims.Length });
        Span<byte> size = stackalloc byte[4];
        foreach (var d in dims)
        {
            BinaryPrimitives.WriteInt32BigEndian(size, d);
            s.Write(size);
        }
        s.Write(data);
    }

    private static (int[] Dims, byte[] Data) Read(string path, int expectedDims)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("The path must not be empty.", nameof(path));
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file not found: {path}", path);
        using var file = File.OpenRead(path);
        using Stream s = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        try
        {
            var magic = ReadExactly(s, 4, path, "the magic number");
            if (magic[0] != 0 || magic[1] != 0 || magic[2] != UnsignedByte || magic[3] != expectedDims)
                throw new InvalidDataException(
                    $"{path}: expected the magic number of a {expectedDims}-D unsigned-byte IDX file (00 00 08 {expectedDims:X2}); got {Convert.ToHexString(magic)}.");
            var dims = new int[expectedDims];
            long total = 1;
            for (int d = 0; d < expectedDims; d++)
            {
                dims[d] = BinaryPrimitives.ReadInt32BigEndian(ReadExactly(s, 4, path, $"size {d}"));
                if (dims[d] <= 0) throw new InvalidDataException($"{path}: size {d} must be positive; got {dims[d]}.");
                total *= dims[d];
            }
            if (total > Array.MaxLength) throw new InvalidDataException($"{path}: {total} values are more than one array holds.");
            var data = ReadExactly(s, (int)total, path, $"{total} values ({string.Join(" × ", dims)})");
            return (dims, data);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            // A corrupt gzip stream: say which file.
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    private static byte[] ReadExactly(Stream s, int count, string path, string what)
    {
        var buffer = new byte[count];
        int read = 0;
        while (read < count)
        {
            int r = s.Read(buffer, read, count - read);
            if (r == 0) throw new InvalidDataException($"{path}: the file is truncated: expected {what}, found only {read} of {count} bytes.");
            read += r;
        }
        return buffer;
    }
}
