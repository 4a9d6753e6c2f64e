using Microsoft.Extensions.Options;

namespace IngestionService.Upstream;

/// <summary>The external API (configuration section <c>Upstream</c>).</summary>
public sealed class UpstreamOptions
{
    public const string SectionName = "Upstream";

    /// <summary>How long the simulated external API takes to answer for one id.</summary>
    public TimeSpan SimulatedDelay { get; set; } = TimeSpan.FromSeconds(1);
}

internal sealed class UpstreamOptionsValidator : IValidateOptions<UpstreamOptions>
{
    public ValidateOptionsResult Validate(string? name, UpstreamOptions options) =>
        options.SimulatedDelay < TimeSpan.Zero || options.SimulatedDelay > TimeSpan.FromHours(1)
            ? ValidateOptionsResult.Fail($"Upstream:SimulatedDelay must be between 00:00:00 and 01:00:00 (got {options.SimulatedDelay}).")
            : ValidateOptionsResult.Success;
}
