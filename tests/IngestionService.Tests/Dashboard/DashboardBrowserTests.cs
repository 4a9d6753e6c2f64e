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

        await using var browser = await BrowserPage.OpenAsync();
        var page = browser.Page;

        await page.GotoAsync(baseAddress.ToString());
        await Expect(page.Locator("#connection")).ToHaveTextAsync("live", new() { Timeout = Deadline });
        await Expect(page.Locator("#connection")).ToHaveAttributeAsync("data-stream", "open", new() { Timeout = Deadline }); // redrawn on GET /events

        await page.Locator("#submit-ids").FillAsync("1, 2, 3, 4, 5, 6, 7");
        await page.Locator("#submit-priority").SelectOptionAsync("HIGH");
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

        // The look-up box, reached from the list with the keyboard; the look-up is in the address.
        await row.GetByRole(AriaRole.Link).FocusAsync();
        await page.Keyboard.PressAsync("Enter");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"#/ingestions/{ingestionId}$"), new() { Timeout = Deadline });
        await Expect(page.Locator("#lookup-result .batches tbody tr")).ToHaveCountAsync(3, new() { Timeout = Deadline });
        await Expect(page.Locator("#lookup-result .summary")).ToHaveAttributeAsync("data-status", "completed", new() { Timeout = Deadline });

        await Expect(page.Locator("#queue-rows td[data-priority='LOW']")).Not.ToHaveTextAsync("0", new() { Timeout = Deadline });
        var screenshot = ScreenshotPath("dashboard.png");
        await page.ScreenshotAsync(new() { Path = screenshot, FullPage = true });
        Assert.True(new FileInfo(screenshot).Length > 10_000, $"the screenshot at {screenshot} is nearly empty");

        browser.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task FailedRetriedAndThrottledCallsThePauseAndEachResultAreShownAndTheListFilters()
    {
        RequireChromium();
        // [1,2,3]: 2 gets a 500 and is retried; [2,4,5]: 4 gets a 429 asking for 2 s; [4,6]: 6 is a 404, for good.
        await using var upstream = await FakeUpstreamServer.StartAsync((id, calls) => (id, calls) switch
        {
            (2, 0) => FakeAnswer.Fail(500),
            (4, 0) => FakeAnswer.Fail(429, "2"),
            (6, _) => new FakeAnswer(404, """{"error":"no item 6"}"""),
            _ => FakeAnswer.Ok,
        });
        await using var app = new IngestionApp(new()
        {
            ["Ingestion:Window"] = "00:00:01",
            ["Upstream:Mode"] = "Http",
            ["Upstream:BaseUrl"] = upstream.BaseAddress.ToString(),
            ["Upstream:RetryBaseDelay"] = "00:00:00.100",
        });
        var failing = await app.SubmitAsync("MEDIUM", 1, 2, 3, 4, 5, 6);
        await Eventually.ReturnsAsync(() => app.StatusAsync(failing), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(30), "the failing ingestion to complete");
        var clean = await app.SubmitAsync("LOW", 7);

        await using var browser = await BrowserPage.OpenAsync();
        var page = browser.Page;

        // Opened straight at a look-up's address, as a shared link would be.
        await page.GotoAsync(new Uri(app.Client.BaseAddress!, $"/#/ingestions/{failing}").ToString());
        await Expect(page.Locator("#connection")).ToHaveTextAsync("live", new() { Timeout = Deadline });
        await Expect(page.Locator("#lookup-id")).ToHaveValueAsync(failing.ToString(), new() { Timeout = Deadline });
        var summary = page.Locator("#lookup-result .summary");
        await Expect(summary).ToHaveAttributeAsync("data-failed", "1", new() { Timeout = Deadline });
        await Expect(summary).ToContainTextAsync("1 failed");

        // One row per id with what the upstream answered.
        var results = page.Locator("#lookup-result table.results tbody tr");
        await Expect(results).ToHaveCountAsync(6, new() { Timeout = Deadline });
        var notFound = page.Locator("#lookup-result tr.result-failed");
        await Expect(notFound).ToHaveCountAsync(1);
        await Expect(notFound.Locator("td")).ToHaveTextAsync(["5", "6", "failed", "404", "1", "HTTP 404 Not Found", """{"error":"no item 6"}"""]);
        await Expect(page.Locator("#lookup-result tr[data-position='1'] td").Nth(4)).ToHaveTextAsync("2"); // id 2: two attempts

        // The timeline marks each call that did not simply succeed, and draws the pause the 429 asked for.
        var timeline = page.Locator("#timeline-strip");
        await Expect(timeline.Locator($".id[data-ingestion-id='{failing}'][data-outcome='retrying']")).ToHaveCountAsync(1, new() { Timeout = Deadline });
        await Expect(timeline.Locator($".id[data-ingestion-id='{failing}'][data-outcome='throttled']")).ToHaveTextAsync(["‖4 " + failing.ToString()[^6..]]);
        await Expect(timeline.Locator($".id[data-ingestion-id='{failing}'][data-outcome='failed']")).ToHaveTextAsync(["✕6 " + failing.ToString()[^6..]]);
        await Expect(timeline.Locator(".pause-band")).ToHaveCountAsync(1);
        await Expect(timeline.Locator(".pause-band")).ToContainTextAsync("upstream pause until");

        // In the list, the ingestion with a failure is not drawn all green.
        var row = page.Locator($"#recent-list li[data-ingestion-id='{failing}']");
        await Expect(row).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("has-failures"), new() { Timeout = Deadline });
        await Expect(row.Locator(".counts")).ToContainTextAsync("completed, 1 failed");
        Assert.Equal(("5", "1"), (await row.Locator(".seg.succeeded").EvaluateAsync<string>("e => e.style.flexGrow"), await row.Locator(".seg.failed").EvaluateAsync<string>("e => e.style.flexGrow")));

        // The README's second picture, before the filters change the list.
        await page.ScreenshotAsync(new() { Path = ScreenshotPath("dashboard-failures.png"), FullPage = true });

        // The filters ask the service: failed ids only, then a priority with none of them.
        var list = page.Locator("#recent-list li");
        await Expect(list).ToHaveCountAsync(2, new() { Timeout = Deadline });
        await page.GetByLabel("Status").SelectOptionAsync("failed");
        await Expect(list).ToHaveCountAsync(1, new() { Timeout = Deadline });
        await Expect(list.First).ToHaveAttributeAsync("data-ingestion-id", failing.ToString());
        await page.Locator("#filter-priority").SelectOptionAsync("LOW");
        await Expect(list).ToHaveCountAsync(0, new() { Timeout = Deadline });
        await Expect(page.Locator("#recent-empty")).ToHaveTextAsync("No ingestion matches this filter.");
        await page.GetByLabel("Status").SelectOptionAsync("");
        await Expect(list).ToHaveCountAsync(1, new() { Timeout = Deadline });
        await Expect(list.First).ToHaveAttributeAsync("data-ingestion-id", clean.ToString());

        // Another look-up from the address bar's history: back returns to the first.
        await page.GotoAsync(new Uri(app.Client.BaseAddress!, $"/#/ingestions/{clean}").ToString());
        await Expect(page.Locator("#lookup-result .summary code")).ToHaveTextAsync(clean.ToString(), new() { Timeout = Deadline });
        await page.GoBackAsync();
        await Expect(page.Locator("#lookup-result .summary code")).ToHaveTextAsync(failing.ToString(), new() { Timeout = Deadline });

        browser.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task TheLookUpShowsTheWebhookAndEachAttemptUntilItIsDelivered()
    {
        RequireChromium();
        await using var receiver = await WebhookReceiver.StartAsync(n => new HookAnswer(n == 1 ? 503 : 200));
        await using var app = new IngestionApp(new(Api.WebhookTests.Settings()) { ["Notifications:RetryBaseDelay"] = "00:00:01" });
        var id = await Api.WebhookTests.SubmitAsync(app.Client, receiver.HookUrl, 1, 2, 3, 4);
        await using var browser = await BrowserPage.OpenAsync();
        var page = browser.Page;

        await page.GotoAsync(new Uri(app.Client.BaseAddress!, $"/#/ingestions/{id}").ToString());

        var panel = page.Locator("#lookup-result .deliveries");
        await Expect(panel).ToHaveAttributeAsync("data-state", "delivered", new() { Timeout = Deadline });
        await Expect(panel.Locator(".delivery-summary")).ToContainTextAsync($"Webhook to {receiver.HookUrl.AbsoluteUri} · completed event delivered");
        await Expect(panel.Locator("table.attempts tbody tr")).ToHaveCountAsync(2);
        await Expect(panel.Locator("table.attempts tbody tr").Nth(0).Locator("td").Nth(2)).ToHaveTextAsync("HTTP 503");
        await Expect(panel.Locator("table.attempts tbody tr.attempt-ok td").Nth(2)).ToHaveTextAsync("HTTP 200");
        await Expect(page.Locator("#lookup-result .summary")).ToHaveAttributeAsync("data-status", "completed");
        await page.ScreenshotAsync(new() { Path = ScreenshotPath("dashboard-webhook.png"), FullPage = true });
        browser.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task TheQueueIsPausedAndResumedFromTheHeaderWithTheAdminKeyAskedForOnce()
    {
        RequireChromium();
        const string key = "dashboard-admin-key-42";
        await using var app = new IngestionApp(new()
        {
            ["Ingestion:Window"] = "00:00:01",
            ["Upstream:SimulatedDelay"] = "00:00:00.100",
            ["Admin:ApiKey"] = key,
        });
        await using var browser = await BrowserPage.OpenAsync();
        var page = browser.Page;
        // The pause asks for a reason, the service's 401 for the key, the resume for a confirmation.
        var dialogs = AcceptDialogs(page, dialog => dialog.Message.Contains("admin key", StringComparison.Ordinal) ? key : dialog.Type == "prompt" ? "database migration" : null);

        await page.GotoAsync(app.Client.BaseAddress!.ToString());
        await Expect(page.Locator("#connection")).ToHaveTextAsync("live", new() { Timeout = Deadline });
        var toggle = page.Locator("#pause-toggle");
        await Expect(toggle).ToHaveTextAsync("Pause queue");

        await toggle.ClickAsync();
        await Expect(page.Locator("#pause-banner")).ToContainTextAsync("Queue paused", new() { Timeout = Deadline });
        await Expect(page.Locator("#pause-banner")).ToContainTextAsync("database migration");
        await Expect(page.Locator("#control-result")).ToContainTextAsync("Paused at");
        await Expect(toggle).ToHaveTextAsync("Resume queue");
        Assert.True((await app.GetJsonAsync("/queue")).GetProperty("paused").GetBoolean());

        // Work submitted while paused waits, and the page says why.
        var waiting = await app.SubmitAsync("HIGH", 1, 2, 3);
        await Expect(page.Locator("#countdown")).ToContainTextAsync("paused", new() { Timeout = Deadline });
        await Expect(page.Locator("#queue-rows td[data-priority='HIGH']")).ToHaveTextAsync("3", new() { Timeout = Deadline });
        await page.GotoAsync(new Uri(app.Client.BaseAddress!, $"/#/ingestions/{waiting}").ToString());
        await Expect(page.Locator("#lookup-result .summary")).ToContainTextAsync("queue paused", new() { Timeout = Deadline });
        await Expect(page.Locator("#lookup-result")).Not.ToContainTextAsync("null");

        await toggle.ClickAsync();
        await Expect(page.Locator("#pause-banner")).ToBeHiddenAsync(new() { Timeout = Deadline });
        await Expect(page.Locator("#control-result")).ToHaveTextAsync("Resumed.");
        await Expect(toggle).ToHaveTextAsync("Pause queue");
        await Eventually.ReturnsAsync(() => app.StatusAsync(waiting), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(15), "the resumed queue to run the ingestion");

        lock (dialogs)
        {
            Assert.Equal(3, dialogs.Count); // the reason, the key (asked once, then kept), the confirmation
            Assert.Contains("admin key", dialogs[1], StringComparison.Ordinal);
            Assert.StartsWith("Resume the queue?", dialogs[2], StringComparison.Ordinal);
        }

        browser.AssertNoConsoleErrors();
    }

    [Fact]
    public async Task AnIngestionIsMovedAndCancelledFromTheLookUpAndTheLimitIsChangedFromTheHeader()
    {
        RequireChromium();
        // One id per ten-minute window: the first id runs, everything else waits for the operator.
        await using var app = new IngestionApp(new() { ["Ingestion:BatchSize"] = "1", ["Ingestion:Window"] = "00:10:00", ["Upstream:SimulatedDelay"] = "00:00:00" });
        await app.SubmitAsync("HIGH", 1);
        await app.SubmitAsync("MEDIUM", 2, 3);
        var low = await app.SubmitAsync("LOW", 4, 5);
        await using var browser = await BrowserPage.OpenAsync();
        var page = browser.Page;
        var dialogs = AcceptDialogs(page, _ => null);

        await page.GotoAsync(new Uri(app.Client.BaseAddress!, $"/#/ingestions/{low}").ToString());
        await Expect(page.Locator("#connection")).ToHaveTextAsync("live", new() { Timeout = Deadline });
        var summary = page.Locator("#lookup-result .summary");
        await Expect(summary).ToContainTextAsync("2 ids ahead", new() { Timeout = Deadline });

        // Moved to HIGH: nothing waits ahead of it any more.
        await page.Locator("#lookup-priority").SelectOptionAsync("HIGH");
        await page.Locator("#lookup-priority").FocusAsync();

        // The look-up refreshes every second; the chosen priority and the focus survive it.
        var before = await summary.ElementHandleAsync();
        await before.WaitForElementStateAsync(ElementState.Hidden, new() { Timeout = Deadline }); // replaced by the next refresh
        await Expect(page.Locator("#lookup-priority")).ToBeFocusedAsync();
        await Expect(page.Locator("#lookup-priority")).ToHaveValueAsync("HIGH");
        await page.Locator("#lookup-move").ClickAsync();
        await Expect(page.Locator("#lookup-action-result")).ToHaveTextAsync("Now HIGH, 0 ids ahead.", new() { Timeout = Deadline });
        await Expect(summary.Locator(".chip")).ToHaveTextAsync("HIGH", new() { Timeout = Deadline });
        Assert.Equal("HIGH", (await app.StatusAsync(low)).GetProperty("priority").GetString());

        // The controls, for the README's picture: the look-up's actions and the header's limit editor, open.
        await page.Locator("#limits-editor summary").ClickAsync();
        await page.ScreenshotAsync(new() { Path = ScreenshotPath("dashboard-controls.png"), FullPage = true });
        await page.Locator("#limits-editor summary").ClickAsync();

        // Cancelled: both batches will never run, and the actions are gone.
        await page.Locator("#lookup-cancel").ClickAsync();
        await Expect(page.Locator("#lookup-action-result")).ToHaveTextAsync("Cancelled 2 ids; the ingestion is cancelled.", new() { Timeout = Deadline });
        await Expect(summary).ToHaveAttributeAsync("data-status", "cancelled", new() { Timeout = Deadline });
        await Expect(page.Locator("#lookup-result .batches tr.status-cancelled")).ToHaveCountAsync(2);
        await Expect(page.Locator("#lookup-cancel")).ToHaveCountAsync(0);
        await page.Locator("#filter-status").SelectOptionAsync("cancelled");
        await Expect(page.Locator("#recent-list li")).ToHaveCountAsync(1, new() { Timeout = Deadline });
        await Expect(page.Locator($"#recent-list li[data-ingestion-id='{low}'] .counts")).ToContainTextAsync("cancelled (2 ids never called)");

        // The limit, from the header: applied, shown, and undone.
        await page.Locator("#limits-editor summary").ClickAsync();
        await page.Locator("#limit-batch").FillAsync("2");
        await page.Locator("#limit-window").FillAsync("00:00:07");
        await page.GetByRole(AriaRole.Button, new() { Name = "Apply" }).ClickAsync();
        await Expect(page.Locator("#limits-result")).ToHaveTextAsync("2 ids per 00:00:07 (override), from the next window.", new() { Timeout = Deadline });
        await Expect(page.Locator("#limits-summary")).ToHaveTextAsync("2 ids per 7 s window", new() { Timeout = Deadline });
        Assert.Equal("override", (await app.GetJsonAsync("/limits")).GetProperty("source").GetString());
        await page.Locator("#limits-editor summary").ClickAsync();
        await page.Locator("#limits-reset").ClickAsync();
        await Expect(page.Locator("#limits-summary")).ToHaveTextAsync("1 id per 600 s window", new() { Timeout = Deadline });
        Assert.Equal("configuration", (await app.GetJsonAsync("/limits")).GetProperty("source").GetString());

        lock (dialogs)
        {
            Assert.Equal(4, dialogs.Count); // each action asked first
            Assert.StartsWith("Move the waiting ids", dialogs[0], StringComparison.Ordinal);
            Assert.StartsWith("Cancel the ids", dialogs[1], StringComparison.Ordinal);
            Assert.StartsWith("Set the rate limit to 2 ids per 00:00:07?", dialogs[2], StringComparison.Ordinal);
            Assert.StartsWith("Go back to the configured rate limit", dialogs[3], StringComparison.Ordinal);
        }

        browser.AssertNoConsoleErrors();
    }

    /// <summary>Accepts every dialog the page opens, with the text <paramref name="answer"/> gives a prompt; the messages, in order.</summary>
    private static List<string> AcceptDialogs(IPage page, Func<IDialog, string?> answer)
    {
        var messages = new List<string>();
        page.Dialog += async (_, dialog) =>
        {
            lock (messages)
            {
                messages.Add(dialog.Message);
            }

            await dialog.AcceptAsync(answer(dialog));
        };
        return messages;
    }

    /// <summary>Where a picture goes: docs/ on request (UPDATE_DASHBOARD_SCREENSHOT=1), else beside the test binaries, so a test run leaves the work tree as it was.</summary>
    private static string ScreenshotPath(string name) => Environment.GetEnvironmentVariable("UPDATE_DASHBOARD_SCREENSHOT") == "1"
        ? Path.Combine(RepositoryRoot(), "docs", name)
        : Path.Combine(AppContext.BaseDirectory, name);

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

    /// <summary>Debian's chromium, headless, with one page whose console errors are collected.</summary>
    private sealed class BrowserPage : IAsyncDisposable
    {
        private readonly IPlaywright _playwright;
        private readonly IBrowser _browser;
        private readonly List<string> _errors = [];

        private BrowserPage(IPlaywright playwright, IBrowser browser, IPage page)
        {
            _playwright = playwright;
            _browser = browser;
            Page = page;
            page.Console += (_, message) =>
            {
                if (message.Type == "error")
                {
                    lock (_errors)
                    {
                        _errors.Add(message.Text);
                    }
                }
            };
            page.PageError += (_, error) =>
            {
                lock (_errors)
                {
                    _errors.Add(error);
                }
            };
        }

        public IPage Page { get; }

        public static async Task<BrowserPage> OpenAsync()
        {
            var playwright = await Playwright.CreateAsync();
            var browser = await playwright.Chromium.LaunchAsync(new()
            {
                ExecutablePath = Chromium,
                Headless = true,
                Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
            });
            var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 860 } });
            return new BrowserPage(playwright, browser, page);
        }

        public void AssertNoConsoleErrors()
        {
            lock (_errors)
            {
                Assert.Empty(_errors);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _browser.DisposeAsync();
            _playwright.Dispose();
        }
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
