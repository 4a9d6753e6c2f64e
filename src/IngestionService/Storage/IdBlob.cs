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
