using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;
using OpenTelemetry.Trace;

namespace IngestionService.Tests.Api;

/// <summary>
/// Traces end to end, captured with OpenTelemetry's in-memory exporter: the submission's span, the window's
/// (a trace of its own, linked to the submission's), each upstream call under the window with the HTTP
/// client's span under it and <c>traceparent</c> at a real HTTP upstream, and the webhook delivery's.
/// </summary>
public sealed class TracingTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task TheWindowIsLinkedToTheSubmissionAndEachCallCarriesItsTraceToTheUpstreamAndTheWebhookIsLinkedToo(string store)
    {
        await using var upstream = await FakeUpstreamServer.StartAsync((_, _) => FakeAnswer.Ok);
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var database = store == "postgres" ? await TempPostgresDatabase.CreateAsync() : null;
        var spans = new LockedCollection<Activity>();
        Dictionary<string, string?> settings = new(WebhookTests.Settings())
        {
            ["Tracing:Enabled"] = "true",
            ["Upstream:Mode"] = "Http",
            ["Upstream:BaseUrl"] = upstream.BaseAddress.ToString(),
        };
        if (database is not null)
        {
            (settings["Storage:Provider"], settings["Storage:ConnectionString"]) = ("Postgres", database.ConnectionString);
        }

        await using var app = new IngestionApp(settings)
        {
            TestServices = services => services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(spans)),
        };

        var id = await WebhookTests.SubmitAsync(app.Client, receiver.HookUrl, 1, 2, 3, 4);
        await WebhookTests.DeliveredAsync(app, id);
        // Spans of every service this test process runs pass through the exporter: only this one's are looked at.
        bool Ours(Activity span) => (span.GetTagItem("ingestion.id") ?? span.GetTagItem("ingestion.window.ingestions")) is string tag && tag.Contains(id.ToString(), StringComparison.Ordinal);
        await Eventually.HoldsAsync(() => spans.Snapshot().Count(s => s.DisplayName == "webhook delivery" && Ours(s)) == 1, Deadline, "the delivery's span to end");

        var all = spans.Snapshot();
        var submission = Assert.Single(all, s => s.Kind == ActivityKind.Server && s.GetTagItem("ingestion.id") as string == id.ToString());
        Assert.Equal("POST /ingest", submission.DisplayName);
        var windows = all.Where(s => s.DisplayName == "window" && Ours(s)).ToList();
        Assert.Equal(2, windows.Count); // 1, 2, 3 and 4
        Assert.All(windows, window =>
        {
            Assert.Equal(default, window.ParentSpanId); // a root
            Assert.Contains(window.Links, link => link.Context.TraceId == submission.TraceId && link.Context.SpanId == submission.SpanId);
        });
        var calls = all.Where(s => s.DisplayName == "upstream call" && windows.Any(window => window.SpanId == s.ParentSpanId)).ToList();
        Assert.Equal([1, 2, 3, 4], calls.Select(call => (int)call.GetTagItem("ingestion.upstream.id")!).Order());
        var clientSpans = all.Where(s => s.Kind == ActivityKind.Client && s.Source.Name == "System.Net.Http" && calls.Any(c => c.SpanId == s.ParentSpanId)).ToList();
        Assert.Equal(4, clientSpans.Count);

        // The upstream saw each call's trace: the window's trace id, and the HTTP client span as the parent.
        Assert.Equal(4, upstream.Calls.Count);
        Assert.All(upstream.Calls, call =>
        {
            Assert.True(ActivityContext.TryParse(call.Headers["traceparent"], null, out var seen), call.Headers.GetValueOrDefault("traceparent"));
            Assert.Contains(clientSpans, span => span.TraceId == seen.TraceId && span.SpanId == seen.SpanId);
        });

        var delivery = Assert.Single(all, s => s.DisplayName == "webhook delivery" && Ours(s));
        Assert.Contains(delivery.Links, link => link.Context.TraceId == submission.TraceId);
        Assert.Equal(("Delivered", $"msg_{id:N}"), (delivery.GetTagItem("ingestion.webhook.outcome"), delivery.GetTagItem("ingestion.webhook.id")));
        Assert.Contains(all, s => s.Kind == ActivityKind.Client && s.ParentSpanId == delivery.SpanId);
    }

    [Fact]
    public async Task WithoutAnExporterOrTracingEnabledNoTraceContextIsStored()
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "00:00:00.100", ["Upstream:SimulatedDelay"] = "00:00:00" });

        var id = await app.SubmitAsync("HIGH", 1, 2, 3);
        await Eventually.ReturnsAsync(() => app.StatusAsync(id), s => s.GetProperty("status").GetString() == "completed", Deadline, "the ingestion to complete");

        Assert.Equal(0, app.Database.Scalar("SELECT count(*) FROM ingestions WHERE trace_parent IS NOT NULL"));
    }
}

/// <summary>A collection the exporter may add to from any thread while the test reads it.</summary>
internal sealed class LockedCollection<T> : System.Collections.ObjectModel.Collection<T>
{
    private readonly Lock _gate = new();

    public T[] Snapshot()
    {
        lock (_gate)
        {
            return [.. this];
        }
    }

    protected override void InsertItem(int index, T item)
    {
        lock (_gate)
        {
            base.InsertItem(index, item);
        }
    }
}
