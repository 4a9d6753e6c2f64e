using System.Globalization;
using IngestionService.Storage;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace IngestionService.Hosting;

/// <summary>
/// A request that failed because the store refuses writes (<see cref="StoreWrites"/>: a full disk, a
/// read-only database) answers 503 with a Retry-After and a problem that says so, not a 500: the request
/// was fine, its transaction was rolled back, and the same request will work once there is space. One
/// that met a cut database session (a restart, a failover: <see cref="StoreWrites.DescribeUnavailable"/>)
/// answers 503 too, with a shorter Retry-After: the next request gets a fresh session.
/// </summary>
internal sealed class StoreRefusedHandler(StoreWrites writes, IProblemDetailsService problems) : IExceptionHandler
{
    private static readonly TimeSpan UnavailableRetryAfter = TimeSpan.FromSeconds(1);

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (writes.Refused(exception))
        {
            return await WriteAsync(httpContext, exception, StoreWrites.RetryAfter, "The store is full",
                $"Nothing of this request was stored: {StoreWrites.Describe(exception)}. Send it again after Retry-After; /health/ready says when writes work again.");
        }

        if (StoreWrites.DescribeUnavailable(exception) is { } unavailable)
        {
            return await WriteAsync(httpContext, exception, UnavailableRetryAfter, "The store is unavailable",
                $"The request met a cut database session: {unavailable}. It may or may not have been stored: send it again after Retry-After, with the same Idempotency-Key to have it stored once.");
        }

        return false;
    }

    private async ValueTask<bool> WriteAsync(HttpContext httpContext, Exception exception, TimeSpan retryAfter, string title, string detail)
    {
        httpContext.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        httpContext.Response.Headers.RetryAfter = ((int)retryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = new ProblemDetails
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = title,
                Type = ProblemTypes.For(StatusCodes.Status503ServiceUnavailable),
                Detail = detail,
            },
        });
    }
}
