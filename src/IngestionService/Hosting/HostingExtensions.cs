using System.Globalization;
using Microsoft.Extensions.Options;

namespace IngestionService.Hosting;

public static class HostingExtensions
{
    public const string DefaultUrl = "http://localhost:8000";

    /// <summary>
    /// Listens where the user said (<c>--urls</c>, <c>ASPNETCORE_URLS</c>), else on <c>PORT</c> on every
    /// interface as PaaS hosts expect, else on <see cref="DefaultUrl"/>.
    /// </summary>
    public static WebApplicationBuilder UseDefaultUrls(this WebApplicationBuilder builder)
    {
        if (!string.IsNullOrWhiteSpace(builder.Configuration[WebHostDefaults.ServerUrlsKey]))
        {
            return builder;
        }

        var port = builder.Configuration["PORT"];
        if (string.IsNullOrWhiteSpace(port))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }
        else if (int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number is > 0 and <= 65535)
        {
            builder.WebHost.UseUrls($"http://+:{number}");
        }
        else
        {
            throw new OptionsValidationException("PORT", typeof(string), [$"PORT must be a TCP port number between 1 and 65535 (got '{port}')."]);
        }

        return builder;
    }

    /// <summary>
    /// Answers that routing gives without reaching a handler (an unknown route, a method the route does
    /// not take, a body that is not JSON) as problem+json that says what to send instead.
    /// </summary>
    /// <summary>What every 415 says: the one media type to send, and what came instead.</summary>
    public static string NotJson(HttpRequest request) =>
        $"Send the body as JSON with 'Content-Type: application/json' (got '{request?.ContentType ?? "no content type"}').";

    public static WebApplication UseProblemStatusPages(this WebApplication app)
    {
        app.UseStatusCodePages(async context =>
        {
            var http = context.HttpContext;
            var request = http.Request;
            var detail = http.Response.StatusCode switch
            {
                StatusCodes.Status415UnsupportedMediaType => NotJson(request),
                StatusCodes.Status405MethodNotAllowed =>
                    $"{request.Method} {request.Path} is not served; this route takes {http.Response.Headers.Allow}.",
                StatusCodes.Status404NotFound =>
                    $"Nothing is served at {request.Method} {request.Path}. The API is POST /ingest and GET /status/{{ingestion_id}}; /docs lists every route.",
                _ => null,
            };
            await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
            {
                HttpContext = http,
                ProblemDetails = { Status = http.Response.StatusCode, Detail = detail },
            });
        });
        return app;
    }

    /// <summary>
    /// <c>HEAD</c> answers wherever <c>GET</c> does (monitors and link checkers send it): it is routed as a
    /// <c>GET</c>, and Kestrel, which still knows the request was a <c>HEAD</c>, sends the headers only.
    /// It must come before <c>UseRouting</c>.
    /// </summary>
    public static WebApplication UseHeadAsGet(this WebApplication app)
    {
        app.Use((context, next) =>
        {
            if (HttpMethods.IsHead(context.Request.Method))
            {
                context.Request.Method = HttpMethods.Get;
            }

            return next(context);
        });
        return app;
    }
}
