using System.Buffers.Binary;
using System.Security.Cryptography;
using IngestionService.Dispatch;
using IngestionService.Notifications;
using IngestionService.Scheduling;
using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Ingest;

/// <summary>Turns a validated request into a committed ingestion and wakes the dispatcher.</summary>
public sealed class IngestionSubmitter(IQueueStore store, DispatchSignal signal, TimeProvider clock, IOptions<IngestionOptions> options, LimitInForce limits)
{
    private readonly TimeSpan _keyLifetime = options.Value.IdempotencyKeyLifetime;

    /// <summary>
    /// Stores the ingestion, or with an idempotency key seen before, answers the ingestion that key created
    /// (same request) or a conflict (a different one) and stores nothing. With a <paramref name="callback"/>,
    /// that callback is told when the ingestion is done; null: nobody is.
    /// </summary>
    public async Task<EnqueueResult> SubmitAsync(IngestParseResult request, string? idempotencyKey, CallbackTarget? callback, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);

        // Milliseconds, as stored: the created time the order uses is the one the status shows.
        var now = Milliseconds.Floor(clock.GetUtcNow());
        var key = idempotencyKey is null ? null : new IdempotencyKey(idempotencyKey, RequestHash(request), now + _keyLifetime);
        var notAfter = request.NotAfter is { } given ? Milliseconds.Floor(given.ToUniversalTime()) : (DateTimeOffset?)null;
        var id = IngestionIds.New(now);
        var ingestion = new NewIngestion(id, request.Priority, now, limits.Current.BatchSize, request.Ids, key, notAfter)
        {
            CallbackUrl = callback?.Url,
            StatusUrl = callback?.StatusUrlOf(id),
            TraceParent = System.Diagnostics.Activity.Current is { Recorded: true } current ? current.Id : null, // the window and the delivery link to it
        };
        System.Diagnostics.Activity.Current?.SetTag("ingestion.id", id.ToString()).SetTag("ingestion.ids", request.Ids.Length);
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
    public Task<EnqueueResult?> FindEarlierAsync(IngestParseResult request, string idempotencyKey, CancellationToken cancellationToken) =>
        store.FindIdempotencyKeyAsync(idempotencyKey, RequestHash(request), cancellationToken);

    /// <summary>
    /// What "the same request" means for an idempotency key: the same priority, the same ids in the same
    /// order and the same not_after (to the millisecond, whatever its offset), however the JSON was spaced
    /// or its fields ordered, and the same callback_url if it gave one. A request without not_after or
    /// callback_url hashes as it did before those fields existed.
    /// </summary>
    internal static byte[] RequestHash(IngestParseResult request)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> buffer = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(buffer, (int)request.Priority);
        hash.AppendData(buffer[..4]);
        hash.AppendData(IdBlob.Pack(request.Ids));
        if (request.NotAfter is { } notAfter)
        {
            BinaryPrimitives.WriteInt64LittleEndian(buffer, notAfter.ToUnixTimeMilliseconds());
            hash.AppendData(buffer);
        }

        if (request.CallbackUrl is { } callback)
        {
            hash.AppendData("callback_url:"u8);
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(callback.AbsoluteUri));
        }

        return hash.GetHashAndReset();
    }
}
