using System.Text.Json;
using IngestionService.Dispatch;
using IngestionService.Hosting;
using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Scheduling;
using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Control;

/// <summary>
/// The rate limit at run time. An override is stored (one transaction) and every instance applies it
/// from its next admission, after restarts too; the first window after a change still waits the longer of
/// the old and new Window, so no span breaks the stricter of the two limits (<see cref="RateLimit.Spacing"/>).
/// </summary>
public static partial class LimitsApi
{
    public const int HistoryLength = 20;

    private static readonly string[] PutFields = ["batch_size", "window"];

    public static IEndpointRouteBuilder MapLimitsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/limits", GetAsync)
            .WithName("GetLimits")
            .WithTags(ApiSections.Control)
            .WithSummary("The rate limit in force (the configured one or an operator's override), the configured one, and the last 20 changes.");

        app.MapPut("/limits", PutAsync)
            .WithName("SetLimits")
            .WithTags(ApiSections.Control)
            .WithSummary("Overrides the rate limit from the next admission of every instance: {\"batch_size\": 3, \"window\": \"00:00:10\"}.")
            .WithDescription("Both fields are required and checked as Ingestion:BatchSize and Ingestion:Window are (1 to 1000 ids; a window of [d.]hh:mm:ss[.fff], positive, at most a day, and no longer than Ingestion:MaxBacklog when that is set). The next window starts no sooner than the longer of the old and new window after the previous one.")
            .Accepts<LimitsRequest>("application/json")
            .Produces<LimitsView>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .AsControlCall();

        app.MapDelete("/limits", DeleteAsync)
            .WithName("ResetLimits")
            .WithTags(ApiSections.Control)
            .WithSummary("Returns to the configured limit (Ingestion:BatchSize per Ingestion:Window) from the next admission. Without an override, changes nothing.")
            .Produces<LimitsView>()
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .AsControlCall();
        return app;
    }

    public static async Task<IResult> GetAsync(IQueueReader reader, LimitInForce limits, CancellationToken cancellationToken) =>
        TypedResults.Ok(await ViewAsync(reader, limits, cancellationToken));

    public static async Task<IResult> PutAsync(HttpContext context, QueueControl control, IQueueReader reader, LimitInForce limits, IOptions<IngestionOptions> options, ILogger<QueueControlEvents> logger, CancellationToken cancellationToken)
    {
        var (body, problem) = await ControlBody.ReadAsync(context.Request, PutFields, required: true, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        int batchSize = 0;
        if (!body.TryGetProperty("batch_size", out var batch))
        {
            errors["batch_size"] = ["'batch_size' is required: ids per window, 1 to 1000."];
        }
        else if (batch.ValueKind != JsonValueKind.Number || !batch.TryGetInt32(out batchSize))
        {
            errors["batch_size"] = [$"'batch_size' must be a whole number of ids per window, 1 to {RateLimit.MaxBatchSize}."];
        }
        else if (RateLimit.BatchSizeProblem(batchSize) is { } batchProblem)
        {
            errors["batch_size"] = [$"'batch_size' {batchProblem}."];
        }

        var window = TimeSpan.Zero;
        if (!body.TryGetProperty("window", out var given))
        {
            errors["window"] = ["'window' is required: a duration such as \"00:00:05\" ([d.]hh:mm:ss[.fff])."];
        }
        else if (given.ValueKind != JsonValueKind.String || !RateLimit.TryParseWindow(given.GetString(), out window))
        {
            errors["window"] = [$"'window' must be a duration string such as \"00:00:05\" ([d.]hh:mm:ss[.fff]); got {(given.ValueKind == JsonValueKind.Number ? $"the number {given.GetRawText()} (write seconds as \"00:00:05\")" : given.GetRawText())}."];
        }
        else if (RateLimit.WindowProblem(window) is { } windowProblem)
        {
            errors["window"] = [$"'window' {windowProblem}."];
        }
        else if (options.Value.MaxBacklog is { } backlog && window > backlog)
        {
            errors["window"] = [$"'window' must be no longer than Ingestion:MaxBacklog ({RateLimit.Format(backlog)}), or no request would ever fit the backlog."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors, "Nothing changed.");
        }

        var limit = new RateLimit(batchSize, window);
        await control.SetLimitAsync(limit, cancellationToken);
        LogChanged(logger, limit, context.Connection.RemoteIpAddress);
        return TypedResults.Ok(await ViewAsync(reader, limits, cancellationToken));
    }

    public static async Task<IResult> DeleteAsync(HttpContext context, QueueControl control, IQueueReader reader, LimitInForce limits, ILogger<QueueControlEvents> logger, CancellationToken cancellationToken)
    {
        if (await ControlBody.RefuseAnyAsync(context.Request, "Nothing changed. DELETE /limits has no options; PUT /limits sets a limit.", cancellationToken) is { } refused)
        {
            return refused;
        }

        if ((await reader.GetLimitChangesAsync(1, cancellationToken)) is [{ Limit: not null }])
        {
            await control.SetLimitAsync(null, cancellationToken);
            LogReset(logger, limits.Configured, context.Connection.RemoteIpAddress);
        }

        return TypedResults.Ok(await ViewAsync(reader, limits, cancellationToken));
    }

    /// <summary>What the store says is in force (an instance's own view may be one admission old), and the history.</summary>
    private static async Task<LimitsView> ViewAsync(IQueueReader reader, LimitInForce limits, CancellationToken cancellationToken)
    {
        var changes = await reader.GetLimitChangesAsync(HistoryLength, cancellationToken);
        var configured = limits.Configured;
        var inForce = changes is [{ Limit: { } overriding }, ..] ? overriding : configured;
        var history = changes.Select(change => new LimitChangeView(
            change.ChangedAt.UtcDateTime,
            (change.Limit ?? configured).BatchSize,
            RateLimit.Format((change.Limit ?? configured).Window),
            change.Limit is null ? LimitSource.Configuration : LimitSource.Override)).ToList();
        return new LimitsView(
            inForce.BatchSize,
            RateLimit.Format(inForce.Window),
            changes is [{ Limit: not null }, ..] ? LimitSource.Override : LimitSource.Configuration,
            changes.Count > 0 ? changes[0].ChangedAt.UtcDateTime : null,
            new ConfiguredLimit(configured.BatchSize, RateLimit.Format(configured.Window)),
            history);
    }

    [LoggerMessage(EventId = LogEvents.LimitsChanged, Level = LogLevel.Information, Message = "Rate limit set to {Limit} at the request of {RemoteAddress}, from the next admission of every instance")]
    private static partial void LogChanged(ILogger logger, RateLimit limit, System.Net.IPAddress? remoteAddress);

    [LoggerMessage(EventId = LogEvents.LimitsReset, Level = LogLevel.Information, Message = "Rate limit back to the configuration, {Limit}, at the request of {RemoteAddress}, from the next admission of every instance")]
    private static partial void LogReset(ILogger logger, RateLimit limit, System.Net.IPAddress? remoteAddress);
}

