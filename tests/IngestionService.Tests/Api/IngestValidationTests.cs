using System.Net;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>Every kind of bad input gets its own 4xx problem+json answer, and nothing is stored for it.</summary>
public sealed class IngestValidationTests(IngestValidationTests.App app) : IClassFixture<IngestValidationTests.App>
{
    public sealed class App() : IngestionApp(new() { ["Ingestion:MaxIdsPerRequest"] = "10" });

    public static TheoryData<string, string, string> FieldErrors => new()
    {
        { "array body", """[1, 2, 3]""", "$" },
        { "string body", "\"hello\"", "$" },
        { "number body", "42", "$" },
        { "null body", "null", "$" },
        { "missing ids", """{"priority": "HIGH"}""", "ids" },
        { "null ids", """{"ids": null, "priority": "HIGH"}""", "ids" },
        { "ids as a number", """{"ids": 5, "priority": "HIGH"}""", "ids" },
        { "ids as a string", """{"ids": "1,2", "priority": "HIGH"}""", "ids" },
        { "ids as an object", """{"ids": {"a": 1}, "priority": "HIGH"}""", "ids" },
        { "empty ids", """{"ids": [], "priority": "HIGH"}""", "ids" },
        { "id 0", """{"ids": [0], "priority": "HIGH"}""", "ids[0]" },
        { "id -1", """{"ids": [1, -1], "priority": "HIGH"}""", "ids[1]" },
        { "id 1000000008", """{"ids": [1, 2, 1000000008], "priority": "HIGH"}""", "ids[2]" },
        { "id 10000000000000", """{"ids": [10000000000000], "priority": "HIGH"}""", "ids[0]" },
        { "id beyond 64 bits", """{"ids": [123456789012345678901234567890], "priority": "HIGH"}""", "ids[0]" },
        { "id as a string", """{"ids": ["5"], "priority": "HIGH"}""", "ids[0]" },
        { "id 1.5", """{"ids": [1.5], "priority": "HIGH"}""", "ids[0]" },
        { "id 1.0", """{"ids": [1.0], "priority": "HIGH"}""", "ids[0]" },
        { "id true", """{"ids": [true], "priority": "HIGH"}""", "ids[0]" },
        { "id null", """{"ids": [null], "priority": "HIGH"}""", "ids[0]" },
        { "nested list", """{"ids": [1, [2, 3]], "priority": "HIGH"}""", "ids[1]" },
        { "object as id", """{"ids": [{"id": 1}], "priority": "HIGH"}""", "ids[0]" },
        { "missing priority", """{"ids": [1]}""", "priority" },
        { "null priority", """{"ids": [1], "priority": null}""", "priority" },
        { "unknown priority", """{"ids": [1], "priority": "URGENT"}""", "priority" },
        { "lower-case priority", """{"ids": [1], "priority": "high"}""", "priority" },
        { "priority as a number", """{"ids": [1], "priority": 1}""", "priority" },
        { "priority as a list", """{"ids": [1], "priority": ["HIGH"]}""", "priority" },
        { "ids given twice", """{"ids": [1], "ids": [2], "priority": "HIGH"}""", "ids" },
    };

