using System.Text;

namespace IngestionService.Events;

/// <summary>
/// Writes the <c>text/event-stream</c> format (https://html.spec.whatwg.org/multipage/server-sent-events.html)
/// by hand: ASP.NET Core's <c>Results.ServerSentEvents</c> cannot write the comment lines that keep
/// proxies from closing an idle stream, so every frame here is written and flushed as it comes.
/// </summary>
public sealed class SseWriter
{
    private readonly HttpResponse _response;

    private SseWriter(HttpResponse response) => _response = response;

    /// <summary>Starts the stream: the headers that keep it unbuffered and uncached, sent at once.</summary>
    public static async Task<SseWriter> StartAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache, no-store";
        response.Headers["X-Accel-Buffering"] = "no"; // nginx: pass each frame on at once
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
        await response.Body.FlushAsync(context.RequestAborted);
        return new SseWriter(response);
    }

    /// <summary>One event; <paramref name="data"/> is one line of JSON.</summary>
    public Task EventAsync(string? id, string type, string data, CancellationToken cancellationToken)
    {
        var frame = new StringBuilder(data.Length + 64);
        if (id is not null)
        {
            frame.Append("id: ").Append(id).Append('\n');
        }

        frame.Append("event: ").Append(type).Append('\n');
        frame.Append("data: ").Append(data).Append("\n\n");
        return WriteAsync(frame.ToString(), cancellationToken);
    }

    /// <summary>A comment line: receivers ignore it, proxies see traffic.</summary>
    public Task HeartbeatAsync(CancellationToken cancellationToken) => WriteAsync(": heartbeat\n\n", cancellationToken);

    /// <summary>How long a browser waits before reconnecting, once the stream drops.</summary>
    public Task RetryAsync(TimeSpan after, CancellationToken cancellationToken) =>
        WriteAsync($"retry: {(long)after.TotalMilliseconds}\n\n", cancellationToken);

    private async Task WriteAsync(string text, CancellationToken cancellationToken)
    {
        await _response.Body.WriteAsync(Encoding.UTF8.GetBytes(text), cancellationToken);
        await _response.Body.FlushAsync(cancellationToken);
    }
}
