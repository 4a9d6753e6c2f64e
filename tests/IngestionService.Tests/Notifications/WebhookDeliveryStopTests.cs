using System.Diagnostics.Metrics;
using IngestionService.Notifications;
using IngestionService.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;

namespace IngestionService.Tests.Notifications;

/// <summary>
/// Stopping the delivery loop while it reads the outbox is not a fault: a host whose start failed (a port
/// in use) stops it without ever having started, and the host reports a cancelled loop as a crash.
/// </summary>
public sealed class WebhookDeliveryStopTests
{
    [Fact]
    public async Task StoppedWhileReadingTheOutboxTheLoopEndsWithoutAFault()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var outbox = new WaitingOutbox();
        using var delivery = new WebhookDelivery(
            outbox,
            new NoClients(),
            new OutboxSignal(),
            new WebhookMetrics(services.GetRequiredService<IMeterFactory>()),
            TimeProvider.System,
            Microsoft.Extensions.Options.Options.Create(new NotificationOptions()),
            new ApplicationLifetime(NullLogger<ApplicationLifetime>.Instance),
            NullLogger<WebhookDelivery>.Instance);

        await delivery.StartAsync(TestContext.Current.CancellationToken);
        await outbox.Reading.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        await delivery.StopAsync(TestContext.Current.CancellationToken);

        Assert.Equal(TaskStatus.RanToCompletion, delivery.ExecuteTask!.Status);
    }

    /// <summary>An outbox whose read waits until it is cancelled, as a read in flight at the stop does.</summary>
    private sealed class WaitingOutbox : IOutboxStore
    {
        public TaskCompletionSource Reading { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<IReadOnlyList<OutboxEvent>> TakeDueAsync(int max, TimeSpan lease, CancellationToken cancellationToken)
        {
            Reading.TrySetResult();
            await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
            return [];
        }

        public Task RecordAttemptAsync(OutboxEvent outboxEvent, DeliveryAttempt attempt, DeliveryNext outcome, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("Nothing was taken, so nothing is recorded.");

        public Task<TimeSpan?> NextDueInAsync(CancellationToken cancellationToken) => Task.FromResult<TimeSpan?>(null);

        public Task<IngestionDeliveries?> ReadDeliveriesAsync(Guid ingestionId, CancellationToken cancellationToken) => Task.FromResult<IngestionDeliveries?>(null);
    }

    /// <summary>Nothing is delivered here, so no client is ever asked for.</summary>
    private sealed class NoClients : IHttpClientFactory
    {
        public HttpClient CreateClient(string name) => throw new InvalidOperationException("Nothing is delivered in this test.");
    }
}
