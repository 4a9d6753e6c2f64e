using System.Net;
using System.Net.Sockets;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// A TCP proxy on a free loopback port in front of one server (a test's PostgreSQL), that can black-hole
/// the traffic the way a network partition does: while <see cref="Cut"/>, connections stay open and new
/// ones are accepted, but not a byte passes either way; after <see cref="Heal"/> what was held flows
/// again, as TCP's retransmissions would deliver it.
/// </summary>
public sealed class BlackHoleProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _host;
    private readonly int _port;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<TcpClient> _sockets = [];
    private TaskCompletionSource _open = Open();
    private Task? _accepting;

    private BlackHoleProxy(string host, int port) => (_host, _port) = (host, port);

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public static BlackHoleProxy Start(string host, int port)
    {
        var proxy = new BlackHoleProxy(host, port);
        proxy._listener.Start();
        proxy._accepting = Task.Run(proxy.AcceptAsync);
        return proxy;
    }

    /// <summary>From now on nothing passes, until <see cref="Heal"/>.</summary>
    public void Cut()
    {
        lock (_sockets)
        {
            if (_open.Task.IsCompleted)
            {
                Volatile.Write(ref _open, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            }
        }
    }

    public void Heal()
    {
        lock (_sockets)
        {
            _open.TrySetResult();
        }
    }

    private static TaskCompletionSource Open()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    private async Task AcceptAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }

            _ = Task.Run(() => ConnectAsync(client));
        }
    }

    private async Task ConnectAsync(TcpClient client)
    {
        var server = new TcpClient();
        lock (_sockets)
        {
            _sockets.Add(client);
            _sockets.Add(server);
        }

        try
        {
            await Volatile.Read(ref _open).Task.WaitAsync(_stopping.Token); // a black hole answers no new connection either
            await server.ConnectAsync(_host, _port, _stopping.Token);
            var toServer = PumpAsync(client.GetStream(), server.GetStream());
            var toClient = PumpAsync(server.GetStream(), client.GetStream());
            await Task.WhenAny(toServer, toClient);
        }
        catch (Exception exception) when (exception is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // A side closed, or the proxy stops: close both, as a real connection would end.
        }
        finally
        {
            client.Dispose();
            server.Dispose();
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to)
    {
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var read = await from.ReadAsync(buffer, _stopping.Token);
            if (read == 0)
            {
                return;
            }

            await Volatile.Read(ref _open).Task.WaitAsync(_stopping.Token); // held while cut
            await to.WriteAsync(buffer.AsMemory(0, read), _stopping.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        if (_accepting is not null)
        {
            await _accepting;
        }

        lock (_sockets)
        {
            foreach (var socket in _sockets)
            {
                socket.Dispose();
            }
        }

        _stopping.Dispose();
    }
}
