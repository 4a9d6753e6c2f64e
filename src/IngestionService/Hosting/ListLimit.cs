using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;

namespace IngestionService.Hosting;

/// <summary>
/// The <c>?limit=</c> of the list endpoints (<c>/windows</c>, <c>/ingestions</c>). Parsed by hand rather than
/// bound as an int, so a bad value gets the same 400 problem+json as every other bad input.
/// </summary>
internal static class ListLimit
{
    public const int Max = 1000;

    public static bool TryParse(string? limit, int defaultLimit, out int count, [NotNullWhen(false)] out ValidationProblem? problem)
    {
        count = defaultLimit;
        problem = null;
        if (limit is null || (int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out count) && count is >= 1 and <= Max))
        {
            return true;
        }

        problem = TypedResults.ValidationProblem(new Dictionary<string, string[]>
        {
            ["limit"] = [$"'limit' must be a whole number between 1 and {Max} (got '{limit}')."],
        });
        return false;
    }
}
