using System.Text.Json;
using System.Text.Json.Serialization;
using IngestionService.Dashboard;
using IngestionService.Dispatch;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace IngestionService.Ingest;

public static class IngestionExtensions
{
    /// <summary>The endpoints' JSON (snake_case, source-generated) and the submit path.</summary>
    public static IServiceCollection AddIngestionApi(this IServiceCollection services)
    {
        services.AddOptions<IngestionOptions>().BindConfiguration(IngestionOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<IngestionOptions>, IngestionOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IngestionSubmitter>();
        services.AddSingleton<Backpressure>();
        services.AddSingleton<StatusCache>();
        services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            json.SerializerOptions.Converters.Add(new Hosting.UtcMillisecondsConverter()); // one time format everywhere
            json.SerializerOptions.TypeInfoResolverChain.Insert(0, IngestionJsonContext.Default);
        });
        return services;
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(IngestAccepted))]
[JsonSerializable(typeof(IngestionStatus))]
[JsonSerializable(typeof(WindowLog))]
[JsonSerializable(typeof(QueueView))]
[JsonSerializable(typeof(IngestionList))]
[JsonSerializable(typeof(IngestionResults))]
internal sealed partial class IngestionJsonContext : JsonSerializerContext;
