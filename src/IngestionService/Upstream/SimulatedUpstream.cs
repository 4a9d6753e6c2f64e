using System.Globalization;
using Microsoft.Extensions.Options;

namespace IngestionService.Upstream;

/// <summary>The brief's stand-in for the external API: a fixed delay, then <c>{"id": id, "data": "processed"}</c>.</summary>
public sealed class SimulatedUpstream(IOptions<UpstreamOptions> options, TimeProvider clock) : IUpstreamClient
{
    private readonly TimeSpan _delay = options.Value.SimulatedDelay;

    public async Task<UpstreamAnswer> FetchAsync(int id, CancellationToken cancellationToken)
    {
        if (_delay > TimeSpan.Zero)
        {
            await Task.Delay(_delay, clock, cancellationToken);
        }

        return UpstreamAnswer.Success(string.Create(CultureInfo.InvariantCulture, $$"""{"id":{{id}},"data":"processed"}"""));
    }
}
