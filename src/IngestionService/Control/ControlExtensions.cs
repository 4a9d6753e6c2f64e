using Microsoft.Extensions.Options;

namespace IngestionService.Control;

public static class ControlExtensions
{
    /// <summary>The operators' actions on the queue, and their key (<c>Admin:ApiKey</c>), checked at start-up.</summary>
    public static IServiceCollection AddQueueControl(this IServiceCollection services)
    {
        services.AddOptions<AdminOptions>().BindConfiguration(AdminOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AdminOptions>, AdminOptionsValidator>();
        services.AddSingleton<QueueControl>();
        return services;
    }
}
