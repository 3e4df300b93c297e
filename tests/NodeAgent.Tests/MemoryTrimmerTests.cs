using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using NodeAgent.Os;
using Xunit;

namespace NodeAgent.Tests;

public class MemoryTrimmerTests
{
    [Fact]
    public void CollectsOnlyWhenCommittedMemoryGrewBySlackSinceTheLastTrim()
    {
        long committed = 20 << 20;
        int collections = 0;
        var trimmer = new MemoryTrimmer(TimeProvider.System, NullLogger<MemoryTrimmer>.Instance)
        {
            Slack = 4 << 20,
            Read = () => (committed, committed / 2),
            Collect = () => { collections++; committed = 9 << 20; },
            PageOutCode = () => default,
        };

        Assert.True(trimmer.TrimOnce());               // first check: no baseline yet, the burst is given back
        Assert.Equal(1, collections);
        Assert.False(trimmer.TrimOnce());              // stable footprint: nothing to do
        committed = (9 << 20) + (4 << 20);             // grew by exactly the slack: still nothing
        Assert.False(trimmer.TrimOnce());
        committed += 1;                                // beyond it: one collection, new baseline
        Assert.True(trimmer.TrimOnce());
        Assert.Equal(2, collections);
        Assert.False(trimmer.TrimOnce());
    }

    [Fact]
    public void TheExecutablesPagesAreGivenBackAtTheFirstCheckAndAfterEveryTrim()
    {
        long committed = 2 << 20; // below the slack: the first check does not collect
        int collections = 0, pageOuts = 0;
        var trimmer = new MemoryTrimmer(TimeProvider.System, NullLogger<MemoryTrimmer>.Instance)
        {
            Slack = 4 << 20,
            Read = () => (committed, committed / 2),
            Collect = () => { collections++; committed = 9 << 20; },
            PageOutCode = () => { pageOuts++; return new CodePages.Result(3, 1 << 20, 0); },
        };

        Assert.False(trimmer.TrimOnce());   // after start-up: the code start-up faulted in goes
        Assert.Equal((0, 1), (collections, pageOuts));
        Assert.False(trimmer.TrimOnce());   // steady: nothing
        Assert.Equal((0, 1), (collections, pageOuts));
        committed = 20 << 20;               // a burst: collected, and its code given back too
        Assert.True(trimmer.TrimOnce());
        Assert.Equal((1, 2), (collections, pageOuts));
        Assert.False(trimmer.TrimOnce());
        Assert.Equal((1, 2), (collections, pageOuts));
    }

    [Fact]
    public async Task TheLoopTrimsOnItsPeriodAndStopsWithinASecond()
    {
        long committed = 30 << 20;
        int collections = 0;
        var trimmer = new MemoryTrimmer(TimeProvider.System, NullLogger<MemoryTrimmer>.Instance)
        {
            Period = TimeSpan.FromMilliseconds(20),
            Read = () => (Volatile.Read(ref committed), 0),
            Collect = () => { Interlocked.Increment(ref collections); Volatile.Write(ref committed, 8 << 20); },
            PageOutCode = () => default,
        };
        using var cts = new CancellationTokenSource();
        var loop = trimmer.RunAsync(cts.Token);
        var sw = Stopwatch.StartNew();
        while (Volatile.Read(ref collections) == 0 && sw.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        await Task.Delay(100);
        Assert.Equal(1, Volatile.Read(ref collections)); // once: after it, the footprint is stable

        sw.Restart();
        await cts.CancelAsync();
        await loop.WaitAsync(TimeSpan.FromSeconds(1));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void TheRealCollectionRunsAndTheRealFiguresAreRead()
    {
        var trimmer = new MemoryTrimmer(TimeProvider.System, NullLogger<MemoryTrimmer>.Instance) { Slack = 0, PageOutCode = () => default };
        // The GC's figures are those of its latest collection: none yet in a fresh test process
        // (all zero, nothing to trim), as the CI run that ran this test first found.
        GC.Collect();
        int before = GC.CollectionCount(2);
        Assert.True(trimmer.TrimOnce());
        Assert.True(GC.CollectionCount(2) > before);
        Assert.True(trimmer.Read().Committed > 0);
    }
}
