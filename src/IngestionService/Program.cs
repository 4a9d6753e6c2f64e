using IngestionService.Dashboard;
using IngestionService.Dispatch;
using IngestionService.Hosting;
using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Upstream;

var builder = WebApplication.CreateBuilder(args);
builder.UseDefaultUrls();               // http://localhost:8000 unless --urls, ASPNETCORE_URLS or PORT say otherwise
builder.Services.AddProblemDetails();   // every error answer is application/problem+json
builder.Services.AddIngestionApi();     // request limits, JSON shapes, the submit path
builder.Services.AddStorage();          // the durable source of truth (SQLite by default)
builder.Services.AddUpstream(builder.Configuration); // the external API the ids are fetched from, and its retry policy
builder.Services.AddDispatcher();       // the one loop that admits windows under the rate limit
builder.Services.AddObservability();    // /metrics (Prometheus), /health/live, /health/ready
builder.Services.AddApiDocumentation(); // /openapi/v1.json and the /docs reference

var app = builder.Build();
app.UseExceptionHandler();              // unexpected failures become problem+json, never a stack trace
app.UseStatusCodePages();               // so do unknown routes and methods
app.MapIngestionApi();
app.MapWindowLogApi();
app.MapDashboard();                     // the live page at / and the GET /queue and /ingestions it polls
app.MapObservability();
app.MapApiDocumentation();

await app.InitializeStorageAsync();     // schema and crash recovery before the first request
await app.RunAsync();

/// <summary>The entry point, visible to the tests' WebApplicationFactory.</summary>
public partial class Program;
