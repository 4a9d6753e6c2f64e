using System.Text;
using System.Text.Json;
using IngestionService.Dispatch;
using IngestionService.Hosting;
using IngestionService.Ingest;
using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Events;

/// <summary>
/// <c>GET /ingestions/{id}/events</c> and <c>GET /events</c> as server-sent events. An idle stream holds
/// no database connection: it waits on the <see cref="EventHub"/>, and an ingestion's stream reads its
/// status once per event (and per heartbeat, in case an event from another instance was missed).
/// </summary>
public static class EventStreamsApi
{
    private const string LastEventId = "Last-Event-ID";

    public static IEndpointRouteBuilder MapEventStreams(this IEndpointRouteBuilder app)
    {
        app.MapGet("/ingestions/{ingestionId}/events", IngestionEventsAsync)
            .WithName("IngestionEvents")
            .WithTags(ApiSections.Notifications)
            .WithSummary("Server-sent events of one ingestion: its status now, then batch.started and batch.completed as they happen, then completed, and the stream closes.")
            .WithDescription("Each event's id says how far the client has read (\"3.0-1\": three batches started, batches 0 and 1 completed; \"done\" after completed): a reconnect with Last-Event-ID gets what it missed, without gaps or repeats, and 204 once it has seen the end. A comment line is sent every Events:Heartbeat. 400 for a Last-Event-ID this ingestion's stream cannot have sent; 503 when Events:MaxStreams are open.")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        app.MapGet("/events", ServiceEventsAsync)
            .WithName("ServiceEvents")
            .WithTags(ApiSections.Notifications)
            .WithSummary("Server-sent events of the whole service, for dashboards: queue.depth first, then window.started, window.finished, queue.depth, queue.paused, queue.resumed, limits.changed, ingestion.cancelled, ingestion.moved; on PostgreSQL every instance's.")
            .WithDescription("Ids are this instance's (its run and a number): a reconnect with Last-Event-ID to the same instance replays what it missed from the last 1024 events; any other id starts afresh with queue.depth. 503 when Events:MaxStreams are open.")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    public static async Task<IResult> IngestionEventsAsync(string ingestionId, HttpContext context, StreamServices services)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(services);
        var cancellationToken = context.RequestAborted;
        var header = context.Request.Headers[LastEventId].ToString();
        StreamPosition? resumeFrom = null;
        if (header.Length > 0)
        {
            if (!StreamPosition.TryParse(header, out var parsed))
            {
                return Problems.Of(StatusCodes.Status400BadRequest, "Invalid Last-Event-ID", $"'{header}' is not an id this stream sends: they look like \"3.0-1\" or \"done\". Reconnect without it to start over.");
            }

            resumeFrom = parsed;
        }

        var seen = services.Hub.Last; // before reading: whatever is published after may be news for this stream
        if (!Guid.TryParse(ingestionId, out var id) || await services.ReadAsync(id, cancellationToken) is not { } current)
        {
            return Problems.UnknownIngestion(ingestionId);
        }

        if (resumeFrom is { Done: true } && IngestionHistory.IsFinal(current.Status))
        {
            return TypedResults.NoContent(); // it has seen the end: a browser stops reconnecting
        }

        if (resumeFrom is { } from && (from.Done || !IngestionHistory.IsReachable(current.Status, from)))
        {
            return Problems.Of(StatusCodes.Status400BadRequest, "Invalid Last-Event-ID", $"'{header}' is ahead of what ingestion {id} has done: it is not an id of this ingestion's stream. Reconnect without it to start over.");
        }

        if (!services.Slots.TryTake())
        {
            return TooManyStreams(context, services.Options.Value);
        }

        try
        {
            var sse = await SseWriter.StartAsync(context);
            await sse.RetryAsync(services.Options.Value.Reconnect, cancellationToken);
            var position = resumeFrom ?? IngestionHistory.PositionOf(current.Status);
            if (resumeFrom is null)
            {
                await sse.EventAsync(position.ToString(), "status", services.JsonOf(current), cancellationToken);
            }

            while (true)
            {
                var changed = services.Hub.Changed; // taken before reading, so nothing published after the read is missed
                foreach (var batch in IngestionHistory.Since(current.Status, position))
                {
                    position = position.With(batch);
                    await sse.EventAsync(position.ToString(), batch.Type, BatchData(current.Status, batch), cancellationToken);
                }

                if (IngestionHistory.IsFinal(current.Status))
                {
                    await sse.EventAsync(StreamPosition.End.ToString(), "completed", services.JsonOf(current), cancellationToken);
                    return TypedResults.Empty;
                }

                if (!await WaitForNewsAsync(id, seen, changed, sse, services, cancellationToken))
                {
                    return TypedResults.Empty;
                }

                seen = services.Hub.Last;
                if (await services.ReadAsync(id, cancellationToken) is not { } next)
                {
                    return TypedResults.Empty; // swept by retention: there is nothing more to tell
                }

                current = next;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return TypedResults.Empty; // the client went away
        }
        finally
        {
            services.Slots.Give();
        }
    }

    public static async Task<IResult> ServiceEventsAsync(HttpContext context, IQueueReader reader, StreamServices services)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(services);
        var cancellationToken = context.RequestAborted;
        if (!services.Slots.TryTake())
        {
            return TooManyStreams(context, services.Options.Value);
        }

        try
        {
            var hub = services.Hub;
            var sse = await SseWriter.StartAsync(context);
            await sse.RetryAsync(services.Options.Value.Reconnect, cancellationToken);
            var after = hub.Last;
            var resumed = hub.TryParseId(context.Request.Headers[LastEventId].ToString(), out var last) && last <= after && hub.After(last) is not null;
            if (resumed)
            {
                after = last;
            }
            else
            {
                await sse.EventAsync(hub.IdOf(after), ServiceEvents.QueueDepthChanged,
                    ServiceEvents.DepthData(await reader.GetQueueDepthAsync(cancellationToken)), cancellationToken);
            }

            while (true)
            {
                var changed = hub.Changed;
                var missed = hub.After(after);
                if (missed is null)
                {
                    // This stream fell more than EventHub.Kept events behind: say so, and go on from now.
                    after = hub.Last;
                    await sse.EventAsync(hub.IdOf(after), "reset", "{}", cancellationToken);
                    continue;
                }

                foreach (var published in missed)
                {
                    await sse.EventAsync(hub.IdOf(published.Seq), published.Type, published.Data, cancellationToken);
                    after = published.Seq;
                }

                if (await WaitAsync(changed, sse, services, cancellationToken) == Woke.Stopping)
                {
                    return TypedResults.Empty;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return TypedResults.Empty;
        }
        finally
        {
            services.Slots.Give();
        }
    }

    /// <summary>
    /// Until an event names this ingestion (a window of its ids, its cancel), or a heartbeat: a read then makes
    /// up for a notification from another instance that never came. False once the service is stopping.
    /// </summary>
    private static async Task<bool> WaitForNewsAsync(Guid id, long seen, Task changed, SseWriter sse, StreamServices services, CancellationToken cancellationToken)
    {
        var idText = id.ToString();
        while (services.Hub.After(seen) is { } news && !news.Any(e => e.Data.Contains(idText, StringComparison.Ordinal)))
        {
            seen = news.Count > 0 ? news[^1].Seq : seen;
            switch (await WaitAsync(changed, sse, services, cancellationToken))
            {
                case Woke.Stopping:
                    return false;
                case Woke.Heartbeat:
                    return true;
            }

            changed = services.Hub.Changed;
        }

        return true;
    }

    private enum Woke
    {
        Changed,
        Heartbeat,
        Stopping,
    }

    /// <summary>Until the next event, or else a heartbeat (sent), or the service stopping.</summary>
    private static async Task<Woke> WaitAsync(Task changed, SseWriter sse, StreamServices services, CancellationToken cancellationToken)
    {
        var stopping = services.Lifetime.ApplicationStopping;
        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        try
        {
            var beat = Task.Delay(services.Options.Value.Heartbeat, services.Clock, either.Token);
            await Task.WhenAny(changed, beat);
        }
        finally
        {
            await either.CancelAsync(); // the heartbeat's timer goes now, not when it would have fired
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (stopping.IsCancellationRequested)
        {
            return Woke.Stopping; // the client reconnects, to this instance once it is back or to another
        }

        if (changed.IsCompleted)
        {
            return Woke.Changed;
        }

        await sse.HeartbeatAsync(cancellationToken);
        return Woke.Heartbeat;
    }

    private static string BatchData(IngestionStatus status, BatchEvent batch) => JsonSerializer.Serialize(
        new BatchEventData(status.IngestionId, batch.Batch, batch.Status.BatchId, batch.Status.Ids, batch.Status.Status, batch.At,
            batch.Status.FailedIds, batch.Status.CancelledIds, status.Status, status.StartedIds, status.CompletedIds),
        EventsJson.Default.BatchEventData);

    private static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult TooManyStreams(HttpContext context, EventOptions options)
    {
        context.Response.Headers.RetryAfter = "5";
        return Problems.Of(StatusCodes.Status503ServiceUnavailable, "Too many event streams",
            $"This instance has {options.MaxStreams} event streams open (Events:MaxStreams). Try again in 5 s, or poll GET /status or GET /queue.");
    }
}

/// <summary>What a stream needs: the hub, the open-stream count, its settings, and how to read a status as <c>GET /status</c> answers it.</summary>
public sealed class StreamServices(
    EventHub hub,
    StreamSlots slots,
    IOptions<EventOptions> options,
    IHostApplicationLifetime lifetime,
    TimeProvider clock,
    IQueueReader store,
    AdmissionBound admission,
    StatusCache cache,
    LimitInForce limits)
{
    public EventHub Hub => hub;

    public StreamSlots Slots => slots;

    public IOptions<EventOptions> Options => options;

    public IHostApplicationLifetime Lifetime => lifetime;

    public TimeProvider Clock => clock;

    /// <summary>The ingestion's status now, as <c>GET /status</c> builds it; null when unknown.</summary>
    public async Task<IngestionRead?> ReadAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        if (await store.GetIngestionAsync(ingestionId, cancellationToken) is not { } snapshot)
        {
            return null;
        }

        var (live, estimate) = StatusReport.Live(snapshot, clock.GetUtcNow(), admission.NotBefore, limits.Current);
        return new IngestionRead(StatusReport.Build(live, estimate), live, estimate);
    }

    /// <summary>The read as the JSON of <c>GET /status</c>: rendered only for the events that carry it (the first and the last).</summary>
    public string JsonOf(IngestionRead read)
    {
        ArgumentNullException.ThrowIfNull(read);
        return Encoding.UTF8.GetString(cache.Render(read.Snapshot, read.Estimate));
    }
}

/// <summary>An ingestion's status as a stream reads it, with what its JSON is rendered from.</summary>
public sealed record IngestionRead(IngestionStatus Status, IngestionSnapshot Snapshot, WaitEstimate? Estimate);
