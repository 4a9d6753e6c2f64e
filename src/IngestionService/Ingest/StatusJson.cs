using System.Buffers;
using System.Buffers.Text;
using IngestionService.Storage;
using Microsoft.AspNetCore.Http.Metadata;

namespace IngestionService.Ingest;

/// <summary>
/// Writes the status of an ingestion as JSON straight into the response, byte by byte, from its snapshot. A status of
/// a few thousand batches is the largest answer the service gives, and writing it through
/// <c>JsonSerializer</c> (or even <c>Utf8JsonWriter</c>) would cost more than everything else on
/// that request. The shape is exactly what <c>JsonSerializer</c> would write for the record with
/// snake_case names; a test holds the two together. Times are written with millisecond precision.
/// </summary>
public static class StatusJson
{
    /// <summary>Room for one batch without its ids: the names, a UUID, a status, three times and a failure count (about 220 bytes).</summary>
    private const int BatchBytesWithoutIds = 320;

    /// <summary>Room for one id and its comma: ten digits at most (1 000 000 007).</summary>
    private const int BytesPerId = 11;

    public static void Write(IBufferWriter<byte> output, IngestionSnapshot snapshot, WaitEstimate? estimate = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(snapshot);
        var progress = StatusReport.Derive(snapshot, estimate);
        var span = output.GetSpan(768); // the fields before the batches: under 600 bytes with every optional one
        var n = 0;
        Append(span, ref n, "{\"ingestion_id\":\""u8);
        snapshot.Id.TryFormat(span[n..], out var written);
        n += written;
        Append(span, ref n, "\",\"status\":\""u8);
        Append(span, ref n, Name(progress.Overall));
        Append(span, ref n, "\",\"priority\":\""u8);
        Append(span, ref n, snapshot.Priority switch { Priority.High => "HIGH"u8, Priority.Medium => "MEDIUM"u8, _ => "LOW"u8 });
        Append(span, ref n, "\",\"created_at\":"u8);
        AppendTime(span, ref n, snapshot.CreatedAt.UtcDateTime);
        Append(span, ref n, ",\"total_ids\":"u8);
        AppendNumber(span, ref n, snapshot.Ids.Length);
        Append(span, ref n, ",\"started_ids\":"u8);
        AppendNumber(span, ref n, snapshot.Started);
        Append(span, ref n, ",\"completed_ids\":"u8);
        AppendNumber(span, ref n, snapshot.Completed);
        Append(span, ref n, ",\"failed_ids\":"u8);
        AppendNumber(span, ref n, snapshot.Failed.Count);
        Append(span, ref n, ",\"ids_ahead\":"u8);
        if (progress.IdsAhead is { } ahead)
        {
            Utf8Formatter.TryFormat(ahead, span[n..], out written);
            n += written;
        }
        else
        {
            Append(span, ref n, "null"u8);
        }

        if (progress.PausedUntil is { } pausedUntil)
        {
            Append(span, ref n, ",\"upstream_paused_until\":"u8);
            AppendTime(span, ref n, pausedUntil.UtcDateTime);
        }

        if (progress.QueuePaused)
        {
            Append(span, ref n, ",\"queue_paused\":true"u8);
        }

        if (snapshot.NotAfter is { } notAfter)
        {
            Append(span, ref n, ",\"not_after\":"u8);
            AppendTime(span, ref n, notAfter.UtcDateTime);
        }

        if (snapshot.Cancel is { } cancel)
        {
            Append(span, ref n, ",\"cancelled_ids\":"u8);
            AppendNumber(span, ref n, snapshot.CancelledIds);
            Append(span, ref n, ",\"cancelled_at\":"u8);
            AppendTime(span, ref n, cancel.At.UtcDateTime);
            Append(span, ref n, cancel.Reason == CancelReason.Expired ? ",\"cancel_reason\":\"expired\""u8 : ",\"cancel_reason\":\"requested\""u8);
        }

        Append(span, ref n, ",\"batches\":["u8);
        output.Advance(n);

        var ids = snapshot.Ids;
        var size = snapshot.BatchSize;
        var batchIds = BatchIds.Of(snapshot.Id);
        for (var batch = 0; batch < progress.Count; batch++)
        {
            var first = batch * size;
            var end = Math.Min(first + size, ids.Length);
            span = output.GetSpan(BatchBytesWithoutIds + (BytesPerId * (end - first)));
            n = 0;
            Append(span, ref n, batch == 0 ? "{\"batch_id\":\""u8 : ",{\"batch_id\":\""u8);
            batchIds.For(batch).TryFormat(span[n..], out written);
            n += written;
            Append(span, ref n, "\",\"ids\":["u8);
            for (var k = first; k < end; k++)
            {
                if (k > first)
                {
                    span[n++] = (byte)',';
                }

                AppendNumber(span, ref n, ids[k]);
            }

            if (progress.StatusOf(batch) == ProgressStatus.YetToStart)
            {
                // Most batches of a large ingestion are waiting, and their tail is nearly always the same.
                Append(span, ref n, "],\"status\":\"yet_to_start\",\"triggered_at\":null,\"completed_at\":null,\"estimated_start_at\":"u8);
                AppendTime(span, ref n, progress.EstimatedStartOf(batch));
                span[n++] = (byte)'}';
            }
            else
            {
                Append(span, ref n, "],\"status\":\""u8);
                Append(span, ref n, Name(progress.StatusOf(batch)));
                Append(span, ref n, "\",\"triggered_at\":"u8);
                AppendTime(span, ref n, progress.TriggeredAtOf(batch));
                Append(span, ref n, ",\"completed_at\":"u8);
                AppendTime(span, ref n, progress.CompletedAtOf(batch));
                Append(span, ref n, ",\"estimated_start_at\":null"u8);
                if (progress.FailedOf(batch) is var failed and > 0)
                {
                    Append(span, ref n, ",\"failed_ids\":"u8);
                    AppendNumber(span, ref n, failed);
                }

                if (progress.CancelledOf(batch) is var cancelled and > 0)
                {
                    Append(span, ref n, ",\"cancelled_ids\":"u8);
                    AppendNumber(span, ref n, cancelled);
                }

                span[n++] = (byte)'}';
            }

            output.Advance(n);
        }

        span = output.GetSpan(2);
        span[0] = (byte)']';
        span[1] = (byte)'}';
        output.Advance(2);
    }

