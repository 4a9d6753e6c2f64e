using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace IngestionService.Hosting;

/// <summary>
/// Turns what stops the service from starting (a bad setting, a port in use) into one line that names
/// the key or the address, for a process that then exits with code 1 instead of a stack trace.
/// </summary>
public static partial class StartupFailure
{
    /// <summary>
    /// From now on, an exception nothing catches that this can describe (a failed start: nothing else
    /// escapes the entry point) prints its one line and ends the process with exit code 1. Anything else
    /// still crashes with its stack. A host in a test (WebApplicationFactory) catches what the entry point
    /// throws itself, so tests still see the exception.
    /// </summary>
    public static void ExitWithOneLine() =>
        AppDomain.CurrentDomain.UnhandledException += static (_, args) =>
        {
            if (args.ExceptionObject is Exception exception && Describe(exception) is { } line)
            {
                Console.Error.WriteLine(line);
                Environment.Exit(1);
            }
        };

    /// <summary>The line to print, or null for a failure this does not know, which is left to crash with its stack.</summary>
    public static string? Describe(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        for (var current = exception; current is not null; current = current.InnerException)
        {
            switch (current)
            {
                case OptionsValidationException invalid:
                    return "Configuration error: " + string.Join(" ", invalid.Failures);
                case InvalidOperationException when ConversionFailure().Match(current.Message) is { Success: true } match:
                    return Conversion(match.Groups["value"].Value, match.Groups["key"].Value, match.Groups["type"].Value);
                case IOException when current.Message.StartsWith("Failed to bind to address", StringComparison.Ordinal):
                    return $"Cannot listen: {current.Message.TrimEnd('.')}. Choose another address with --urls (or ASPNETCORE_URLS, or PORT).";
            }
        }

        return null;
    }

    private static string Conversion(string value, string key, string typeName)
    {
        var type = Assembly.GetExecutingAssembly().GetType(typeName) ?? Type.GetType(typeName);
        var expected = type switch
        {
            { IsEnum: true } => "one of " + string.Join(", ", Enum.GetNames(type)),
            _ when type == typeof(TimeSpan) || type == typeof(TimeSpan?) => "a duration such as 00:00:05 (hh:mm:ss)",
            _ => "a valid " + (type?.Name ?? typeName),
        };
        return $"Configuration error: {key} must be {expected} (got '{value}').";
    }

    [GeneratedRegex("^Failed to convert configuration value '(?<value>.*)' at '(?<key>.*)' to type '(?<type>.*)'\\.$")]
    private static partial Regex ConversionFailure();
}
