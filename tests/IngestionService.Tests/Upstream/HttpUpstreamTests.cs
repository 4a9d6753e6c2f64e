using System.Net;
using System.Net.Sockets;
using IngestionService.Tests.Infrastructure;
using IngestionService.Upstream;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace IngestionService.Tests.Upstream;

/// <summary>
/// The HTTP upstream client, wired as the service wires it (IHttpClientFactory, the resilience pipeline),
/// against a real HTTP server on loopback: what each kind of answer becomes, and what is sent and logged.
/// </summary>
public sealed class HttpUpstreamTests : IAsyncLifetime
{
    private const string ApiKey = "secret-key-7d1f0c";
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;
    private FakeUpstreamServer _server = null!;

    public async ValueTask InitializeAsync() => _server = await FakeUpstreamServer.StartAsync((id, _) => id switch
    {
        1 => FakeAnswer.Ok,
        2 => new FakeAnswer(200, new string('x', 100)),
        3 => FakeAnswer.Fail(404),
        4 => FakeAnswer.Fail(500),
        5 => FakeAnswer.Fail(429, "7"),
        6 => FakeAnswer.Fail(429, Now.AddSeconds(120).ToString("R")),
        7 => FakeAnswer.Fail(503, "3"),
        8 => FakeAnswer.Fail(503),
        9 => FakeAnswer.Fail(408),
        10 => new FakeAnswer(Delay: TimeSpan.FromSeconds(30)),
        11 => FakeAnswer.Fail(429),
        13 => new FakeAnswer(302, Location: "/items/1"),
        14 => new FakeAnswer(BodyDelay: TimeSpan.FromSeconds(30)),
        _ => FakeAnswer.Fail(400),
    });

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Theory]
    [InlineData(1, UpstreamVerdict.Succeeded, 200)]
    [InlineData(3, UpstreamVerdict.Permanent, 404)]
    [InlineData(12, UpstreamVerdict.Permanent, 400)]
    [InlineData(4, UpstreamVerdict.Retryable, 500)]
    [InlineData(8, UpstreamVerdict.Retryable, 503)]
    [InlineData(9, UpstreamVerdict.Retryable, 408)]
    [InlineData(5, UpstreamVerdict.Throttled, 429)]
    [InlineData(7, UpstreamVerdict.Throttled, 503)]
    public async Task EachKindOfAnswerGetsItsVerdict(int id, UpstreamVerdict verdict, int status)
    {
        await using var client = Client(_server.BaseAddress);

        var answer = await client.Upstream.FetchAsync(id, TestContext.Current.CancellationToken);

        Assert.Equal((verdict, status), (answer.Verdict, answer.HttpStatus));
        Assert.Equal(verdict == UpstreamVerdict.Succeeded ? null : $"HTTP {status}", answer.Error?[..8]);
    }

    [Fact]
    public async Task ThePathTemplateIsJoinedToTheBaseUrlKeepingItsPath()
    {
        await using var client = Client(new Uri(_server.BaseAddress, "/items"), new() { ["Upstream:PathTemplate"] = "/{id}" });

        var answer = await client.Upstream.FetchAsync(1, TestContext.Current.CancellationToken);

        Assert.Equal((UpstreamVerdict.Succeeded, """{"id":1,"data":"upstream"}"""), (answer.Verdict, answer.Body));
    }

    [Fact]
    public async Task ASuccessCarriesTheBodyCutAtTheConfiguredSize()
    {
        await using var client = Client(_server.BaseAddress, new() { ["Upstream:MaxBodyBytes"] = "40" });

        var whole = await client.Upstream.FetchAsync(1, TestContext.Current.CancellationToken);
        var cut = await client.Upstream.FetchAsync(2, TestContext.Current.CancellationToken);

        Assert.Equal(("""{"id":1,"data":"upstream"}""", false), (whole.Body, whole.BodyTruncated));
        Assert.Equal((new string('x', 40), true), (cut.Body, cut.BodyTruncated));
    }

    [Fact]
    public async Task RetryAfterIsReadAsSecondsOrAsADate()
    {
        await using var client = Client(_server.BaseAddress);

        var seconds = await client.Upstream.FetchAsync(5, TestContext.Current.CancellationToken);
        var date = await client.Upstream.FetchAsync(6, TestContext.Current.CancellationToken);
        var none = await client.Upstream.FetchAsync(11, TestContext.Current.CancellationToken);

        Assert.Equal(TimeSpan.FromSeconds(7), seconds.RetryAfter);
        Assert.InRange(date.RetryAfter!.Value, TimeSpan.FromSeconds(100), TimeSpan.FromSeconds(121));
        Assert.Equal(UpstreamVerdict.Throttled, none.Verdict);
        Assert.Null(none.RetryAfter);
    }

    [Fact]
    public async Task ACallThatOutlastsTheTimeoutIsARetryableFailureNotAnException()
    {
        await using var client = Client(_server.BaseAddress, new() { ["Upstream:Timeout"] = "00:00:00.300" });

        var answer = await client.Upstream.FetchAsync(10, TestContext.Current.CancellationToken);

        Assert.Equal((UpstreamVerdict.Retryable, (int?)null), (answer.Verdict, answer.HttpStatus));
        Assert.Contains("No answer within 00:00:00.3", answer.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ABodyThatStallsCountsAgainstTheTimeoutToo()
    {
        await using var client = Client(_server.BaseAddress, new() { ["Upstream:Timeout"] = "00:00:00.500" });

        var answer = await client.Upstream.FetchAsync(14, TestContext.Current.CancellationToken);

        Assert.Equal(UpstreamVerdict.Retryable, answer.Verdict);
        Assert.Contains("No answer within", answer.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARedirectIsNotFollowedItIsAPermanentFailure()
    {
        await using var client = Client(_server.BaseAddress);

        var answer = await client.Upstream.FetchAsync(13, TestContext.Current.CancellationToken);

        Assert.Equal((UpstreamVerdict.Permanent, 302), (answer.Verdict, answer.HttpStatus));
        Assert.Contains("redirects are not followed", answer.Error, StringComparison.Ordinal);
        Assert.Equal([13], _server.Calls.Select(call => call.Id));
    }

    [Fact]
    public async Task ARefusedConnectionIsARetryableFailure()
    {
        // A port that was free a moment ago: nothing listens there now.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await using var client = Client(new Uri($"http://127.0.0.1:{port}"));

        var answer = await client.Upstream.FetchAsync(1, TestContext.Current.CancellationToken);

        Assert.Equal((UpstreamVerdict.Retryable, (int?)null), (answer.Verdict, answer.HttpStatus));
        Assert.Contains("ConnectionError", answer.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConfiguredHeadersAreSentAndTheirValuesAreNeverLogged()
    {
        await using var client = Client(_server.BaseAddress, new()
        {
            ["Upstream:Headers:X-Api-Key"] = ApiKey,
            ["Upstream:PathTemplate"] = "/items/{id}?source=ingestion",
        });

        await client.Upstream.FetchAsync(1, TestContext.Current.CancellationToken);
        await client.Upstream.FetchAsync(4, TestContext.Current.CancellationToken);

        Assert.All(_server.Calls, call => Assert.Equal(ApiKey, call.Headers["X-Api-Key"]));
        Assert.NotEmpty(client.Logs.Lines);
        Assert.DoesNotContain(client.Logs.Lines, line => line.Contains(ApiKey, StringComparison.Ordinal));
    }

    /// <summary>The client as the service builds it from configuration, with every log line kept.</summary>
    private static UpstreamUnderTest Client(Uri baseUrl, Dictionary<string, string?>? settings = null)
    {
        var values = new Dictionary<string, string?> { ["Upstream:Mode"] = "Http", ["Upstream:BaseUrl"] = baseUrl.ToString() };
        foreach (var (key, value) in settings ?? [])
        {
            values[key] = value;
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var logs = new CapturedLogs();
        var services = new ServiceCollection()
            .AddSingleton<IConfiguration>(configuration)
            .AddSingleton(TimeProvider.System)
            .AddLogging(logging => logging.SetMinimumLevel(LogLevel.Trace).AddProvider(logs))
            .AddUpstream(configuration);
        var provider = services.BuildServiceProvider();
        return new UpstreamUnderTest(provider, provider.GetRequiredService<IUpstreamClient>(), logs);
    }

    private sealed record UpstreamUnderTest(ServiceProvider Provider, IUpstreamClient Upstream, CapturedLogs Logs) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Provider.DisposeAsync();
    }
}
