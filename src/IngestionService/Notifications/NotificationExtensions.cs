using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace IngestionService.Notifications;

/// <summary>A callback refused at delivery: its host now resolves to an address that is not public.</summary>
public sealed class CallbackRefusedException(string message) : Exception(message);

public static class NotificationExtensions
{
    /// <summary>Webhooks: options validated at start-up, the delivery loop, and its own HTTP client.</summary>
    public static IServiceCollection AddNotifications(this IServiceCollection services)
    {
        services.AddOptions<NotificationOptions>().BindConfiguration(NotificationOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<NotificationOptions>, NotificationOptionsValidator>();
        services.AddSingleton<OutboxSignal>();
        services.AddSingleton<WebhookMetrics>();
        services.AddHostedService<WebhookDelivery>();
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(1, WebhookJsonContext.Default));
        services.AddHttpClient(WebhookDelivery.ClientName, client => client.Timeout = Timeout.InfiniteTimeSpan) // each attempt has its own
            .ConfigurePrimaryHttpMessageHandler(provider =>
            {
                var options = provider.GetRequiredService<IOptions<NotificationOptions>>().Value;
                return new SocketsHttpHandler
                {
                    // A redirect could lead anywhere, the private network included: it counts as a failed attempt.
                    AllowAutoRedirect = false,
                    // Through a proxy, the connection checked below would be to the proxy, and the proxy would
                    // resolve the callback's name itself: no proxy, so the address checked is the one called.
                    UseProxy = false,
                    PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                    ConnectTimeout = options.Timeout,
                    ConnectCallback = (context, cancellationToken) => ConnectAsync(context, options.AllowPrivateNetworks, cancellationToken),
                };
            })
            .RedactLoggedHeaders(_ => true);
        return services;
    }

    /// <summary>
    /// Connects to the callback's host, checking each address it resolves to just before connecting: a name
    /// that resolved to a public address at submission and resolves to a private one now is refused here.
    /// </summary>
    private static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, bool allowPrivate, CancellationToken cancellationToken)
    {
        var host = context.DnsEndPoint.Host;
        var (addresses, blocked) = await CallbackAddress.ResolveAsync(host, cancellationToken);
        if (!allowPrivate && blocked is not null)
        {
            throw new CallbackRefusedException($"refused: {CallbackAddress.Refusal(host, blocked)}");
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(addresses, context.DnsEndPoint.Port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
