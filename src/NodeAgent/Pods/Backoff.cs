namespace NodeAgent.Pods;

/// <summary>
/// Crash-loop backoff with the kubelet's semantics (flowcontrol.Backoff as kuberuntime uses it):
/// the first restart is immediate, then the delay doubles from 10 s up to 5 min; an entry whose
/// last restart is older than 2 × max (10 min of running without a crash) starts over.
/// Not thread-safe: each pod worker owns one.
/// </summary>
public sealed class ContainerBackoff(TimeSpan initial, TimeSpan max)
{
    public static ContainerBackoff Kubelet() => new(TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(5));

    private readonly Dictionary<string, (TimeSpan Delay, DateTimeOffset LastUpdate)> _entries = new(StringComparer.Ordinal);

    /// <summary>True while a restart for an exit at <paramref name="eventTime"/> must still wait; <paramref name="until"/> says until when.</summary>
    public bool InBackoff(string key, DateTimeOffset eventTime, DateTimeOffset now, out DateTimeOffset until)
    {
        until = default;
        if (!_entries.TryGetValue(key, out var e)) return false;
        if (Expired(e.LastUpdate, now)) return false;
        until = eventTime + e.Delay;
        return now < until;
    }

    /// <summary>Records a restart: the next exit waits twice as long (first time: the initial delay).</summary>
    public void Next(string key, DateTimeOffset eventTime)
    {
        if (!_entries.TryGetValue(key, out var e) || Expired(e.LastUpdate, eventTime))
            _entries[key] = (initial, eventTime);
        else
            _entries[key] = (e.Delay * 2 > max ? max : e.Delay * 2, eventTime);
    }

    public TimeSpan CurrentDelay(string key) => _entries.TryGetValue(key, out var e) ? e.Delay : TimeSpan.Zero;

    public void Reset(string key) => _entries.Remove(key);

    private bool Expired(DateTimeOffset lastUpdate, DateTimeOffset now) => now - lastUpdate > max * 2;
}

/// <summary>Exponential retry delay with ±20 % jitter and a cap, for loops that retry failed calls.</summary>
public sealed class RetryBackoff(TimeSpan initial, TimeSpan max)
{
    private readonly TimeSpan _initial = initial;
    private readonly TimeSpan _max = max;
    private TimeSpan _next = initial;

    public TimeSpan Next()
    {
        var d = _next;
        _next = _next * 2 > _max ? _max : _next * 2;
        return d * (0.8 + Random.Shared.NextDouble() * 0.4);
    }

    public void Reset() => _next = _initial;
}
