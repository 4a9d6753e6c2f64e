namespace IngestionService.Upstream;

/// <summary>The external API that data is fetched from, one id per call.</summary>
public interface IUpstreamClient
{
    /// <summary>Fetches the data for one id and returns the body the upstream answered with.</summary>
    Task<string> FetchAsync(int id, CancellationToken cancellationToken);
}
