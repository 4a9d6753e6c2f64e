using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace IngestionService.Ingest;

/// <summary>
/// Reads a <c>POST /ingest</c> body with <see cref="Utf8JsonReader"/> instead of model binding, so every
/// wrong shape gets its own precise answer: malformed JSON is 400, a well-formed body with wrong
/// fields is 422 with an error per field (<c>ids[3]</c>, <c>priority</c>), too many ids is 413. The
/// whole document is always read, so malformed JSON is never mistaken for a field error.
/// </summary>
public static class IngestRequestParser
{
    public const long MinId = 1;
    public const long MaxId = 1_000_000_007;

    /// <summary>At most this many ids are named in one answer; the rest are counted.</summary>
    internal const int MaxReportedIdErrors = 20;

    public static IngestParseResult Parse(ReadOnlySequence<byte> body, int maxIds)
    {
        // Nearly every request has the plain shape; reading it by hand is several times faster than
        // token by token. Anything else, every error included, goes through the full reader below.
        if (body.IsSingleSegment)
        {
            if (IngestFastPath.TryParse(body.FirstSpan, maxIds, out var priority, out var ids))
            {
                return IngestParseResult.Ok(priority, ids);
            }
        }
        else if (body.Length <= 1024 * 1024)
        {
            var copy = ArrayPool<byte>.Shared.Rent((int)body.Length);
            try
            {
                body.CopyTo(copy);
                if (IngestFastPath.TryParse(copy.AsSpan(0, (int)body.Length), maxIds, out var priority, out var ids))
                {
                    return IngestParseResult.Ok(priority, ids);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(copy);
            }
        }

        return ParseFull(body, maxIds);
    }

    /// <summary>The complete reader: every shape of input, with an answer for each kind of mistake.</summary>
    internal static IngestParseResult ParseFull(ReadOnlySequence<byte> body, int maxIds)
    {
        if (body.IsEmpty)
        {
            return IngestParseResult.Malformed("The request body is empty; send a JSON object such as {\"ids\": [1, 2, 3], \"priority\": \"HIGH\"}.");
        }

        var reader = new Utf8JsonReader(body, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var ids = new List<int>();
        var idCount = 0;
        var invalidIds = 0;
        var sawIds = false;
        var sawPriority = false;
        Priority? priority = null;

        try
        {
            if (!reader.Read())
            {
                return IngestParseResult.Malformed("The request body holds no JSON value.");
            }

            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                DrainToEnd(ref reader);
                errors["$"] = ["The request body must be a JSON object with the fields 'ids' and 'priority', such as {\"ids\": [1, 2, 3], \"priority\": \"HIGH\"}."];
                return IngestParseResult.Invalid(errors);
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("ids"u8))
                {
                    reader.Read();
                    if (sawIds)
                    {
                        errors["ids"] = ["'ids' is given more than once."];
                        reader.Skip();
                        continue;
                    }

                    sawIds = true;
                    ReadIds(ref reader, maxIds, ids, errors, ref idCount, ref invalidIds);
                }
                else if (reader.ValueTextEquals("priority"u8))
                {
                    reader.Read();
                    if (sawPriority)
                    {
                        errors["priority"] = ["'priority' is given more than once."];
                        reader.Skip();
                        continue;
                    }

                    sawPriority = true;
                    priority = ReadPriority(ref reader, errors);
                }
                else
                {
                    // Unknown fields are ignored, as ASP.NET Core's JSON binding does.
                    reader.Read();
                    reader.Skip();
                }
            }

            DrainToEnd(ref reader);
        }
        catch (JsonException exception)
        {
            return IngestParseResult.Malformed($"The request body is not valid JSON: {exception.Message}");
        }

        if (idCount > maxIds)
        {
            return IngestParseResult.TooLarge($"The request has {idCount} ids; at most {maxIds} are accepted in one request (Ingestion:MaxIdsPerRequest). Split it into several requests.");
        }

        if (!sawIds)
        {
            errors["ids"] = ["'ids' is required: a non-empty JSON array of integers between 1 and 1000000007."];
        }

        if (!sawPriority)
        {
            errors["priority"] = [$"'priority' is required: one of {PriorityNames.Allowed}."];
        }

        if (invalidIds > MaxReportedIdErrors)
        {
            errors["ids"] = [$"{invalidIds} ids are invalid; the first {MaxReportedIdErrors} are listed."];
        }

        return errors.Count > 0 || priority is null
            ? IngestParseResult.Invalid(errors)
            : IngestParseResult.Ok(priority.Value, [.. ids]);
    }

