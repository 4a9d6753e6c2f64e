// The yardstick for bench/bench.py: the same two routes as the service, answered with constant
// bodies and no work at all, on the same Kestrel with the same defaults. The service's throughput is
// quoted as a ratio of this one's, measured side by side in one run.
const string Accepted = """{"ingestion_id":"01a209e5-026d-7da3-b555-36e958de1e4b"}""";
const string Status = """{"ingestion_id":"01a209e5-026d-7da3-b555-36e958de1e4b","status":"yet_to_start","batches":[{"batch_id":"6f1c7e1e-8a44-5b21-9d55-0c1f1b2f9e11","ids":[1,2,3],"status":"yet_to_start"},{"batch_id":"a83e2f0d-3c1b-5e7a-8f4d-6b2a9c8d7e10","ids":[4,5],"status":"yet_to_start"}]}""";

var builder = WebApplication.CreateBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
// As the service does: otherwise every request starts an Activity and a log scope for messages nobody writes.
builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
var app = builder.Build();
app.MapPost("/ingest", () => Results.Text(Accepted, "application/json", statusCode: StatusCodes.Status202Accepted));
// Ids starting with 'f' stand for unknown ingestions (the bench's 404 scenario).
app.MapGet("/status/{id}", (string id) => id[0] != 'f'
    ? Results.Text(Status, "application/json")
    : Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown ingestion"));
app.Run();
