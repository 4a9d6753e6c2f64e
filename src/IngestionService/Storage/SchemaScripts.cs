using System.Globalization;
using System.Reflection;

namespace IngestionService.Storage;

/// <summary>The numbered schema scripts embedded in the service, one folder per engine.</summary>
internal static class SchemaScripts
{
    /// <summary>
    /// The scripts under <paramref name="resourcePrefix"/> in version order; the version is the number the
    /// file name starts with (<c>002_ids_before.sql</c> is version 2).
    /// </summary>
    public static IEnumerable<(int Version, string Name, string Sql)> Load(string resourcePrefix)
    {
        var assembly = Assembly.GetExecutingAssembly();
        return assembly.GetManifestResourceNames()
            .Where(resource => resource.StartsWith(resourcePrefix, StringComparison.Ordinal) && resource.EndsWith(".sql", StringComparison.Ordinal))
            .Select(resource =>
            {
                var name = resource[resourcePrefix.Length..];
                var version = int.Parse(name.AsSpan(0, name.IndexOf('_', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
                using var stream = assembly.GetManifestResourceStream(resource)!;
                using var text = new StreamReader(stream);
                return (version, name, text.ReadToEnd());
            })
            .OrderBy(script => script.version);
    }
}
