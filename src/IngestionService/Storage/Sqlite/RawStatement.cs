using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// A statement prepared once on the writer and run through SQLite's C API (SQLitePCLRaw, which
/// Microsoft.Data.Sqlite itself sits on). Values are bound from spans and the statement is stepped
/// without ADO.NET's objects per execution (a data reader, a binder per parameter, boxed values), which
/// would otherwise be the most a POST allocates. Failures surface as the
/// same <see cref="SqliteException"/> ADO.NET would throw.
/// </summary>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3 _database;
    private readonly sqlite3_stmt _statement;

    public RawStatement(SqliteConnection connection, string sql)
    {
        _database = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        Check(raw.sqlite3_prepare_v2(_database, sql, out _statement));
    }

    public void Bind(int index, long value) => Check(raw.sqlite3_bind_int64(_statement, index, value));

    /// <summary>Binds the value, or SQL NULL without one (bindings outlive a reset, so absent values are bound too).</summary>
    public void Bind(int index, long? value) => Check(value is { } given ? raw.sqlite3_bind_int64(_statement, index, given) : raw.sqlite3_bind_null(_statement, index));

    /// <summary>Binds the text, or SQL NULL without one.</summary>
    public void Bind(int index, string? value) => Check(value is null ? raw.sqlite3_bind_null(_statement, index) : raw.sqlite3_bind_text(_statement, index, value));

    /// <summary>SQLite copies the bytes, so a span over the stack or a rented buffer is fine.</summary>
    public void Bind(int index, ReadOnlySpan<byte> value) => Check(raw.sqlite3_bind_blob(_statement, index, value));

    /// <summary>Runs a statement that returns no rows and resets it for the next run.</summary>
    public void Execute()
    {
        var result = raw.sqlite3_step(_statement);
        raw.sqlite3_reset(_statement);
        if (result != raw.SQLITE_DONE)
        {
            SqliteException.ThrowExceptionForRC(result, _database);
        }
    }

    public void Dispose() => _statement.Dispose();

    private void Check(int result)
    {
        if (result != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(result, _database);
        }
    }
}
