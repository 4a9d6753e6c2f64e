using IngestionService.Ingest;
using Microsoft.Extensions.Options;

namespace IngestionService.Dispatch;

public static class DispatchExtensions
{
    /// <summary>The rate-limited loop that fetches ids from the upstream, and the bound it publishes for estimates.</summary>
    public static IServiceCollection AddDispatcher(this IServiceCollection services)
    {
        services.AddSingleton<DispatchSignal>();
        services.AddSingleton<AdmissionBound>();
        services.AddSingleton<LimitInForce>();
        services.AddSingleton<Observability.WindowTracing>();
        services.AddSingleton<Dispatcher>();
        services.AddHostedService(provider => provider.GetRequiredService<Dispatcher>());

        // The host must wait for the window in flight to finish (Ingestion:ShutdownTimeout) before giving up.
        services.AddOptions<HostOptions>().Configure<IOptions<IngestionOptions>>((host, ingestion) =>
            host.ShutdownTimeout = ingestion.Value.ShutdownTimeout + TimeSpan.FromSeconds(5));
        return services;
    }
}
