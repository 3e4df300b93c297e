using System.Net.Sockets;
using System.Text.Json.Nodes;
using NodeAgent.Api.Client;
using NodeAgent.Pods;
using NodeAgent.Proxy;

namespace NodeAgent.Tests.Fakes;

/// <summary>
/// Feeds the proxy by hand: <see cref="List"/> is a full (re)list of a collection, <see cref="Change"/>
/// one watch event. Keeps each collection's cache as an informer does, so the proxy sees the same
/// shape of calls as from the API server.
/// </summary>
public sealed class FakeFeeds : IObjectFeeds
{
    public const string Services = "/api/v1/services", Slices = "/apis/discovery.k8s.io/v1/endpointslices";
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (Action<InformerChange, IReadOnlyDictionary<string, JsonObject>> OnChange, Dictionary<string, JsonObject> Cache)> _feeds = [];
    private readonly TaskCompletionSource _bothRunning = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once the proxy runs both feeds.</summary>
    public Task Running => _bothRunning.Task;

    public async Task RunAsync(string path, Action<InformerChange, IReadOnlyDictionary<string, JsonObject>> onChange, CancellationToken ct)
    {
        lock (_lock)
        {
            _feeds[path] = (onChange, new Dictionary<string, JsonObject>(StringComparer.Ordinal));
            if (_feeds.Count == 2) _bothRunning.TrySetResult();
        }
        try { await Task.Delay(Timeout.Infinite, ct); }
        catch (OperationCanceledException) { }
    }

    public void List(string path, params JsonObject[] items)
    {
        lock (_lock)
        {
            var (onChange, cache) = _feeds[path];
            cache.Clear();
            foreach (var o in items) cache[Informer.KeyOf(o)] = o;
            onChange(new InformerChange(InformerChange.Synced, "", null), cache);
        }
    }

    public void Change(string path, string type, JsonObject obj)
    {
        lock (_lock)
        {
            var (onChange, cache) = _feeds[path];
            string key = Informer.KeyOf(obj);
            if (type == "DELETED") cache.Remove(key); else cache[key] = obj;
            onChange(new InformerChange(type, key, obj), cache);
        }
    }
}

/// <summary>Records what the proxy's loop asks of the kernel side; failures and a damaged table on demand. Thread-safe.</summary>
public sealed class FakeProxyRules : IProxyRules
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string Key, AddressFamily Family), IReadOnlyList<ProxyServicePort>> _ports = [];
    private readonly List<bool> _syncs = [];

    public string Mode => "fake";

    /// <summary>How many of the next syncs throw (as a failing nft would).</summary>
    public int FailNext { get; set; }

    /// <summary>What <see cref="IntactAsync"/> answers (false: someone damaged the table).</summary>
    public bool Intact { get; set; } = true;

    /// <summary>How long <see cref="IntactAsync"/> takes (as an nft list on a loaded host).</summary>
    public TimeSpan CheckTakes { get; set; }

    /// <summary>The <c>full</c> flag of every sync asked for, failed ones included, in order.</summary>
    public List<bool> Syncs { get { lock (_lock) return [.. _syncs]; } }

    public IReadOnlyList<ProxyServicePort>? PortsOf(string key, AddressFamily family = AddressFamily.InterNetwork)
    {
        lock (_lock) return _ports.GetValueOrDefault((key, family));
    }

    public void SetService(string key, AddressFamily family, IReadOnlyList<ProxyServicePort> ports)
    {
        lock (_lock) _ports[(key, family)] = ports;
    }

    public void RemoveService(string key)
    {
        lock (_lock)
            foreach (var k in _ports.Keys.Where(k => k.Key == key).ToList()) _ports.Remove(k);
    }

    public Task<bool> SyncAsync(bool full, CancellationToken ct)
    {
        lock (_lock)
        {
            _syncs.Add(full);
            if (FailNext > 0)
            {
                FailNext--;
                throw new NftException("Error: Could not process rule: No such file or directory");
            }
            if (full) Intact = true;
        }
        return Task.FromResult(true);
    }

    public async Task<bool> IntactAsync(CancellationToken ct)
    {
        if (CheckTakes > TimeSpan.Zero) await Task.Delay(CheckTakes, ct);
        lock (_lock) return Intact;
    }

    public int ServicePorts { get { lock (_lock) return _ports.Values.Sum(p => p.Count); } }

    public void Report(ProxyMetrics metrics) { }
}

/// <summary>Collects events (the proxy's warnings about Services it could not fully program).</summary>
public sealed class FakeEvents : IEventRecorder
{
    private readonly Lock _lock = new();
    private readonly List<(EventSubject Subject, string Reason, string Message)> _warnings = [];

    public List<(EventSubject Subject, string Reason, string Message)> Warnings { get { lock (_lock) return [.. _warnings]; } }

    public void Normal(NodeAgent.Api.Core.Pod pod, string reason, string message) { }
    public void Warning(NodeAgent.Api.Core.Pod pod, string reason, string message) { }
    public void Warning(EventSubject subject, string reason, string message) { lock (_lock) _warnings.Add((subject, reason, message)); }
}

/// <summary>Conntrack deletions asked for, in order.</summary>
public sealed class FakeConntrack : IConntrack
{
    private readonly Lock _lock = new();
    private readonly List<string> _deletions = [];

    public List<string> Deletions { get { lock (_lock) return [.. _deletions]; } }

    public Task DeleteAsync(string[] args, CancellationToken ct)
    {
        lock (_lock) _deletions.Add(string.Join(' ', args));
        return Task.CompletedTask;
    }
}