    private static void ReadIds(ref Utf8JsonReader reader, int maxIds, List<int> ids, Dictionary<string, string[]> errors, ref int count, ref int invalid)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                errors["ids"] = ["'ids' must not be null: send a non-empty JSON array of integers."];
                return;
            case JsonTokenType.StartArray:
                break;
            default:
                errors["ids"] = [$"'ids' must be a JSON array of integers, not {Describe(reader.TokenType)}."];
                reader.Skip();
                return;
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var index = count++;
            string? problem = null;
            if (reader.TokenType == JsonTokenType.Number)
            {
                if (reader.TryGetInt64(out var value))
                {
                    if (value is < MinId or > MaxId)
                    {
                        problem = $"must be between 1 and 1000000007 (got {value}).";
                    }
                    else if (count <= maxIds)
                    {
                        ids.Add((int)value);
                    }
                }
                else
                {
                    var raw = reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan.ToArray();
                    problem = raw.AsSpan().IndexOfAny("."u8) >= 0 || raw.AsSpan().IndexOfAny("eE"u8) >= 0
                        ? $"must be an integer (got {System.Text.Encoding.UTF8.GetString(raw)})."
                        : "must be between 1 and 1000000007 (got a larger number).";
                }
            }
            else
            {
                problem = $"must be an integer, not {Describe(reader.TokenType)}.";
                reader.Skip();
            }

            if (problem is not null && ++invalid <= MaxReportedIdErrors)
            {
                errors[string.Create(CultureInfo.InvariantCulture, $"ids[{index}]")] = [problem];
            }
        }

        if (count == 0)
        {
            errors["ids"] = ["'ids' must contain at least one id."];
        }
    }

    private static Priority? ReadPriority(ref Utf8JsonReader reader, Dictionary<string, string[]> errors)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            var text = reader.GetString();
            if (PriorityNames.TryParseWire(text, out var priority))
            {
                return priority;
            }

            errors["priority"] = [$"'priority' must be one of {PriorityNames.Allowed} (got \"{Truncate(text)}\")."];
            return null;
        }

        errors["priority"] = reader.TokenType == JsonTokenType.Null
            ? [$"'priority' must not be null: send one of {PriorityNames.Allowed}."]
            : [$"'priority' must be a string, one of {PriorityNames.Allowed}, not {Describe(reader.TokenType)}."];
        reader.Skip();
        return null;
    }

    /// <summary>Reads whatever follows, so trailing garbage after the object is reported as malformed JSON.</summary>
    private static void DrainToEnd(ref Utf8JsonReader reader)
    {
        while (reader.Read())
        {
        }
    }

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        _ => token.ToString(),
    };

    private static string Truncate(string? text) => text is null ? string.Empty : text.Length <= 40 ? text : text[..40] + "…";
}

public enum IngestParseOutcome
{
    Ok,
    Malformed,
    Invalid,
    TooLarge,
}

/// <summary>A parsed request, or why it was refused.</summary>
public sealed record IngestParseResult(IngestParseOutcome Outcome, Priority Priority, int[] Ids, string? Detail, IDictionary<string, string[]>? Errors)
{
    public static IngestParseResult Ok(Priority priority, int[] ids) => new(IngestParseOutcome.Ok, priority, ids, null, null);

    public static IngestParseResult Malformed(string detail) => new(IngestParseOutcome.Malformed, default, [], detail, null);

    public static IngestParseResult Invalid(IDictionary<string, string[]> errors) => new(IngestParseOutcome.Invalid, default, [], null, errors);

    public static IngestParseResult TooLarge(string detail) => new(IngestParseOutcome.TooLarge, default, [], detail, null);
}
