using Microsoft.Extensions.Options;

namespace IngestionService.Storage;

/// <summary>Where the durable state lives (configuration section <c>Storage</c>).</summary>
public sealed class StorageOptions
{
    public const string SectionName = "Storage";

    /// <summary><c>Sqlite</c>: an embedded file, nothing to install.</summary>
    public string Provider { get; set; } = "Sqlite";

    public string ConnectionString { get; set; } = "Data Source=ingestion.db";

    /// <summary>
    /// SQLite only: when a commit reaches the disk. <see cref="SqliteSynchronous.Normal"/> (the default)
    /// survives any crash of the process, <c>kill -9</c> included, because a commit is in the operating
    /// system's hands before it returns; <see cref="SqliteSynchronous.Full"/> also survives a power cut or
    /// a kernel crash, at the price of one disk flush per group commit.
    /// </summary>
    public SqliteSynchronous Synchronous { get; set; } = SqliteSynchronous.Normal;
}

/// <summary>SQLite's <c>PRAGMA synchronous</c> levels that are safe in WAL mode.</summary>
public enum SqliteSynchronous
{
    Normal,
    Full,
}

internal sealed class StorageOptionsValidator : IValidateOptions<StorageOptions>
{
    public ValidateOptionsResult Validate(string? name, StorageOptions options)
    {
        var failures = new List<string>();
        if (!string.Equals(options.Provider, "Sqlite", StringComparison.OrdinalIgnoreCase))
        {
            failures.Add($"Storage:Provider must be 'Sqlite' (got '{options.Provider}').");
        }

        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            failures.Add("Storage:ConnectionString must name the database, for example 'Data Source=ingestion.db'.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
