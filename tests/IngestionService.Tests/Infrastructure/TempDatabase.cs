using Microsoft.Data.Sqlite;

namespace IngestionService.Tests.Infrastructure;

/// <summary>A real SQLite file in a fresh folder of its own, removed afterwards.</summary>
public sealed class TempDatabase : IDisposable
{
    public TempDatabase()
    {
        Folder = Path.Combine(Path.GetTempPath(), "ingestion-tests", Guid.NewGuid().ToString("n"));
        FilePath = Path.Combine(Folder, "ingestion.db");
    }

    public string Folder { get; }

    public string FilePath { get; }

    public string ConnectionString => $"Data Source={FilePath}";

    /// <summary>Runs a read-only query straight against the file, to check what was (not) stored.</summary>
    public long Scalar(string sql)
    {
        using var connection = new SqliteConnection($"Data Source={FilePath};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
            // A child process may still hold the file for a moment; the OS temp folder is cleaned anyway.
        }
    }
}
