using System.Diagnostics;
using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Storage;
using IngestionService.Upstream;

namespace IngestionService.Dispatch;

/// <summary>The dispatcher's calls to the upstream, and its log lines.</summary>
public sealed partial class Dispatcher
{
    /// <summary>
    /// The upstream's own task, with the metrics and the call's span taken on the side: awaiting a wrapper
    /// would complete a moment after the fetch itself, and the fake-clock tests read completion straight off
    /// the task. The span is current while the call starts, so an HTTP client's span (and the
    /// <c>traceparent</c> it sends) goes under it, then the window's span is current again.
    /// </summary>
    private Task<UpstreamAnswer> FetchAsync(int id, CancellationToken cancellationToken)
    {
        var window = Activity.Current;
        var call = Tracing.Source.StartActivity("upstream call")?.SetTag("ingestion.upstream.id", id);
        Task<UpstreamAnswer> fetch;
        var started = clock.GetTimestamp();
        try
        {
            metrics?.FetchStarted();
            fetch = upstream.FetchAsync(id, cancellationToken);
        }
        catch (Exception exception)
        {
            fetch = Task.FromException<UpstreamAnswer>(exception); // counted as a failed call, its span ended with it
        }
        finally
        {
            if (call is not null)
            {
                Activity.Current = window;
            }
        }

        if (metrics is not null || call is not null)
        {
            fetch.ContinueWith(
                (task, state) =>
                {
                    metrics?.FetchFinished(clock.GetElapsedTime(started));
                    Tracing.EndCall(call, task);
                },
                null,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        return fetch;
    }

    /// <summary>A window's ids for the log line, formatted only if the line is written.</summary>
    private readonly record struct WindowItemsText(IReadOnlyList<WindowItem> Items)
    {
        public override string ToString() =>
            string.Join(", ", Items.Select(item => $"{item.Id} ({item.Priority.ToWire()} {item.IngestionId}#{item.Position})"));
    }

    [LoggerMessage(EventId = LogEvents.WindowStarted, Level = LogLevel.Debug, Message = "Window {WindowSeq} started at {StartedAt:yyyy-MM-ddTHH:mm:ss.fffZ}: {Items}")]
    private static partial void LogWindowStarted(ILogger logger, long windowSeq, DateTimeOffset startedAt, WindowItemsText items);

    [LoggerMessage(EventId = LogEvents.WindowCompleted, Level = LogLevel.Information, Message = "Window {WindowSeq} started {StartedAt:yyyy-MM-ddTHH:mm:ss.fffZ} finished {FinishedAt:yyyy-MM-ddTHH:mm:ss.fffZ}: {Items}")]
    private static partial void LogWindowCompleted(ILogger logger, long windowSeq, DateTimeOffset startedAt, DateTimeOffset finishedAt, WindowItemsText items);

    [LoggerMessage(EventId = LogEvents.FetchThrew, Level = LogLevel.Error, Message = "The upstream client threw for id {Id} in window {WindowSeq}; counted as a failed call")]
    private static partial void LogFetchThrew(ILogger logger, Exception exception, int id, long windowSeq);

    [LoggerMessage(EventId = LogEvents.FetchFailed, Level = LogLevel.Warning, Message = "Id {Id} in window {WindowSeq}: {State} after attempt {Attempts}: {Error}")]
    private static partial void LogFetchFailed(ILogger logger, int id, long windowSeq, FetchState state, string? error, int attempts);

    [LoggerMessage(EventId = LogEvents.CompleteFailed, Level = LogLevel.Error, Message = "The answers of window {WindowSeq} could not be stored; its ids go back to the queue")]
    private static partial void LogCompleteFailed(ILogger logger, Exception exception, long windowSeq);

    [LoggerMessage(EventId = LogEvents.HandBackFailed, Level = LogLevel.Error, Message = "Window {WindowSeq} could not be handed back to the queue; trying again")]
    private static partial void LogHandBackFailed(ILogger logger, Exception exception, long windowSeq);

    [LoggerMessage(EventId = LogEvents.UpstreamPaused, Level = LogLevel.Warning, Message = "The upstream throttled window {WindowSeq}: no window starts before {PausedUntil:yyyy-MM-ddTHH:mm:ss.fffZ}")]
    private static partial void LogUpstreamPaused(ILogger logger, long windowSeq, DateTimeOffset pausedUntil);

    [LoggerMessage(EventId = LogEvents.IdsExpired, Level = LogLevel.Information, Message = "{IdCount} ids expired unstarted: their ingestions' not_after had passed, so no call is spent on them")]
    private static partial void LogExpired(ILogger logger, int idCount);

    [LoggerMessage(EventId = LogEvents.DispatchFailed, Level = LogLevel.Error, Message = "Dispatching failed; trying again in {Backoff}")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception, TimeSpan backoff);
}
