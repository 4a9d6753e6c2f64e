using System.Buffers.Binary;

namespace IngestionService.Storage;

/// <summary>Ids stored as one blob of little-endian int32 values: every id fits (1 ..= 1 000 000 007 &lt; 2^31).</summary>
internal static class IdBlob
{
    public const int BytesPerId = sizeof(int);

    /// <summary>The blob's bytes without a copy where the machine is little-endian (nearly all are).</summary>
    public static ReadOnlySpan<byte> AsBytes(int[] ids) =>
        BitConverter.IsLittleEndian ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(ids.AsSpan()) : Pack(ids);

    public static byte[] Pack(ReadOnlySpan<int> ids)
    {
        var bytes = new byte[ids.Length * BytesPerId];
        for (var i = 0; i < ids.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * BytesPerId), ids[i]);
        }

        return bytes;
    }

    /// <summary>
    /// Reads a blob column into ids. Not through <c>GetBytes</c>: Microsoft.Data.Sqlite serves it by opening
    /// an incremental-I/O blob handle (table metadata lookups and a finalizer per call), which costs more
    /// than the rest of a status read; one copy of the column is cheaper.
    /// </summary>
    public static int[] Read(Microsoft.Data.Sqlite.SqliteDataReader reader, int ordinal) =>
        Unpack(reader.GetFieldValue<byte[]>(ordinal));

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
