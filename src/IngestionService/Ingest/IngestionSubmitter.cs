using System.Buffers.Binary;
using System.Security.Cryptography;
using IngestionService.Dispatch;
using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Ingest;

/// <summary>Turns a validated request into a committed ingestion and wakes the dispatcher.</summary>
public sealed class IngestionSubmitter(IIngestionStore store, DispatchSignal signal, TimeProvider clock, IOptions<IngestionOptions> options)
{
    private readonly int _batchSize = options.Value.BatchSize;
    private readonly TimeSpan _keyLifetime = options.Value.IdempotencyKeyLifetime;

    /// <summary>
    /// Stores the ingestion, or with an idempotency key seen before, answers the ingestion that key created
    /// (same request) or a conflict (a different one) and stores nothing.
    /// </summary>
    public async Task<EnqueueResult> SubmitAsync(Priority priority, int[] ids, string? idempotencyKey, CancellationToken cancellationToken)
    {
        // Milliseconds, as stored: the created time the order uses is the one the status shows.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(clock.GetUtcNow().ToUnixTimeMilliseconds());
        var key = idempotencyKey is null ? null : new IdempotencyKey(idempotencyKey, RequestHash(priority, ids), now + _keyLifetime);
        var ingestion = new NewIngestion(IngestionIds.New(now), priority, now, _batchSize, ids, key);
        var result = await store.EnqueueAsync(ingestion, cancellationToken);
        if (result.Outcome == EnqueueOutcome.Created)
        {
            signal.Notify();
        }

        return result;
    }

    /// <summary>
    /// What an earlier request with this idempotency key came to, if its key is still kept: answered before
    /// backpressure refuses anything, so a replay gets its ingestion however full the queue is now.
    /// </summary>
    public Task<EnqueueResult?> FindEarlierAsync(Priority priority, int[] ids, string idempotencyKey, CancellationToken cancellationToken) =>
        store.FindIdempotencyKeyAsync(idempotencyKey, RequestHash(priority, ids), clock.GetUtcNow(), cancellationToken);

    /// <summary>
    /// What "the same request" means for an idempotency key: the same priority and the same ids in the same
    /// order, however the JSON was spaced or its fields ordered.
    /// </summary>
    internal static byte[] RequestHash(Priority priority, int[] ids)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> buffer = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(buffer, (int)priority);
        hash.AppendData(buffer);
        hash.AppendData(IdBlob.Pack(ids));
        return hash.GetHashAndReset();
    }
}
