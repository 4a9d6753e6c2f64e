using Microsoft.Extensions.Options;

namespace IngestionService.Storage;

/// <summary>Where the durable state lives (configuration section <c>Storage</c>).</summary>
public sealed class StorageOptions
{
    public const string SectionName = "Storage";

    public const string Sqlite = "Sqlite";
    public const string Postgres = "Postgres";

    /// <summary><c>Sqlite</c>: an embedded file, nothing to install; <c>Postgres</c>: one database shared by several instances.</summary>
    public string Provider { get; set; } = "Sqlite";

    public string ConnectionString { get; set; } = "Data Source=ingestion.db";

    public bool IsPostgres => string.Equals(Provider, Postgres, StringComparison.OrdinalIgnoreCase);

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
        var postgres = options.IsPostgres;
        if (!postgres && !string.Equals(options.Provider, StorageOptions.Sqlite, StringComparison.OrdinalIgnoreCase))
        {
            failures.Add($"Storage:Provider must be 'Sqlite' or 'Postgres' (got '{options.Provider}').");
        }

        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            failures.Add(postgres
                ? "Storage:ConnectionString must name the database, for example 'Host=localhost;Username=ingestion;Password=...;Database=ingestion'."
                : "Storage:ConnectionString must name the database, for example 'Data Source=ingestion.db'.");
        }
        else if (postgres)
        {
            try
            {
                if (string.IsNullOrWhiteSpace(new Npgsql.NpgsqlConnectionStringBuilder(options.ConnectionString).Host))
                {
                    failures.Add("Storage:ConnectionString must name the PostgreSQL server when Storage:Provider is 'Postgres', for example 'Host=localhost;Username=ingestion;Password=...;Database=ingestion'.");
                }
            }
            catch (ArgumentException exception)
            {
                failures.Add($"Storage:ConnectionString is not a valid PostgreSQL connection string: {exception.Message}");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
