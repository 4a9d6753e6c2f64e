using IngestionService.Ingest;
using IngestionService.Notifications;
using IngestionService.Scheduling;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>
/// The webhook outbox on every backend: the event is written by the transaction that makes its ingestion
/// final (a stored window, a cancel with nothing in flight), with its payload's fields; an event taken is
/// leased until its attempt is stored; a retry is due at its time; one whose deliverer died is due again;
/// and retention deletes events whose delivery ended before its cutoff, never pending ones.
/// </summary>
public abstract class OutboxContractTests(IStoreBackend backend) : StoreContract(backend)
{
    protected static readonly Uri Callback = new("https://hooks.example.com/ingestion?token=abc");

    protected static async Task<Guid> EnqueueWithCallbackAsync(StoreUnderTest store, Priority priority, params int[] ids)
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var id = Guid.CreateVersion7(now);
        await store.EnqueueAsync(new NewIngestion(id, priority, now, 3, ids) { CallbackUrl = Callback, StatusUrl = $"https://ingest.example.com/status/{id}" }, Token);
        return id;
    }

    /// <summary>
    /// Takes what is due, once the millisecond a store stamped its latest finish in (rounded up) is over:
    /// an event is due from its ingestion's finish.
    /// </summary>
    protected static async Task<IReadOnlyList<OutboxEvent>> TakeAsync(StoreUnderTest store, int max = 10, TimeSpan? lease = null)
    {
        await WaitUntilDueAsync();
        return await store.Outbox.TakeDueAsync(max, lease ?? TimeSpan.FromMinutes(1), Token);
    }

    protected static Task RecordAsync(StoreUnderTest store, OutboxEvent outboxEvent, int? status, DeliveryNext next) =>
        store.Outbox.RecordAttemptAsync(outboxEvent, new DeliveryAttempt(DateTimeOffset.UtcNow, TimeSpan.FromMilliseconds(12), status, status is null ? "connection refused" : null), next, Token);

    [Fact]
    public async Task TheWindowThatFinishesAnIngestionWritesItsOneEventWithThePayloadsFields()
    {
        var store = await OpenAsync();
        var told = await EnqueueWithCallbackAsync(store, Priority.High, 1, 2, 3, 4);
        await EnqueueAsync(store, Priority.High, 5, 6); // nobody to tell

        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow)); // 1, 2, 3: not final yet
        var beforeFinal = await TakeAsync(store);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow)); // 4, 5, 6
        var taken = await TakeAsync(store);

        Assert.Empty(beforeFinal);
        var outboxEvent = Assert.Single(taken);
        Assert.Equal((told, Callback, $"https://ingest.example.com/status/{told}", Priority.High), (outboxEvent.IngestionId, outboxEvent.CallbackUrl, outboxEvent.StatusUrl, outboxEvent.Priority));
        Assert.Equal((4, 4, 0, 0, 0), (outboxEvent.Total, outboxEvent.Completed, outboxEvent.Failed, outboxEvent.Cancelled, outboxEvent.Attempts));
        Assert.Equal(WebhookPayload.Completed, WebhookPayload.TypeOf(outboxEvent.Completed, outboxEvent.Cancelled));
        Assert.True(outboxEvent.FinishedAt >= outboxEvent.CreatedAt, $"finished {outboxEvent.FinishedAt:O}, created {outboxEvent.CreatedAt:O}");
        Assert.InRange(outboxEvent.Age, TimeSpan.Zero, TimeSpan.FromSeconds(30));
        Assert.Equal($"msg_{told:N}", outboxEvent.MessageId);
    }

    [Fact]
    public async Task ACancelMakesAnIngestionFinalOnceNothingOfItIsInFlight()
    {
        var store = await OpenAsync();
        var cancelled = await EnqueueWithCallbackAsync(store, Priority.Medium, 1, 2, 3, 4, 5);
        var untouched = await EnqueueWithCallbackAsync(store, Priority.Medium, 6, 7);
        var window = await ClaimEventuallyAsync(store, TinyWindow); // 1, 2, 3 in flight

        Assert.Equal(CancelOutcome.Cancelled, await store.CancelAsync(cancelled, Token));
        var whileInFlight = await TakeAsync(store);
        await CompleteAsync(store, window);
        var outboxEvent = Assert.Single(await TakeAsync(store));

        Assert.Empty(whileInFlight);
        Assert.Equal((cancelled, 5, 3, 2), (outboxEvent.IngestionId, outboxEvent.Total, outboxEvent.Completed, outboxEvent.Cancelled));
        Assert.Equal(WebhookPayload.Cancelled, WebhookPayload.TypeOf(outboxEvent.Completed, outboxEvent.Cancelled));
        var other = await store.Outbox.ReadDeliveriesAsync(untouched, Token);
        Assert.Equal((Callback.AbsoluteUri, 0), (other!.CallbackUrl, other.Events.Count));
    }

    [Fact]
    public async Task ATakenEventIsLeasedUntilItsAttemptIsStoredAndItsRetryIsDueAtItsTime()
    {
        var store = await OpenAsync();
        var id = await EnqueueWithCallbackAsync(store, Priority.Low, 1);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));

        var first = Assert.Single(await TakeAsync(store));
        var whileLeased = await TakeAsync(store);
        var recordedAt = DateTimeOffset.UtcNow;
        await RecordAsync(store, first, 503, new DeliveryNext(DeliveryState.Pending, TimeSpan.FromSeconds(2)));
        var dueIn = await store.Outbox.NextDueInAsync(Token);
        var beforeItsTime = await TakeAsync(store);
        var askedBy = DateTimeOffset.UtcNow;
        // A machine that stalls two seconds before that take is rightly given the retry by it.
        var second = Assert.Single(beforeItsTime.Count > 0 ? beforeItsTime
            : await Eventually.ReturnsAsync(() => TakeAsync(store), taken => taken.Count > 0, Deadline, "the retry to be due"));
        await RecordAsync(store, second, null, new DeliveryNext(DeliveryState.Pending, TimeSpan.Zero));
        var third = Assert.Single(await Eventually.ReturnsAsync(() => TakeAsync(store), taken => taken.Count > 0, Deadline, "the retry to be due"));
        await RecordAsync(store, third, 204, new DeliveryNext(DeliveryState.Delivered, TimeSpan.Zero));

        Assert.Empty(whileLeased);
        Assert.True(beforeItsTime.Count == 0 || askedBy - recordedAt >= TimeSpan.FromSeconds(2), $"the retry was taken {askedBy - recordedAt} after its attempt, before its 2 s were up");
        Assert.InRange(dueIn!.Value, TimeSpan.Zero, TimeSpan.FromSeconds(2) + TimeSpan.FromMilliseconds(1)); // stored rounded up to the millisecond
        Assert.Equal((first.Seq, 1, 2), (second.Seq, second.Attempts, third.Attempts));
        Assert.Null(await store.Outbox.NextDueInAsync(Token));
        Assert.Empty(await TakeAsync(store));
        var deliveries = (await store.Outbox.ReadDeliveriesAsync(id, Token))!;
        var delivered = Assert.Single(deliveries.Events);
        Assert.Equal((DeliveryState.Delivered, WebhookPayload.Completed, $"msg_{id:N}"), (delivered.State, delivered.Type, delivered.WebhookId));
        Assert.Null(delivered.NextAttemptAt);
        Assert.NotNull(delivered.DoneAt);
        Assert.Equal([(1, (int?)503, (string?)null), (2, null, "connection refused"), (3, 204, null)], delivered.Attempts.Select(a => (a.Attempt, a.HttpStatus, a.Error)));
        Assert.All(delivered.Attempts, attempt => Assert.Equal(12, attempt.DurationMs));
    }

    [Fact]
    public async Task AnEventWhoseDelivererStoppedBeforeStoringItsAttemptIsDueAgainWithNothingLost()
    {
        var store = await OpenAsync();
        await EnqueueWithCallbackAsync(store, Priority.Low, 1);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        var taken = Assert.Single(await TakeAsync(store, lease: TimeSpan.FromMilliseconds(300)));

        var again = Assert.Single(await Eventually.ReturnsAsync(() => TakeAsync(store), events => events.Count > 0, Deadline, "the lease to run out"));

        Assert.Equal((taken.Seq, taken.MessageId, 0), (again.Seq, again.MessageId, again.Attempts));
    }

    [Fact]
    public async Task ALateRecordOfAnAttemptMadeAgainMeanwhileStoresNothing()
    {
        var store = await OpenAsync();
        var id = await EnqueueWithCallbackAsync(store, Priority.Low, 1);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        var stale = Assert.Single(await TakeAsync(store, lease: TimeSpan.FromMilliseconds(200)));
        var again = Assert.Single(await Eventually.ReturnsAsync(() => TakeAsync(store), taken => taken.Count > 0, Deadline, "the lease to run out"));
        await RecordAsync(store, again, 200, new DeliveryNext(DeliveryState.Delivered, TimeSpan.Zero));

        await RecordAsync(store, stale, 500, new DeliveryNext(DeliveryState.Pending, TimeSpan.Zero)); // its answer came late

        var delivered = Assert.Single((await store.Outbox.ReadDeliveriesAsync(id, Token))!.Events);
        Assert.Equal(DeliveryState.Delivered, delivered.State);
        Assert.Equal([(int?)200], delivered.Attempts.Select(a => a.HttpStatus));
        Assert.Null(await store.Outbox.NextDueInAsync(Token));
    }

    [Fact]
    public async Task RetentionDeletesEventsWhoseDeliveryEndedBeforeItsCutoffAndKeepsPendingOnes()
    {
        var store = await OpenAsync();
        var delivered = await EnqueueWithCallbackAsync(store, Priority.Low, 1);
        var pending = await EnqueueWithCallbackAsync(store, Priority.Low, 2);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        var taken = await TakeAsync(store);
        Assert.Equal(2, taken.Count);
        await RecordAsync(store, taken.Single(e => e.IngestionId == delivered), 200, new DeliveryNext(DeliveryState.Delivered, TimeSpan.Zero));
        await RecordAsync(store, taken.Single(e => e.IngestionId == pending), 500, new DeliveryNext(DeliveryState.Pending, TimeSpan.FromHours(1)));
        await WaitUntilDueAsync();

        var now = DateTimeOffset.UtcNow;
        var purged = await store.PurgeAsync(new PurgeRequest(now, now), Token);

        Assert.Equal(1, purged.Events);
        Assert.Null(await store.Outbox.ReadDeliveriesAsync(delivered, Token)); // the ingestion went too: nothing is known of it
        var kept = Assert.Single((await store.Outbox.ReadDeliveriesAsync(pending, Token))!.Events);
        Assert.Equal((DeliveryState.Pending, 1), (kept.State, kept.Attempts.Count));
    }
}

