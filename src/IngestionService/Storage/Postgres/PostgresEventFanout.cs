using System.Text.Json;
using System.Threading.Channels;
using IngestionService.Events;
using Microsoft.Extensions.Options;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// Tells the other instances of the stream events this one makes (the windows it runs, the calls it
/// takes) with <c>pg_notify</c>, and publishes theirs, heard by <see cref="PostgresWakeUps"/>'s session,
/// to this instance's <see cref="EventHub"/>: every instance's <c>GET /events</c> sees every window.
/// Best effort, as a notification is: a stream that misses one still shows the truth at the next, and
/// the dashboard polls besides. Sent in order, off the dispatcher's path.
/// </summary>
internal sealed partial class PostgresEventFanout : BackgroundService
{
    public const string Channel = "ingestion_events";

    // PostgreSQL refuses payloads of 8000 bytes or more: a larger event goes as its type alone.
    private const int MaxPayloadBytes = 7900;

    private readonly IServiceProvider _services;
    private readonly bool _postgres;
    private readonly EventHub _hub;
    private readonly ILogger<PostgresEventFanout> _logger;
    private readonly string _origin = Guid.NewGuid().ToString("N");
    private readonly Channel<string> _outgoing = System.Threading.Channels.Channel.CreateBounded<string>(
        new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });

    public PostgresEventFanout(IServiceProvider services, IOptions<StorageOptions> storage, EventHub hub, ILogger<PostgresEventFanout> logger)
    {
        (_services, _postgres, _hub, _logger) = (services, storage.Value.IsPostgres, hub, logger);
        if (_postgres)
        {
            hub.Shared += published => _outgoing.Writer.TryWrite(Payload(published));
        }
    }

    /// <summary>An event another instance made; this instance's own come back too, and are dropped.</summary>
    public void Heard(string payload)
    {
        try
        {
            using var document = JsonDocument.Parse(payload);
            var root = document.RootElement;
            if (root.GetProperty("o").GetString() != _origin)
            {
                _hub.Publish(root.GetProperty("t").GetString()!, root.TryGetProperty("d", out var data) ? data.GetRawText() : "{}");
            }
        }
        catch (Exception exception) when (exception is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            LogUnreadable(_logger, exception, payload.Length);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_postgres)
        {
            return;
        }

        var dataSource = _services.GetRequiredService<NpgsqlDataSource>();
        try
        {
            await foreach (var payload in _outgoing.Reader.ReadAllAsync(stoppingToken))
            {
                try
                {
                    await using var notify = dataSource.CreateCommand($"SELECT pg_notify('{Channel}', $1)");
                    notify.Parameters.AddWithValue(payload);
                    await notify.ExecuteNonQueryAsync(stoppingToken);
                }
                catch (Exception exception) when (exception is NpgsqlException or TimeoutException or System.IO.IOException)
                {
                    LogSendFailed(_logger, exception);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping, perhaps before the host started at all (a port in use): not a fault.
        }
    }

    private string Payload(StreamEvent published)
    {
        var full = $$"""{"o":"{{_origin}}","t":{{JsonSerializer.Serialize(published.Type, EventsPayloadJson.Default.String)}},"d":{{published.Data}}}""";
        return System.Text.Encoding.UTF8.GetByteCount(full) < MaxPayloadBytes ? full
            : $$"""{"o":"{{_origin}}","t":{{JsonSerializer.Serialize(published.Type, EventsPayloadJson.Default.String)}}}""";
    }

    [LoggerMessage(EventId = Observability.LogEvents.EventFanoutFailed, Level = LogLevel.Warning, Message = "Could not tell the other instances of a stream event; their streams show it at the next one")]
    private static partial void LogSendFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = Observability.LogEvents.EventUnreadable, Level = LogLevel.Warning, Message = "Ignored a stream event from another instance that could not be read ({Bytes} bytes)")]
    private static partial void LogUnreadable(ILogger logger, Exception exception, int bytes);
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class EventsPayloadJson : System.Text.Json.Serialization.JsonSerializerContext;
