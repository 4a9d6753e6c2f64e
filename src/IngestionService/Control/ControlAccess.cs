using System.Security.Cryptography;
using System.Text;
using IngestionService.Hosting;
using Microsoft.Extensions.Options;

namespace IngestionService.Control;

/// <summary>The operators' key (configuration section <c>Admin</c>). Unset by default: every call is open, as the brief has it.</summary>
public sealed class AdminOptions
{
    public const string SectionName = "Admin";

    /// <summary>The least length of a key: shorter ones are guessed too easily to guard a queue.</summary>
    public const int MinimumKeyLength = 16;

    /// <summary>When set, the control calls (pause, resume, and the other changes to the queue) need <c>Authorization: Bearer &lt;key&gt;</c>.</summary>
    public string? ApiKey { get; set; }
}

internal sealed class AdminOptionsValidator : IValidateOptions<AdminOptions>
{
    public ValidateOptionsResult Validate(string? name, AdminOptions options) =>
        options.ApiKey is { } key && (key.Length < AdminOptions.MinimumKeyLength || key.Any(char.IsWhiteSpace))
            ? ValidateOptionsResult.Fail($"Admin:ApiKey must be at least {AdminOptions.MinimumKeyLength} characters without spaces (got {key.Length} characters); leave it unset for no key.")
            : ValidateOptionsResult.Success;
}

/// <summary>
/// The endpoint filter of every control call: a browser request from another site's page gets 403, and with
/// <c>Admin:ApiKey</c> set, a request without that key as a bearer token gets 401; neither changes anything.
/// The key comparison takes the same time whatever the token.
/// </summary>
internal static class ControlAccess
{
    public static RouteHandlerBuilder AsControlCall(this RouteHandlerBuilder endpoint) =>
        endpoint.AddEndpointFilter(async (context, next) =>
        {
            var request = context.HttpContext.Request;
            if (CrossSite(request))
            {
                // Another site's page must not pause a queue through an operator's browser (a form needs no key when none is set).
                return Problems.Of(
                    StatusCodes.Status403Forbidden,
                    "Cross-site request refused",
                    "Control calls are taken only from this service's own pages or from clients that send no Origin of another site.");
            }

            var key = context.HttpContext.RequestServices.GetRequiredService<IOptions<AdminOptions>>().Value.ApiKey;
            if (key is null || Presents(request, key))
            {
                return await next(context);
            }

            context.HttpContext.Response.Headers.WWWAuthenticate = "Bearer realm=\"ingestion-admin\"";
            var sent = request.Headers.Authorization.Count > 0;
            return Problems.Of(
                StatusCodes.Status401Unauthorized,
                sent ? "Wrong admin key" : "Admin key required",
                sent
                    ? "The Authorization header is not 'Bearer' with this service's Admin:ApiKey; send 'Authorization: Bearer <key>' with the configured key."
                    : "This call changes the queue, and Admin:ApiKey is set: send it as 'Authorization: Bearer <key>'.");
        }).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);

    /// <summary>A browser's request made by another site's page: it says so (Sec-Fetch-Site), or names another origin.</summary>
    private static bool CrossSite(HttpRequest request)
    {
        if (string.Equals(request.Headers["Sec-Fetch-Site"], "cross-site", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var origin = request.Headers.Origin.ToString();
        return origin.Length > 0
            && !(Uri.TryCreate(origin, UriKind.Absolute, out var from) && string.Equals(from.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase));
    }

    private static bool Presents(HttpRequest request, string key)
    {
        var header = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        // Hashes of equal length, so neither the key's length nor its first differing byte shows in the time taken.
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, SHA256.HashData(Encoding.UTF8.GetBytes(key)));
    }
}
