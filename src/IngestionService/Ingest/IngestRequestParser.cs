using System.Buffers;
using System.Globalization;
using System.Text.Json;
using IngestionService.Notifications;

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
        var sawNotAfter = false;
        var sawCallback = false;
        Uri? callback = null;
        Priority? priority = null;
        DateTimeOffset? notAfter = null;
        HashSet<string>? intended = null;

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
                    if (FirstTime(ref reader, ref sawIds, "ids", errors))
                    {
                        ReadIds(ref reader, maxIds, ids, errors, ref idCount, ref invalidIds);
                    }
                }
                else if (reader.ValueTextEquals("not_after"u8))
                {
                    if (FirstTime(ref reader, ref sawNotAfter, "not_after", errors))
                    {
                        notAfter = ReadNotAfter(ref reader, errors);
                    }
                }
                else if (reader.ValueTextEquals("callback_url"u8))
                {
                    if (FirstTime(ref reader, ref sawCallback, "callback_url", errors))
                    {
                        callback = ReadCallbackUrl(ref reader, errors);
                    }
                }
                else if (reader.ValueTextEquals("priority"u8))
                {
                    if (FirstTime(ref reader, ref sawPriority, "priority", errors))
                    {
                        priority = ReadPriority(ref reader, errors);
                    }
                }
                else
                {
                    // Refused rather than ignored: "priorty" or "IDS" is a mistake the client wants to hear about.
                    var name = reader.GetString() ?? string.Empty;
                    reader.Read();
                    reader.Skip();
                    var meant = FieldNames.Closest(name);
                    if (meant is not null)
                    {
                        (intended ??= []).Add(meant);
                    }

                    errors[Truncate(name)] = [meant is null
                        ? $"'{Truncate(name)}' is not a field of this request; the fields are 'ids', 'priority' and the optional 'not_after' and 'callback_url'."
                        : $"'{Truncate(name)}' is not a field of this request; did you mean '{meant}'?"];
                }
            }

            DrainToEnd(ref reader);
        }
        catch (JsonException exception)
        {
            return IngestParseResult.Malformed($"The request body is not valid JSON: {JsonSyntax.Describe(exception, body)}.");
        }

        if (idCount > maxIds)
        {
            return IngestParseResult.TooLarge($"The request has {idCount} ids; at most {maxIds} are accepted in one request (Ingestion:MaxIdsPerRequest). Split it into several requests.");
        }

        // A misspelt field already says what is wrong with the one it was meant to be.
        if (!sawIds && intended?.Contains("ids") != true)
        {
            errors["ids"] = ["'ids' is required: a non-empty JSON array of integers between 1 and 1000000007."];
        }

        if (!sawPriority && intended?.Contains("priority") != true)
        {
            errors["priority"] = [$"'priority' is required: one of {PriorityNames.Allowed}."];
        }

        if (invalidIds > MaxReportedIdErrors)
        {
            errors["ids"] = [$"{invalidIds} ids are invalid; the first {MaxReportedIdErrors} are listed."];
        }

        return errors.Count > 0 || priority is null
            ? IngestParseResult.Invalid(errors)
            : IngestParseResult.Ok(priority.Value, [.. ids]) with { NotAfter = notAfter, CallbackUrl = callback };
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

    /// <summary>
    /// An ISO-8601 time with its offset ("2026-12-02T18:00:00Z", "…+01:00"): a time without one would mean
    /// a different moment on every server. Whether it is still to come is the caller's to judge, by its clock.
    /// </summary>
    private static DateTimeOffset? ReadNotAfter(ref Utf8JsonReader reader, Dictionary<string, string[]> errors)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (reader.TokenType == JsonTokenType.String)
        {
            var text = reader.GetString() ?? string.Empty;
            if (HasOffset(text) && reader.TryGetDateTimeOffset(out var time))
            {
                return time;
            }

            errors["not_after"] = [$"'not_after' must be an ISO-8601 time with an offset, such as \"2026-12-02T18:00:00Z\" (got \"{Truncate(text)}\")."];
            return null;
        }

        errors["not_after"] = [$"'not_after' must be a string, an ISO-8601 time with an offset, not {Describe(reader.TokenType)}."];
        reader.Skip();
        return null;
    }

    /// <summary>Moves to the field's value; false (the value skipped, the error noted) when the field was given before.</summary>
    private static bool FirstTime(ref Utf8JsonReader reader, ref bool seen, string field, Dictionary<string, string[]> errors)
    {
        reader.Read();
        if (seen)
        {
            errors[field] = [$"'{field}' is given more than once."];
            reader.Skip();
            return false;
        }

        seen = true;
        return true;
    }

    /// <summary>An absolute http or https URL (<see cref="CallbackAddress"/>); whether its host may be called is checked after parsing.</summary>
    private static Uri? ReadCallbackUrl(ref Utf8JsonReader reader, Dictionary<string, string[]> errors)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (reader.TokenType != JsonTokenType.String)
        {
            errors["callback_url"] = [$"'callback_url' must be a string, an absolute http or https URL, not {Describe(reader.TokenType)}."];
            reader.Skip();
            return null;
        }

        var text = reader.GetString() ?? string.Empty;
        if (CallbackAddress.CheckSyntax(text, out var url) is { } problem)
        {
            errors["callback_url"] = [$"'callback_url' {problem}"];
        }

        return url;
    }

    /// <summary>Ends in Z or ±hh:mm after a time of day.</summary>
    private static bool HasOffset(string text) =>
        text.Contains('T', StringComparison.Ordinal)
        && (text.EndsWith('Z') || text.EndsWith('z') || (text.Length > 6 && text[^6] is '+' or '-' && text[^3] == ':'));

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

