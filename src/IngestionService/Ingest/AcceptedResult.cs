using Microsoft.AspNetCore.Http.Metadata;

namespace IngestionService.Ingest;

/// <summary>
/// The 202 (or the configured <c>Ingestion:AcceptedStatusCode</c>) of <c>POST /ingest</c>: <c>{"ingestion_id":"…"}</c> with <c>Location: /status/…</c>, written as
/// bytes in one go. Only the id varies, so building it costs a fraction of
/// what the JSON serializer and the framework's <c>Accepted&lt;T&gt;</c> (which also looks up a logger per
/// request) do on the busiest path of the service.
/// </summary>
public sealed class AcceptedResult(Guid ingestionId, int statusCode = StatusCodes.Status202Accepted) : IResult, IEndpointMetadataProvider, IStatusCodeHttpResult, IValueHttpResult, IValueHttpResult<IngestAccepted>
{
    private static readonly byte[] Prefix = "{\"ingestion_id\":\""u8.ToArray();
    private static readonly byte[] Suffix = "\"}"u8.ToArray();

    /// <summary>A GUID's "D" form: 32 hex digits and 4 hyphens.</summary>
    private const int GuidLength = 36;

    public IngestAccepted Value => new(ingestionId);

    object? IValueHttpResult.Value => Value;

    public int? StatusCode => statusCode;

    /// <summary>The status address, as the <c>Location</c> header gives it.</summary>
    public string Location => "/status/" + ingestionId.ToString();

    public Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var response = httpContext.Response;
        response.StatusCode = statusCode;
        response.ContentType = "application/json; charset=utf-8";
        response.Headers.Location = Location;

        var body = new byte[Prefix.Length + GuidLength + Suffix.Length];
        Prefix.CopyTo(body, 0);
        ingestionId.TryFormat(body.AsSpan(Prefix.Length), out _);
        Suffix.CopyTo(body, Prefix.Length + GuidLength);
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, httpContext.RequestAborted).AsTask();
    }

    public static void PopulateMetadata(System.Reflection.MethodInfo method, EndpointBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status202Accepted, typeof(IngestAccepted), ["application/json"]));
    }
}
