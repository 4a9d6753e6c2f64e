using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StandardWebhooks;
using StandardWebhooks.Diagnostics;

namespace IngestionService.Tests.Infrastructure;

/// <summary>What the receiver answers to one delivery: a status, after a delay (longer than the sender's timeout: no answer in time).</summary>
public sealed record HookAnswer(int Status = 200, TimeSpan Delay = default);

/// <summary>One delivery as it arrived: its Standard Webhooks headers, its body, and whether the signature verified.</summary>
public sealed record HookDelivery(int Number, DateTimeOffset ArrivedAt, string? Id, string? Timestamp, string? Signature, string Body, bool Verified, string? VerifyError);

/// <summary>
/// A webhook receiver for the tests: Kestrel on a free loopback port, accepting <c>POST /hook</c>, answering
/// each delivery as a script says (given its number, from 1), and verifying every signature with the
/// Standard Webhooks library (codefactors/StandardWebhooks, not the service's own code).
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    public const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    private readonly WebApplication _app;
    private int _count;

    private WebhookReceiver(WebApplication app) => _app = app;

    public Uri HookUrl { get; private set; } = null!;

    public ConcurrentQueue<HookDelivery> Deliveries { get; } = new();

    public static async Task<WebhookReceiver> StartAsync(Func<int, HookAnswer>? script = null)
    {
        script ??= _ => new HookAnswer();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        var verifier = new StandardWebhook(Secret);
        app.MapPost("/hook", async (HttpContext context) =>
        {
            var number = Interlocked.Increment(ref receiver._count);
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            string? error = null;
            try
            {
                verifier.Verify(body, context.Request.Headers);
            }
            catch (WebhookVerificationException exception)
            {
                error = exception.Message;
            }

            var headers = context.Request.Headers;
            receiver.Deliveries.Enqueue(new HookDelivery(number, DateTimeOffset.UtcNow, headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"], body, error is null, error));
            var answer = script(number);
            if (answer.Delay > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(answer.Delay, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    return; // the sender gave up
                }
            }

            context.Response.StatusCode = answer.Status;
        });
        await app.StartAsync();
        receiver.HookUrl = new Uri(new Uri(app.Urls.Single()), "/hook");
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
