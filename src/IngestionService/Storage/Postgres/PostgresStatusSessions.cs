using System.Diagnostics;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// The sessions status reads run on, each listening on <see cref="PostgresStatusMemo.Channel"/> while it
/// is in use, so the answer to any statement on one arrives after the notifications of everything
/// committed before it (<see cref="PostgresStatusMemo"/>). The session used last is used first, so a
/// lightly loaded instance keeps reusing one. A session is opened when first needed and again after any
/// error. One left unused for <c>quietAfter</c> (a second by default) stops listening: PostgreSQL wakes
/// every listening session at every commit that notifies (a busy instance's submissions among them), so an
/// instance nobody polls would pay for a memory nobody uses. Listening again, it forgets everything, since
/// it heard nothing meanwhile.
/// </summary>
internal sealed class PostgresStatusSessions : IAsyncDisposable
{
    public static readonly TimeSpan DefaultQuietAfter = TimeSpan.FromSeconds(1);

    /// <summary>The statement that only waits for what the session has been told.</summary>
    public const string Fence = "SELECT NULL";

    /// <summary>Seconds an UNLISTEN may take.</summary>
    private const int UnlistenTimeout = 2;

    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresStatusMemo _memo;
    private readonly TimeSpan _quietAfter;
    private readonly List<Session> _free; // a stack: the last returned on top
    private readonly SemaphoreSlim _available;
    private readonly Session[] _sessions;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _quieting;

    public PostgresStatusSessions(NpgsqlDataSource dataSource, PostgresStatusMemo memo, int count, TimeSpan? quietAfter = null)
    {
        (_dataSource, _memo, _quietAfter) = (dataSource, memo, quietAfter ?? DefaultQuietAfter);
        _sessions = [.. Enumerable.Range(0, count).Select(_ => new Session())];
        _free = [.. _sessions];
        _available = new SemaphoreSlim(count);
        _quieting = _quietAfter == Timeout.InfiniteTimeSpan ? Task.CompletedTask : Task.Run(QuietUnusedSessionsAsync);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the next free session, listening. An error closes the session, to be
    /// opened afresh; one that had waited open (the server restarted, the connection dropped) is tried once
    /// more on a new one, as reads can be.
    /// </summary>
    public async Task<T> RunAsync<T>(Func<NpgsqlConnection, Task<T>> work)
    {
        await _available.WaitAsync();
        var session = Take(_ => true)!;
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
            Return(session);
        }
    }

    /// <summary>The topmost free session that <paramref name="wanted"/> accepts; the caller holds one count of <see cref="_available"/>.</summary>
    private Session? Take(Func<Session, bool> wanted)
    {
        lock (_free)
        {
            for (var i = _free.Count - 1; i >= 0; i--)
            {
                if (wanted(_free[i]))
                {
                    var session = _free[i];
                    _free.RemoveAt(i);
                    return session;
                }
            }

            return null;
        }
    }

    private void Return(Session session)
    {
        lock (_free)
        {
            _free.Add(session);
        }

        _available.Release();
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
            connection.Notification += (_, heard) =>
            {
                if (heard.Channel == PostgresStatusMemo.Channel)
                {
                    _memo.Heard(heard.Payload);
                }
            };
            session.Connection = connection;
        }

        await session.StartListeningAsync();
        _memo.Forget();
        return session.Connection;
    }

    private async Task QuietUnusedSessionsAsync()
    {
        using var timer = new PeriodicTimer(_quietAfter);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                // One due session at a time, taken like a read takes one; the others stay free meanwhile.
                while (_available.Wait(0))
                {
                    var session = Take(s => s.Listening && Stopwatch.GetElapsedTime(s.LastUsed) >= _quietAfter);
                    if (session is null)
                    {
                        _available.Release();
                        break;
                    }

                    try
                    {
                        await session.StopListeningAsync(_stopping.Token);
                    }
                    catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or IOException or TimeoutException or OperationCanceledException)
                    {
                        await session.CloseAsync(); // opened again by the next read
                    }
                    finally
                    {
                        Return(session);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
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
        _available.Dispose();
    }

    private sealed class Session
    {
        public NpgsqlConnection? Connection { get; set; }

        public bool Listening { get; set; }

        public long LastUsed { get; set; } = Stopwatch.GetTimestamp();

        public async Task StartListeningAsync()
        {
            await using var command = new NpgsqlCommand($"LISTEN {PostgresStatusMemo.Channel}", Connection);
            await command.ExecuteNonQueryAsync();
            Listening = true;
        }

        /// <summary>UNLISTEN, given <see cref="UnlistenTimeout"/>: a session that cannot answer that fast is closed instead.</summary>
        public async Task StopListeningAsync(CancellationToken cancellationToken = default)
        {
            Listening = false;
            await using var command = new NpgsqlCommand("UNLISTEN *", Connection) { CommandTimeout = UnlistenTimeout };
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        /// <summary>Stops listening first (a closed connection waits in the pool, and nobody would read what it is told), unless it is broken.</summary>
        public async ValueTask CloseAsync()
        {
            if (Connection is not { } connection)
            {
                return;
            }

            try
            {
                if (connection.FullState == System.Data.ConnectionState.Open)
                {
                    await StopListeningAsync();
                }
            }
            catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or IOException or TimeoutException)
            {
                // Broken after all: the pool drops it.
            }
            finally
            {
                (Connection, Listening) = (null, false);
                await connection.DisposeAsync();
            }
        }
    }
}
