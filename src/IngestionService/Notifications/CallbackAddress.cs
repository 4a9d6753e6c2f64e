using System.Net;
using System.Net.Sockets;

namespace IngestionService.Notifications;

/// <summary>
/// What a callback may be, in one place: an absolute <c>http</c> or <c>https</c> URL of at most
/// <see cref="MaxLength"/> characters, and, unless private networks are allowed, one whose host resolves
/// to public addresses only. The submission checks the name's addresses; the delivery checks the address
/// it is about to connect to, so a name that resolves elsewhere later is caught too.
/// </summary>
public static class CallbackAddress
{
    public const int MaxLength = 2048;

    // Loopback, "this network", private (RFC 1918), carrier-grade NAT, link-local, benchmarking, multicast and
    // reserved; for IPv6 the unspecified, IPv4-compatible and loopback addresses, unique-local, site-local,
    // link-local, multicast, and the prefixes that carry an IPv4 address (NAT64, 6to4).
    private static readonly IPNetwork[] NotPublic =
    [
        IPNetwork.Parse("0.0.0.0/8"), IPNetwork.Parse("10.0.0.0/8"), IPNetwork.Parse("100.64.0.0/10"),
        IPNetwork.Parse("127.0.0.0/8"), IPNetwork.Parse("169.254.0.0/16"), IPNetwork.Parse("172.16.0.0/12"),
        IPNetwork.Parse("192.0.0.0/24"), IPNetwork.Parse("192.168.0.0/16"), IPNetwork.Parse("198.18.0.0/15"),
        IPNetwork.Parse("224.0.0.0/3"),
        IPNetwork.Parse("::/96"), IPNetwork.Parse("::1/128"), IPNetwork.Parse("fc00::/7"), IPNetwork.Parse("fec0::/10"),
        IPNetwork.Parse("fe80::/10"), IPNetwork.Parse("ff00::/8"),
        // IPv4 inside IPv6: NAT64 (64:ff9b::a9fe:a9fe is 169.254.169.254 on a NAT64 network) and 6to4.
        IPNetwork.Parse("64:ff9b::/96"), IPNetwork.Parse("64:ff9b:1::/48"), IPNetwork.Parse("2002::/16"),
    ];

    /// <summary>Null when <paramref name="text"/> is a callback URL as far as its spelling goes; else what is wrong, as the rest of a sentence.</summary>
    public static string? CheckSyntax(string text, out Uri? url)
    {
        url = null;
        if (text.Length > MaxLength)
        {
            return $"must be at most {MaxLength} characters (got {text.Length}).";
        }

        if (!Uri.TryCreate(text, UriKind.Absolute, out var parsed) || (parsed.Scheme != Uri.UriSchemeHttps && parsed.Scheme != Uri.UriSchemeHttp))
        {
            return "must be an absolute http or https URL, such as \"https://example.com/hooks/ingestion\".";
        }

        if (!string.IsNullOrEmpty(parsed.UserInfo))
        {
            return "must not carry a user name or password; put a token in its path or query instead.";
        }

        url = parsed;
        return null;
    }

    /// <summary>Whether connecting to <paramref name="address"/> would leave the public internet.</summary>
    public static bool IsPrivate(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        foreach (var network in NotPublic)
        {
            if (network.BaseAddress.AddressFamily == address.AddressFamily && network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The addresses <paramref name="host"/> stands for (itself, if it is one), and the first of them that
    /// is not public, for the submission's check and for the delivery's connection alike.
    /// </summary>
    public static async Task<(IPAddress[] Addresses, IPAddress? Blocked)> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(host);
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, cancellationToken);
        return (addresses, addresses.FirstOrDefault(IsPrivate));
    }

    /// <summary>Why connecting to <paramref name="blocked"/> for <paramref name="host"/> is refused, as the rest of a sentence.</summary>
    public static string Refusal(string host, IPAddress blocked) =>
        $"resolves to {blocked}, a loopback, private, link-local or unique-local address ('{host}'); such callbacks are refused unless Notifications:AllowPrivateNetworks is true.";

    /// <summary>
    /// Null when every address <paramref name="url"/>'s host resolves to is public (or private networks are
    /// allowed); else why not, as the rest of a sentence. A name that does not resolve is refused too.
    /// </summary>
    public static async Task<string?> CheckReachableAsync(Uri url, bool allowPrivate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (allowPrivate)
        {
            return null;
        }

        try
        {
            var (addresses, blocked) = await ResolveAsync(url.IdnHost, cancellationToken);
            return blocked is not null ? Refusal(url.Host, blocked)
                : addresses.Length == 0 ? $"has a host, '{url.Host}', that resolves to no address." : null;
        }
        catch (SocketException exception)
        {
            return $"has a host, '{url.Host}', that does not resolve ({exception.SocketErrorCode}).";
        }
        catch (ArgumentException)
        {
            return $"has a host that is not a valid name ({url.Host.Length} characters; a name has at most 255).";
        }
    }

    /// <summary>Whether the host is, as written, one that is never public (a literal address, or localhost), for checks that cannot resolve names.</summary>
    public static bool IsPrivateAsWritten(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        return url.IsLoopback || (IPAddress.TryParse(url.IdnHost, out var address) && IsPrivate(address));
    }
}
