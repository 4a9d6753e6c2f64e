using System.Globalization;

namespace IngestionService.Ingest;

/// <summary>The request's field names, and the one a misspelt or mis-cased name most likely meant.</summary>
internal static class FieldNames
{
    private static readonly string[] Known = ["ids", "priority", "not_after", "callback_url"];

    public static string? Closest(string name) => Closest(name, Known);

    /// <summary>The field of <paramref name="fields"/> that <paramref name="name"/> most likely meant, or null.</summary>
    public static string? Closest(string name, IReadOnlyList<string> fields)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(fields);
        foreach (var known in fields)
        {
            if (string.Equals(name, known, StringComparison.OrdinalIgnoreCase) || Distance(name.ToLowerInvariant(), known) <= Math.Max(1, known.Length / 3))
            {
                return known;
            }
        }

        return null;
    }

    /// <summary>Levenshtein distance, for short names only.</summary>
    private static int Distance(string a, string b)
    {
        if (a.Length > 64)
        {
            return int.MaxValue;
        }

        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
