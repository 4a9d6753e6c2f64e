using IngestionService.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace IngestionService.Tests.Dashboard;

/// <summary>
/// The dashboard in a real headless browser: Debian's chromium driven by Playwright, against the real
/// service. Skipped with a reason when chromium is missing locally; a failure on CI (<c>CI=true</c>),
/// where <c>.ci/run</c> installs it.
/// </summary>
public sealed class DashboardBrowserTests
{
    private const string Chromium = "/usr/bin/chromium";
    private static readonly float Deadline = 30_000; // milliseconds, for a loaded 2-core machine

    [Fact]
    public async Task AnIngestionSubmittedThroughThePageShowsUpInTheListAndOnTheTimelineAndCompletes()
    {
        RequireChromium();
        await using var app = new IngestionApp(new()
        {
            ["Ingestion:Window"] = "00:00:01",
            ["Upstream:SimulatedDelay"] = "00:00:00.200",
        });
        var baseAddress = app.Client.BaseAddress!;

        // Routine work first, so the page has a backlog to show and the HIGH request has something to overtake.
        await app.SubmitAsync("LOW", [.. Enumerable.Range(100, 60)]);
        await app.SubmitAsync("MEDIUM", 200, 201, 202, 203);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 860 } });
        var consoleErrors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                lock (consoleErrors)
                {
                    consoleErrors.Add(message.Text);
                }
            }
        };
        page.PageError += (_, error) =>
        {
            lock (consoleErrors)
            {
                consoleErrors.Add(error);
            }
        };

        await page.GotoAsync(baseAddress.ToString());
        await Expect(page.Locator("#connection")).ToHaveTextAsync("live", new() { Timeout = Deadline });

        await page.GetByLabel("Ids").FillAsync("1, 2, 3, 4, 5, 6, 7");
        await page.GetByLabel("Priority").SelectOptionAsync("HIGH");
        await page.GetByRole(AriaRole.Button, new() { Name = "Submit" }).ClickAsync();

        var accepted = page.Locator("#submit-result [data-ingestion-id]");
        await Expect(accepted).ToBeVisibleAsync(new() { Timeout = Deadline });
        var ingestionId = await accepted.GetAttributeAsync("data-ingestion-id");
        Assert.True(Guid.TryParse(ingestionId, out _), $"the page shows the accepted ingestion id (got '{ingestionId}')");

        var row = page.Locator($"#recent-list li[data-ingestion-id='{ingestionId}']");
        await Expect(row).ToBeVisibleAsync(new() { Timeout = Deadline });
        await Expect(page.Locator($"#timeline-strip .block .id[data-ingestion-id='{ingestionId}']").First).ToBeVisibleAsync(new() { Timeout = Deadline });
        await Expect(row).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = Deadline });
        await Expect(row.Locator(".counts")).ToContainTextAsync("3/3 batches", new() { Timeout = Deadline });

        // The HIGH ids took three windows of their own, overtaking the LOW backlog that is still waiting.
        var highWindows = page.Locator("#timeline-strip .block", new() { Has = page.Locator($".id[data-ingestion-id='{ingestionId}']") });
        await Expect(highWindows).ToHaveCountAsync(3, new() { Timeout = Deadline });

        // The look-up box, reached from the list with the keyboard.
        await row.GetByRole(AriaRole.Button).FocusAsync();
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("#lookup-result .batches tbody tr")).ToHaveCountAsync(3, new() { Timeout = Deadline });
        await Expect(page.Locator("#lookup-result .summary")).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = Deadline });

        await Expect(page.Locator("#queue-rows td[data-priority='LOW']")).Not.ToHaveTextAsync("0", new() { Timeout = Deadline });
        // The README's picture is refreshed on request (UPDATE_DASHBOARD_SCREENSHOT=1), so an ordinary test
        // run leaves the work tree as it was; otherwise the screenshot goes beside the test binaries.
        var screenshot = Environment.GetEnvironmentVariable("UPDATE_DASHBOARD_SCREENSHOT") == "1"
            ? Path.Combine(RepositoryRoot(), "docs", "dashboard.png")
            : Path.Combine(AppContext.BaseDirectory, "dashboard.png");
        await page.ScreenshotAsync(new() { Path = screenshot, FullPage = true });
        Assert.True(new FileInfo(screenshot).Length > 10_000, $"the screenshot at {screenshot} is nearly empty");

        lock (consoleErrors)
        {
            Assert.Empty(consoleErrors);
        }
    }

    private static void RequireChromium()
    {
        if (File.Exists(Chromium))
        {
            return;
        }

        const string how = $"no browser at {Chromium}: install Debian's chromium (apt-get install chromium; .ci/run does)";
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"CI=true but {how}.");
        }

        Assert.Skip($"Skipped: {how}.");
    }

    /// <summary>The folder of the solution file, where docs/ lives.</summary>
    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "IngestionService.slnx")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException($"No IngestionService.slnx above {AppContext.BaseDirectory}.");
    }
}