    /// <summary>Room enough for the whole answer, so rendering it allocates once.</summary>
    public static int EstimateSize(IngestionSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var batches = (snapshot.Ids.Length + snapshot.BatchSize - 1) / snapshot.BatchSize;
        return 768 + (batches * 240) + (snapshot.Ids.Length * BytesPerId);
    }

    private static ReadOnlySpan<byte> Name(ProgressStatus status) => status switch
    {
        ProgressStatus.YetToStart => "yet_to_start"u8,
        ProgressStatus.Triggered => "triggered"u8,
        ProgressStatus.Cancelled => "cancelled"u8,
        _ => "completed"u8,
    };

    private static void Append(Span<byte> span, ref int n, ReadOnlySpan<byte> text)
    {
        text.CopyTo(span[n..]);
        n += text.Length;
    }

    private static void AppendNumber(Span<byte> span, ref int n, int value)
    {
        Utf8Formatter.TryFormat(value, span[n..], out var written);
        n += written;
    }

    /// <summary>
    /// <c>"yyyy-MM-ddTHH:mm:ss.fffZ"</c>, digit by digit: a custom format string costs several hundred
    /// nanoseconds a time, and a status of a thousand batches writes a thousand times.
    /// </summary>
    private static void AppendTime(Span<byte> span, ref int n, DateTime? time)
    {
        if (time is not { } value)
        {
            Append(span, ref n, "null"u8);
            return;
        }

        var (year, month, day) = value;
        span[n++] = (byte)'"';
        AppendDigits(span, ref n, year, 4);
        span[n++] = (byte)'-';
        AppendDigits(span, ref n, month, 2);
        span[n++] = (byte)'-';
        AppendDigits(span, ref n, day, 2);
        span[n++] = (byte)'T';
        AppendDigits(span, ref n, value.Hour, 2);
        span[n++] = (byte)':';
        AppendDigits(span, ref n, value.Minute, 2);
        span[n++] = (byte)':';
        AppendDigits(span, ref n, value.Second, 2);
        span[n++] = (byte)'.';
        AppendDigits(span, ref n, value.Millisecond, 3);
        span[n++] = (byte)'Z';
        span[n++] = (byte)'"';
    }

