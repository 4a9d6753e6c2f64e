using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace IngestionService.Tests.Infrastructure;

/// <summary>What the fake upstream answers to one call.</summary>
/// <remarks><see cref="BodyDelay"/> sends the headers and the body's first byte, then stalls that long before the rest.</remarks>
public sealed record FakeAnswer(int Status = 200, string? Body = null, string? RetryAfter = null, TimeSpan Delay = default, string? Location = null, TimeSpan BodyDelay = default)
{
    public static FakeAnswer Ok => new();

    public static FakeAnswer Fail(int status, string? retryAfter = null) => new(status, $"status {status}", retryAfter);
}

/// <summary>
/// A real HTTP upstream for the tests: Kestrel on a free loopback port, answering <c>GET /items/{id}</c>
/// as a script says (given the id and how many calls for it came before), and recording every call with
/// the time it arrived and its headers. A 200 without a body of its own answers
/// <c>{"id": id, "data": "upstream"}</c>.
/// </summary>
public sealed class FakeUpstreamServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<int, int> _callsPerId = new();
    private readonly InFlight _inFlight = new();

    private FakeUpstreamServer(WebApplication app) => _app = app;

    public Uri BaseAddress { get; private set; } = null!;

    public ConcurrentQueue<FakeCall> Calls { get; } = new();

    public static async Task<FakeUpstreamServer> StartAsync(Func<int, int, FakeAnswer> script)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeUpstreamServer(app);
        app.MapGet("/items/{id:int}", async (int id, HttpContext context) =>
        {
            server._inFlight.Started();
            try
            {
                await server.AnswerAsync(id, context, script);
            }
            finally
            {
                server._inFlight.Ended();
            }
        });
        await app.StartAsync();
        server.BaseAddress = new Uri(app.Urls.Single());
        return server;
    }

    /// <summary>The most calls the server was answering at one moment.</summary>
    public int MostInFlight => _inFlight.Most;

    private async Task AnswerAsync(int id, HttpContext context, Func<int, int, FakeAnswer> script)
    {
        var before = _callsPerId.AddOrUpdate(id, 1, (_, calls) => calls + 1) - 1;
        Calls.Enqueue(new FakeCall(id, DateTimeOffset.UtcNow, context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase)));
        var answer = script(id, before);
        if (answer.Delay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(answer.Delay, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        context.Response.StatusCode = answer.Status;
        if (answer.RetryAfter is not null)
        {
            context.Response.Headers.RetryAfter = answer.RetryAfter;
        }

        if (answer.Location is not null)
        {
            context.Response.Headers.Location = answer.Location;
        }

        context.Response.ContentType = "application/json";
        var body = answer.Body ?? string.Create(CultureInfo.InvariantCulture, $$"""{"id":{{id}},"data":"upstream"}""");
        try
        {
            if (answer.BodyDelay > TimeSpan.Zero)
            {
                await context.Response.WriteAsync(body[..1], context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await Task.Delay(answer.BodyDelay, context.RequestAborted);
                body = body[1..];
            }

            await context.Response.WriteAsync(body, context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            // The client gave up on the answer.
        }
    }

    public int CallsFor(int id) => Calls.Count(call => call.Id == id);

    /// <summary>The most calls that arrived within any span of <paramref name="span"/> (half-open, like the limiter's).</summary>
    public int MostCallsWithin(TimeSpan span)
    {
        var times = Calls.Select(call => call.ArrivedAt).Order().ToList();
        var most = 0;
        for (int end = 0, start = 0; end < times.Count; end++)
        {
            while (times[start] <= times[end] - span)
            {
                start++;
            }

            most = Math.Max(most, end - start + 1);
        }

        return most;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

public sealed record FakeCall(int Id, DateTimeOffset ArrivedAt, IReadOnlyDictionary<string, string> Headers);
