using Microsoft.Extensions.Options;

namespace IngestionService.Events;

public static class EventsExtensions
{
    /// <summary>The event streams: the hub every part of the service publishes to, and the cap on open streams.</summary>
    public static IServiceCollection AddEventStreams(this IServiceCollection services)
    {
        services.AddOptions<EventOptions>().BindConfiguration(EventOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<EventOptions>, EventOptionsValidator>();
        services.AddSingleton<EventHub>();
        services.AddSingleton<ServiceEvents>();
        services.AddSingleton<StreamSlots>();
        services.AddSingleton<StreamServices>();
        return services;
    }
}
