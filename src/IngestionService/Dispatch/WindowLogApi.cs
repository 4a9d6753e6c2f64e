using IngestionService.Hosting;
using IngestionService.Ingest;
using IngestionService.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace IngestionService.Dispatch;

/// <summary>The window log: which ids each window took, when it started and finished.</summary>
public static class WindowLogApi
{
    public const int DefaultLimit = 30;

    public static IEndpointRouteBuilder MapWindowLogApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/windows", GetWindowsAsync)
            .WithName("GetWindows")
            .WithTags(ApiSections.QueueAndWindows)
            .WithSummary("The newest windows, newest first: their ids, ingestions, start and finish.");
        return app;
    }

    public static async Task<Results<Ok<WindowLog>, ValidationProblem>> GetWindowsAsync(
        IQueueReader store,
        CancellationToken cancellationToken,
        string? limit = null)
    {
        if (!ListLimit.TryParse(limit, DefaultLimit, out var count, out var problem))
        {
            return problem;
        }

        var windows = await store.GetRecentWindowsAsync(count, cancellationToken);
        return TypedResults.Ok(new WindowLog([.. windows.Select(window => new WindowView(
            window.Seq,
            window.StartedAt.UtcDateTime,
            window.FinishedAt?.UtcDateTime,
            window.State.ToString().ToLowerInvariant(),
            [.. window.Items.Select(item => new WindowItemView(item.IngestionId, item.Priority, item.FirstPosition, item.Ids, item.Marks))],
            window.PausedUntil?.UtcDateTime))]));
    }
}

public sealed record WindowLog(IReadOnlyList<WindowView> Windows);

/// <summary>One window; <see cref="PausedUntil"/> (absent otherwise) when the upstream's answers to it paused every window until then.</summary>
public sealed record WindowView(
    long Seq,
    DateTime StartedAt,
    DateTime? FinishedAt,
    string State,
    IReadOnlyList<WindowItemView> Items,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] DateTime? PausedUntil = null);

/// <summary>The ids one window took from one ingestion.</summary>
/// <param name="IngestionId">The ingestion they belong to.</param>
/// <param name="Priority">Its priority when the window took them.</param>
/// <param name="FirstPosition">The position of the first of them in the ingestion's ids (0-based); the others follow it.</param>
/// <param name="Ids">The ids, in the ingestion's order.</param>
/// <param name="Outcomes">Once the window completed, what each call came to, in the order of <see cref="Ids"/>: succeeded, retrying (failed, called again later), failed (for good) or throttled (refused for quota, called again after the pause). Absent while the window runs, when it was abandoned, and for windows stored before outcomes were kept.</param>
public sealed record WindowItemView(
    Guid IngestionId,
    Priority Priority,
    int FirstPosition,
    int[] Ids,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<CallMark>? Outcomes = null);
