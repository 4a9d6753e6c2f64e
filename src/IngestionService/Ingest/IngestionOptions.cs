using Microsoft.Extensions.Options;

namespace IngestionService.Ingest;

/// <summary>The rate limit and the request limits (configuration section <c>Ingestion</c>).</summary>
public sealed class IngestionOptions
{
    public const string SectionName = "Ingestion";

    /// <summary>Ids per window, and the most ids in flight at once.</summary>
    public int BatchSize { get; set; } = 3;

    /// <summary>The least time between two window starts.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Larger requests are refused with 413.</summary>
    public int MaxIdsPerRequest { get; set; } = 100_000;

    /// <summary>
    /// The largest request body accepted, derived from <see cref="MaxIdsPerRequest"/>: room for every id
    /// written with generous whitespace (24 bytes an id) plus 64 KiB for the rest of the document.
    /// </summary>
    public long MaxRequestBytes => (MaxIdsPerRequest * 24L) + (64 * 1024);
}

internal sealed class IngestionOptionsValidator : IValidateOptions<IngestionOptions>
{
    public ValidateOptionsResult Validate(string? name, IngestionOptions options)
    {
        var failures = new List<string>();
        if (options.BatchSize is < 1 or > 1000)
        {
            failures.Add($"Ingestion:BatchSize must be between 1 and 1000 (got {options.BatchSize}).");
        }

        // A zero window would be no rate limit at all; a negative one is meaningless.
        if (options.Window <= TimeSpan.Zero || options.Window > TimeSpan.FromDays(1))
        {
            failures.Add($"Ingestion:Window must be a positive duration of at most one day, such as 00:00:05 (got {options.Window}).");
        }

        if (options.MaxIdsPerRequest is < 1 or > 10_000_000)
        {
            failures.Add($"Ingestion:MaxIdsPerRequest must be between 1 and 10000000 (got {options.MaxIdsPerRequest}).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
