using System.Text.Json.Nodes;
using IngestionService.Ingest;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace IngestionService.Hosting;

public static class OpenApiExtensions
{
    /// <summary>The OpenAPI 3.1 document at <c>/openapi/v1.json</c>, from the endpoints' own metadata plus what it cannot see.</summary>
    public static IServiceCollection AddApiDocumentation(this IServiceCollection services) =>
        services.AddOpenApi(options =>
        {
            options.AddDocumentTransformer((document, _, _) =>
            {
                document.Info = new OpenApiInfo
                {
                    Title = "Ingestion service",
                    Version = "v1",
                    Description = "Submit ids with a priority; they are fetched from a rate-limited upstream (3 ids per 5 s by default), "
                        + "HIGH before MEDIUM before LOW, oldest first. Every error is application/problem+json.",
                };
                AddOperations(document);
                return Task.CompletedTask;
            });
            options.AddOperationTransformer((operation, context, _) =>
            {
                switch (context.Description.ActionDescriptor.EndpointMetadata.OfType<IEndpointNameMetadata>().FirstOrDefault()?.EndpointName)
                {
                    case "Ingest":
                        DescribeIngest(operation);
                        break;
                    case "GetStatus" or "GetResults":
                        foreach (var parameter in operation.Parameters ?? [])
                        {
                            if (parameter is OpenApiParameter { Name: "ingestionId" } named)
                            {
                                named.Description = "The ingestion_id that POST /ingest answered with.";
                            }
                        }

                        break;
                }

                return Task.CompletedTask;
            });
        });

    /// <summary>The document at <c>/openapi/v1.json</c> and an interactive reference at <c>/docs</c>.</summary>
    public static IEndpointRouteBuilder MapApiDocumentation(this IEndpointRouteBuilder app)
    {
        app.MapOpenApi();
        app.MapScalarApiReference("/docs", options =>
        {
            options.WithTitle("Ingestion service");

            // A self-hosted tool's reference: no AI chat, no SDK generation or deploy toolbar, no MCP, no telemetry.
            options.ShowDeveloperTools = DeveloperToolsVisibility.Never;
            options.Agent = new ScalarAgentOptions { Disabled = true };
            options.Mcp = new ScalarMcpOptions { Disabled = true };
            options.Telemetry = false;
        });
        return app;
    }

