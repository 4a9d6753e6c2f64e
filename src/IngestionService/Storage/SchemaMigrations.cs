using System.Data.Common;
using System.Globalization;
using System.Reflection;

namespace IngestionService.Storage;

/// <summary>
/// The numbered schema scripts embedded in the service, one folder per engine, and the loop that applies
/// the ones a database has not seen yet. The caller owns the transaction (and whatever lock keeps two
/// processes from migrating at once), so each script lands with its bookkeeping row or not at all.
/// </summary>
internal static class SchemaMigrations
{
    /// <summary>
    /// The scripts under <paramref name="resourcePrefix"/> in version order; the version is the number the
    /// file name starts with (<c>002_ids_before.sql</c> is version 2).
    /// </summary>
    public static IEnumerable<(int Version, string Name, string Sql)> Load(string resourcePrefix)
    {
        var assembly = Assembly.GetExecutingAssembly();
        return assembly.GetManifestResourceNames()
            .Where(resource => resource.StartsWith(resourcePrefix, StringComparison.Ordinal) && resource.EndsWith(".sql", StringComparison.Ordinal))
            .Select(resource =>
            {
                var name = resource[resourcePrefix.Length..];
                var version = int.Parse(name.AsSpan(0, name.IndexOf('_', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
                using var stream = assembly.GetManifestResourceStream(resource)!;
                using var text = new StreamReader(stream);
                return (version, name, text.ReadToEnd());
            })
            .OrderBy(script => script.version);
    }

    /// <summary>
    /// Creates the bookkeeping table with <paramref name="createMigrationsTable"/> (each engine's own
    /// types), then applies every script under <paramref name="resourcePrefix"/> not recorded there yet.
    /// </summary>
    public static async Task ApplyAsync(DbConnection connection, DbTransaction transaction, string resourcePrefix, string createMigrationsTable, CancellationToken cancellationToken)
    {
        await ExecuteAsync(connection, transaction, createMigrationsTable, cancellationToken);

        var applied = new HashSet<int>();
        await using (var query = Command(connection, transaction, "SELECT version FROM schema_migrations"))
        await using (var reader = await query.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                applied.Add(reader.GetInt32(0));
            }
        }

        foreach (var (version, name, sql) in Load(resourcePrefix))
        {
            if (applied.Contains(version))
            {
                continue;
            }

            await ExecuteAsync(connection, transaction, sql, cancellationToken);
            await using var record = Command(connection, transaction, "INSERT INTO schema_migrations (version, name) VALUES (@version, @name)");
            AddParameter(record, "@version", version);
            AddParameter(record, "@name", name);
            await record.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    private static DbCommand Command(DbConnection connection, DbTransaction transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    private static async Task ExecuteAsync(DbConnection connection, DbTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static void AddParameter(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }
}
