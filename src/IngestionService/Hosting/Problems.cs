using Microsoft.AspNetCore.Http.HttpResults;

namespace IngestionService.Hosting;

/// <summary>
/// Every problem+json answer the API gives, in one shape: a status with its title, detail and RFC
/// <c>type</c>; a 422 with its errors keyed by field; the 404 of an ingestion nobody knows.
/// </summary>
public static class Problems
{
    public const string InvalidTitle = "One or more fields are invalid.";

    public static ProblemHttpResult Of(int status, string title, string? detail) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title, type: ProblemTypes.For(status));

    /// <summary>A 422 naming each field that is wrong, and (<paramref name="detail"/>) what to send or what did not change.</summary>
    public static ProblemHttpResult Invalid(IDictionary<string, string[]> errors, string? detail = null, string title = InvalidTitle) =>
        TypedResults.Problem(new HttpValidationProblemDetails(errors) { Status = StatusCodes.Status422UnprocessableEntity, Title = title, Detail = detail });

    public static ProblemHttpResult Invalid(string field, string message, string? detail = null) =>
        Invalid(new Dictionary<string, string[]>(StringComparer.Ordinal) { [field] = [message] }, detail);

    public static ProblemHttpResult UnknownIngestion(string ingestionId) =>
        Of(StatusCodes.Status404NotFound, "Unknown ingestion", $"No ingestion has the id '{ingestionId}'.");

    /// <summary>
    /// The 404 of a well-formed id: an ingestion id carries its created time (<see cref="Ingest.IngestionIds"/>),
    /// so one created longer ago than the retention is said to have probably been deleted by it.
    /// </summary>
    public static ProblemHttpResult UnknownIngestion(Guid ingestionId, DateTimeOffset now, TimeSpan retention)
    {
        var detail = Ingest.IngestionIds.CreatedAtIfVersion7(ingestionId) is { } created && created < now - retention && created > DateTimeOffset.UnixEpoch
            ? $"No ingestion has the id '{ingestionId}'. It was created at {created:yyyy-MM-ddTHH:mm:ssZ}, longer ago than the retention ({Duration(retention)}, Ingestion:Retention): it may have finished and been deleted."
            : $"No ingestion has the id '{ingestionId}'. Finished ingestions are kept for {Duration(retention)} (Ingestion:Retention), then deleted.";
        return Of(StatusCodes.Status404NotFound, "Unknown ingestion", detail);
    }

    private static string Duration(TimeSpan span) => span.TotalDays >= 1 && span.Ticks % TimeSpan.TicksPerDay == 0
        ? $"{span.TotalDays:0} days"
        : $"{span.TotalSeconds:0} s";
}

/// <summary>
/// The <c>type</c> of the problems ASP.NET Core has no default for, so every problem the API answers names
/// the section of the RFC that defines its status.
/// </summary>
internal static class ProblemTypes
{
    public static string? For(int status) => status switch
    {
        StatusCodes.Status413PayloadTooLarge => "https://tools.ietf.org/html/rfc9110#section-15.5.14",
        StatusCodes.Status429TooManyRequests => "https://tools.ietf.org/html/rfc6585#section-4",
        StatusCodes.Status503ServiceUnavailable => "https://tools.ietf.org/html/rfc9110#section-15.6.4",
        _ => null,
    };
}