    /// <summary>
    /// The probes and the metrics, which are middleware endpoints the document cannot see by itself,
    /// described by hand under <see cref="ApiSections.Operations"/>.
    /// </summary>
    private static void AddOperations(OpenApiDocument document)
    {
        document.Paths ??= [];
        document.Tags ??= new HashSet<OpenApiTag>();
        document.Tags.Add(new OpenApiTag { Name = ApiSections.Operations, Description = "Probes for the platform and metrics for monitoring." });

        // The sections in reading order, whatever order the routes gave them.
        document.Tags = new SortedSet<OpenApiTag>(document.Tags, Comparer<OpenApiTag>.Create((a, b) =>
            Array.IndexOf(ApiSections.InReadingOrder, a.Name) is var x && Array.IndexOf(ApiSections.InReadingOrder, b.Name) is var y && x != y
                ? x.CompareTo(y)
                : string.CompareOrdinal(a.Name, b.Name)));
        var health = new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["status"] = new OpenApiSchema { Type = JsonSchemaType.String, Description = "Healthy, Degraded or Unhealthy." },
                ["checks"] = new OpenApiSchema { Type = JsonSchemaType.Object, Description = "Each check's status and, when it fails, why." },
            },
        };
        void Add(string path, string id, string summary, string okDescription, string? failedDescription, string mediaType, IOpenApiSchema schema)
        {
            var responses = new OpenApiResponses
            {
                ["200"] = new OpenApiResponse { Description = okDescription, Content = new Dictionary<string, OpenApiMediaType> { [mediaType] = new() { Schema = schema } } },
            };
            if (failedDescription is not null)
            {
                responses["503"] = new OpenApiResponse { Description = failedDescription, Content = new Dictionary<string, OpenApiMediaType> { [mediaType] = new() { Schema = schema } } };
            }

            document.Paths[path] = new OpenApiPathItem
            {
                Operations = new Dictionary<HttpMethod, OpenApiOperation>
                {
                    [HttpMethod.Get] = new()
                    {
                        OperationId = id,
                        Summary = summary,
                        Tags = new HashSet<OpenApiTagReference> { new(ApiSections.Operations, document) },
                        Responses = responses,
                    },
                },
            };
        }

        Add("/health/live", "GetLiveness", "Liveness: 200 while the process answers.", "The process answers.", null, "application/json", health);
        Add("/health/ready", "GetReadiness", "Readiness: 200 when the store answers on a fresh connection and the dispatcher runs.",
            "Ready for traffic.", "Not ready; `checks` says which check failed and why.", "application/json", health);
        Add("/health", "GetHealth", "The same as /health/ready, for clients and load balancers that try /health first.",
            "Ready for traffic.", "Not ready; `checks` says which check failed and why.", "application/json", health);
        Add("/metrics", "GetMetrics", "Metrics in the Prometheus text format: queue depth, windows, fetches, failures, pauses, the compliance figure.",
            "The current metrics.", null, "text/plain", new OpenApiSchema { Type = JsonSchemaType.String });
    }

    private static void DescribeIngest(OpenApiOperation operation)
    {
        if (operation.RequestBody?.Content?.TryGetValue("application/json", out var request) == true)
        {
            request.Example = JsonNode.Parse("""{"ids": [1, 2, 3, 4, 5], "priority": "HIGH"}""");
        }

        operation.Parameters ??= [];
        operation.Parameters.Add(new OpenApiParameter
        {
            Name = IngestionApi.IdempotencyKeyHeader,
            In = ParameterLocation.Header,
            Required = false,
            Description = "Optional, 1-255 visible ASCII characters (a UUID, say). The same key with the same request answers the first "
                + "ingestion_id and creates nothing; with another request, 422. Kept for Ingestion:IdempotencyKeyLifetime (24 h).",
            Schema = new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = 255 },
        });

        if (operation.Responses?.TryGetValue("202", out var accepted) == true && accepted is OpenApiResponse response)
        {
            response.Description = "Accepted and committed; processing starts as the rate limit allows.";
            response.Headers ??= new Dictionary<string, IOpenApiHeader>();
            response.Headers["Location"] = new OpenApiHeader
            {
                Description = "Where to read the ingestion's status: /status/{ingestion_id}.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String },
            };
            response.Headers[IngestionApi.IdempotentReplayedHeader] = new OpenApiHeader
            {
                Description = "\"true\" when the Idempotency-Key was seen before with the same request: nothing new was created.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String },
            };
            if (response.Content?.TryGetValue("application/json", out var body) == true)
            {
                body.Example = JsonNode.Parse("""{"ingestion_id": "01a209e5-026d-7da3-b555-36e958de1e4b"}""");
            }
        }

        Describe(operation, "400", "The body is empty or not JSON.");
        Describe(operation, "413", "More ids than Ingestion:MaxIdsPerRequest, or a body larger than any valid request.");
        Describe(operation, "415", "The content type is not JSON.");
        Describe(operation, "422", "Well-formed JSON with wrong fields; `errors` names each field (ids, ids[3], priority), or an Idempotency-Key reused with another request.");
        Describe(operation, "429", "Backpressure (Ingestion:MaxBacklog): the queue would take too long to drain; Retry-After says when to try again. Nothing was stored.");
        if (operation.Responses?.TryGetValue("429", out var throttled) == true && throttled is OpenApiResponse refused)
        {
            refused.Headers ??= new Dictionary<string, IOpenApiHeader>();
            refused.Headers["Retry-After"] = new OpenApiHeader
            {
                Description = "Seconds until the queue has drained enough for this request.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.Integer },
            };
        }
    }

    private static void Describe(OpenApiOperation operation, string status, string description)
    {
        if (operation.Responses?.TryGetValue(status, out var response) == true && response is OpenApiResponse concrete)
        {
            concrete.Description = description;
        }
    }
}

/// <summary>The sections of the API reference, named for what a user does rather than for the classes behind them.</summary>
public static class ApiSections
{
    public const string SubmitAndTrack = "Submit and track";
    public const string Results = "Results";
    public const string QueueAndWindows = "Queue and windows";
    public const string Control = "Queue control";
    public const string Notifications = "Notifications";
    public const string Operations = "Operations";

    public static readonly string[] InReadingOrder = [SubmitAndTrack, Results, Notifications, QueueAndWindows, Control, Operations];
}
