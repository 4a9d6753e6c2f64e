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
        app.MapScalarApiReference("/docs", options => options.WithTitle("Ingestion service"));
        return app;
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
