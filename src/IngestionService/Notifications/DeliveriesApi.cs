using IngestionService.Hosting;
using IngestionService.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace IngestionService.Notifications;

/// <summary><c>GET /ingestions/{id}/deliveries</c>: who is told when an ingestion is done, and how each attempt went.</summary>
public static class DeliveriesApi
{
    public static IEndpointRouteBuilder MapDeliveriesApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/ingestions/{ingestionId}/deliveries", GetAsync)
            .WithName("GetDeliveries")
            .WithTags(ApiSections.Notifications)
            .WithSummary("The ingestion's callback and its event's deliveries: every attempt (time, duration, HTTP status or error), the state, and the next attempt while pending.")
            .WithDescription("callback_url is null when nobody is told; events is empty until the ingestion is final (its completed or cancelled event is written in the transaction that makes it so). States: pending, delivered (2xx), given_up (no 2xx within Notifications:MaxAge), stopped (410 Gone).")
            .ProducesProblem(StatusCodes.Status404NotFound);
        return app;
    }

    public static async Task<Results<Ok<IngestionDeliveries>, ProblemHttpResult>> GetAsync(string ingestionId, IOutboxStore outbox, CancellationToken cancellationToken) =>
        Guid.TryParse(ingestionId, out var id) && await outbox.ReadDeliveriesAsync(id, cancellationToken) is { } deliveries
            ? TypedResults.Ok(deliveries)
            : Problems.UnknownIngestion(ingestionId);
}
