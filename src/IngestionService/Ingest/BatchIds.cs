using System.Buffers.Binary;
using System.Security.Cryptography;

namespace IngestionService.Ingest;

/// <summary>
/// Batch ids are name-based UUIDs (RFC 9562 version 8) of the ingestion id and the batch index: stable
/// across calls and restarts without storing a row per batch. The first twelve bytes come from one
/// SHA-1 of the ingestion id, the last four are the batch index mixed into the rest of that hash, so a
/// status with a thousand batches costs one hash, not a thousand.
/// </summary>
public readonly struct BatchIds
{
    private readonly Guid _seed;
    private readonly uint _mask;

    private BatchIds(Guid seed, uint mask)
    {
        _seed = seed;
        _mask = mask;
    }

    public static BatchIds Of(Guid ingestionId)
    {
        Span<byte> name = stackalloc byte[16];
        ingestionId.TryWriteBytes(name, bigEndian: true, out _);

#pragma warning disable CA5350 // Naming, not security: nothing here is secret, and SHA-1 is RFC 9562's name hash.
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
        SHA1.HashData(name, hash);
#pragma warning restore CA5350

        hash[6] = (byte)((hash[6] & 0x0F) | 0x80); // version 8
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80); // RFC variant
        return new BatchIds(new Guid(hash[..16], bigEndian: true), BinaryPrimitives.ReadUInt32BigEndian(hash[12..]));
    }

    /// <summary>The id of batch <paramref name="batchIndex"/>: distinct for every index of one ingestion.</summary>
    public Guid For(int batchIndex)
    {
        Span<byte> bytes = stackalloc byte[16];
        _seed.TryWriteBytes(bytes, bigEndian: true, out _);
        BinaryPrimitives.WriteUInt32BigEndian(bytes[12..], _mask ^ (uint)batchIndex);
        return new Guid(bytes, bigEndian: true);
    }
}
