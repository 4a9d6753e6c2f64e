using System.Globalization;
using Npgsql;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// A fresh database of its own on the PostgreSQL server named by <see cref="Variable"/>, dropped
/// afterwards, so PostgreSQL tests run in parallel without seeing each other's rows.
/// </summary>
/// <remarks>
/// Without the variable the tests that need a server are skipped with the reason shown, so a laptop
/// without PostgreSQL still runs the rest; on the build server (<c>CI=true</c>) a missing server is a
/// failure, never a silent skip (the habit of Npgsql's own test suite).
/// </remarks>
public sealed class TempPostgresDatabase : IAsyncDisposable
{
    public const string Variable = "INGESTION_TEST_POSTGRES";

    private readonly string _serverConnectionString;

    private TempPostgresDatabase(string serverConnectionString, string name)
    {
        _serverConnectionString = serverConnectionString;
        Name = name;
        ConnectionString = new NpgsqlConnectionStringBuilder(serverConnectionString) { Database = name }.ConnectionString;
    }

    public string Name { get; }

    public string ConnectionString { get; }

    /// <summary>The server's connection string, or a skip (locally) or a failure (on CI) saying how to provide one.</summary>
    public static string RequireServer()
    {
        var connectionString = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(connectionString))
        {
            return connectionString;
        }

        const string how = $"set {Variable} to a PostgreSQL connection string that may create databases, e.g. \"Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres\" (.ci/run starts a server and sets it)";
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"CI=true but no PostgreSQL server for the tests: {how}.");
        }

        Assert.Skip($"No PostgreSQL server: {how}.");
        return null!;
    }

    public static async Task<TempPostgresDatabase> CreateAsync()
    {
        var server = RequireServer();
        var name = string.Create(CultureInfo.InvariantCulture, $"ingestion_test_{Guid.NewGuid():n}");
        await using var connection = new NpgsqlConnection(server);
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await command.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        return new TempPostgresDatabase(server, name);
    }

    /// <summary>Runs a query straight against the database, to check what was (not) stored.</summary>
    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync(TestContext.Current.CancellationToken))!;
    }

    /// <summary>
    /// Makes every session opened from now on read-only (or writable again), as a standby or a demoted
    /// primary is: sessions already open keep what they had, as they would until a failover cuts them.
    /// </summary>
    public async Task SetReadOnlyAsync(bool readOnly)
    {
        await using var connection = new NpgsqlConnection(_serverConnectionString);
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        var sql = readOnly ? $"ALTER DATABASE {Name} SET default_transaction_read_only = on" : $"ALTER DATABASE {Name} RESET default_transaction_read_only";
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>Ends every session on this database but the caller's, as a server restart or a failover does.</summary>
    public async Task<int> TerminateSessionsAsync()
    {
        await using var connection = new NpgsqlConnection(_serverConnectionString);
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using var command = new NpgsqlCommand($"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{Name}' AND pid <> pg_backend_pid()", connection);
        return (int)(long)(await command.ExecuteScalarAsync(TestContext.Current.CancellationToken))!;
    }

    public async ValueTask DisposeAsync()
    {
        // Only this database's pool: the other tests' connections stay as they are.
        await using (var pooled = new NpgsqlConnection(ConnectionString))
        {
            NpgsqlConnection.ClearPool(pooled);
        }

        // Not the test's token: a test that is cancelled or failed still drops what it made. A drop that
        // fails is the test's failure, so no run leaves databases behind unnoticed.
        await using var connection = new NpgsqlConnection(_serverConnectionString);
        await connection.OpenAsync(CancellationToken.None);
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync(CancellationToken.None);
    }
}
