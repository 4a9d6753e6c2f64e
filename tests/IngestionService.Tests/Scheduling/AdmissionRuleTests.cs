using IngestionService.Dispatch;
using IngestionService.Scheduling;

namespace IngestionService.Tests.Scheduling;

/// <summary>The limiter's decision from the facts a backend reads, on both backends and in the dispatcher alike.</summary>
public sealed class AdmissionRuleTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Recheck = TimeSpan.FromSeconds(1);

    [Fact]
    public void AnEmptyLogAdmitsAtOnce()
    {
        Assert.Equal(Admission.Now, AdmissionRule.Decide(new LimiterFacts(null), T0, Window, Recheck));
        Assert.Equal(DateTimeOffset.MinValue, AdmissionRule.NotBefore(new LimiterFacts(null), Window));
    }

    [Fact]
    public void TheNextStartComesAWindowAfterTheLastStartAndNotATickSooner()
    {
        var facts = new LimiterFacts(T0, LastFinish: T0.AddSeconds(1));

        Assert.Equal(Admission.After(TimeSpan.FromSeconds(3)), AdmissionRule.Decide(facts, T0.AddSeconds(2), Window, Recheck));
        Assert.Equal(Admission.After(TimeSpan.FromTicks(1)), AdmissionRule.Decide(facts, T0 + Window - TimeSpan.FromTicks(1), Window, Recheck));
        Assert.Equal(Admission.Now, AdmissionRule.Decide(facts, T0 + Window, Window, Recheck));
    }

    [Fact]
    public void AfterALimitChangeTheNextStartWaitsTheLongerOfTheOldAndTheNewWindow()
    {
        var tenSeconds = TimeSpan.FromSeconds(10);
        var startedUnderFive = new LimiterFacts(T0, LastWindow: Window);
        var startedUnderTen = new LimiterFacts(T0, LastFinish: T0.AddSeconds(1), LastWindow: tenSeconds);

        Assert.Equal(T0 + tenSeconds, AdmissionRule.NotBefore(startedUnderFive, tenSeconds));           // 3/5 s to 3/10 s
        Assert.Equal(T0 + tenSeconds, AdmissionRule.NotBefore(startedUnderTen, Window));                // 3/10 s to 6/5 s
        Assert.Equal(T0.AddSeconds(11), AdmissionRule.NotBefore(startedUnderTen, new WindowSpacing(Window, FromFinish: true)));
        Assert.Equal(T0 + Window, AdmissionRule.NotBefore(startedUnderTen with { LastWindow = null }, Window)); // not known: the current one counts
        Assert.Equal(Admission.After(TimeSpan.FromSeconds(4)), AdmissionRule.Decide(startedUnderTen, T0.AddSeconds(6), Window, Recheck));
    }

    [Fact]
    public void SpacedFromTheFinishTheLaterOfStartAndLastAnswerCounts()
    {
        var facts = new LimiterFacts(T0, LastFinish: T0.AddSeconds(2));

        Assert.Equal(T0 + Window, AdmissionRule.NotBefore(facts, new WindowSpacing(Window)));
        Assert.Equal(T0.AddSeconds(2) + Window, AdmissionRule.NotBefore(facts, new WindowSpacing(Window, FromFinish: true)));
        Assert.Equal(T0 + Window, AdmissionRule.NotBefore(facts with { LastFinish = null }, new WindowSpacing(Window, FromFinish: true)));
    }

    [Fact]
    public void APauseHoldsEveryWindowBackUntilItEndsButNeverShortensTheSpacing()
    {
        var paused = new LimiterFacts(T0, PausedUntil: T0.AddSeconds(30));
        var shortPause = new LimiterFacts(T0, PausedUntil: T0.AddSeconds(1));

        Assert.Equal(Admission.After(TimeSpan.FromSeconds(20)), AdmissionRule.Decide(paused, T0.AddSeconds(10), Window, Recheck));
        Assert.Equal(Admission.Now, AdmissionRule.Decide(paused, T0.AddSeconds(30), Window, Recheck));
        Assert.Equal(T0 + Window, AdmissionRule.NotBefore(shortPause, Window));
    }

    [Fact]
    public void WhileAWindowRunsNothingIsAdmittedAndTheAnswerIsNeverSoonerThanTheRecheck()
    {
        var running = new LimiterFacts(T0, WindowRunning: true);

        // Long past the spacing: only the running window refuses, and the caller looks again after the recheck.
        Assert.Equal(Admission.After(Recheck), AdmissionRule.Decide(running, T0.AddMinutes(1), Window, Recheck));

        // Within the spacing the spacing is the longer wait.
        Assert.Equal(Admission.After(TimeSpan.FromSeconds(4)), AdmissionRule.Decide(running, T0.AddSeconds(1), Window, Recheck));
    }

    [Fact]
    public void TheAdmissionBoundIsReadWholeAndNeverBeforeNow()
    {
        var bound = new AdmissionBound();
        Assert.Equal(DateTimeOffset.MinValue, bound.NotBefore);
        Assert.Equal(T0, bound.NotBeforeFrom(T0));

        var later = new DateTimeOffset(2026, 1, 1, 3, 0, 0, TimeSpan.FromHours(3)).AddTicks(7);
        bound.Set(later);

        Assert.Equal(later, bound.NotBefore);
        Assert.Equal(TimeSpan.Zero, bound.NotBefore.Offset);
        Assert.Equal(later, bound.NotBeforeFrom(T0.AddTicks(-1)));
        Assert.Equal(later.AddSeconds(1), bound.NotBeforeFrom(later.AddSeconds(1)));
    }

    [Fact]
    public void APausedQueueIsHeldWhateverElseTheFactsSay()
    {
        var now = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var due = new LimiterFacts(now.AddHours(-1), QueuePaused: true);
        var running = new LimiterFacts(now, WindowRunning: true, QueuePaused: true);

        Assert.Equal(Admission.WhilePaused, AdmissionRule.Decide(due, now, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1)));
        Assert.Equal(Admission.WhilePaused, AdmissionRule.Decide(running, now, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1)));
        Assert.True(AdmissionRule.Decide(due with { QueuePaused = false }, now, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1)).Admitted);
        Assert.False(Admission.WhilePaused.Admitted);
    }
}
