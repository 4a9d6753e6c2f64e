using System.Buffers;
using System.Globalization;
using System.Text.Json;
using IngestionService.Ingest;
using IngestionService.Storage;

namespace IngestionService.Tests.Scheduling;

/// <summary>The hand-written status JSON says exactly what JsonSerializer would say for the record.</summary>
public sealed class StatusJsonTests
{
    private static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, 120, TimeSpan.Zero);

    public static TheoryData<string> Snapshots => new() { "waiting", "running", "split over windows", "refetching", "completed", "retrying, failed and paused", "queue paused by an operator", "cancelled with ids in flight", "expired before it started", "waiting with a not_after", "thousand batches" };

    [Theory]
    [MemberData(nameof(Snapshots))]
    public void TheWrittenStatusMatchesTheSerializedRecordFieldForField(string name)
    {
        var snapshot = SnapshotNamed(name);

        var estimate = new WaitEstimate(T0.AddSeconds(7), TimeSpan.FromSeconds(5), 3);

        var written = JsonDocument.Parse(Write(snapshot, estimate)).RootElement;
        var serialized = JsonDocument.Parse(JsonSerializer.Serialize(StatusReport.Build(snapshot, estimate), SnakeCase)).RootElement;

        AssertSame(serialized, written, "$");
    }

    [Theory]
    [InlineData(Priority.High)]
    [InlineData(Priority.Medium)]
    [InlineData(Priority.Low)]
    public void EveryPriorityIsWrittenByItsWireName(Priority priority)
    {
        var snapshot = new IngestionSnapshot(Guid.NewGuid(), priority, T0, 3, [1], 0, 0, [], []);

        var written = JsonDocument.Parse(Write(snapshot)).RootElement;

        Assert.Equal(priority.ToWire(), written.GetProperty("priority").GetString());
    }

    [Fact]
    public void BatchesOfAThousandLargeIdsFit()
    {
        var ids = Enumerable.Repeat(1_000_000_007, 2000).ToArray();
        var snapshot = new IngestionSnapshot(Guid.NewGuid(), Priority.Low, T0, 1000, ids, 0, 0, [], []);

        var written = JsonDocument.Parse(Write(snapshot)).RootElement;

        Assert.Equal(ids[..1000], written.GetProperty("batches")[1].GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()));
    }

    [Theory]
    [InlineData("2026-01-01T00:00:00.120Z")]
    [InlineData("0987-12-31T23:59:59.999Z")]
    [InlineData("2026-11-23T09:05:07.003Z")]
    public void TimesAreWrittenInUtcWithMilliseconds(string time)
    {
        var at = DateTimeOffset.Parse(time, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);
        var snapshot = new IngestionSnapshot(Guid.NewGuid(), Priority.High, at, 3, [1], 0, 0, [], []);

        var written = JsonDocument.Parse(Write(snapshot)).RootElement;

        Assert.Equal($"\"{time}\"", written.GetProperty("created_at").GetRawText());
    }

    private static IngestionSnapshot SnapshotNamed(string name)
    {
        int[] ids = [1, 1_000_000_007, 3, 4, 5, 6, 7];
        WindowSpan Span(int first, int count, int start, int? finish, WindowState state) =>
            new(first, count, T0.AddMilliseconds(start), finish is { } f ? T0.AddMilliseconds(f) : null, state);
        return name switch
        {
            "waiting" => new(Guid.CreateVersion7(), Priority.Medium, T0, 3, ids, 0, 0, [], [], IdsAhead: 4),
            "running" => new(Guid.CreateVersion7(), Priority.High, T0, 3, ids, 3, 0, [Span(0, 3, 5, null, WindowState.Running)], []),
            "split over windows" => new(Guid.CreateVersion7(), Priority.Low, T0, 3, ids, 5, 2, [Span(0, 2, 0, 1001, WindowState.Completed), Span(2, 3, 5000, null, WindowState.Running)], [], IdsAhead: 1),
            "refetching" => new(Guid.CreateVersion7(), Priority.Low, T0, 3, ids, 3, 0, [Span(0, 3, 0, null, WindowState.Abandoned)], [0, 1, 2]),
            "completed" => new(Guid.CreateVersion7(), Priority.Low, T0, 3, ids, 7, 7, [Span(0, 3, 0, 1000, WindowState.Completed), Span(3, 3, 5000, 6000, WindowState.Completed), Span(6, 1, 10_000, 11_010, WindowState.Completed)], []),
            "retrying, failed and paused" => new(
                Guid.CreateVersion7(), Priority.Medium, T0, 3, ids, 6, 5, [Span(0, 3, 0, 1000, WindowState.Completed), Span(3, 3, 5000, 6000, WindowState.Completed)], [2],
                IdsAhead: 1, FailedPositions: [1, 4], PausedUntil: T0.AddSeconds(36)),
            "queue paused by an operator" => new(
                Guid.CreateVersion7(), Priority.High, T0, 3, ids, 3, 3, [Span(0, 3, 0, 1000, WindowState.Completed)], [], IdsAhead: 2, QueuePaused: true),
            "cancelled with ids in flight" => new(
                Guid.CreateVersion7(), Priority.Low, T0, 3, ids, 4, 3, [Span(0, 3, 0, 1000, WindowState.Completed), Span(3, 1, 5000, null, WindowState.Running)], [],
                Cancel: new Cancellation(4, T0.AddSeconds(6), CancelReason.Requested)),
            "expired before it started" => new(
                Guid.CreateVersion7(), Priority.Medium, T0, 3, ids, 0, 0, [], [], NotAfter: T0.AddSeconds(7), Cancel: new Cancellation(0, T0.AddSeconds(10), CancelReason.Expired)),
            "waiting with a not_after" => new(Guid.CreateVersion7(), Priority.High, T0, 3, ids, 0, 0, [], [], IdsAhead: 6, NotAfter: T0.AddMilliseconds(7123)),
            _ => new(Guid.CreateVersion7(), Priority.Low, T0, 3, [.. Enumerable.Range(1, 3000)], 0, 0, [], []),
        };
    }

    private static byte[] Write(IngestionSnapshot snapshot, WaitEstimate? estimate = null)
    {
        // Starts small, so the writer must ask for room before every part it writes.
        var output = new ArrayBufferWriter<byte>(16);
        StatusJson.Write(output, snapshot, estimate);
        return output.WrittenSpan.ToArray();
    }

    private static void AssertSame(JsonElement expected, JsonElement actual, string path)
    {
        Assert.True(expected.ValueKind == actual.ValueKind, $"{path}: {expected.ValueKind} vs {actual.ValueKind}");
        switch (expected.ValueKind)
        {
            case JsonValueKind.Object:
                Assert.Equal(expected.EnumerateObject().Select(p => p.Name), actual.EnumerateObject().Select(p => p.Name));
                foreach (var property in expected.EnumerateObject())
                {
                    AssertSame(property.Value, actual.GetProperty(property.Name), $"{path}.{property.Name}");
                }

                break;
            case JsonValueKind.Array:
                Assert.Equal(expected.GetArrayLength(), actual.GetArrayLength());
                for (var i = 0; i < expected.GetArrayLength(); i++)
                {
                    AssertSame(expected[i], actual[i], $"{path}[{i}]");
                }

                break;
            case JsonValueKind.String when path.EndsWith("_at", StringComparison.Ordinal) || path.EndsWith("_until", StringComparison.Ordinal) || path.EndsWith("not_after", StringComparison.Ordinal):
                // Both are ISO-8601 UTC; the serializer trims trailing zeros of the fraction, we write milliseconds.
                Assert.EndsWith("Z", actual.GetString(), StringComparison.Ordinal);
                Assert.Equal(
                    DateTime.Parse(expected.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind),
                    DateTime.Parse(actual.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind));
                break;
            default:
                Assert.Equal(expected.GetRawText(), actual.GetRawText());
                break;
        }
    }
}