    private static void AppendDigits(Span<byte> span, ref int n, int value, int digits)
    {
        for (var i = n + digits - 1; i >= n; i--)
        {
            span[i] = (byte)('0' + (value % 10));
            value /= 10;
        }

        n += digits;
    }
}

/// <summary>
/// The 200 answer of <c>GET /status/{id}</c>, written by <see cref="StatusJson"/>. It declares
/// <see cref="IngestionStatus"/> as its response type, so OpenAPI describes the real shape.
/// </summary>
public sealed class StatusJsonResult : IResult, IEndpointMetadataProvider, IStatusCodeHttpResult, IValueHttpResult, IValueHttpResult<IngestionStatus>
{
    private readonly IngestionSnapshot? _snapshot;
    private readonly WaitEstimate? _estimate;
    private readonly StatusCache? _cache;
    private readonly byte[]? _rendered;

    public StatusJsonResult(IngestionSnapshot snapshot, WaitEstimate? estimate = null, StatusCache? cache = null)
    {
        _snapshot = snapshot;
        _estimate = estimate;
        _cache = cache;
    }

    /// <summary>An answer rendered before (a completed ingestion's, which never changes again).</summary>
    public StatusJsonResult(byte[] rendered) => _rendered = rendered;

    /// <summary>The answer as a record (built on demand: the response itself is written without it).</summary>
    public IngestionStatus Value => _snapshot is not null
        ? StatusReport.Build(_snapshot, _estimate)
        : System.Text.Json.JsonSerializer.Deserialize(_rendered, IngestionJsonContext.Default.IngestionStatus)!;

    object? IValueHttpResult.Value => Value;

    /// <summary>Below the large-object heap's threshold, with room to spare.</summary>
    private const int BufferedLimit = 32 * 1024;

    public int? StatusCode => StatusCodes.Status200OK;

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json; charset=utf-8";

        if (_rendered is not null)
        {
            response.ContentLength = _rendered.Length;
            await response.Body.WriteAsync(_rendered, httpContext.RequestAborted);
            return;
        }

        var snapshot = _snapshot!;
        var estimate = _estimate;
        var size = StatusJson.EstimateSize(snapshot);
        if (_cache is not null && (size > StatusCache.MinimumBytes || StatusCache.IsFinal(snapshot)))
        {
            // Large answers are rendered once per change and reused while clients poll; a completed
            // ingestion's answer once and for all.
            var rendered = _cache.Render(snapshot, estimate);
            response.ContentLength = rendered.Length;
            await response.Body.WriteAsync(rendered, httpContext.RequestAborted);
            return;
        }

        if (size > BufferedLimit)
        {
            // Large answers stream into the response pipe: buffering them would put each on the large-object heap.
            StatusJson.Write(response.BodyWriter, snapshot, estimate);
            await response.BodyWriter.FlushAsync(httpContext.RequestAborted);
            return;
        }

        // Small answers are rendered first, so they go out with a Content-Length in one write instead of chunked.
        var body = new ArrayBufferWriter<byte>(size);
        StatusJson.Write(body, snapshot, estimate);
        response.ContentLength = body.WrittenCount;
        await response.Body.WriteAsync(body.WrittenMemory, httpContext.RequestAborted);
    }

    public static void PopulateMetadata(System.Reflection.MethodInfo method, EndpointBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(IngestionStatus), ["application/json"]));
    }
}
