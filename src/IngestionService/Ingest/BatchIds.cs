using System.Buffers.Binary;
using System.Security.Cryptography;

namespace IngestionService.Ingest;

/// <summary>
/// Batch ids are name-based UUIDs (RFC 9562 version 5) of the ingestion id and the batch index: stable
/// across calls and restarts without storing a row per batch.
/// </summary>
public static class BatchIds
{
    public static Guid For(Guid ingestionId, int batchIndex)
    {
        Span<byte> name = stackalloc byte[20];
        ingestionId.TryWriteBytes(name, bigEndian: true, out _);
        BinaryPrimitives.WriteInt32BigEndian(name[16..], batchIndex);

#pragma warning disable CA5350 // SHA-1 is what RFC 9562 prescribes for version 5 UUIDs; nothing here is secret.
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
        SHA1.HashData(name, hash);
#pragma warning restore CA5350

        hash[6] = (byte)((hash[6] & 0x0F) | 0x50); // version 5
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80); // RFC variant
        return new Guid(hash[..16], bigEndian: true);
    }
}