/// <summary>Where the limit in force comes from.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<LimitSource>))]
public enum LimitSource
{
    /// <summary>Ingestion:BatchSize and Ingestion:Window.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("configuration")]
    Configuration,

    /// <summary>An operator's PUT /limits.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("override")]
    Override,
}

/// <summary>The body of <c>PUT /limits</c>.</summary>
/// <param name="BatchSize">Ids per window, 1 to 1000.</param>
/// <param name="Window">The least time between two window starts, [d.]hh:mm:ss[.fff]: positive, at most a day.</param>
public sealed record LimitsRequest(int BatchSize, string Window);

/// <summary>The answer of <c>GET /limits</c> (and of <c>PUT</c> and <c>DELETE</c>).</summary>
/// <param name="BatchSize">Ids per window in force.</param>
/// <param name="Window">The window in force, [d.]hh:mm:ss[.fff].</param>
/// <param name="Source">configuration, or override while an operator's PUT /limits is in force.</param>
/// <param name="ChangedAt">When the newest change was made; null if the limit was never changed at run time.</param>
/// <param name="Configured">Ingestion:BatchSize and Ingestion:Window, which DELETE /limits returns to.</param>
/// <param name="History">The last 20 changes, newest first; a return to the configuration shows the configured values.</param>
public sealed record LimitsView(int BatchSize, string Window, LimitSource Source, DateTime? ChangedAt, ConfiguredLimit Configured, IReadOnlyList<LimitChangeView> History);

/// <summary>The limit in the configuration.</summary>
public sealed record ConfiguredLimit(int BatchSize, string Window);

/// <summary>One change of the limit.</summary>
public sealed record LimitChangeView(DateTime ChangedAt, int BatchSize, string Window, LimitSource Source);
