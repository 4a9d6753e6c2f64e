using System.Buffers;
using IngestionService.Dispatch;
using IngestionService.Hosting;
using IngestionService.Notifications;
using IngestionService.Storage;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace IngestionService.Ingest;

/// <summary>The brief's two endpoints: submit ids with a priority, and read where a submission stands.</summary>
public static class IngestionApi
{
    public const string IdempotencyKeyHeader = "Idempotency-Key";
    public const string IdempotentReplayedHeader = "Idempotent-Replayed";
    private const int MaxIdempotencyKeyLength = 255;
    private const int DefaultResultsPage = 100;

    public static IEndpointRouteBuilder MapIngestionApi(this IEndpointRouteBuilder app)
    {
        // The two hot endpoints take their singletons from the root provider: asking the request's
        // services would create (and dispose) a scope for every request just to look them up.
        var services = app.ServiceProvider;

        app.MapPost("/ingest", (HttpRequest request, CancellationToken cancellationToken) =>
                IngestAsync(
                    request,
                    services.GetRequiredService<IngestionSubmitter>(),
                    services.GetRequiredService<Backpressure>(),
                    services.GetRequiredService<IOptions<IngestionOptions>>(),
                    services.GetRequiredService<IOptions<NotificationOptions>>(),
                    services.GetRequiredService<TimeProvider>(),
                    cancellationToken))
            .WithName("Ingest")
            .WithTags(ApiSections.SubmitAndTrack)
            .WithSummary("Submit ids to fetch, with a priority; answers 202 at once with the ingestion id.")
            .Accepts<IngestRequest>("application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);

        Task<Results<StatusJsonResult, ProblemHttpResult>> Status(string ingestionId, CancellationToken cancellationToken) =>
            GetStatusAsync(
                ingestionId,
                services.GetRequiredService<IQueueReader>(),
                services.GetRequiredService<AdmissionBound>(),
                services.GetRequiredService<StatusCache>(),
                services.GetRequiredService<TimeProvider>(),
                services.GetRequiredService<LimitInForce>(),
                services.GetRequiredService<IOptions<IngestionOptions>>(),
                cancellationToken);

        app.MapGet("/status/{ingestionId}", Status)
            .WithName("GetStatus")
            .WithTags(ApiSections.SubmitAndTrack)
            .WithSummary("Where an ingestion and each of its batches stand, and when waiting batches should start.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        // The address a client guesses from /ingestions and /ingestions/{id}/results: the same document.
        app.MapGet("/ingestions/{ingestionId}", Status)
            .WithName("GetIngestion")
            .WithTags(ApiSections.SubmitAndTrack)
            .WithSummary("The same answer as GET /status/{ingestionId}, at the address the other ingestion routes suggest.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        app.MapGet("/ingestions/{ingestionId}/results", GetResultsAsync)
            .WithName("GetResults")
            .WithTags(ApiSections.Results)
            .WithSummary("What the upstream answered for each id called so far, by position, a page at a time.")
            .ProducesValidationProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound);

        return app;
    }

    public static async Task<Results<AcceptedResult, ProblemHttpResult>> IngestAsync(
        HttpRequest request,
        IngestionSubmitter submitter,
        Backpressure backpressure,
        IOptions<IngestionOptions> options,
        IOptions<NotificationOptions> notifications,
        TimeProvider clock,
        CancellationToken cancellationToken)
    {
        string? idempotencyKey = null;
        if (request.Headers.TryGetValue(IdempotencyKeyHeader, out var keys))
        {
            idempotencyKey = keys.Count == 1 ? keys[0] : null;
            if (idempotencyKey is null || idempotencyKey.Length is 0 or > MaxIdempotencyKeyLength || idempotencyKey.Any(c => c is < '!' or > '~'))
            {
                return Problems.Of(StatusCodes.Status400BadRequest, "Invalid Idempotency-Key",
                    $"Send one Idempotency-Key of 1 to {MaxIdempotencyKeyLength} visible ASCII characters, such as a UUID.");
            }
        }

        if (!request.HasJsonContentType())
        {
            return Problems.Of(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type", HostingExtensions.NotJson(request));
        }

        var limits = options.Value;
        if (request.ContentLength > limits.MaxRequestBytes)
        {
            return BodyTooLarge(limits);
        }

        // Kestrel's own cap (30 MB by default) follows the configured one, so both answer the same way.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limits.MaxRequestBytes;
        }

        IngestParseResult parsed;
        var body = request.BodyReader;
        try
        {
            while (true)
            {
                var read = await body.ReadAsync(cancellationToken);
                var buffer = read.Buffer;
                if (buffer.Length > limits.MaxRequestBytes)
                {
                    body.AdvanceTo(buffer.End);
                    return BodyTooLarge(limits);
                }

                if (read.IsCompleted)
                {
                    parsed = IngestRequestParser.Parse(buffer, limits.MaxIdsPerRequest);
                    body.AdvanceTo(buffer.End);
                    break;
                }

                body.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (BadHttpRequestException exception)
        {
            return Problems.Of(exception.StatusCode, "Unreadable request body", exception.Message);
        }

        switch (parsed.Outcome)
        {
            case IngestParseOutcome.Malformed:
                return Problems.Of(StatusCodes.Status400BadRequest, "Malformed JSON", parsed.Detail);
            case IngestParseOutcome.TooLarge:
                return Problems.Of(StatusCodes.Status413PayloadTooLarge, "Too many ids", parsed.Detail);
            case IngestParseOutcome.Invalid:
                return Problems.Invalid(parsed.Errors!, "Send {\"ids\": [integers between 1 and 1000000007], \"priority\": \"HIGH\" | \"MEDIUM\" | \"LOW\"}, and optionally \"not_after\": an ISO-8601 time with an offset, and \"callback_url\": an http or https URL.");
        }

        // A client's retry of a stored request is answered as such even once its not_after has passed.
        EnqueueResult? earlier = null;
        if (parsed.NotAfter is { } notAfter && notAfter <= clock.GetUtcNow()
            && (idempotencyKey is null || (earlier = await submitter.FindEarlierAsync(parsed, idempotencyKey, cancellationToken)) is null))
        {
            return Problems.Invalid(
                "not_after",
                $"'not_after' ({notAfter.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}) is not in the future: every id would expire unstarted.",
                "Nothing was stored. Send a not_after later than now, or none.");
        }

        // A replay of a stored request is answered as such, whatever its callback's name resolves to now.
        var (callback, unreachable) = await CallbackTarget.ResolveAsync(parsed, request, notifications.Value, cancellationToken);
        if (unreachable is not null && (idempotencyKey is null || (earlier ??= await submitter.FindEarlierAsync(parsed, idempotencyKey, cancellationToken)) is null))
        {
            return Problems.Invalid("callback_url", unreachable, "Nothing was stored. Send a callback_url on the public internet, or none.");
        }

        if (earlier is null
            && backpressure.Enabled
            && await backpressure.CheckAsync(parsed.Priority, parsed.Ids.Length, cancellationToken) is { Accepted: false } verdict
            && (idempotencyKey is null || (earlier = await submitter.FindEarlierAsync(parsed, idempotencyKey, cancellationToken)) is null))
        {
            // A replay of a stored request is answered as such below, whatever the backlog: it adds nothing.
            if (verdict.NeverFits)
            {
                return Problems.Of(StatusCodes.Status413PayloadTooLarge, "Request would exceed the backlog limit",
                    $"{parsed.Ids.Length} ids alone take {Seconds(verdict.Drain)} to fetch at the rate limit, more than Ingestion:MaxBacklog ({Seconds(options.Value.MaxBacklog!.Value)}). Split the request.");
            }

            request.HttpContext.Response.Headers.RetryAfter = ((long)verdict.RetryAfter.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Problems.Of(StatusCodes.Status429TooManyRequests, "Backlog full",
                $"The ids waiting at {parsed.Priority.ToWire()} priority and above, with these, would take {Seconds(verdict.Drain)} to fetch at the rate limit, more than Ingestion:MaxBacklog ({Seconds(options.Value.MaxBacklog!.Value)}). Try again in {(long)verdict.RetryAfter.TotalSeconds} s; nothing was stored.");
        }

        var result = earlier ?? await submitter.SubmitAsync(parsed, idempotencyKey, callback, cancellationToken);
        switch (result.Outcome)
        {
            case EnqueueOutcome.KeyConflict:
                return Problems.Invalid(
                    new Dictionary<string, string[]>(StringComparer.Ordinal)
                    {
                        [IdempotencyKeyHeader] = [$"This key was used for a different request (ingestion {result.IngestionId}); use a new key for a new request."],
                    },
                    $"Nothing was stored: this Idempotency-Key already stands for ingestion {result.IngestionId}, made from other ids, another priority or another not_after.",
                    "Idempotency-Key reused with a different request");
            case EnqueueOutcome.Replayed:
                // The answer the first request got; nothing new was stored.
                request.HttpContext.Response.Headers[IdempotentReplayedHeader] = "true";
                break;
        }

        return new AcceptedResult(result.IngestionId, options.Value.AcceptedStatusCode);
    }

    /// <summary>
    /// What the upstream answered for each id called so far, by position, a page at a time: <c>after</c> is the
    /// last position of the previous page (exclusive), <c>limit</c> the page's size, and <c>next</c> links the
    /// following page while this one is full.
    /// </summary>
    public static async Task<Results<Ok<IngestionResults>, ProblemHttpResult, ValidationProblem>> GetResultsAsync(
        string ingestionId,
        string? after,
        string? limit,
        IQueueReader store,
        CancellationToken cancellationToken)
    {
        if (!ListLimit.TryParse(limit, DefaultResultsPage, out var count, out var problem))
        {
            return problem;
        }

        var afterPosition = -1;
        if (after is not null && !(int.TryParse(after, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out afterPosition)))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["after"] = [$"'after' must be a position: a whole number of 0 or more (got '{after}')."],
            });
        }

        var results = Guid.TryParse(ingestionId, out var id) ? await store.GetResultsAsync(id, afterPosition, count, cancellationToken) : null;
        if (results is null)
        {
            return Problems.UnknownIngestion(ingestionId);
        }

        var next = results.Count == count ? $"/ingestions/{id}/results?after={results[^1].Position}&limit={count}" : null;
        return TypedResults.Ok(new IngestionResults(id, [.. results.Select(IdResultView.From)], next));
    }

    public static async Task<Results<StatusJsonResult, ProblemHttpResult>> GetStatusAsync(
        string ingestionId,
        IQueueReader store,
        AdmissionBound admission,
        StatusCache cache,
        TimeProvider clock,
        LimitInForce limits,
        IOptions<IngestionOptions> options,
        CancellationToken cancellationToken)
    {
        var known = Guid.TryParse(ingestionId, out var id);
        var (now, retention) = (clock.GetUtcNow(), options.Value.Retention);
        if (known && cache.Final(id, now - retention) is { } final)
        {
            return new StatusJsonResult(final);
        }

        var snapshot = known ? await store.GetIngestionAsync(id, cancellationToken) : null;
        if (snapshot is null)
        {
            return known ? Problems.UnknownIngestion(id, now, retention) : Problems.UnknownIngestion(ingestionId);
        }

        var (live, estimate) = StatusReport.Live(snapshot, now, admission.NotBefore, limits.Current);
        return new StatusJsonResult(live, estimate, cache);
    }

    private static ProblemHttpResult BodyTooLarge(IngestionOptions limits) =>
        Problems.Of(StatusCodes.Status413PayloadTooLarge, "Request body too large",
            $"The request body is larger than {limits.MaxRequestBytes} bytes, the most that {limits.MaxIdsPerRequest} ids (Ingestion:MaxIdsPerRequest) can need.");

    /// <summary>A duration as a client reads it: whole seconds, rounded up.</summary>
    private static string Seconds(TimeSpan duration) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Math.Ceiling(duration.TotalSeconds):0} s");

}

/// <summary>The body of <c>POST /ingest</c> (read by <see cref="IngestRequestParser"/>; declared here for OpenAPI).</summary>
/// <param name="Ids">1 to Ingestion:MaxIdsPerRequest JSON integers, each in 1 ..= 1000000007; duplicates are processed as given.</param>
/// <param name="Priority">HIGH, MEDIUM or LOW.</param>
/// <param name="NotAfter">Optional: an ISO-8601 time with an offset, in the future. Ids not started by then are cancelled (cancel_reason 'expired') at the next admission, so no call is spent on them.</param>
/// <param name="CallbackUrl">Optional: an absolute http or https URL (at most 2 048 characters) on the public internet, POSTed a signed ingestion.completed or ingestion.cancelled event once nothing of the ingestion is left to run (Standard Webhooks headers). Unset: Notifications:Url, if configured.</param>
public sealed record IngestRequest(int[] Ids, Priority Priority, DateTimeOffset? NotAfter = null, Uri? CallbackUrl = null);

/// <summary>The answer of <c>POST /ingest</c>.</summary>
public sealed record IngestAccepted(Guid IngestionId);

/// <summary>A page of <c>GET /ingestions/{id}/results</c>; <see cref="Next"/> is the next page's address, null on the last.</summary>
public sealed record IngestionResults(Guid IngestionId, IReadOnlyList<IdResultView> Results, string? Next);

/// <summary>
/// The latest outcome for one position of an ingestion. <see cref="HttpStatus"/> is null when no HTTP answer
/// came (a timeout, a refused connection) and for the simulated upstream; <see cref="Body"/> is cut at
/// Upstream:MaxBodyBytes (<see cref="BodyTruncated"/>); <see cref="NextAttemptAt"/> is set while retrying.
/// </summary>
public sealed record IdResultView(
    int Position,
    int Id,
    FetchState State,
    int? HttpStatus,
    string? Body,
    bool BodyTruncated,
    int Attempts,
    string? Error,
    DateTime FetchedAt,
    DateTime? NextAttemptAt)
{
    public static IdResultView From(IdResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new(result.Position, result.Id, result.State, result.HttpStatus, result.Body, result.BodyTruncated, result.Attempts, result.Error,
            result.FetchedAt.UtcDateTime, result.NextAttemptAt?.UtcDateTime);
    }
}
