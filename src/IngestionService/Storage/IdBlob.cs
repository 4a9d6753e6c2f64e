using System.Buffers.Binary;

namespace IngestionService.Storage;

/// <summary>Ids stored as one blob of little-endian int32 values: every id fits (1 ..= 1 000 000 007 &lt; 2^31).</summary>
internal static class IdBlob
{
    public const int BytesPerId = sizeof(int);

    public static byte[] Pack(ReadOnlySpan<int> ids)
    {
        var bytes = new byte[ids.Length * BytesPerId];
        for (var i = 0; i < ids.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * BytesPerId), ids[i]);
        }

        return bytes;
    }

    /// <summary>Reads a blob column into ids through a pooled buffer rather than a fresh byte array.</summary>
    public static int[] Read(Microsoft.Data.Sqlite.SqliteDataReader reader, int ordinal)
    {
        var length = (int)reader.GetBytes(ordinal, 0, null, 0, 0);
        var bytes = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        try
        {
            reader.GetBytes(ordinal, 0, bytes, 0, length);
            return Unpack(bytes.AsSpan(0, length));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    public static int[] Unpack(ReadOnlySpan<byte> bytes)
    {
        var ids = new int[bytes.Length / BytesPerId];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(i * BytesPerId)..]);
        }

        return ids;
    }
}
