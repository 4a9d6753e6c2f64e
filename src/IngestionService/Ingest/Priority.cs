using System.Text.Json.Serialization;

namespace IngestionService.Ingest;

/// <summary>How urgent an ingestion is. The numeric value is the rank in the global order: lower goes first.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<Priority>))]
public enum Priority
{
    [JsonStringEnumMemberName("HIGH")]
    High = 0,

    [JsonStringEnumMemberName("MEDIUM")]
    Medium = 1,

    [JsonStringEnumMemberName("LOW")]
    Low = 2,
}

public static class PriorityNames
{
    public const string Allowed = "HIGH, MEDIUM, LOW";

    /// <summary>The wire name: exactly what clients send and what status answers show.</summary>
    public static string ToWire(this Priority priority) => priority switch
    {
        Priority.High => "HIGH",
        Priority.Medium => "MEDIUM",
        Priority.Low => "LOW",
        _ => throw new ArgumentOutOfRangeException(nameof(priority), priority, "Unknown priority."),
    };

    /// <summary>Parses the wire name. Case-sensitive, as the contract's enum is.</summary>
    public static bool TryParseWire(ReadOnlySpan<char> text, out Priority priority)
    {
        switch (text)
        {
            case "HIGH": priority = Priority.High; return true;
            case "MEDIUM": priority = Priority.Medium; return true;
            case "LOW": priority = Priority.Low; return true;
            default: priority = default; return false;
        }
    }
}
