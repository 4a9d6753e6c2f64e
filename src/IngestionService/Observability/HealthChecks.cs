using System.Text.Json;
using IngestionService.Dispatch;
using IngestionService.Storage;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace IngestionService.Observability;

/// <summary>Ready needs the store to answer on a fresh connection, and to take writes when it has refused them.</summary>
internal sealed class StorageHealthCheck(IQueueReader store, StoreWrites writes) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await store.ProbeAsync(cancellationToken);
            if (await writes.CheckAsync(cancellationToken) is { } refusal)
            {
                return HealthCheckResult.Unhealthy($"The store refuses writes since {refusal.Since:yyyy-MM-ddTHH:mm:ss.fffZ}: {refusal.Reason}. Submissions answer 503 until it takes them again.");
            }

            return HealthCheckResult.Healthy("The store answers.");
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy($"The store does not answer: {exception.Message}");
        }
    }
}

/// <summary>Ready needs the dispatcher loop to be running.</summary>
internal sealed class DispatcherHealthCheck(Dispatcher dispatcher) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(dispatcher.ExecuteTask switch
        {
            null => HealthCheckResult.Unhealthy("The dispatcher has not started."),
            { IsFaulted: true } task => HealthCheckResult.Unhealthy($"The dispatcher stopped with an error: {task.Exception?.GetBaseException().Message}"),
            { IsCompleted: true } => HealthCheckResult.Unhealthy("The dispatcher has stopped."),
            _ => HealthCheckResult.Healthy("The dispatcher is running."),
        });
}

public static class HealthEndpoints
{
    public const string ReadyTag = "ready";

    /// <summary><c>/health/live</c>: the process answers. <c>/health/ready</c> (and <c>/health</c>): storage and dispatcher work (503 and the reason when not).</summary>
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync })
            .WithSummary("The process is up.");
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag), ResponseWriter = WriteAsync })
            .WithSummary("Storage answers and the dispatcher runs; 503 with the reason otherwise.");

        // The address most clients and load balancers try first: the readiness answer.
        app.MapHealthChecks("/health", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag), ResponseWriter = WriteAsync })
            .WithSummary("The same as /health/ready.");
        return app;
    }

    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        var body = new Dictionary<string, object>
        {
            ["status"] = report.Status.ToString(),
            ["checks"] = report.Entries.ToDictionary(
                entry => entry.Key,
                entry => new Dictionary<string, string?> { ["status"] = entry.Value.Status.ToString(), ["description"] = entry.Value.Description }),
        };
        return context.Response.WriteAsync(JsonSerializer.Serialize(body, HealthJson.Options), context.RequestAborted);
    }

    private static class HealthJson
    {
        public static readonly JsonSerializerOptions Options = new() { TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver() };
    }
}
