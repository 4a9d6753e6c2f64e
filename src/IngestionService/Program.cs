using IngestionService.Control;
using IngestionService.Dashboard;
using IngestionService.Dispatch;
using IngestionService.Events;
using IngestionService.Hosting;
using IngestionService.Ingest;
using IngestionService.Notifications;
using IngestionService.Observability;
using IngestionService.Storage;
using IngestionService.Upstream;

StartupFailure.ExitWithOneLine();       // a bad setting or a busy port ends the process with one line naming it, exit code 1
var builder = WebApplication.CreateBuilder(StartupSummary.BuilderOptions(args)); // the dashboard's files found wherever it is started from
builder.UseDefaultUrls();               // http://localhost:8000 unless --urls, ASPNETCORE_URLS or PORT say otherwise
builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical); // a failed start is that one line, not a logged stack
builder.Services.AddProblemDetails();   // every error answer is application/problem+json
builder.Services.AddIngestionApi();     // request limits, JSON shapes, the submit path
builder.Services.AddStorage();          // the durable source of truth (SQLite by default)
builder.Services.AddUpstream(builder.Configuration); // the external API the ids are fetched from, and its retry policy
builder.Services.AddDispatcher();       // the one loop that admits windows under the rate limit
builder.Services.AddNotifications();    // signed webhooks from the durable outbox
builder.Services.AddEventStreams();     // server-sent events: /events and /ingestions/{id}/events
builder.Services.AddQueueControl();     // an operator's pause and resume, behind Admin:ApiKey when it is set
builder.Services.AddDashboard();        // the queue as GET /queue and the control calls show it
builder.Services.AddObservability();    // /metrics (Prometheus), /health/live, /health/ready
builder.Services.AddTracing(builder.Configuration); // spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set
builder.Services.AddApiDocumentation(); // /openapi/v1.json and the /docs reference

var app = builder.Build();
app.UseExceptionHandler();              // unexpected failures become problem+json, never a stack trace
app.UseProblemStatusPages();           // so do unknown routes, methods and media types, each saying what to send
app.UseHeadAsGet();                     // HEAD answers wherever GET does, headers only
app.UseRouting();                       // here, after HEAD became GET (left to itself, routing would run first)
app.MapIngestionApi();
app.MapWindowLogApi();
app.MapQueueControlApi();               // POST /queue/pause and /queue/resume
app.MapIngestionControlApi();           // POST /ingestions/{id}/cancel, PATCH /ingestions/{id}
app.MapLimitsApi();                     // GET, PUT and DELETE /limits
app.MapDeliveriesApi();                 // GET /ingestions/{id}/deliveries
app.MapEventStreams();                  // GET /events and /ingestions/{id}/events
app.MapDashboard();                     // the live page at / and the GET /queue and /ingestions it polls
app.MapObservability();
app.MapApiDocumentation();

app.LogWhatIsInForce();                 // one line once it listens: the store, the upstream, the limit, the addresses
await app.InitializeStorageAsync();     // schema and crash recovery before the first request
await app.RunAsync();

/// <summary>The entry point, visible to the tests' WebApplicationFactory.</summary>
public partial class Program;
