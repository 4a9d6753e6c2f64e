namespace IngestionService.Ingest;

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
    /// <summary>The optional <c>not_after</c>: ids not started by then expire.</summary>
    public DateTimeOffset? NotAfter { get; init; }

    /// <summary>The optional <c>callback_url</c>: told when the ingestion is done. Its spelling is checked; its host is not yet.</summary>
    public Uri? CallbackUrl { get; init; }

    public static IngestParseResult Ok(Priority priority, int[] ids) => new(IngestParseOutcome.Ok, priority, ids, null, null);

    public static IngestParseResult Malformed(string detail) => new(IngestParseOutcome.Malformed, default, [], detail, null);

    public static IngestParseResult Invalid(IDictionary<string, string[]> errors) => new(IngestParseOutcome.Invalid, default, [], null, errors);

    public static IngestParseResult TooLarge(string detail) => new(IngestParseOutcome.TooLarge, default, [], detail, null);
}
