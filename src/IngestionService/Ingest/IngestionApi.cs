using System.Buffers;
using IngestionService.Dispatch;
using IngestionService.Hosting;
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
                    cancellationToken))
            .WithName("Ingest")
            .WithSummary("Submit ids to fetch, with a priority; answers 202 at once with the ingestion id.")
            .Accepts<IngestRequest>("application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);

        app.MapGet("/status/{ingestionId}", (string ingestionId, CancellationToken cancellationToken) =>
                GetStatusAsync(
                    ingestionId,
                    services.GetRequiredService<IIngestionStore>(),
                    services.GetRequiredService<Dispatcher>(),
                    services.GetRequiredService<StatusCache>(),
                    services.GetRequiredService<TimeProvider>(),
                    services.GetRequiredService<IOptions<IngestionOptions>>(),
                    cancellationToken))
            .WithName("GetStatus")
            .WithSummary("Where an ingestion and each of its batches stand, and when waiting batches should start.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        app.MapGet("/ingestions/{ingestionId}/results", GetResultsAsync)
            .WithName("GetResults")
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
        CancellationToken cancellationToken)
    {
        string? idempotencyKey = null;
        if (request.Headers.TryGetValue(IdempotencyKeyHeader, out var keys))
        {
            idempotencyKey = keys.Count == 1 ? keys[0] : null;
            if (idempotencyKey is null || idempotencyKey.Length is 0 or > MaxIdempotencyKeyLength || idempotencyKey.Any(c => c is < '!' or > '~'))
            {
                return Problem(StatusCodes.Status400BadRequest, "Invalid Idempotency-Key",
                    $"Send one Idempotency-Key of 1 to {MaxIdempotencyKeyLength} visible ASCII characters, such as a UUID.");
            }
        }

        if (!request.HasJsonContentType())
        {
            return Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type",
                $"Send the body as JSON with 'Content-Type: application/json' (got '{request.ContentType ?? "no content type"}').");
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
            return Problem(exception.StatusCode, "Unreadable request body", exception.Message);
        }

        switch (parsed.Outcome)
        {
            case IngestParseOutcome.Malformed:
                return Problem(StatusCodes.Status400BadRequest, "Malformed JSON", parsed.Detail);
            case IngestParseOutcome.TooLarge:
                return Problem(StatusCodes.Status413PayloadTooLarge, "Too many ids", parsed.Detail);
            case IngestParseOutcome.Invalid:
                return TypedResults.Problem(new HttpValidationProblemDetails(parsed.Errors!)
                {
                    Status = StatusCodes.Status422UnprocessableEntity,
                    Title = "One or more fields are invalid.",
                    Detail = "Send {\"ids\": [integers between 1 and 1000000007], \"priority\": \"HIGH\" | \"MEDIUM\" | \"LOW\"}.",
                });
        }

        EnqueueResult? earlier = null;
        if (backpressure.Enabled
            && await backpressure.CheckAsync(parsed.Ids.Length, cancellationToken) is { Accepted: false } verdict
            && (idempotencyKey is null || (earlier = await submitter.FindEarlierAsync(parsed.Priority, parsed.Ids, idempotencyKey, cancellationToken)) is null))
        {
            // A replay of a stored request is answered as such below, whatever the backlog: it adds nothing.
            if (verdict.NeverFits)
            {
                return Problem(StatusCodes.Status413PayloadTooLarge, "Request would exceed the backlog limit",
                    $"{parsed.Ids.Length} ids alone take {verdict.Drain} to fetch at the rate limit, more than Ingestion:MaxBacklog ({options.Value.MaxBacklog}). Split the request.");
            }

            request.HttpContext.Response.Headers.RetryAfter = ((long)verdict.RetryAfter.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Problem(StatusCodes.Status429TooManyRequests, "Backlog full",
                $"The queue would take {verdict.Drain} to drain with these ids, more than Ingestion:MaxBacklog ({options.Value.MaxBacklog}). Try again in {(long)verdict.RetryAfter.TotalSeconds} s; nothing was stored.");
        }

        var result = earlier ?? await submitter.SubmitAsync(parsed.Priority, parsed.Ids, idempotencyKey, cancellationToken);
        switch (result.Outcome)
        {
            case EnqueueOutcome.KeyConflict:
                return TypedResults.Problem(new HttpValidationProblemDetails(new Dictionary<string, string[]>
                {
                    [IdempotencyKeyHeader] = [$"This key was used for a different request (ingestion {result.IngestionId}); use a new key for a new request."],
                })
                {
                    Status = StatusCodes.Status422UnprocessableEntity,
                    Title = "Idempotency-Key reused with a different request",
                });
            case EnqueueOutcome.Replayed:
                // The answer the first request got; nothing new was stored.
                request.HttpContext.Response.Headers[IdempotentReplayedHeader] = "true";
                break;
        }

        return new AcceptedResult(result.IngestionId);
    }

    /// <summary>
    /// <c>GET /ingestions/{id}/results?after=&amp;limit=</c>: the stored outcome of every id called so far, in
    /// position order. <c>after</c> is the last position of the previous page (exclusive); <c>next</c> links the
    /// following page while this one is full.
    /// </summary>
    public static async Task<Results<Ok<IngestionResults>, ProblemHttpResult, ValidationProblem>> GetResultsAsync(
        string ingestionId,
        string? after,
        string? limit,
        IIngestionStore store,
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
            return Problem(StatusCodes.Status404NotFound, "Unknown ingestion", $"No ingestion has the id '{ingestionId}'.");
        }

        var next = results.Count == count ? $"/ingestions/{id}/results?after={results[^1].Position}&limit={count}" : null;
        return TypedResults.Ok(new IngestionResults(id, [.. results.Select(IdResultView.From)], next));
    }

    public static async Task<Results<StatusJsonResult, ProblemHttpResult>> GetStatusAsync(
        string ingestionId,
        IIngestionStore store,
        Dispatcher dispatcher,
        StatusCache cache,
        TimeProvider clock,
        IOptions<IngestionOptions> options,
        CancellationToken cancellationToken)
    {
        var known = Guid.TryParse(ingestionId, out var id);
        if (known && cache.Final(id) is { } final)
        {
            return new StatusJsonResult(final);
        }

        var snapshot = known ? await store.GetIngestionAsync(id, cancellationToken) : null;
        if (snapshot is null)
        {
            return Problem(StatusCodes.Status404NotFound, "Unknown ingestion", $"No ingestion has the id '{ingestionId}'.");
        }

        var now = clock.GetUtcNow();
        if (snapshot.PausedUntil <= now)
        {
            snapshot = snapshot with { PausedUntil = null }; // shown only while it holds windows back
        }

        // The dispatcher moves its bound once a claimed window's calls are on their way; a status read in
        // between already sees the window, so the window's own start bounds the next one as well.
        var next = dispatcher.NextWindowNotBefore;
        if (snapshot.Started < snapshot.Ids.Length)
        {
            foreach (var span in snapshot.Spans)
            {
                if (span.StartedAt + options.Value.Window > next)
                {
                    next = span.StartedAt + options.Value.Window;
                }
            }
        }

        next = next > now ? next : now;
        return new StatusJsonResult(snapshot, new WaitEstimate(next, options.Value.Window, options.Value.BatchSize), cache);
    }

    private static ProblemHttpResult BodyTooLarge(IngestionOptions limits) =>
        Problem(StatusCodes.Status413PayloadTooLarge, "Request body too large",
            $"The request body is larger than {limits.MaxRequestBytes} bytes, the most that {limits.MaxIdsPerRequest} ids (Ingestion:MaxIdsPerRequest) can need.");

    private static ProblemHttpResult Problem(int status, string title, string? detail) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title);
}

/// <summary>The body of <c>POST /ingest</c> (read by <see cref="IngestRequestParser"/>; declared here for OpenAPI).</summary>
/// <param name="Ids">1 to Ingestion:MaxIdsPerRequest JSON integers, each in 1 ..= 1000000007; duplicates are processed as given.</param>
/// <param name="Priority">HIGH, MEDIUM or LOW.</param>
public sealed record IngestRequest(int[] Ids, Priority Priority);

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
