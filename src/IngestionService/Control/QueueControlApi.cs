using System.Text.Json;
using IngestionService.Dashboard;
using IngestionService.Hosting;
using IngestionService.Observability;
using IngestionService.Storage;

namespace IngestionService.Control;

/// <summary>
/// Pausing and resuming the queue. The pause is stored (one transaction), so every instance and every
/// restart honours it: no window is admitted while it lasts, the window in flight finishes, and
/// submissions are still accepted. Both answer the queue as <c>GET /queue</c> does.
/// </summary>
public static partial class QueueControlApi
{
    public const int MaxReasonLength = 500;

    private static readonly string[] PauseFields = ["reason"];

    public static IEndpointRouteBuilder MapQueueControlApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/queue/pause", PauseAsync)
            .WithName("PauseQueue")
            .WithTags(ApiSections.Control)
            .WithSummary("Pauses the queue: no window starts until POST /queue/resume; the window in flight finishes, and submissions are still accepted.")
            .WithDescription("Optional body: {\"reason\": \"...\"} (at most 500 characters), shown by GET /queue. Pausing a paused queue keeps when it was paused and replaces the reason only when one is given.")
            .Accepts<PauseRequest>("application/json")
            .Produces<QueueView>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .AsControlCall();

        app.MapPost("/queue/resume", ResumeAsync)
            .WithName("ResumeQueue")
            .WithTags(ApiSections.Control)
            .WithSummary("Ends the pause: the next window starts as soon as the rate limit allows. Resuming a running queue changes nothing.")
            .Produces<QueueView>()
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .AsControlCall();
        return app;
    }

    public static async Task<IResult> PauseAsync(HttpContext context, QueueControl control, QueueViews views, ILogger<QueueControlEvents> logger, CancellationToken cancellationToken)
    {
        var (body, problem) = await ControlBody.ReadAsync(context.Request, PauseFields, required: false, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        string? reason = null;
        if (body.TryGetProperty("reason", out var given) && given.ValueKind != JsonValueKind.Null)
        {
            if (given.ValueKind != JsonValueKind.String || given.GetString() is not { Length: > 0 and <= MaxReasonLength } text || text.Any(char.IsControl))
            {
                return Problems.Invalid("reason", $"'reason' must be a string of 1 to {MaxReasonLength} characters on one line, or null.");
            }

            reason = text;
        }

        var pause = await control.PauseAsync(reason, cancellationToken);
        LogPaused(logger, context.Connection.RemoteIpAddress, pause.PausedAt, pause.Reason ?? "no reason given");
        return TypedResults.Ok(await views.ReadAsync(cancellationToken));
    }

    public static async Task<IResult> ResumeAsync(HttpContext context, QueueControl control, QueueViews views, ILogger<QueueControlEvents> logger, CancellationToken cancellationToken)
    {
        if (await ControlBody.RefuseAnyAsync(context.Request, "Nothing changed. A resume has no options.", cancellationToken) is { } refused)
        {
            return refused;
        }

        if (await control.ResumeAsync(cancellationToken))
        {
            LogResumed(logger, context.Connection.RemoteIpAddress);
        }

        return TypedResults.Ok(await views.ReadAsync(cancellationToken));
    }

    // Who asked is not known (the admin key has no names): the log says from which address.
    [LoggerMessage(EventId = LogEvents.QueuePaused, Level = LogLevel.Information, Message = "Queue paused at the request of {RemoteAddress}, since {PausedAt:yyyy-MM-ddTHH:mm:ss.fffZ}: {Reason}")]
    private static partial void LogPaused(ILogger logger, System.Net.IPAddress? remoteAddress, DateTimeOffset pausedAt, string reason);

    [LoggerMessage(EventId = LogEvents.QueueResumed, Level = LogLevel.Information, Message = "Queue resumed at the request of {RemoteAddress}")]
    private static partial void LogResumed(ILogger logger, System.Net.IPAddress? remoteAddress);
}

/// <summary>The log category of the control actions: one Information line per action that changed something.</summary>
public sealed class QueueControlEvents;

/// <summary>The optional body of <c>POST /queue/pause</c>.</summary>
/// <param name="Reason">Why, for whoever looks at GET /queue or the dashboard (at most 500 characters).</param>
public sealed record PauseRequest(string? Reason);
