using IngestionService.Hosting;
using IngestionService.Ingest;
using IngestionService.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace IngestionService.Dispatch;

/// <summary>The window log: which ids each window took, when it started and finished.</summary>
public static class WindowLogApi
{
    public const int DefaultLimit = 30;
    public const int MaxLimit = ListLimit.Max;

    public static IEndpointRouteBuilder MapWindowLogApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/windows", GetWindowsAsync)
            .WithName("GetWindows")
            .WithSummary("The newest windows, newest first: their ids, ingestions, start and finish.");
        return app;
    }

    public static async Task<Results<Ok<WindowLog>, ValidationProblem>> GetWindowsAsync(
        IIngestionStore store,
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
            [.. window.Items.Select(item => new WindowItemView(item.IngestionId, item.Priority, item.FirstPosition, item.Ids))],
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

public sealed record WindowItemView(Guid IngestionId, Priority Priority, int FirstPosition, int[] Ids);
