namespace IngestionService.Storage;

/// <summary>
/// Builds the window log from rows of one window item each, newest window first, as both stores read
/// it: a row with a new window number starts a window, the others add to the one before.
/// </summary>
internal static class WindowLogRows
{
    public static void Add(List<WindowRecord> windows, long seq, DateTimeOffset startedAt, DateTimeOffset? finishedAt, WindowState state, DateTimeOffset? pausedUntil, WindowRecordItem item)
    {
        if (windows.Count == 0 || windows[^1].Seq != seq)
        {
            windows.Add(new WindowRecord(seq, startedAt, finishedAt, state, new List<WindowRecordItem>(), pausedUntil));
        }

        ((List<WindowRecordItem>)windows[^1].Items).Add(item);
    }
}
