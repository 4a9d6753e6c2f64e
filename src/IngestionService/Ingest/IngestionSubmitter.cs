using IngestionService.Dispatch;
using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Ingest;

/// <summary>Turns a validated request into a committed ingestion and wakes the dispatcher.</summary>
public sealed class IngestionSubmitter(IIngestionStore store, DispatchSignal signal, TimeProvider clock, IOptions<IngestionOptions> options)
{
    private readonly int _batchSize = options.Value.BatchSize;

    public async Task<Guid> SubmitAsync(Priority priority, int[] ids, CancellationToken cancellationToken)
    {
        // Milliseconds, as stored: the created time the order uses is the one the status shows.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(clock.GetUtcNow().ToUnixTimeMilliseconds());
        var ingestion = new NewIngestion(IngestionIds.New(now), priority, now, _batchSize, ids);
        await store.EnqueueAsync(ingestion, cancellationToken);
        signal.Notify();
        return ingestion.Id;
    }
}
