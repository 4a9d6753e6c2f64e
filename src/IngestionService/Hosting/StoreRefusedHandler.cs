using System.Globalization;
using IngestionService.Storage;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace IngestionService.Hosting;

/// <summary>
/// A request that failed because the store refuses writes (<see cref="StoreWrites"/>: a full disk, a
/// read-only database) answers 503 with a Retry-After and a problem that says so, not a 500: the request
/// was fine, its transaction was rolled back, and the same request will work once there is space.
/// </summary>
internal sealed class StoreRefusedHandler(StoreWrites writes, IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (!writes.Refused(exception))
        {
            return false;
        }

        httpContext.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        httpContext.Response.Headers.RetryAfter = ((int)StoreWrites.RetryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = new ProblemDetails
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "The store is full",
                Type = ProblemTypes.For(StatusCodes.Status503ServiceUnavailable),
                Detail = $"Nothing of this request was stored: {StoreWrites.Describe(exception)}. Send it again after Retry-After; /health/ready says when writes work again.",
            },
        });
    }
}
