using IngestionService.Hosting;
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

    /// <summary>What the dashboard's endpoints and the control calls answer with: the queue as <c>GET /queue</c> shows it.</summary>
    public static IServiceCollection AddDashboard(this IServiceCollection services) => services.AddSingleton<QueueViews>();

    public static WebApplication MapDashboard(this WebApplication app)
    {
        app.UseDefaultFiles();   // "/" answers wwwroot/index.html
        app.UseStaticFiles();

        app.MapGet("/queue", GetQueueAsync)
            .WithName("GetQueue")
            .WithTags(ApiSections.QueueAndWindows)
            .WithSummary("Ids waiting by priority, how long each priority takes to drain, and when the next window may start.");

        app.MapGet("/ingestions", GetIngestionsAsync)
            .WithName("GetIngestions")
            .WithTags(ApiSections.QueueAndWindows)
            .WithSummary("The newest ingestions, newest first, with their progress in ids and in batches.")
            .WithDescription("Filters, each optional: `status` (yet_to_start, triggered, completed, cancelled), `priority` (HIGH, MEDIUM, LOW) and `failed=true` (only ingestions with a failed id). `limit` (1-1000, default 20) counts the ingestions that match.");
        return app;
    }

    public static async Task<Ok<QueueView>> GetQueueAsync(QueueViews views, CancellationToken cancellationToken) =>
        TypedResults.Ok(await views.ReadAsync(cancellationToken));

    public static async Task<Results<Ok<IngestionList>, ValidationProblem>> GetIngestionsAsync(
        IQueueReader store,
        CancellationToken cancellationToken,
        string? limit = null,
        string? status = null,
        string? priority = null,
        string? failed = null)
    {
        if (!ListLimit.TryParse(limit, DefaultLimit, out var count, out var problem))
        {
            return problem;
        }

        if (!TryParseFilter(status, priority, failed, out var filter, out var errors))
        {
            return TypedResults.ValidationProblem(errors);
        }

        var ingestions = await store.GetRecentIngestionsAsync(count, filter, cancellationToken);
        return TypedResults.Ok(new IngestionList([.. ingestions.Select(Summarize)]));
    }

    /// <summary>The list's filters: <c>?status=</c> as <c>/status</c> spells it, <c>?priority=</c> as <c>POST /ingest</c> does, <c>?failed=true</c>.</summary>
    internal static bool TryParseFilter(string? status, string? priority, string? failed, out IngestionFilter filter, out Dictionary<string, string[]> errors)
    {
        errors = [];
        ProgressStatus? wantedStatus = null;
        if (status is not null)
        {
            if (ProgressStatusNames.TryParseWire(status, out var parsed))
            {
                wantedStatus = parsed;
            }
            else
            {
                errors["status"] = [$"'status' must be one of {ProgressStatusNames.Allowed} (got '{status}')."];
            }
        }

        Priority? wantedPriority = null;
        if (priority is not null)
        {
            if (PriorityNames.TryParseWire(priority, out var parsed))
            {
                wantedPriority = parsed;
            }
            else
            {
                errors["priority"] = [$"'priority' must be one of {PriorityNames.Allowed} (got '{priority}')."];
            }
        }

        var failedOnly = false;
        if (failed is not null && !bool.TryParse(failed, out failedOnly))
        {
            errors["failed"] = [$"'failed' must be true or false (got '{failed}')."];
        }

        filter = new IngestionFilter(wantedPriority, wantedStatus, failedOnly);
        return errors.Count == 0;
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
        var cancelled = total - ((ingestion.Total - ingestion.Cancelled + size - 1) / size); // wholly in the cancelled tail
        var completed = ingestion.Completed >= ingestion.Total - ingestion.Cancelled ? started : ingestion.Completed / size;
        var status = StatusReport.Overall(ingestion);
        return new IngestionSummaryView(
            ingestion.Id,
            ingestion.Priority,
            status,
            ingestion.CreatedAt.UtcDateTime,
            ingestion.Total,
            ingestion.Started,
            ingestion.Completed,
            ingestion.Failed,
            new BatchCounts(total, total - started - cancelled, started - completed, completed, cancelled),
            ingestion.Cancelled);
    }
}

/// <summary>The answer of <c>GET /queue</c>.</summary>
/// <param name="Now">The service's clock when it answered, so a client can count down without trusting its own.</param>
/// <param name="NextAdmissionAt">The earliest moment this instance may start its next window (now, if it may start one at once).</param>
/// <param name="WindowSeconds">Ingestion:Window, the least time between two window starts.</param>
/// <param name="BatchSize">Ingestion:BatchSize, ids per window.</param>
/// <param name="TotalWaiting">Ids waiting, all priorities.</param>
/// <param name="Priorities">HIGH, MEDIUM, LOW, in the order they drain.</param>
/// <param name="Paused">Whether an operator has paused the queue (POST /queue/pause): no window is admitted until POST /queue/resume.</param>
/// <param name="PausedAt">Since when it is paused; null while it runs.</param>
/// <param name="PauseReason">Why, as the operator said; null when no reason was given or while it runs.</param>
/// <param name="ControlNeedsKey">Whether the control calls (pause, resume) need 'Authorization: Bearer' with the Admin:ApiKey.</param>
/// <param name="UpstreamPausedUntil">While the upstream has asked for a pause (429 / Retry-After): when it ends. Absent otherwise.</param>
public sealed record QueueView(
    DateTime Now,
    DateTime NextAdmissionAt,
    double WindowSeconds,
    int BatchSize,
    long TotalWaiting,
    IReadOnlyList<PriorityQueueView> Priorities,
    bool Paused,
    DateTime? PausedAt,
    string? PauseReason,
    bool ControlNeedsKey,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] DateTime? UpstreamPausedUntil = null);

/// <summary>One priority of the queue.</summary>
/// <param name="Priority">HIGH, MEDIUM or LOW.</param>
/// <param name="Waiting">Ids of this priority waiting (ids handed back by an abandoned window included).</param>
/// <param name="WaitingUpToHere">Ids of this and every higher priority: all of them start before this priority's last id.</param>
/// <param name="DrainSeconds">Seconds until the last waiting id of this priority is admitted into a window at BatchSize ids per Window, after every more urgent id, if no more urgent work arrives; 0 when none of this priority wait; null while the queue is paused and some wait.</param>
/// <param name="DrainedAt">When that is; null when none of this priority wait, or while the queue is paused.</param>
public sealed record PriorityQueueView(Priority Priority, long Waiting, long WaitingUpToHere, double? DrainSeconds, DateTime? DrainedAt);

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
    BatchCounts Batches,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)] int CancelledIds = 0);

/// <summary>How many of an ingestion's batches are in each status; <see cref="Cancelled"/> appears once some are.</summary>
public sealed record BatchCounts(
    int Total,
    int YetToStart,
    int Triggered,
    int Completed,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)] int Cancelled = 0);
