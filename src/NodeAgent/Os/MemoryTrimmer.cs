using Microsoft.Extensions.Logging;

namespace NodeAgent.Os;

/// <summary>
/// Gives the GC's memory back to the host after bursts. The workstation GC keeps what a burst
/// (50 pods starting at once, a large relist) made it commit, and collects the older generations
/// only when their budgets run out, which at a node agent's steady allocation rate takes many
/// minutes: after 50 pods started, the agent held ~17 MB committed for a ~6 MB live heap. The Go
/// runtime under the kubelet returns such memory with its background scavenger; this is the
/// agent's equivalent: every <see cref="Period"/>, if the GC has committed more than
/// <see cref="Slack"/> beyond what it held after the last trim, one blocking, compacting,
/// aggressive collection (which also decommits the freed regions). Bounded: at most one full
/// collection per period (~10 ms for a heap of this size), none while the footprint is stable.
/// The first check after start-up, and every trim, also page out the executable's code that the
/// start-up or the burst faulted in (<see cref="CodePages"/>): what the steady state runs comes back.
/// </summary>
public sealed partial class MemoryTrimmer(TimeProvider time, ILogger<MemoryTrimmer> log)
{
    public TimeSpan Period { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Growth of committed memory since the last trim that is worth a full collection.</summary>
    public long Slack { get; init; } = 4L << 20;

    /// <summary>Committed bytes and heap size as of the latest collection (the GC, or a fake in tests).</summary>
    public Func<(long Committed, long Heap)> Read { get; init; } = static () =>
    {
        var info = GC.GetGCMemoryInfo();
        return (info.TotalCommittedBytes, info.HeapSizeBytes);
    };

    public Action Collect { get; init; } = static () => GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    /// <summary>Gives back the executable's resident pages (the real one, or a fake in tests).</summary>
    public Func<CodePages.Result> PageOutCode { get; init; } = CodePages.PageOut;

    private long _baseline; // committed right after the last trim (0: none yet)
    private bool _pagedOut; // the executable's pages were given back once since start-up

    public static bool ShouldTrim(long committed, long baseline, long slack) => committed > baseline + slack;

    public async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(Period, time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false)) TrimOnce();
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>One check; true when it collected.</summary>
    public bool TrimOnce()
    {
        var (committed, _) = Read();
        bool trim = ShouldTrim(committed, _baseline, Slack);
        if (trim)
        {
            long start = time.GetTimestamp();
            Collect();
            var (after, heap) = Read();
            _baseline = after;
            LogTrimmed(log, committed, after, heap, time.GetElapsedTime(start).TotalMilliseconds);
        }
        if (trim || !_pagedOut)
        {
            _pagedOut = true;
            var paged = PageOutCode();
            if (paged.Errno != 0) LogPageOutFailed(log, paged.Ranges, paged.Errno);
            else LogPagedOut(log, paged.Ranges, paged.Bytes);
        }
        return trim;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "GC memory trimmed: committed {Before} -> {After} bytes, heap {Heap} bytes, in {Ms:F1} ms")]
    private static partial void LogTrimmed(ILogger logger, long before, long after, long heap, double ms);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Executable pages given back: {Ranges} read-only mappings, {Bytes} bytes")]
    private static partial void LogPagedOut(ILogger logger, int ranges, ulong bytes);

    // Debug too: the only effect of a refusal (an old kernel, a binary the agent may not page out) is a larger RSS.
    [LoggerMessage(Level = LogLevel.Debug, Message = "Executable pages not given back ({Ranges} mappings): errno {Errno}")]
    private static partial void LogPageOutFailed(ILogger logger, int ranges, int errno);
}
