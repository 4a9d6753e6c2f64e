using IngestionService.Hosting;
using IngestionService.Dispatch;
using IngestionService.Ingest;
using IngestionService.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace IngestionService.Dashboard;

/// <summary>
/// The dashboard at <c>/</c> (static files in wwwroot) and the two read-only endpoints it polls besides
/// <c>GET /windows</c> and <c>GET /status</c>. Plain documented JSON, so other tools can poll them too.
/// </summary>
public static class DashboardApi
{
    public const int DefaultLimit = 20;
    public const int MaxLimit = ListLimit.Max;

    public static WebApplication MapDashboard(this WebApplication app)
    {
        app.UseDefaultFiles();   // "/" answers wwwroot/index.html
        app.UseStaticFiles();

        app.MapGet("/queue", GetQueueAsync)
            .WithName("GetQueue")
            .WithSummary("Ids waiting by priority, how long each priority takes to drain, and when the next window may start.");

        app.MapGet("/ingestions", GetIngestionsAsync)
            .WithName("GetIngestions")
            .WithSummary("The newest ingestions, newest first, with their progress in ids and in batches.");
        return app;
    }

    public static async Task<Ok<QueueView>> GetQueueAsync(
        IIngestionStore store,
        Dispatcher dispatcher,
        TimeProvider clock,
        IOptions<IngestionOptions> options,
        CancellationToken cancellationToken)
    {
        var depth = await store.GetQueueDepthAsync(cancellationToken);
        var now = clock.GetUtcNow();
        var next = dispatcher.NextWindowNotBefore > now ? dispatcher.NextWindowNotBefore : now;
        var window = options.Value.Window;
        var batchSize = options.Value.BatchSize;

        // HIGH drains first, so MEDIUM's last id waits for every HIGH id too, and LOW's for both.
        var priorities = new List<PriorityQueueView>(3);
        long ahead = 0;
        foreach (var priority in (ReadOnlySpan<Priority>)[Priority.High, Priority.Medium, Priority.Low])
        {
            var waiting = depth.Of(priority);
            ahead += waiting;
            DateTimeOffset? drainedAt = waiting == 0 ? null : next + (window * ((ahead - 1) / batchSize));
            priorities.Add(new PriorityQueueView(
                priority,
                waiting,
                ahead,
                drainedAt is { } at ? Math.Max(0, (at - now).TotalSeconds) : 0,
                drainedAt?.UtcDateTime));
        }

        var pausedUntil = await store.GetPausedUntilAsync(cancellationToken) is { } until && until > now ? until.UtcDateTime : (DateTime?)null;
        return TypedResults.Ok(new QueueView(now.UtcDateTime, next.UtcDateTime, window.TotalSeconds, batchSize, depth.Total, priorities, pausedUntil));
    }

    public static async Task<Results<Ok<IngestionList>, ValidationProblem>> GetIngestionsAsync(
        IIngestionStore store,
        CancellationToken cancellationToken,
        string? limit = null)
    {
        if (!ListLimit.TryParse(limit, DefaultLimit, out var count, out var problem))
        {
            return problem;
        }

        var ingestions = await store.GetRecentIngestionsAsync(count, cancellationToken);
        return TypedResults.Ok(new IngestionList([.. ingestions.Select(Summarize)]));
    }

    /// <summary>
    /// Batch counts from the two counters alone, so the list costs the same however large its ingestions
    /// are. Windows take a request's positions in order and store their results in one transaction, so
    /// completed positions are a prefix; only ids handed back by a crashed window (fetched again first) or
    /// waiting for a retry can break that, and <c>GET /status</c> is then the exact answer.
    /// </summary>
    internal static IngestionSummaryView Summarize(IngestionSummary ingestion)
    {
        var size = ingestion.BatchSize;
        var total = (ingestion.Total + size - 1) / size;
        var started = (ingestion.Started + size - 1) / size;
        var completed = ingestion.Completed >= ingestion.Total ? total : ingestion.Completed / size;
        var status = ingestion.Completed >= ingestion.Total ? ProgressStatus.Completed
            : ingestion.Started == 0 ? ProgressStatus.YetToStart
            : ProgressStatus.Triggered;
        return new IngestionSummaryView(
            ingestion.Id,
            ingestion.Priority,
            status,
            ingestion.CreatedAt.UtcDateTime,
            ingestion.Total,
            ingestion.Started,
            ingestion.Completed,
            ingestion.Failed,
            new BatchCounts(total, total - started, started - completed, completed));
    }
}

/// <summary>The answer of <c>GET /queue</c>.</summary>
/// <param name="Now">The service's clock when it answered, so a client can count down without trusting its own.</param>
/// <param name="NextAdmissionAt">The earliest moment this instance may start its next window (now, if it may start one at once).</param>
/// <param name="WindowSeconds">Ingestion:Window, the least time between two window starts.</param>
/// <param name="BatchSize">Ingestion:BatchSize, ids per window.</param>
/// <param name="TotalWaiting">Ids waiting, all priorities.</param>
/// <param name="Priorities">HIGH, MEDIUM, LOW, in the order they drain.</param>
/// <param name="UpstreamPausedUntil">While the upstream has asked for a pause (429 / Retry-After): when it ends. Absent otherwise.</param>
public sealed record QueueView(
    DateTime Now,
    DateTime NextAdmissionAt,
    double WindowSeconds,
    int BatchSize,
    long TotalWaiting,
    IReadOnlyList<PriorityQueueView> Priorities,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] DateTime? UpstreamPausedUntil = null);

/// <summary>One priority of the queue.</summary>
/// <param name="Priority">HIGH, MEDIUM or LOW.</param>
/// <param name="Waiting">Ids of this priority waiting (ids handed back by an abandoned window included).</param>
/// <param name="WaitingUpToHere">Ids of this and every higher priority: all of them start before this priority's last id.</param>
/// <param name="DrainSeconds">Seconds until the last waiting id of this priority is admitted into a window at BatchSize ids per Window, after every more urgent id, if no more urgent work arrives; 0 when none of this priority wait.</param>
/// <param name="DrainedAt">When that is; null when none of this priority wait.</param>
public sealed record PriorityQueueView(Priority Priority, long Waiting, long WaitingUpToHere, double DrainSeconds, DateTime? DrainedAt);

/// <summary>The answer of <c>GET /ingestions</c>.</summary>
public sealed record IngestionList(IReadOnlyList<IngestionSummaryView> Ingestions);

/// <summary>One ingestion's progress, without its ids (<c>GET /status/{ingestion_id}</c> has them).</summary>
public sealed record IngestionSummaryView(
    Guid IngestionId,
    Priority Priority,
    ProgressStatus Status,
    DateTime CreatedAt,
    int TotalIds,
    int StartedIds,
    int CompletedIds,
    int FailedIds,
    BatchCounts Batches);

/// <summary>How many of an ingestion's batches are in each status.</summary>
public sealed record BatchCounts(int Total, int YetToStart, int Triggered, int Completed);
