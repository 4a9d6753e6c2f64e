using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// Applies the numbered scripts embedded under <c>Storage/Sqlite/Schema</c> that the database has not
/// seen yet, in one write transaction, so a start-up that dies half-way leaves either the old schema or
/// the new one.
/// </summary>
internal static class SqliteSchema
{
    private const string ResourcePrefix = "IngestionService.Storage.Sqlite.Schema.";

    public static async Task ApplyAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        // BEGIN IMMEDIATE takes the write lock first, so two processes starting at once apply each script once.
        await using var transaction = connection.BeginTransaction(deferred: false);
        await SchemaMigrations.ApplyAsync(connection, transaction, ResourcePrefix, """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT    NOT NULL,
                applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            );
            """, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    internal static IEnumerable<(int Version, string Name, string Sql)> Scripts() => SchemaMigrations.Load(ResourcePrefix);
}
