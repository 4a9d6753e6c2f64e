using System.Diagnostics;
using System.Net.Http.Headers;
using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Notifications;

/// <summary>
/// Delivers the outbox's events: takes the due ones (leased, so one instance delivers each), POSTs each
/// to its callback signed the Standard Webhooks way, and stores the attempt and what it came to
/// (<see cref="DeliveryRule"/>). At least once: an event is delivered again if its attempt's answer was
/// lost or its instance died before storing it, always with the same <c>webhook-id</c> and body.
/// Deliveries never touch the upstream or its limiter.
/// </summary>
public sealed partial class WebhookDelivery(
    IOutboxStore outbox,
    IHttpClientFactory clients,
    OutboxSignal signal,
    WebhookMetrics metrics,
    TimeProvider clock,
    IOptions<NotificationOptions> options,
    IHostApplicationLifetime lifetime,
    ILogger<WebhookDelivery> logger) : BackgroundService
{
    public const string ClientName = "webhooks";
    private static readonly TimeSpan FailureBackoff = TimeSpan.FromSeconds(1);

    private readonly NotificationOptions _options = options.Value;
    private readonly WebhookSigner? _signer = options.Value.SigningSecret is { } secret && WebhookSigner.TryDecodeSecret(secret, out var key) ? new WebhookSigner(key) : null;

    /// <summary>
    /// Long enough for an attempt to end (its timeout, twice over for a slow start) and be stored; an event
    /// whose instance died mid-attempt is due again after it (on the embedded store, at the next start).
    /// </summary>
    private TimeSpan Lease => (_options.Timeout * 2) + TimeSpan.FromSeconds(5);

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        if (_signer is null)
        {
            // Once it listens: a start that fails says only why.
            lifetime.ApplicationStarted.Register(() => LogUnsigned(logger));
        }

        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var running = new List<Task>();
        var wakeUp = signal.WaitAsync(CancellationToken.None);
        while (!stoppingToken.IsCancellationRequested)
        {
            running.RemoveAll(task => task.IsCompleted);
            var free = _options.MaxConcurrentDeliveries - running.Count;
            var wait = _options.PollInterval; // when full: until one is done, woken, or the poll
            try
            {
                if (free > 0)
                {
                    var due = await outbox.TakeDueAsync(free, Lease, stoppingToken);
                    running.AddRange(due.Select(outboxEvent => DeliverOrLogAsync(outboxEvent, stoppingToken)));
                    if (due.Count < free && await outbox.NextDueInAsync(stoppingToken) is { } next && next < wait)
                    {
                        wait = next;
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // Stopping, perhaps before the host started at all (a port in use): not a failure to report.
                break;
            }
            catch (Exception exception)
            {
                LogOutboxFailed(logger, exception, FailureBackoff);
                wait = FailureBackoff;
            }

            var waits = new List<Task> { wakeUp, Task.Delay(wait, clock, stoppingToken) };
            if (running.Count == _options.MaxConcurrentDeliveries)
            {
                waits.Add(Task.WhenAny(running));
            }

            await Task.WhenAny(waits);
            if (wakeUp.IsCompleted)
            {
                wakeUp = signal.WaitAsync(CancellationToken.None);
            }
        }

        await Task.WhenAll(running);
    }

    /// <summary>An attempt that fails in a way nobody foresaw is logged; its lease runs out and it is made again.</summary>
    private async Task DeliverOrLogAsync(OutboxEvent outboxEvent, CancellationToken stoppingToken)
    {
        try
        {
            await DeliverAsync(outboxEvent, stoppingToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
        {
            LogDeliveryFailed(logger, exception, outboxEvent.MessageId);
        }
    }

    /// <summary>One attempt: signed POST, no redirect followed, at most <see cref="NotificationOptions.Timeout"/>; then its record.</summary>
    private async Task DeliverAsync(OutboxEvent outboxEvent, CancellationToken stoppingToken)
    {
        await Task.Yield();
        // A trace of its own, linked to the submission's; the HTTP client's span (and traceparent) go under it.
        using var span = Observability.Tracing.Source.StartActivity("webhook delivery", ActivityKind.Producer, parentContext: default,
            links: Observability.Tracing.LinksTo([outboxEvent.TraceParent]));
        span?.SetTag("ingestion.webhook.id", outboxEvent.MessageId).SetTag("ingestion.id", outboxEvent.IngestionId.ToString())
            .SetTag("ingestion.webhook.attempt", outboxEvent.Attempts + 1);
        var body = WebhookPayload.For(outboxEvent).ToUtf8Json();
        var startedAt = clock.GetUtcNow();
        var started = Stopwatch.GetTimestamp();
        int? status = null;
        string? error = null;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
        {
            timeout.CancelAfter(_options.Timeout);
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, outboxEvent.CallbackUrl) { Content = new ByteArrayContent(body) };
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                var timestamp = startedAt.ToUnixTimeSeconds();
                request.Headers.Add("webhook-id", outboxEvent.MessageId);
                request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
                if (_signer is not null)
                {
                    request.Headers.Add("webhook-signature", _signer.Sign(outboxEvent.MessageId, timestamp, body));
                }

                using var response = await clients.CreateClient(ClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                status = (int)response.StatusCode;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return; // shutting down: the lease runs out and the event is due again, here after a restart or elsewhere
            }
            catch (OperationCanceledException)
            {
                error = $"no answer within Notifications:Timeout ({_options.Timeout})";
            }
            catch (HttpRequestException exception)
            {
                error = exception.InnerException is CallbackRefusedException refused ? refused.Message : exception.Message;
            }
        }

        var duration = Stopwatch.GetElapsedTime(started);
        var attempts = outboxEvent.Attempts + 1;
        var next = DeliveryRule.Decide(attempts, status, outboxEvent.Age + (clock.GetUtcNow() - startedAt), _options, Random.Shared.NextDouble());
        try
        {
            await outbox.RecordAttemptAsync(outboxEvent, new DeliveryAttempt(startedAt, duration, status, error), next, CancellationToken.None);
        }
        catch (Exception exception)
        {
            // The lease runs out and the event is attempted again: at least once, never lost.
            LogRecordFailed(logger, exception, outboxEvent.MessageId);
            return;
        }

        metrics.Attempted(next.State);
        span?.SetTag("ingestion.webhook.outcome", next.State.ToString());
        if (next.State != DeliveryState.Delivered)
        {
            span?.SetStatus(ActivityStatusCode.Error, status is { } failed ? $"HTTP {failed}" : error);
        }

        var answer = status is { } code ? $"HTTP {code}" : error;
        if (next.State == DeliveryState.Pending)
        {
            LogRetrying(logger, outboxEvent.MessageId, outboxEvent.IngestionId, attempts, answer, next.RetryIn);
        }
        else
        {
            LogDone(logger, outboxEvent.MessageId, outboxEvent.IngestionId, attempts, next.State, answer);
        }
    }

    [LoggerMessage(EventId = Observability.LogEvents.WebhooksUnsigned, Level = LogLevel.Warning, Message = "Notifications:SigningSecret is not set: webhook deliveries go unsigned, and receivers cannot tell them from forgeries")]
    private static partial void LogUnsigned(ILogger logger);

    [LoggerMessage(EventId = Observability.LogEvents.OutboxFailed, Level = LogLevel.Error, Message = "The webhook outbox could not be read; trying again in {Backoff}")]
    private static partial void LogOutboxFailed(ILogger logger, Exception exception, TimeSpan backoff);

    [LoggerMessage(EventId = Observability.LogEvents.DeliveryRecordFailed, Level = LogLevel.Error, Message = "Webhook {WebhookId}: the attempt could not be stored; it is made again once its lease runs out")]
    private static partial void LogRecordFailed(ILogger logger, Exception exception, string webhookId);

    [LoggerMessage(EventId = Observability.LogEvents.DeliveryFailed, Level = LogLevel.Error, Message = "Webhook {WebhookId}: the attempt failed unexpectedly; it is made again once its lease runs out")]
    private static partial void LogDeliveryFailed(ILogger logger, Exception exception, string webhookId);

    [LoggerMessage(EventId = Observability.LogEvents.DeliveryRetrying, Level = LogLevel.Warning, Message = "Webhook {WebhookId} for ingestion {IngestionId}: attempt {Attempt} got {Answer}; next attempt in {RetryIn}")]
    private static partial void LogRetrying(ILogger logger, string webhookId, Guid ingestionId, int attempt, string? answer, TimeSpan retryIn);

    [LoggerMessage(EventId = Observability.LogEvents.DeliveryDone, Level = LogLevel.Information, Message = "Webhook {WebhookId} for ingestion {IngestionId}: {State} after {Attempt} attempts (last answer {Answer})")]
    private static partial void LogDone(ILogger logger, string webhookId, Guid ingestionId, int attempt, DeliveryState state, string? answer);
}
