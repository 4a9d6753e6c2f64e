using System.Buffers.Binary;

namespace IngestionService.Ingest;

/// <summary>
/// Ingestion ids are UUID version 7 made from the ingestion's created time (<see cref="IngestionSubmitter"/>),
/// so they sort by time and carry that time: the first 48 bits are Unix milliseconds.
/// </summary>
public static class IngestionIds
{
    public static Guid New(DateTimeOffset createdAt) => Guid.CreateVersion7(createdAt);

    public static DateTimeOffset CreatedAt(Guid ingestionId)
    {
        Span<byte> bytes = stackalloc byte[16];
        ingestionId.TryWriteBytes(bytes, bigEndian: true, out _);
        var milliseconds = (long)(BinaryPrimitives.ReadUInt64BigEndian(bytes) >> 16);
        return DateTimeOffset.FromUnixTimeMilliseconds(milliseconds);
    }
}
