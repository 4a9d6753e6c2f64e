using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace IngestionService.Hosting;

/// <summary>
/// Every time the API writes is ISO-8601 in UTC with milliseconds and a <c>Z</c>, as the status document
/// writes them: <c>2026-12-02T01:38:14.958Z</c>. Times are stored to the millisecond, so nothing is lost.
/// </summary>
public sealed class UtcMillisecondsConverter : JsonConverter<DateTime>
{
    public const string Format = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";

    public override DateTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.GetDateTime().ToUniversalTime();

    public override void Write(Utf8JsonWriter writer, DateTime value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        Span<byte> text = stackalloc byte[24];
        var utc = value.Kind == DateTimeKind.Local ? value.ToUniversalTime() : value;
        utc.TryFormat(text, out var written, Format, CultureInfo.InvariantCulture);
        writer.WriteStringValue(text[..written]);
    }
}
