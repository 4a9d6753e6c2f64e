using IngestionService.Ingest;
using IngestionService.Storage;

namespace IngestionService.Tests.Storage;

/// <summary>Choosing the store and tuning several instances: every refusal names the key to set.</summary>
public sealed class StorageConfigurationTests
{
    [Theory]
    [InlineData("Sqlite", "Data Source=ingestion.db")]
    [InlineData("postgres", "Host=db;Username=ingestion;Database=ingestion")]
    public void BothProvidersAreAccepted(string provider, string connectionString)
    {
        var result = new StorageOptionsValidator().Validate(null, new StorageOptions { Provider = provider, ConnectionString = connectionString });

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Fact]
    public void AnUnknownProviderIsRefusedNamingTheChoices()
    {
        var result = new StorageOptionsValidator().Validate(null, new StorageOptions { Provider = "Oracle" });

        Assert.Contains("Storage:Provider must be 'Sqlite' or 'Postgres' (got 'Oracle')", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnreadablePostgresConnectionStringIsRefusedAtStart()
    {
        var result = new StorageOptionsValidator().Validate(null, new StorageOptions { Provider = "Postgres", ConnectionString = "Hots=db" });

        Assert.Contains("Storage:ConnectionString is not a valid PostgreSQL connection string", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Data Source=ingestion.db", "Storage:ConnectionString is not a valid PostgreSQL connection string")]
    [InlineData("Database=ingestion", "Storage:ConnectionString must name the PostgreSQL server")]
    public void PostgresWithoutAServerInTheConnectionStringIsRefusedNamingTheKey(string connectionString, string message)
    {
        var result = new StorageOptionsValidator().Validate(null, new StorageOptions { Provider = "Postgres", ConnectionString = connectionString });

        Assert.Contains(message, result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("00:00:00", "00:00:10", "Ingestion:PollInterval")]
    [InlineData("00:00:01", "00:00:00.500", "Ingestion:Lease")]
    public void APollThatWouldSpinOrALeaseShorterThanAHeartbeatIsRefused(string pollInterval, string lease, string key)
    {
        var options = new IngestionOptions { PollInterval = TimeSpan.Parse(pollInterval, System.Globalization.CultureInfo.InvariantCulture), Lease = TimeSpan.Parse(lease, System.Globalization.CultureInfo.InvariantCulture) };

        var result = new IngestionOptionsValidator().Validate(null, options);

        Assert.StartsWith($"{key} must be", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Http", "00:00:10", null)]                      // the defaults: a call of the whole timeout fits in one lease
    [InlineData("Http", "00:00:30", "Ingestion:Lease (00:00:10) must not be shorter than Upstream:Timeout (00:00:30) on PostgreSQL")]
    [InlineData("Simulated", "00:00:30", null)]                 // the simulated upstream's calls take SimulatedDelay, not the timeout
    public void OnPostgresALeaseShorterThanTheLongestCallIsRefusedNamingBothKeys(string mode, string timeout, string? message)
    {
        var upstream = new IngestionService.Upstream.UpstreamOptions { Mode = Enum.Parse<IngestionService.Upstream.UpstreamMode>(mode), Timeout = TimeSpan.Parse(timeout, System.Globalization.CultureInfo.InvariantCulture) };
        var validator = new IngestionService.Storage.Postgres.PostgresLeaseValidator(Microsoft.Extensions.Options.Options.Create(new StorageOptions { Provider = "Postgres" }), Microsoft.Extensions.Options.Options.Create(upstream));

        var result = validator.Validate(null, new IngestionOptions());

        if (message is null)
        {
            Assert.True(result.Succeeded, result.FailureMessage);
        }
        else
        {
            Assert.StartsWith(message, result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void OnSqliteNoLeaseIsAskedFor()
    {
        var slow = Microsoft.Extensions.Options.Options.Create(new IngestionService.Upstream.UpstreamOptions { Mode = IngestionService.Upstream.UpstreamMode.Http, Timeout = TimeSpan.FromMinutes(5) });
        var onSqlite = new IngestionService.Storage.Postgres.PostgresLeaseValidator(Microsoft.Extensions.Options.Options.Create(new StorageOptions()), slow);

        Assert.True(onSqlite.Validate(null, new IngestionOptions()).Succeeded);
    }
}
