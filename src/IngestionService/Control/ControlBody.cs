using System.Buffers;
using System.Text.Json;
using IngestionService.Hosting;
using IngestionService.Ingest;

namespace IngestionService.Control;

/// <summary>
/// The small JSON bodies of the control calls, read with the same care as <c>POST /ingest</c>'s: a body
/// that is too large, not JSON, unreadable or not an object, or a field the call does not take, gets a
/// problem+json answer that says what to send, and nothing changes.
/// </summary>
internal static class ControlBody
{
    public const int MaxBytes = 4096;

    /// <summary>
    /// The body's fields, or the problem to answer instead. An empty body is an empty object unless
    /// <paramref name="required"/>. JSON media types only (<c>application/json</c>, <c>*+json</c>), as <c>POST /ingest</c>.
    /// </summary>
    public static async Task<(JsonElement Body, IResult? Problem)> ReadAsync(HttpRequest request, IReadOnlyList<string> fields, bool required, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var empty = EmptyObject;
        if (request.ContentLength > MaxBytes)
        {
            return (empty, TooLarge());
        }

        // At most one byte past the limit is read, whatever the body claims to be (a chunked body has no length).
        using var buffer = new MemoryStream();
        var chunk = new byte[1024];
        int read;
        while (buffer.Length <= MaxBytes && (read = await request.Body.ReadAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, MaxBytes + 1 - buffer.Length)), cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
        }

        if (buffer.Length > MaxBytes)
        {
            return (empty, TooLarge());
        }

        if (buffer.Length == 0)
        {
            return required
                ? (empty, Problems.Of(StatusCodes.Status400BadRequest, "Empty body", $"Send a JSON object with {string.Join(" or ", fields.Select(f => $"'{f}'"))}."))
                : (empty, null);
        }

        if (!request.HasJsonContentType())
        {
            return (empty, Problems.Of(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type", HostingExtensions.NotJson(request)));
        }

        var bytes = new ReadOnlySequence<byte>(buffer.GetBuffer(), 0, (int)buffer.Length);
        JsonElement body;
        try
        {
            var reader = new Utf8JsonReader(bytes);
            body = JsonElement.ParseValue(ref reader);
            _ = reader.Read(); // anything after the one value throws: "... is invalid after a single JSON value"
        }
        catch (JsonException exception)
        {
            return (empty, Problems.Of(StatusCodes.Status400BadRequest, "Unreadable JSON", JsonSyntax.Describe(exception, bytes)));
        }

        if (body.ValueKind != JsonValueKind.Object)
        {
            return (empty, Problems.Invalid("$", $"The body must be a JSON object with {string.Join(" or ", fields.Select(f => $"'{f}'"))} (got {body.ValueKind.ToString().ToLowerInvariant()})."));
        }

        foreach (var property in body.EnumerateObject())
        {
            if (!fields.Contains(property.Name, StringComparer.Ordinal))
            {
                var meant = FieldNames.Closest(property.Name, fields);
                return (empty, Problems.Invalid(property.Name, $"'{property.Name}' is not a field of this call{(meant is null ? "." : $": did you mean '{meant}'?")} It takes {string.Join(", ", fields.Select(f => $"'{f}'"))}."));
            }
        }

        return (body, null);
    }

    /// <summary>For a call that takes no body: any body is refused (a 422 saying so and <paramref name="detail"/>), rather than ignored as if it meant something.</summary>
    public static async Task<Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult?> RefuseAnyAsync(HttpRequest request, string detail, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var buffer = new byte[1];
        if (request.ContentLength is 0 || await request.Body.ReadAsync(buffer, cancellationToken) == 0)
        {
            return null;
        }

        return Problems.Invalid("$", "This call takes no body: send none.", detail);
    }

    private static JsonElement EmptyObject { get; } = JsonDocument.Parse("{}").RootElement.Clone();

    private static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult TooLarge() => Problems.Of(StatusCodes.Status413PayloadTooLarge, "Request body too large", $"This call takes a JSON object of at most {MaxBytes} bytes.");

}
