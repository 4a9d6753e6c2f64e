using System.Diagnostics;
using OpenTelemetry.Trace;

namespace IngestionService.Observability;

/// <summary>
/// Traces beside the metrics: a span per request (ASP.NET Core's), per window (linked to the traces of the
/// requests that submitted its ids), per upstream call (with the <c>HttpClient</c>'s span under it, so
/// <c>traceparent</c> reaches a real upstream) and per webhook delivery (linked to its submission).
/// On when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set (exported there over OTLP, as the OpenTelemetry
/// variables say), or with <c>Tracing:Enabled=true</c>; off otherwise, and then no span is made at all.
/// </summary>
public static class Tracing
{
    public const string SourceName = IngestionMetrics.MeterName;

    public static readonly ActivitySource Source = new(SourceName);

    public static bool IsEnabled(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return configuration.GetValue<bool?>("Tracing:Enabled") ?? !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
    }

    public static IServiceCollection AddTracing(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        if (!IsEnabled(configuration))
        {
            return services;
        }

        services.AddOpenTelemetry().WithTracing(tracing =>
        {
            tracing.AddSource(SourceName)
                .AddAspNetCoreInstrumentation(options => options.Filter = context =>
                    // Probes, scrapes and the dashboard's files are not what anyone traces.
                    !context.Request.Path.StartsWithSegments("/metrics") && !context.Request.Path.StartsWithSegments("/health")
                    && !context.Request.Path.StartsWithSegments("/events"))
                .AddHttpClientInstrumentation();
            if (!string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
            {
                tracing.AddOtlpExporter();
            }
        });
        return services;
    }

    /// <summary>Ends an upstream call's span with what the call came to.</summary>
    public static void EndCall(Activity? call, Task<Upstream.UpstreamAnswer> fetch)
    {
        ArgumentNullException.ThrowIfNull(fetch);
        if (call is null)
        {
            return;
        }

        if (fetch.IsCompletedSuccessfully)
        {
            var answer = fetch.Result;
            call.SetTag("ingestion.upstream.verdict", answer.Verdict.ToString());
            if (answer.Verdict != Upstream.UpstreamVerdict.Succeeded)
            {
                call.SetStatus(ActivityStatusCode.Error, answer.Error);
            }
        }
        else
        {
            call.SetStatus(ActivityStatusCode.Error, fetch.IsCanceled ? "cancelled" : fetch.Exception?.GetBaseException().Message);
        }

        call.Stop();
    }

    /// <summary>The links to the traces of the requests behind these trace contexts (W3C <c>traceparent</c>s); unreadable ones are left out.</summary>
    public static IEnumerable<ActivityLink> LinksTo(IEnumerable<string?> traceParents) =>
        traceParents
            .Where(parent => parent is not null)
            .Select(parent => ActivityContext.TryParse(parent, null, out var context) ? context : default)
            .Where(context => context != default)
            .Distinct()
            .Select(context => new ActivityLink(context));
}

/// <summary>
/// The span of a window: a trace of its own (the window serves many requests), linked to the trace of
/// every request whose ids it took, read from their ingestions only while spans are being recorded.
/// </summary>
public sealed class WindowTracing(Storage.IQueueReader reader)
{
    /// <summary>
    /// The submissions' trace contexts, or null when no span is recorded. Best effort: a store that cannot
    /// answer now costs the span its links, never the window (which is claimed and must run or go back).
    /// </summary>
    public async Task<IReadOnlyList<string>?> ParentsAsync(Storage.ClaimedWindow window)
    {
        ArgumentNullException.ThrowIfNull(window);
        if (!Tracing.Source.HasListeners())
        {
            return null;
        }

        try
        {
            return await reader.GetTraceParentsAsync([.. window.Items.Select(item => item.IngestionId).Distinct()], CancellationToken.None);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            return [];
        }
    }

    /// <summary>
    /// Starts the span, current from here in the caller (so not in an async method of its own: a change of
    /// <see cref="Activity.Current"/> there would not reach the caller).
    /// </summary>
    public static Activity? Start(Storage.ClaimedWindow window, IReadOnlyList<string>? parents)
    {
        ArgumentNullException.ThrowIfNull(window);
        if (parents is null)
        {
            return null;
        }

        Activity.Current = null; // a root: the window is nobody's child
        return Tracing.Source.StartActivity("window", ActivityKind.Internal, parentContext: default, links: Tracing.LinksTo(parents))?
            .SetTag("ingestion.window.seq", window.Seq)
            .SetTag("ingestion.window.ids", window.Items.Count)
            .SetTag("ingestion.window.ingestions", string.Join(',', window.Items.Select(item => item.IngestionId).Distinct()));
    }
}
