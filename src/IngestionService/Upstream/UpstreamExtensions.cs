namespace IngestionService.Upstream;

public static class UpstreamExtensions
{
    /// <summary>The simulated external API, with its options validated at start-up.</summary>
    public static IServiceCollection AddUpstream(this IServiceCollection services)
    {
        services.AddOptions<UpstreamOptions>().BindConfiguration(UpstreamOptions.SectionName).ValidateOnStart();
        services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<UpstreamOptions>, UpstreamOptionsValidator>();
        services.AddSingleton<IUpstreamClient, SimulatedUpstream>();
        return services;
    }
}