public sealed class SqliteOutboxContractTests() : OutboxContractTests(new SqliteBackend())
{
    [Fact]
    public async Task ANewProcessTakesTheEventsItsPredecessorHadLeasedAtOnce()
    {
        var store = await OpenAsync();
        await EnqueueWithCallbackAsync(store, Priority.Low, 1);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        var taken = Assert.Single(await TakeAsync(store, lease: TimeSpan.FromHours(1))); // and then the process died

        var restarted = await OpenAsync();
        var again = Assert.Single(await TakeAsync(restarted));

        Assert.Equal((taken.Seq, taken.MessageId), (again.Seq, again.MessageId));
    }
}

public sealed class PostgresOutboxContractTests() : OutboxContractTests(new PostgresBackend())
{
    [Fact]
    public async Task InstancesTakingAtOnceNeverTakeTheSameEvent()
    {
        var first = await OpenAsync();
        var second = await OpenAsync();
        for (var i = 0; i < 12; i++)
        {
            await EnqueueWithCallbackAsync(first, Priority.Low, i + 1);
        }

        for (var i = 0; i < 4; i++)
        {
            await CompleteAsync(first, await ClaimEventuallyAsync(first, TinyWindow));
        }

        var taken = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => TakeAsync(i % 2 == 0 ? first : second, max: 3)));

        var seqs = taken.SelectMany(events => events.Select(e => e.Seq)).ToList();
        Assert.Equal(12, seqs.Count);
        Assert.Equal(12, seqs.Distinct().Count());
    }
}
