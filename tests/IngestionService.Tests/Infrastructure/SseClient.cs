using System.Text;

namespace IngestionService.Tests.Infrastructure;

/// <summary>One frame of a server-sent event stream: an event (id, type, data), or a comment.</summary>
public sealed record SseFrame(string? Id, string? Type, string? Data, string? Comment = null);

/// <summary>
/// Reads a <c>text/event-stream</c> as the HTML specification says a browser does: lines up to a blank
/// one make a frame; <c>id</c>, <c>event</c> and <c>data</c> fields, and <c>:</c> comments.
/// </summary>
public sealed class SseClient : IAsyncDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private SseClient(HttpResponseMessage response, Stream body)
    {
        _response = response;
        _reader = new StreamReader(body, Encoding.UTF8);
    }

    public HttpResponseMessage Response => _response;

    public static async Task<SseClient> OpenAsync(HttpClient client, string path, string? lastEventId = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        return new SseClient(response, await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken));
    }

    /// <summary>The next frame, or null once the server closed the stream; throws past <paramref name="timeout"/>.</summary>
    public async Task<SseFrame?> NextAsync(TimeSpan timeout)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(timeout);
        string? id = null, type = null, comment = null;
        StringBuilder? data = null;
        while (true)
        {
            string? line;
            try
            {
                line = await _reader.ReadLineAsync(deadline.Token);
            }
            catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"No complete event within {timeout}.");
            }

            if (line is null)
            {
                return null;
            }

            if (line.Length == 0)
            {
                if (id is null && type is null && data is null && comment is null)
                {
                    continue;
                }

                return new SseFrame(id, type, data?.ToString(), comment);
            }

            if (line.StartsWith(':'))
            {
                comment = line[1..].Trim();
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var (field, value) = colon < 0 ? (line, "") : (line[..colon], line[(colon + 1)..].TrimStart(' '));
            switch (field)
            {
                case "id": id = value; break;
                case "event": type = value; break;
                case "data": (data ??= new StringBuilder()).Append(data.Length > 0 ? "\n" : "").Append(value); break;
                case "retry": break;
            }
        }
    }

    /// <summary>Events (comments skipped) until one of <paramref name="type"/>, that one included, or the end of the stream.</summary>
    public async Task<List<SseFrame>> UntilAsync(string type, TimeSpan timeout)
    {
        var frames = new List<SseFrame>();
        while (await NextAsync(timeout) is { } frame)
        {
            if (frame.Comment is not null && frame.Type is null)
            {
                continue;
            }

            frames.Add(frame);
            if (frame.Type == type)
            {
                break;
            }
        }

        return frames;
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _response.Dispose();
        return ValueTask.CompletedTask;
    }
}
