using Microsoft.Extensions.Logging;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using NodeAgent.Pods;

namespace NodeAgent.Pleg;

/// <summary>
/// Pod lifecycle event generator (kubelet generic PLEG plus evented PLEG where the runtime has it).
/// Every relist (at most once per second) takes two list calls for the whole node, compares each
/// container's and sandbox's state with the previous relist, and wakes only the workers of pods
/// whose state changed. Where the runtime streams container events, each event wakes its pod at
/// once. The two snapshot tables are swapped, not reallocated, and the list responses are read by
/// a <see cref="RelistDecoder"/> (IDs, pod UIDs, states only; strings kept from the previous
/// relist), so an unchanged node costs no message objects and no new strings per relist.
/// Single owner: its own loop. It publishes the set of pod UIDs it saw (<see cref="IRuntimeListing"/>),
/// a new set only when that set changed.
/// </summary>
public sealed partial class GenericPleg(IRuntimeService runtime, Action<string> notify, TimeProvider time, ILogger<GenericPleg> log) : IRuntimeListing
{
    public static readonly TimeSpan RelistPeriod = TimeSpan.FromSeconds(1);
    /// <summary>kubelet: PLEG is unhealthy when a relist has not completed for 3 minutes.</summary>
    /// <summary>kubelet's PLEG relist threshold: longer without a relist and the agent is unhealthy (/healthz, the systemd watchdog).</summary>
    public TimeSpan RelistThreshold { get; init; } = TimeSpan.FromMinutes(3);

    private Dictionary<string, (string Uid, int State)> _old = new(StringComparer.Ordinal);
    private Dictionary<string, (string Uid, int State)> _new = new(StringComparer.Ordinal);
    private readonly HashSet<string> _changed = new(StringComparer.Ordinal);
    private readonly RelistDecoder _decoder = new();
    private readonly List<RelistEntry> _entries = [];
    private long _lastRelistTicks;
    private HashSet<string> _uidScratch = new(StringComparer.Ordinal);
    // Published for other threads: the UIDs of a relist whose listing began at or after _listedAt.
    // Written in that order and read in the other, so a reader never pairs a set with a later start.
    private HashSet<string>? _uids;
    private long _listedAt;
    private bool _runtimeDown;

    public DateTimeOffset LastRelist => new(Interlocked.Read(ref _lastRelistTicks), TimeSpan.Zero);
    public bool Healthy => time.GetUtcNow() - LastRelist < RelistThreshold;
    /// <summary>Seconds the last relist took, for kubelet_pleg_relist_duration_seconds.</summary>
    public Action<TimeSpan>? ObserveRelist { get; set; }

    public async Task RunAsync(CancellationToken ct)
    {
        var events = WatchEventsAsync(ct);
        using var timer = new PeriodicTimer(RelistPeriod, time);
        // Short cap: a returning runtime should be noticed within seconds.
        var retry = new RetryBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5));
        try
        {
            do
            {
                try
                {
                    await RelistOnceAsync(ct).ConfigureAwait(false);
                    if (_runtimeDown) { LogRuntimeBack(log); _runtimeDown = false; }
                    retry.Reset();
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
                catch (CriException e)
                {
                    if (!_runtimeDown) LogRelistFailed(log, e.Message);
                    _runtimeDown = true;
                    await Task.Delay(retry.Next(), time, ct).ConfigureAwait(false);
                }
            }
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
        }
        catch (OperationCanceledException) { }
        try { await events.ConfigureAwait(false); } catch (OperationCanceledException) { }
    }

    /// <summary>One relist: lists sandboxes and containers once each and wakes the pods that changed.</summary>
    public async Task RelistOnceAsync(CancellationToken ct)
    {
        long start = time.GetTimestamp();
        _entries.Clear();
        await runtime.RelistAsync(_decoder, _entries, ct).ConfigureAwait(false);
        _decoder.EndRelist();

        _new.Clear();
        foreach (var e in _entries) _new[e.Id] = (e.PodUid, e.State);

        _changed.Clear();
        foreach (var (id, cur) in _new)
            if (!_old.TryGetValue(id, out var prev) || prev.State != cur.State) _changed.Add(cur.Uid);
        foreach (var (id, prev) in _old)
            if (!_new.ContainsKey(id)) _changed.Add(prev.Uid);
        (_old, _new) = (_new, _old);

        PublishUids(start);
        foreach (var uid in _changed) notify(uid);
        Interlocked.Exchange(ref _lastRelistTicks, time.GetUtcNow().UtcTicks);
        ObserveRelist?.Invoke(time.GetElapsedTime(start));
    }

    private void PublishUids(long listedAt)
    {
        _uidScratch.Clear();
        foreach (var e in _entries) if (e.PodUid.Length > 0) _uidScratch.Add(e.PodUid);
        var published = Volatile.Read(ref _uids);
        if (published is null || !published.SetEquals(_uidScratch))
        {
            Volatile.Write(ref _uids, _uidScratch);
            _uidScratch = published is null ? new(StringComparer.Ordinal) : new(published.Count, StringComparer.Ordinal);
        }
        Volatile.Write(ref _listedAt, listedAt);
    }

    public bool SawNothingOf(string uid, out long listedAt)
    {
        listedAt = Volatile.Read(ref _listedAt);
        var uids = Volatile.Read(ref _uids);
        return uids is not null && !uids.Contains(uid);
    }

    private async Task WatchEventsAsync(CancellationToken ct)
    {
        var retry = new RetryBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await foreach (var e in runtime.GetContainerEventsAsync(ct).ConfigureAwait(false))
                {
                    retry.Reset();
                    if (e.PodSandboxStatus?.Metadata?.Uid is { Length: > 0 } uid) notify(uid);
                }
            }
            catch (CriException e) when (e.Kind == CriErrorKind.Unimplemented)
            {
                LogNoEvents(log);
                return;
            }
            catch (CriException) { }
            catch (OperationCanceledException) { return; }
            try { await Task.Delay(retry.Next(), time, ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "PLEG relist failed, container runtime unavailable? retrying with backoff: {Error}")]
    private static partial void LogRelistFailed(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "PLEG relist succeeded again: container runtime is back")]
    private static partial void LogRuntimeBack(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "runtime does not stream container events (GetContainerEvents unimplemented): relisting every second only")]
    private static partial void LogNoEvents(ILogger logger);
}
