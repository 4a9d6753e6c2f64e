using System.Diagnostics;
using System.Threading.Channels;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// The sessions status reads run on, each listening on <see cref="PostgresStatusMemo.Channel"/> while it
/// is in use, so the answer to any statement on one arrives after the notifications of everything
/// committed before it (<see cref="PostgresStatusMemo"/>). A session is opened when first needed and again
/// after any error. One left unused for <see cref="QuietAfter"/> stops listening: PostgreSQL wakes every
/// listening session at every commit that notifies (a busy instance's submissions among them), so a
/// service nobody polls would pay for a memory nobody uses, and notifications nobody reads would pile up in
/// the server's queue. Listening again, it forgets everything, since it heard nothing meanwhile.
/// </summary>
internal sealed class PostgresStatusSessions : IAsyncDisposable
{
    public static readonly TimeSpan QuietAfter = TimeSpan.FromMilliseconds(250);

    /// <summary>The statement that only waits for what the session has been told.</summary>
    public const string Fence = "SELECT NULL";

    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresStatusMemo _memo;
    private readonly Channel<Session> _free = Channel.CreateUnbounded<Session>();
    private readonly Session[] _sessions;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _quieting;

    public PostgresStatusSessions(NpgsqlDataSource dataSource, PostgresStatusMemo memo, int count)
    {
        (_dataSource, _memo) = (dataSource, memo);
        _sessions = [.. Enumerable.Range(0, count).Select(_ => new Session())];
        foreach (var session in _sessions)
        {
            _free.Writer.TryWrite(session);
        }

        _quieting = Task.Run(QuietIdleSessionsAsync);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the next free session, listening. An error closes the session, to be
    /// opened afresh; one that had waited open (the server restarted, the connection dropped) is tried once
    /// more on a new one, as reads can be.
    /// </summary>
    public async Task<T> RunAsync<T>(Func<NpgsqlConnection, Task<T>> work)
    {
        var session = await _free.Reader.ReadAsync();
        try
        {
            while (true)
            {
                var waited = session.Connection is not null;
                try
                {
                    var result = await work(await ListeningAsync(session));
                    session.LastUsed = Stopwatch.GetTimestamp();
                    return result;
                }
                catch (Exception exception) when (waited && exception is NpgsqlException or IOException)
                {
                    await session.CloseAsync();
                }
                catch
                {
                    await session.CloseAsync();
                    throw;
                }
            }
        }
        finally
        {
            _free.Writer.TryWrite(session);
        }
    }

    private async Task<NpgsqlConnection> ListeningAsync(Session session)
    {
        if (session.Connection is { } open && session.Listening)
        {
            return open;
        }

        if (session.Connection is null)
        {
            var connection = await _dataSource.OpenConnectionAsync();
            connection.Notification += (_, heard) => _memo.Heard(heard.Payload);
            session.Connection = connection;
        }

        await ExecuteAsync(session.Connection, $"LISTEN {PostgresStatusMemo.Channel}");
        session.Listening = true;
        _memo.Forget();
        return session.Connection;
    }

    private async Task QuietIdleSessionsAsync()
    {
        using var timer = new PeriodicTimer(QuietAfter);
        while (await TickAsync(timer))
        {
            // Only the sessions free right now: one in use is listened to anyway.
            var free = new List<Session>(_sessions.Length);
            while (free.Count < _sessions.Length && _free.Reader.TryRead(out var session))
            {
                free.Add(session);
            }

            foreach (var session in free)
            {
                try
                {
                    if (session is { Connection: { } connection, Listening: true } && Stopwatch.GetElapsedTime(session.LastUsed) >= QuietAfter)
                    {
                        session.Listening = false;
                        await ExecuteAsync(connection, "UNLISTEN *", _stopping.Token);
                    }
                }
                catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or IOException or TimeoutException or OperationCanceledException)
                {
                    await session.CloseAsync(); // opened again by the next read
                }
                finally
                {
                    _free.Writer.TryWrite(session);
                }
            }
        }
    }

    private async Task<bool> TickAsync(PeriodicTimer timer)
    {
        try
        {
            return await timer.WaitForNextTickAsync(_stopping.Token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken = default)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _quieting;
        foreach (var session in _sessions)
        {
            await session.CloseAsync();
        }

        _stopping.Dispose();
    }

    private sealed class Session
    {
        public NpgsqlConnection? Connection { get; set; }

        public bool Listening { get; set; }

        public long LastUsed { get; set; } = Stopwatch.GetTimestamp();

        /// <summary>Stops listening first: a closed connection waits in the pool, and nobody would read what it is told.</summary>
        public async ValueTask CloseAsync()
        {
            if (Connection is not { } connection)
            {
                return;
            }

            (Connection, Listening) = (null, false);
            try
            {
                if (connection.FullState == System.Data.ConnectionState.Open)
                {
                    await ExecuteAsync(connection, "UNLISTEN *");
                }
            }
            catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or IOException or TimeoutException)
            {
                // Broken: the pool drops it.
            }
            finally
            {
                await connection.DisposeAsync();
            }
        }
    }
}
