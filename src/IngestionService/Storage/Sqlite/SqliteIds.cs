using System.Data.Common;
using System.Buffers.Binary;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// How this store writes and reads ingestion ids and the ids of a request. An ingestion id is stored in
/// network byte order, in which UUID version 7 ids sort by time, so a new id always goes on the last page
/// of the id index (migration 004 reordered the older rows).
/// </summary>
internal static class SqliteIds
{
    public static byte[] Bytes(Guid id)
    {
        var bytes = new byte[16];
        Write(id, bytes);
        return bytes;
    }

    public static void Write(Guid id, Span<byte> destination) => id.TryWriteBytes(destination, bigEndian: true, out _);

    public static Guid Read(DbDataReader reader, int ordinal) => new((byte[])reader.GetValue(ordinal), bigEndian: true);

    /// <summary>Reads one id out of an ingestion's blob without loading the rest of it.</summary>
    public static int ReadOne(SqliteConnection connection, long ingestionSeq, int position)
    {
        using var blob = new SqliteBlob(connection, "ingestions", "ids", ingestionSeq, readOnly: true);
        Span<byte> bytes = stackalloc byte[IdBlob.BytesPerId];
        blob.Position = (long)position * IdBlob.BytesPerId;
        blob.ReadExactly(bytes);
        return BinaryPrimitives.ReadInt32LittleEndian(bytes);
    }

    public static DateTimeOffset Time(DbDataReader reader, int ordinal) => DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(ordinal));

    public static DateTimeOffset? NullableTime(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : Time(reader, ordinal);
}
