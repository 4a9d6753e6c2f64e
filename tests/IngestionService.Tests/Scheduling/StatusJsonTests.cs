using System.Buffers;
using System.Globalization;
using System.Text.Json;
using IngestionService.Ingest;

namespace IngestionService.Tests.Scheduling;

/// <summary>The hand-written status JSON says exactly what JsonSerializer would say for the record.</summary>
public sealed class StatusJsonTests
{
    private static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, 120, DateTimeKind.Utc);

    [Fact]
    public void TheWrittenStatusMatchesTheSerializedRecordFieldForField()
    {
        var status = new IngestionStatus(
            Guid.CreateVersion7(),
            ProgressStatus.Triggered,
            Priority.Medium,
            T0,
            7,
            5,
            3,
            [
                new BatchStatus(Guid.NewGuid(), [1, 1_000_000_007, 3], ProgressStatus.Completed, T0.AddSeconds(1), T0.AddSeconds(2)),
                new BatchStatus(Guid.NewGuid(), [4, 5, 6], ProgressStatus.Triggered, T0.AddMilliseconds(5_001), null),
                new BatchStatus(Guid.NewGuid(), [7], ProgressStatus.YetToStart, null, null),
            ]);

        var written = JsonDocument.Parse(Write(status)).RootElement;
        var serialized = JsonDocument.Parse(JsonSerializer.Serialize(status, SnakeCase)).RootElement;

        AssertSame(serialized, written, "$");
    }

    [Theory]
    [InlineData(Priority.High)]
    [InlineData(Priority.Low)]
    public void EveryPriorityIsWrittenByItsWireName(Priority priority)
    {
        var status = new IngestionStatus(Guid.NewGuid(), ProgressStatus.YetToStart, priority, T0, 0, 0, 0, []);

        var written = JsonDocument.Parse(Write(status)).RootElement;

        Assert.Equal(priority.ToWire(), written.GetProperty("priority").GetString());
        Assert.Equal(0, written.GetProperty("batches").GetArrayLength());
    }

    [Fact]
    public void ABatchOfAThousandLargeIdsFits()
    {
        var ids = Enumerable.Repeat(1_000_000_007, 1000).ToArray();
        var status = new IngestionStatus(Guid.NewGuid(), ProgressStatus.Completed, Priority.Low, T0, 2000, 2000, 2000,
            [new BatchStatus(Guid.NewGuid(), ids, ProgressStatus.Completed, T0, T0), new BatchStatus(Guid.NewGuid(), ids, ProgressStatus.Completed, T0, T0)]);

        var written = JsonDocument.Parse(Write(status)).RootElement;

        Assert.Equal(ids, written.GetProperty("batches")[1].GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()));
    }

    private static byte[] Write(IngestionStatus status)
    {
        // Starts small, so the writer must ask for room before every part it writes.
        var output = new ArrayBufferWriter<byte>(16);
        StatusJson.Write(output, status);
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
            case JsonValueKind.String when path.EndsWith("_at", StringComparison.Ordinal):
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
