using Microsoft.Extensions.Options;
using Polly;

namespace IngestionService.Upstream;

public static class UpstreamExtensions
{
    /// <summary>The external API (simulated, or a real one over HTTP), with its options validated at start-up.</summary>
    public static IServiceCollection AddUpstream(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<UpstreamOptions>().BindConfiguration(UpstreamOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<UpstreamOptions>, UpstreamOptionsValidator>();
        services.AddSingleton<RetryPolicy>();

        var mode = configuration.GetValue(UpstreamOptions.SectionName + ":" + nameof(UpstreamOptions.Mode), UpstreamMode.Simulated);
        if (mode != UpstreamMode.Http)
        {
            services.AddSingleton<IUpstreamClient, SimulatedUpstream>();
            return services;
        }

        services.AddHttpClient<IUpstreamClient, HttpUpstream>(HttpUpstream.ClientName, (provider, client) =>
            {
                var options = provider.GetRequiredService<IOptions<UpstreamOptions>>().Value;
                client.Timeout = Timeout.InfiniteTimeSpan; // the pipeline's timeout below is the one that counts
                foreach (var (name, value) in options.Headers)
                {
                    client.DefaultRequestHeaders.TryAddWithoutValidation(name, value);
                }
            })
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                // A redirect followed is a second call the limiter never admitted, with the headers sent along.
                AllowAutoRedirect = false,
                // The client lives as long as the dispatcher: connections are renewed so DNS changes are seen.
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            })
            .RedactLoggedHeaders(_ => true) // API keys travel in headers: no header value is ever logged
            .AddResilienceHandler("upstream-timeout", (pipeline, context) =>
            {
                // Only a timeout: a retry here would be a call the rate limiter never admitted.
                var options = context.ServiceProvider.GetRequiredService<IOptions<UpstreamOptions>>().Value;
                pipeline.AddTimeout(options.Timeout);
            });
        return services;
    }
}
