using System.Security.Cryptography;
using System.Text;

namespace IngestionService.Notifications;

/// <summary>
/// Signs a delivery the Standard Webhooks way (https://www.standardwebhooks.com): HMAC-SHA256, keyed with
/// the secret's bytes, over <c>{webhook-id}.{webhook-timestamp}.{body}</c>, sent as
/// <c>webhook-signature: v1,{base64}</c>, so a receiver verifies it with any Standard Webhooks library.
/// </summary>
public sealed class WebhookSigner(byte[] key)
{
    public const string SecretPrefix = "whsec_";

    /// <summary>Reads a <c>whsec_</c> secret: the prefix, then the base64 of 24 to 64 bytes.</summary>
    public static bool TryDecodeSecret(string secret, out byte[] key)
    {
        ArgumentNullException.ThrowIfNull(secret);
        key = [];
        if (!secret.StartsWith(SecretPrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var encoded = secret.AsSpan(SecretPrefix.Length);
        var bytes = new byte[encoded.Length];
        if (!Convert.TryFromBase64Chars(encoded, bytes, out var written) || written is < 24 or > 64)
        {
            return false;
        }

        key = bytes[..written];
        return true;
    }

    /// <summary>The value of <c>webhook-signature</c> for this message.</summary>
    public string Sign(string messageId, long timestamp, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(messageId);
        var prefix = Encoding.UTF8.GetBytes($"{messageId}.{timestamp}.");
        var content = new byte[prefix.Length + body.Length];
        prefix.CopyTo(content, 0);
        body.CopyTo(content.AsSpan(prefix.Length));
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, content));
    }
}
