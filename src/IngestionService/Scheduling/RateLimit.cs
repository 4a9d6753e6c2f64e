using System.Globalization;

namespace IngestionService.Scheduling;

/// <summary>
/// The upstream's limit: at most <see cref="BatchSize"/> ids start per <see cref="Window"/>, one window at
/// a time. Configured as <c>Ingestion:BatchSize</c> and <c>Ingestion:Window</c>; an operator may override
/// it at run time (<c>PUT /limits</c>). Both are checked here, by the same rules.
/// </summary>
public sealed record RateLimit(int BatchSize, TimeSpan Window)
{
    public const int MaxBatchSize = 1000;

    public static readonly TimeSpan MaxWindow = TimeSpan.FromDays(1);

    /// <summary>Why a batch size is refused, or null: between 1 and <see cref="MaxBatchSize"/>.</summary>
    public static string? BatchSizeProblem(int batchSize) =>
        batchSize is < 1 or > MaxBatchSize ? $"must be between 1 and {MaxBatchSize} (got {batchSize})" : null;

    /// <summary>Why a window is refused, or null: positive (a zero window would be no limit at all), at most a day, whole milliseconds as stored.</summary>
    public static string? WindowProblem(TimeSpan window) =>
        window <= TimeSpan.Zero || window > MaxWindow ? $"must be a positive duration of at most one day, such as 00:00:05 (got {Format(window)})"
        : window.Ticks % TimeSpan.TicksPerMillisecond != 0 ? $"must be whole milliseconds (got {window.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)} ms)"
        : null;

    /// <summary>[d.]hh:mm:ss[.fff], as the configuration and <c>PUT /limits</c> take it.</summary>
    public static string Format(TimeSpan window) => (window < TimeSpan.Zero ? "-" : "") +
        window.ToString(window.Days > 0 ? (window.Milliseconds > 0 ? @"d\.hh\:mm\:ss\.fff" : @"d\.hh\:mm\:ss") : window.Milliseconds > 0 ? @"hh\:mm\:ss\.fff" : @"hh\:mm\:ss", CultureInfo.InvariantCulture);

    /// <summary>Reads [d.]hh:mm:ss[.fff]; a bare number is refused, since "5" would be five days.</summary>
    public static bool TryParseWindow(string? text, out TimeSpan window)
    {
        window = default;
        return text is not null && text.Contains(':', StringComparison.Ordinal) && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out window);
    }

    /// <summary>
    /// How far after the newest window's start the next may start when the limit changed in between: the
    /// longer of the two windows, so no span is more crowded than the stricter of the old and new limits allows.
    /// </summary>
    public static TimeSpan Spacing(TimeSpan? windowOfLastStart, TimeSpan windowNow) =>
        windowOfLastStart is { } then && then > windowNow ? then : windowNow;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{BatchSize} ids per {Window.TotalSeconds:0.###} s");
}
