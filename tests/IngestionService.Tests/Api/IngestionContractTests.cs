using System.Net;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>The brief's contract over real HTTP: the exact fields, names, types and values.</summary>
public sealed class IngestionContractTests : IAsyncLifetime
{
    // A long window keeps everything after the first window waiting, so the shapes can be read at rest.
    private readonly IngestionApp _app = new(new() { ["Ingestion:Window"] = "00:10:00", ["Upstream:SimulatedDelay"] = "00:00:00" });

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    [Fact]
    public async Task PostingIdsAnswers202WithTheIngestionIdAndItsLocation()
    {
        using var response = await _app.PostIngestAsync("""{"ids": [1, 2, 3, 4, 5], "priority": "HIGH"}""");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement;
        var ingestionId = Guid.Parse(body.GetProperty("ingestion_id").GetString()!);
        Assert.Equal($"/status/{ingestionId}", response.Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task StatusListsTheIdsInOrderChunkedByThreeWithTheBriefsFieldNames()
    {
        await _app.SubmitAsync("LOW", 42); // takes the first window, so the next ingestion waits
        var ingestionId = await _app.SubmitAsync("MEDIUM", 5, 4, 3, 2, 1, 1, 9);

        var status = await _app.StatusAsync(ingestionId);

        Assert.Equal(ingestionId.ToString(), status.GetProperty("ingestion_id").GetString());
        Assert.Equal("yet_to_start", status.GetProperty("status").GetString());
        Assert.Equal("MEDIUM", status.GetProperty("priority").GetString());
        Assert.Equal(JsonValueKind.String, status.GetProperty("created_at").ValueKind);
        Assert.EndsWith("Z", status.GetProperty("created_at").GetString(), StringComparison.Ordinal);
        var batches = status.GetProperty("batches").EnumerateArray().ToList();
        Assert.Equal([[5, 4, 3], [2, 1, 1], [9]], batches.Select(b => b.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray()));
        Assert.All(batches, b =>
        {
            Assert.True(Guid.TryParse(b.GetProperty("batch_id").GetString(), out _));
            Assert.Equal("yet_to_start", b.GetProperty("status").GetString());
            Assert.Equal(JsonValueKind.Null, b.GetProperty("triggered_at").ValueKind);
            Assert.Equal(JsonValueKind.Null, b.GetProperty("completed_at").ValueKind);
        });
        Assert.Equal(3, batches.Select(b => b.GetProperty("batch_id").GetString()).Distinct().Count());
    }

    [Fact]
    public async Task ACompletedIngestionShowsCompletedBatchesWithTheirTimes()
    {
        var ingestionId = await _app.SubmitAsync("HIGH", 7, 8);

        var status = await Eventually.ReturnsAsync(() => _app.StatusAsync(ingestionId), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(10), "the first window to complete");

        var batch = status.GetProperty("batches")[0];
        Assert.Equal("completed", batch.GetProperty("status").GetString());
        var triggered = batch.GetProperty("triggered_at").GetDateTime();
        var completed = batch.GetProperty("completed_at").GetDateTime();
        Assert.True(completed >= triggered);
        Assert.True(triggered >= status.GetProperty("created_at").GetDateTime());
    }

    [Fact]
    public async Task BatchIdsStayTheSameFromOneReadToTheNext()
    {
        var ingestionId = await _app.SubmitAsync("LOW", 1, 2, 3, 4);

        var first = await _app.StatusAsync(ingestionId);
        var second = await _app.StatusAsync(ingestionId);

        Assert.Equal(
            first.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("batch_id").GetString()),
            second.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("batch_id").GetString()));
    }

    [Fact]
    public async Task TenThousandIdsAreAcceptedAndReportedInOrder()
    {
        var ids = Enumerable.Range(1, 10_000).Select(i => (i * 7919) % 1_000_000_007).ToArray();

        var ingestionId = await _app.SubmitAsync("LOW", ids);
        var status = await _app.StatusAsync(ingestionId);

        var batches = status.GetProperty("batches").EnumerateArray().ToList();
        Assert.Equal(3334, batches.Count);
        Assert.Equal(ids, batches.SelectMany(b => b.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32())));
    }

    [Fact]
    public async Task FiftyConcurrentSubmissionsAreAllStoredOnce()
    {
        var submissions = Enumerable.Range(1, 50).Select(i => _app.SubmitAsync((i % 3) switch { 0 => "HIGH", 1 => "MEDIUM", _ => "LOW" }, i, i + 1000));

        var ingestionIds = await Task.WhenAll(submissions);

        Assert.Equal(50, ingestionIds.Distinct().Count());
        foreach (var id in ingestionIds)
        {
            var status = await _app.StatusAsync(id);
            Assert.Equal(2, status.GetProperty("batches")[0].GetProperty("ids").GetArrayLength());
        }

        Assert.Equal(50, _app.Database.Scalar("SELECT count(*) FROM ingestions"));
    }

    [Fact]
    public async Task TheWindowLogListsTheNewestWindowsFirst()
    {
        var ingestionId = await _app.SubmitAsync("HIGH", 11, 12, 13, 14);
        await Eventually.ReturnsAsync(() => _app.StatusAsync(ingestionId), s => s.GetProperty("batches")[0].GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(10), "the first window");

        var log = await _app.GetJsonAsync("/windows?limit=5");

        var window = log.GetProperty("windows")[0];
        Assert.Equal("completed", window.GetProperty("state").GetString());
        var item = window.GetProperty("items")[0];
        Assert.Equal(ingestionId.ToString(), item.GetProperty("ingestion_id").GetString());
        Assert.Equal("HIGH", item.GetProperty("priority").GetString());
        Assert.Equal([11, 12, 13], item.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1001")]
    [InlineData("many")]
    public async Task TheWindowLogRefusesABadLimit(string limit)
    {
        using var response = await _app.Client.GetAsync(new Uri($"/windows?limit={limit}", UriKind.Relative), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}
