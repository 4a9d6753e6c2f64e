using System.Buffers;
using IngestionService.Dispatch;
using IngestionService.Storage;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace IngestionService.Ingest;

/// <summary>The brief's two endpoints: submit ids with a priority, and read where a submission stands.</summary>
public static class IngestionApi
{
    public static IEndpointRouteBuilder MapIngestionApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/ingest", IngestAsync)
            .WithName("Ingest")
            .WithSummary("Submit ids to fetch, with a priority; answers 202 at once with the ingestion id.")
            .Accepts<IngestRequest>("application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesValidationProblem(StatusCodes.Status422UnprocessableEntity);

        app.MapGet("/status/{ingestionId}", GetStatusAsync)
            .WithName("GetStatus")
            .WithSummary("Where an ingestion and each of its batches stand, and when waiting batches should start.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        return app;
    }

    public static async Task<Results<Accepted<IngestAccepted>, ProblemHttpResult>> IngestAsync(
        HttpRequest request,
        IngestionSubmitter submitter,
        IOptions<IngestionOptions> options,
        CancellationToken cancellationToken)
    {
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

        var ingestionId = await submitter.SubmitAsync(parsed.Priority, parsed.Ids, cancellationToken);
        return TypedResults.Accepted($"/status/{ingestionId}", new IngestAccepted(ingestionId));
    }

    public static async Task<Results<StatusJsonResult, ProblemHttpResult>> GetStatusAsync(
        string ingestionId,
        IIngestionStore store,
        Dispatcher dispatcher,
        TimeProvider clock,
        IOptions<IngestionOptions> options,
        CancellationToken cancellationToken)
    {
        var snapshot = Guid.TryParse(ingestionId, out var id) ? await store.GetIngestionAsync(id, cancellationToken) : null;
        if (snapshot is null)
        {
            return Problem(StatusCodes.Status404NotFound, "Unknown ingestion", $"No ingestion has the id '{ingestionId}'.");
        }

        var now = clock.GetUtcNow();
        var next = dispatcher.NextWindowNotBefore > now ? dispatcher.NextWindowNotBefore : now;
        return new StatusJsonResult(snapshot, new WaitEstimate(next, options.Value.Window, options.Value.BatchSize));
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
