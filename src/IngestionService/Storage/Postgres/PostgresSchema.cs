using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// Applies the numbered scripts embedded under <c>Storage/Postgres/Schema</c> that the database has not
/// seen yet, in one transaction under a transaction-scoped advisory lock: when several instances start
/// at the same moment, one applies the scripts and the others wait, then find them applied.
/// </summary>
internal static class PostgresSchema
{
    private const string ResourcePrefix = "IngestionService.Storage.Postgres.Schema.";

    /// <summary>Any constant the instances agree on; this one spells "ingest" in ASCII.</summary>
    private const long MigrationLock = 0x696E67657374;

    public static async Task ApplyAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        // The lock comes first: two concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog.
        await using (var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock($1)", connection, transaction))
        {
            command.Parameters.AddWithValue(MigrationLock);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await SchemaMigrations.ApplyAsync(connection, transaction, ResourcePrefix, """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
            )
            """, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    internal static IEnumerable<(int Version, string Name, string Sql)> Scripts() => SchemaMigrations.Load(ResourcePrefix);
}
