using IngestionService.Dispatch;
using IngestionService.Ingest;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace IngestionService.Observability;

public static class ObservabilityExtensions
{
    /// <summary>Metrics (OpenTelemetry, Prometheus format), health checks and the queue sampler behind the gauges.</summary>
    public static IServiceCollection AddObservability(this IServiceCollection services)
    {
        services.AddSingleton<QueueMonitor>();
        services.AddHostedService(provider => provider.GetRequiredService<QueueMonitor>());
        services.AddSingleton<IngestionMetrics>();
        services.AddHealthChecks()
            .AddCheck<StorageHealthCheck>("storage", tags: [HealthEndpoints.ReadyTag])
            .AddCheck<DispatcherHealthCheck>("dispatcher", tags: [HealthEndpoints.ReadyTag]);
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("ingestion-service"))
            .WithMetrics(metrics => metrics
            .AddMeter(IngestionMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Runtime")
            .AddPrometheusExporter());
        return services;
    }

    public static IEndpointRouteBuilder MapObservability(this IEndpointRouteBuilder app)
    {
        app.MapHealthEndpoints();
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }
}