    [Theory]
    [MemberData(nameof(FieldErrors))]
    public async Task WellFormedJsonWithWrongFieldsIs422NamingTheField(string @case, string body, string field)
    {
        using var response = await app.PostIngestAsync(body);

        var problem = await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, @case);
        var errors = problem.GetProperty("errors");
        Assert.True(errors.TryGetProperty(field, out var messages), $"{@case}: no error for '{field}' in {errors}");
        Assert.False(string.IsNullOrWhiteSpace(messages[0].GetString()));
    }

    [Theory]
    [InlineData("""{"ids": [1], "priorty": "HIGH"}""", "priorty", "did you mean 'priority'?")]
    [InlineData("""{"IDS": [1], "priority": "HIGH"}""", "IDS", "did you mean 'ids'?")]
    [InlineData("""{"Ids": [1], "Priority": "HIGH"}""", "Priority", "did you mean 'priority'?")]
    [InlineData("""{"ids": [1], "priority": "HIGH", "note": {"from": "test"}}""", "note", "the fields are 'ids', 'priority' and the optional 'not_after'")]
    public async Task AnUnknownOrMisCasedFieldIsRefusedNamingTheLikelyIntendedOne(string body, string field, string hint)
    {
        using var response = await app.PostIngestAsync(body);

        var problem = await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, field);
        var errors = problem.GetProperty("errors");
        Assert.Contains(hint, errors.GetProperty(field)[0].GetString(), StringComparison.Ordinal);

        // Misspelt, the field is not also reported as missing.
        Assert.False(errors.TryGetProperty("ids", out _) || errors.TryGetProperty("priority", out _), errors.ToString());
    }

    [Theory]
    [InlineData("""{"ids": [1,], "priority": "HIGH"}""", "a trailing comma after the last item, at line 1 column 12")]
    [InlineData("{'ids': [1], 'priority': 'HIGH'}", "single quotes; JSON strings and field names take double quotes")]
    [InlineData("""{"ids": [1, 2""", "the JSON ends before it is complete")]
    [InlineData("""{"ids": [1], "priority": "HIGH"} x""", "something follows the JSON object")]
    public async Task UnreadableJsonIsExplainedInTheClientsTerms(string body, string explanation)
    {
        using var response = await app.PostIngestAsync(body);

        var problem = await AssertProblemAsync(response, HttpStatusCode.BadRequest, body);
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.Contains(explanation, detail, StringComparison.Ordinal);
        Assert.DoesNotContain("LineNumber", detail, StringComparison.Ordinal);
        Assert.DoesNotContain("reader options", detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("empty body", "")]
    [InlineData("whitespace only", "   ")]
    [InlineData("not JSON at all", "ids=1,2,3&priority=HIGH")]
    [InlineData("truncated", """{"ids": [1, 2""")]
    [InlineData("single quotes as in the brief", "{'ids': [1], 'priority': 'HIGH'}")]
    [InlineData("trailing comma", """{"ids": [1,], "priority": "HIGH"}""")]
    [InlineData("trailing garbage", """{"ids": [1], "priority": "HIGH"} x""")]
    [InlineData("two documents", """{"ids": [1], "priority": "HIGH"} {}""")]
    public async Task UnreadableJsonIs400(string @case, string body)
    {
        using var response = await app.PostIngestAsync(body);

        var problem = await AssertProblemAsync(response, HttpStatusCode.BadRequest, @case);
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("application/xml")]
    public async Task AContentTypeOtherThanJsonIs415(string contentType)
    {
        using var response = await app.PostIngestAsync("""{"ids": [1], "priority": "HIGH"}""", contentType);

        var problem = await AssertProblemAsync(response, HttpStatusCode.UnsupportedMediaType, contentType);
        Assert.Contains("Content-Type: application/json", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains(contentType, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoContentTypeIs415()
    {
        using var content = new ByteArrayContent("""{"ids": [1], "priority": "HIGH"}"""u8.ToArray());
        using var response = await app.Client.PostAsync(new Uri("/ingest", UriKind.Relative), content, TestContext.Current.CancellationToken);

        var problem = await AssertProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "no content type");
        Assert.Contains("Content-Type: application/json", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GET", "/ingest", "POST")]
    [InlineData("DELETE", "/status/01a209e5-026d-7da3-b555-36e958de1e4b", "GET")]
    public async Task AMethodARouteDoesNotTakeIs405NamingTheOnesItTakes(string method, string path, string allowed)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        using var response = await app.Client.SendAsync(request, TestContext.Current.CancellationToken);

        var problem = await AssertProblemAsync(response, HttpStatusCode.MethodNotAllowed, $"{method} {path}");
        Assert.EndsWith($"this route takes {allowed}.", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal([allowed], response.Content.Headers.Allow);
    }

    [Fact]
    public async Task AnUnknownRouteIs404PointingToTheApi()
    {
        using var response = await app.Client.GetAsync(new Uri("/statuses/1", UriKind.Relative), TestContext.Current.CancellationToken);

        var problem = await AssertProblemAsync(response, HttpStatusCode.NotFound, "unknown route");
        Assert.Contains("GET /statuses/1", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains("/docs", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MoreIdsThanTheConfiguredCapIs413WithTheCapInTheMessage()
    {
        using var response = await app.PostIngestAsync("""{"ids": [1,2,3,4,5,6,7,8,9,10,11], "priority": "LOW"}""");

        var problem = await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, "11 ids");
        Assert.Contains("Ingestion:MaxIdsPerRequest", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ABodyLargerThanAnyValidRequestIs413()
    {
        var huge = "{\"ids\": [1], \"priority\": \"LOW\", \"padding\": \"" + new string('x', 200_000) + "\"}";
        using var response = await app.PostIngestAsync(huge);

        await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, "huge body");
    }

    [Fact]
    public async Task TheSmallestAndLargestIdsAreAccepted()
    {
        using var response = await app.PostIngestAsync("""{"ids": [1, 1000000007, 1], "priority": "LOW"}""");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    [Fact]
    public async Task ManyBadIdsAreListedUpToACapAndCounted()
    {
        using var response = await app.PostIngestAsync("""{"ids": ["a","b","c","d","e","f","g","h","i","j"], "priority": "LOW"}""");

        var problem = await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "ten bad ids");
        Assert.Equal(10, problem.GetProperty("errors").EnumerateObject().Count(p => p.Name.StartsWith("ids[", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task NothingIsStoredForARefusedRequest()
    {
        // A private service, so the count is not disturbed by the other tests of this class.
        await using var isolated = new IngestionApp();
        foreach (var body in new[] { "[1]", """{"ids": [0], "priority": "HIGH"}""", """{"ids": [1], "priority": "NOW"}""", "{", "" })
        {
            using var refused = await isolated.PostIngestAsync(body);
            Assert.True((int)refused.StatusCode is >= 400 and < 500, body);
        }

        Assert.Equal(0, isolated.Database.Scalar("SELECT count(*) FROM ingestions"));
        using var accepted = await isolated.PostIngestAsync("""{"ids": [1], "priority": "HIGH"}""");
        Assert.Equal(1, isolated.Database.Scalar("SELECT count(*) FROM ingestions"));
    }

    [Fact]
    public async Task AnUnknownIngestionIs404()
    {
        using var unknown = await app.Client.GetAsync(new Uri($"/status/{Guid.NewGuid()}", UriKind.Relative), TestContext.Current.CancellationToken);
        using var notAGuid = await app.Client.GetAsync(new Uri("/status/abc123", UriKind.Relative), TestContext.Current.CancellationToken);

        await AssertProblemAsync(unknown, HttpStatusCode.NotFound, "unknown id");
        await AssertProblemAsync(notAGuid, HttpStatusCode.NotFound, "not a uuid");
    }

    private static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode expected, string @case)
    {
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(expected == response.StatusCode, $"{@case}: expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal((int)expected, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("title").GetString()));
        return problem;
    }
}
