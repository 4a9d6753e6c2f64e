using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// Read connections with their statements already prepared. Preparing the status query costs far more
/// than running it, so sessions are kept and reused instead of opened per request.
/// </summary>
internal sealed class SqliteReaderPool(string connectionString) : IDisposable
{
    private const int MaxIdle = 16;

    private readonly ConcurrentBag<Session> _idle = [];
    private volatile bool _disposed;

    public async ValueTask<Session> RentAsync(CancellationToken cancellationToken)
    {
        if (_idle.TryTake(out var session))
        {
            return session;
        }

        var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        return new Session(connection, this);
    }

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryTake(out var session))
        {
            session.Close();
        }
    }

    private void Return(Session session)
    {
        if (_idle.Count < MaxIdle && !_disposed)
        {
            _idle.Add(session);
        }
        else
        {
            session.Close();
        }
    }

    /// <summary>A pooled read connection and its prepared commands, keyed by their SQL text; disposing returns it to the pool.</summary>
    public sealed class Session(SqliteConnection connection, SqliteReaderPool owner) : IDisposable
    {
        private readonly Dictionary<string, SqliteCommand> _commands = new(StringComparer.Ordinal);

        public SqliteCommand Command(string sql, params string[] parameters)
        {
            if (!_commands.TryGetValue(sql, out var command))
            {
                command = connection.CreateCommand();
                command.CommandText = sql;
                foreach (var name in parameters)
                {
                    command.Parameters.Add(new SqliteParameter { ParameterName = name });
                }

                command.Prepare();
                _commands.Add(sql, command);
            }

            return command;
        }

        public void Dispose() => owner.Return(this);

        internal void Close()
        {
            foreach (var command in _commands.Values)
            {
                command.Dispose();
            }

            connection.Dispose();
        }
    }
}
