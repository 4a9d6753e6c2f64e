using System.Buffers.Binary;

namespace IngestionService.Ingest;

/// <summary>
/// Ingestion ids are UUID version 7 made from the ingestion's created time (<see cref="IngestionSubmitter"/>),
/// so they sort by time and carry that time: the first 48 bits are Unix milliseconds.
/// </summary>
public static class IngestionIds
{
    public static Guid New(DateTimeOffset createdAt) => Guid.CreateVersion7(createdAt);

    public static DateTimeOffset CreatedAt(Guid ingestionId) => DateTimeOffset.FromUnixTimeMilliseconds(Milliseconds(ingestionId));

    /// <summary>The created time a client's id claims, if it is a version 7 id whose time is one; null for any other id.</summary>
    public static DateTimeOffset? CreatedAtIfVersion7(Guid id) =>
        id.Version == 7 && Milliseconds(id) is var milliseconds && milliseconds <= DateTimeOffset.MaxValue.ToUnixTimeMilliseconds()
            ? DateTimeOffset.FromUnixTimeMilliseconds(milliseconds)
            : null;

    private static long Milliseconds(Guid id)
    {
        Span<byte> bytes = stackalloc byte[16];
        id.TryWriteBytes(bytes, bigEndian: true, out _);
        return (long)(BinaryPrimitives.ReadUInt64BigEndian(bytes) >> 16);
    }
}