/// <summary>Says what is wrong with unreadable JSON in a client's terms, with its line and column, instead of the reader's wording.</summary>
internal static class JsonSyntax
{
    private const string CutShort = "the JSON ends before it is complete (a closing ']' or '}' is missing)";

    public static string Describe(JsonException exception, ReadOnlySequence<byte> body)
    {
        var message = exception.Message;
        var what = AtEnd(exception, body) ? CutShort
            : message.Contains("trailing comma", StringComparison.Ordinal) ? "a trailing comma after the last item"
            : message.StartsWith("''' is", StringComparison.Ordinal) ? "single quotes; JSON strings and field names take double quotes (\"ids\", \"HIGH\")"
            : message.Contains("is invalid after a single JSON value", StringComparison.Ordinal) ? "something follows the JSON object; send one object only"
            : message.Contains("Expected depth to be zero", StringComparison.Ordinal) || message.Contains("end of data", StringComparison.Ordinal) ? CutShort
            : WithoutPosition(message);
        return exception.LineNumber is { } line && exception.BytePositionInLine is { } column
            ? string.Create(CultureInfo.InvariantCulture, $"{what}, at line {line + 1} column {column + 1}")
            : what;
    }

    /// <summary>Whether the reader stopped at the body's last byte: the document was cut short.</summary>
    private static bool AtEnd(JsonException exception, ReadOnlySequence<byte> body)
    {
        long lines = 0, lastLine = 0;
        foreach (var segment in body)
        {
            foreach (var b in segment.Span)
            {
                if (b == (byte)'\n')
                {
                    lines++;
                    lastLine = 0;
                }
                else
                {
                    lastLine++;
                }
            }
        }

        return exception.LineNumber == lines && exception.BytePositionInLine >= lastLine;
    }

    /// <summary>The reader's own text without its position suffix and its advice about reader options, which are not the client's to change.</summary>
    private static string WithoutPosition(string message)
    {
        var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        var text = (cut >= 0 ? message[..cut] : message).Replace(" Change the reader options.", string.Empty, StringComparison.Ordinal).TrimEnd('.', ' ');
        return text.Length > 0 && char.IsUpper(text[0]) ? char.ToLowerInvariant(text[0]) + text[1..] : text;
    }
}
