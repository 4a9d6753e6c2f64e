using System.Net;
using System.Text;
using IngestionService.Notifications;
using IngestionService.Storage;
using StandardWebhooks;

namespace IngestionService.Tests.Notifications;

/// <summary>The webhook rules on their own: what an answer means, the backoff, the signature, and which addresses are private.</summary>
public sealed class WebhookRuleTests
{
    private static readonly NotificationOptions Options = new()
    {
        RetryBaseDelay = TimeSpan.FromSeconds(5),
        RetryMaxDelay = TimeSpan.FromMinutes(10),
        MaxAge = TimeSpan.FromHours(24),
    };

    [Theory]
    [InlineData(200, DeliveryState.Delivered)]
    [InlineData(204, DeliveryState.Delivered)]
    [InlineData(299, DeliveryState.Delivered)]
    [InlineData(410, DeliveryState.Stopped)]
    [InlineData(301, DeliveryState.Pending)] // a redirect is not followed: it counts as a failure
    [InlineData(404, DeliveryState.Pending)]
    [InlineData(429, DeliveryState.Pending)]
    [InlineData(500, DeliveryState.Pending)]
    [InlineData(null, DeliveryState.Pending)] // no answer: a timeout, a refused connection
    public void AnAnswerDeliversStopsOrRetries(int? status, DeliveryState expected)
    {
        Assert.Equal(expected, DeliveryRule.Decide(1, status, TimeSpan.Zero, Options, 0.5).State);
    }

    [Fact]
    public void TheWaitDoublesUpToItsCapWithJitterInItsUpperHalf()
    {
        Assert.Equal(
            [5, 10, 20, 40, 80, 160, 320, 600, 600],
            Enumerable.Range(1, 9).Select(attempts => DeliveryRule.Backoff(attempts, Options).TotalSeconds));
        Assert.InRange(DeliveryRule.Decide(2, 500, TimeSpan.Zero, Options, jitter: 0.999999).RetryIn, TimeSpan.FromSeconds(9.999), TimeSpan.FromSeconds(10));
        Assert.Equal(TimeSpan.FromSeconds(5), DeliveryRule.Decide(2, 500, TimeSpan.Zero, Options, jitter: 0).RetryIn);
        Assert.Equal(TimeSpan.FromMinutes(10), DeliveryRule.Backoff(1000, Options));
    }

    [Fact]
    public void AnEventIsGivenUpWhenItsNextAttemptWouldFallPastMaxAge()
    {
        var almostTooOld = Options.MaxAge - TimeSpan.FromSeconds(6);

        Assert.Equal(DeliveryState.Pending, DeliveryRule.Decide(2, 500, almostTooOld, Options, jitter: 0).State);   // next in 5 s: within it
        Assert.Equal(DeliveryState.GivenUp, DeliveryRule.Decide(3, 500, almostTooOld, Options, jitter: 0).State);   // next in 10 s: past it
        Assert.Equal(DeliveryState.Delivered, DeliveryRule.Decide(50, 200, Options.MaxAge * 2, Options, 0).State); // a late 2xx still delivers
    }

    [Fact]
    public void TheSignatureIsTheOneTheStandardWebhooksLibraryMakesAndVerifies()
    {
        const string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        Assert.True(WebhookSigner.TryDecodeSecret(secret, out var key));
        var body = """{"type":"ingestion.completed","data":{"ingestion_id":"x"}}""";
        var timestamp = DateTimeOffset.FromUnixTimeSeconds(1_796_295_975);

        var ours = new WebhookSigner(key).Sign("msg_1", timestamp.ToUnixTimeSeconds(), Encoding.UTF8.GetBytes(body));
        var library = new StandardWebhook(secret);

        Assert.Equal(library.Sign("msg_1", timestamp, body), ours);
        var headers = new Microsoft.AspNetCore.Http.HeaderDictionary
        {
            ["webhook-id"] = "msg_1",
            ["webhook-timestamp"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        headers["webhook-signature"] = new WebhookSigner(key).Sign("msg_1", long.Parse(headers["webhook-timestamp"]!, System.Globalization.CultureInfo.InvariantCulture), Encoding.UTF8.GetBytes(body));
        library.Verify(body, headers); // throws if it does not verify
        headers["webhook-signature"] = new WebhookSigner(key).Sign("msg_2", long.Parse(headers["webhook-timestamp"]!, System.Globalization.CultureInfo.InvariantCulture), Encoding.UTF8.GetBytes(body));
        Assert.ThrowsAny<Exception>(() => library.Verify(body, headers));
    }

    [Theory]
    [InlineData("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true)]
    [InlineData("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false)]   // no prefix
    [InlineData("whsec_c2hvcnQ=", false)]                      // 5 bytes
    [InlineData("whsec_not base64!", false)]
    public void ASecretIsWhsecAndTheBase64Of24To64Bytes(string secret, bool valid)
    {
        Assert.Equal(valid, WebhookSigner.TryDecodeSecret(secret, out _));
    }

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("127.255.0.9", true)]
    [InlineData("10.0.0.1", true)]
    [InlineData("172.16.0.1", true)]
    [InlineData("172.31.255.255", true)]
    [InlineData("192.168.1.1", true)]
    [InlineData("169.254.169.254", true)]
    [InlineData("100.64.0.1", true)]
    [InlineData("0.0.0.0", true)]
    [InlineData("224.0.0.1", true)]
    [InlineData("::1", true)]
    [InlineData("::", true)]
    [InlineData("fd12:3456::1", true)]
    [InlineData("fe80::1", true)]
    [InlineData("::ffff:192.168.1.1", true)]
    [InlineData("8.8.8.8", false)]
    [InlineData("172.32.0.1", false)]
    [InlineData("93.184.215.14", false)]
    [InlineData("2606:2800:21f:cb07:6820:80da:af6b:8b2c", false)]
    [InlineData("::ffff:8.8.8.8", false)]
    public void PrivateAddressesAreTold(string address, bool isPrivate)
    {
        Assert.Equal(isPrivate, CallbackAddress.IsPrivate(IPAddress.Parse(address)));
    }
}
