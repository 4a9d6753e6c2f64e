using IngestionService.Dispatch;
using IngestionService.Hosting;
using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace IngestionService.Control;

/// <summary>
/// An operator's actions on one ingestion. Each is one store transaction that every instance honours
/// from its next claim, and each answers the ingestion's status as <c>GET /status/{id}</c> would.
/// </summary>
public static partial class IngestionControlApi
{
    private static readonly string[] PatchFields = ["priority"];

    public static IEndpointRouteBuilder MapIngestionControlApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/ingestions/{ingestionId}/cancel", CancelAsync)
            .WithName("CancelIngestion")
            .WithTags(ApiSections.Control)
            .WithSummary("Cancels the ids of an ingestion not yet handed to a window: they are never called. Ids in flight, or waiting for a retry, finish.")
            .WithDescription("Answers the status, now with cancelled_ids, cancelled_at and cancel_reason 'requested'; once nothing of it runs its status is 'cancelled'. Cancelling again answers 200 and changes nothing; 409 when every id has started.")
            .Produces<IngestionStatus>()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .AsControlCall();

        app.MapPatch("/ingestions/{ingestionId}", ReprioritiseAsync)
            .WithName("ReprioritiseIngestion")
            .WithTags(ApiSections.Control)
            .WithSummary("Moves an ingestion's waiting ids to another priority: {\"priority\": \"HIGH\"}. They keep their created time and arrival order within it; ids in flight finish.")
            .WithDescription("application/json or application/merge-patch+json. Answers the status with the new priority; the same priority answers 200 and changes nothing; 409 when none of its ids waits.")
            .Accepts<ReprioritiseRequest>("application/json", "application/merge-patch+json")
            .Produces<IngestionStatus>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .AsControlCall();
        return app;
    }

    public static async Task<IResult> ReprioritiseAsync(
        string ingestionId,
        [AsParameters] IngestionActionServices services,
        CancellationToken cancellationToken)
    {
        var (context, control, reader, _, _, _, logger) = services;
        var (body, problem) = await ControlBody.ReadAsync(context.Request, PatchFields, required: true, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        if (!body.TryGetProperty("priority", out var given) || given.ValueKind == System.Text.Json.JsonValueKind.Null)
        {
            return Problems.Invalid("priority", $"'priority' is required: one of {PriorityNames.Allowed}, such as {{\"priority\": \"HIGH\"}}.");
        }

        if (given.ValueKind != System.Text.Json.JsonValueKind.String || !PriorityNames.TryParseWire(given.GetString(), out var priority))
        {
            return Problems.Invalid("priority", $"'priority' must be one of {PriorityNames.Allowed}, in capitals (got {given.GetRawText()}).");
        }

        if (!Guid.TryParse(ingestionId, out var id))
        {
            return Problems.UnknownIngestion(ingestionId);
        }

        switch (await control.ReprioritiseAsync(id, priority, cancellationToken))
        {
            case ReprioritiseOutcome.Unknown:
                return Problems.UnknownIngestion(ingestionId);
            case ReprioritiseOutcome.NothingWaits:
                return Problems.Of(StatusCodes.Status409Conflict, "Nothing waits", $"No id of ingestion {id} waits: every one has started or was cancelled, and none waits for a retry.");
            case ReprioritiseOutcome.Moved:
                LogReprioritised(logger, id, new PriorityName(priority), context.Connection.RemoteIpAddress);
                break;
        }

        return await reader.GetIngestionAsync(id, cancellationToken) is { } snapshot ? Answer(snapshot, services) : Problems.UnknownIngestion(ingestionId);
    }

    public static async Task<Results<StatusJsonResult, ProblemHttpResult>> CancelAsync(
        string ingestionId,
        [AsParameters] IngestionActionServices services,
        IngestionMetrics metrics,
        CancellationToken cancellationToken)
    {
        var (context, control, reader, _, _, _, logger) = services;
        if (await ControlBody.RefuseAnyAsync(context.Request, "Nothing was cancelled. A cancel has no options; it records the reason 'requested'.", cancellationToken) is { } refused)
        {
            return refused;
        }

        var outcome = Guid.TryParse(ingestionId, out var id) ? await control.CancelAsync(id, cancellationToken) : CancelOutcome.Unknown;

        switch (outcome)
        {
            case CancelOutcome.Unknown:
                return Problems.UnknownIngestion(ingestionId);
            case CancelOutcome.NothingToCancel:
                return Problems.Of(StatusCodes.Status409Conflict, "Nothing left to cancel", $"Every id of ingestion {id} has been handed to a window already; ids in flight finish and cannot be cancelled.");
        }

        var snapshot = await reader.GetIngestionAsync(id, cancellationToken);
        if (snapshot is null)
        {
            return Problems.UnknownIngestion(ingestionId); // cannot be gone between the two today; answered as unknown if it ever is
        }

        if (outcome == CancelOutcome.Cancelled)
        {
            metrics.IdsCancelled(snapshot.CancelledIds, CancelReason.Requested);
            LogCancelled(logger, id, snapshot.CancelledIds, context.Connection.RemoteIpAddress);
        }

        return Answer(snapshot, services);
    }

    /// <summary>The status after an action, with what the live facts (pause, estimate) say now.</summary>
    internal static StatusJsonResult Answer(IngestionSnapshot snapshot, IngestionActionServices services)
    {
        var (live, estimate) = StatusReport.Live(snapshot, services.Clock.GetUtcNow(), services.Admission.NotBefore, services.Limits.Current);
        return new StatusJsonResult(live, estimate);
    }


    [LoggerMessage(EventId = LogEvents.IngestionReprioritised, Level = LogLevel.Information, Message = "Ingestion {IngestionId} moved to {Priority} at the request of {RemoteAddress}: its waiting ids keep their created time there")]
    private static partial void LogReprioritised(ILogger logger, Guid ingestionId, PriorityName priority, System.Net.IPAddress? remoteAddress);

    /// <summary>A priority as the API spells it (HIGH), for log lines.</summary>
    private readonly record struct PriorityName(Priority Priority)
    {
        public override string ToString() => Priority.ToWire();
    }

    [LoggerMessage(EventId = LogEvents.IngestionCancelled, Level = LogLevel.Information, Message = "Ingestion {IngestionId} cancelled at the request of {RemoteAddress}: {IdCount} ids that had not started will not be called")]
    private static partial void LogCancelled(ILogger logger, Guid ingestionId, int idCount, System.Net.IPAddress? remoteAddress);
}

/// <summary>The body of <c>PATCH /ingestions/{id}</c>.</summary>
/// <param name="Priority">HIGH, MEDIUM or LOW: where the ingestion's waiting ids go.</param>
public sealed record ReprioritiseRequest(Priority Priority);

/// <summary>What every action on one ingestion uses: the request, the control, and what its status answer needs.</summary>
public readonly record struct IngestionActionServices(
    HttpContext Context,
    QueueControl Control,
    IQueueReader Reader,
    AdmissionBound Admission,
    TimeProvider Clock,
    LimitInForce Limits,
    ILogger<QueueControlEvents> Logger);
