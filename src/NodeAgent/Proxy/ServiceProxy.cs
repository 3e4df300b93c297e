using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.Proxy;

/// <summary>Applies nftables transactions (the seam between the proxy's logic and the kernel).</summary>
public interface INftables
{
    /// <summary>Applies <paramref name="transaction"/> atomically; throws <see cref="NftException"/> with nft's message when it is refused.</summary>
    Task ApplyAsync(string transaction, CancellationToken ct);

    /// <summary>The same, from UTF-8 text (a full write of a large table, without making it a string).</summary>
    Task ApplyAsync(ReadOnlyMemory<byte> transaction, CancellationToken ct);

    /// <summary>Applies <paramref name="delta"/> atomically; throws <see cref="NftException"/> naming the refused command.</summary>
    Task ApplyAsync(NftDelta delta, CancellationToken ct);

    /// <summary>Whether the table still has its base chain (a cheap check that nobody removed or flushed the table).</summary>
    Task<bool> IntactAsync(string family, string table, CancellationToken ct);
}

public sealed class NftException(string message) : Exception(message);

/// <summary><see cref="INftables"/> through the nft command: one <c>nft -f -</c> per transaction (in network namespace <paramref name="netns"/> when given, through <c>ip netns exec</c>).</summary>
public sealed class NftCli(string? netns = null) : INftables
{
    public async Task ApplyAsync(string transaction, CancellationToken ct)
    {
        var (code, _, err) = await RunAsync(["-f", "-"], System.Text.Encoding.UTF8.GetBytes(transaction), ct).ConfigureAwait(false);
        if (code != 0) throw new NftException(err.Trim());
    }

    public Task ApplyAsync(NftDelta delta, CancellationToken ct) => ApplyAsync(delta.Text, ct);

    public async Task ApplyAsync(ReadOnlyMemory<byte> transaction, CancellationToken ct)
    {
        var (code, _, err) = await RunAsync(["-f", "-"], transaction, ct).ConfigureAwait(false);
        if (code != 0) throw new NftException(err.Trim());
    }

    public async Task<bool> IntactAsync(string family, string table, CancellationToken ct)
    {
        var (code, output, _) = await RunAsync(["list", "chain", family, table, "services"], null, ct).ConfigureAwait(false);
        return code == 0 && output.Contains("@service-ips", StringComparison.Ordinal);
    }

    /// <summary>nft (through <c>ip netns exec</c> in a named namespace) with <paramref name="stdin"/>.</summary>
    private async Task<(int, string, string)> RunAsync(string[] args, ReadOnlyMemory<byte>? stdin, CancellationToken ct)
    {
        string[] all = netns is null ? args : ["netns", "exec", netns, "nft", .. args];
        try { return await NodeAgent.Os.Exec.RunAsync(netns is null ? "nft" : "ip", all, stdin, "nftables", ct).ConfigureAwait(false); }
        catch (NodeAgent.Os.ToolMissingException e) { throw new NftException(e.Message); }
    }
}

/// <summary>
/// Where the proxy's Services and EndpointSlices come from: one list+watch feed per collection.
/// Each change is handed over with the feed's whole cache after it; <see cref="InformerChange.Synced"/>
/// marks a full (re)list. The seam between the proxy's loop and the API server (unit tests feed it by hand).
/// </summary>
public interface IObjectFeeds
{
    /// <summary>Feeds the collection at <paramref name="path"/> (e.g. /api/v1/services) until <paramref name="ct"/> is cancelled.</summary>
    Task RunAsync(string path, Action<InformerChange, IReadOnlyDictionary<string, JsonObject>> onChange, CancellationToken ct);
}

/// <summary><see cref="IObjectFeeds"/> from the API server: an <see cref="Informer"/> per collection.</summary>
public sealed class ApiObjectFeeds(ApiClient api, ILogger log, TimeProvider time) : IObjectFeeds
{
    public Task RunAsync(string path, Action<InformerChange, IReadOnlyDictionary<string, JsonObject>> onChange, CancellationToken ct)
    {
        Informer? informer = null;
        informer = new Informer(api, path, null, c => onChange(c, informer!.Cache), log, time);
        return informer.RunAsync(ct);
    }
}

/// <summary>How the proxy runs: its table, the cluster's pod range, how often it rewrites everything.</summary>
public sealed record ServiceProxyOptions(string NodeName, NftOptions Nft, TimeSpan MinSyncPeriod, TimeSpan CheckPeriod, TimeSpan FullSyncPeriod);

/// <summary>
/// The agent's kube-proxy (nftables mode): informers on Services and EndpointSlices feed one loop
/// that alone owns the model and the rulesets (one per IP family). A change marks its service
/// dirty; after at most <c>MinSyncPeriod</c> of coalescing, the dirty services are rebuilt and one
/// delta transaction per family is applied, so unchanged services cost nothing. The table is
/// written whole at start, when a periodic check finds it damaged, every <c>FullSyncPeriod</c>,
/// and after a failed transaction; a failure keeps the last good rules in the kernel (a
/// transaction is atomic) and is retried with a jittered backoff up to 30 s. Malformed services
/// and slices are skipped with a logged reason and never stop the others.
/// Health as kube-proxy reports it on :10256 (<see cref="Health"/>). After a sync, conntrack
/// entries of UDP endpoints that went away are deleted (<see cref="ConntrackCleanup"/>).
/// Tests: ServiceProxyLoopTests (the loop, on fake feeds and rules); NodeAgent.IntegrationTests
/// ServiceProxyTests; the rules: ProxyRulesTests, ProxyKernelTests.
/// </summary>
public sealed partial class ServiceProxy(IObjectFeeds feeds, IProxyRules rules, IConntrack conntrack, ServiceProxyOptions options, TimeProvider time, ILogger<ServiceProxy> log,
    NodeAgent.Pods.IEventRecorder? events = null)
{
    private abstract record Msg;
    private sealed record Listed(bool Slices, List<JsonObject> Items) : Msg;
    private sealed record Changed(bool Slices, string Type, JsonObject Obj) : Msg;

    private readonly Channel<Msg> _inbox = Channel.CreateUnbounded<Msg>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<string, JsonObject> _services = new(StringComparer.Ordinal);
    /// <summary>Service key → slice name → slice.</summary>
    private readonly Dictionary<string, Dictionary<string, JsonObject>> _slices = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirty = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _reported = new(StringComparer.Ordinal);
    /// <summary>kube-proxy's healthCheckNodePort servers (LoadBalancer services with externalTrafficPolicy Local).</summary>
    private ServiceHealthServer? _healthChecks;

    /// <summary>Per service with a Local policy and no local endpoint: (internal, external); summed for kube-proxy's gauge.</summary>
    private readonly Dictionary<string, (bool Internal, bool External)> _noLocal = new(StringComparer.Ordinal);
    /// <summary>The UDP service ports last built per service (both families), for conntrack cleanup.</summary>
    private readonly Dictionary<string, List<ProxyServicePort>> _udp = new(StringComparer.Ordinal);
    /// <summary>When the last transaction was applied (for health and tests).</summary>
    public DateTimeOffset LastSync => new(Interlocked.Read(ref _lastSyncTicks), TimeSpan.Zero);
    public int Syncs { get; private set; }
    public ProxyMetrics Metrics { get; } = new();
    /// <summary>Per service, the newest endpoints.kubernetes.io/last-change-trigger-time not yet programmed.</summary>
    private readonly Dictionary<string, DateTimeOffset> _triggers = new(StringComparer.Ordinal);

    private long _lastSyncTicks, _pendingSinceTicks;

    /// <summary>How long changes may wait for the kernel before the proxy counts as unhealthy.</summary>
    public static readonly TimeSpan HealthTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// kube-proxy's healthz: healthy once the first sync is in the kernel and no change has waited
    /// longer than <see cref="HealthTimeout"/> (a failing nft, a stuck loop). Safe from any thread.
    /// </summary>
    public (bool Healthy, DateTimeOffset LastUpdated) Health(DateTimeOffset now)
    {
        long last = Interlocked.Read(ref _lastSyncTicks), pending = Interlocked.Read(ref _pendingSinceTicks);
        bool ok = last != 0 && (pending == 0 || now.UtcTicks - pending < HealthTimeout.Ticks);
        return (ok, new DateTimeOffset(last == 0 ? now.UtcTicks : last, TimeSpan.Zero));
    }

    public async Task RunAsync(CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        await using var healthChecks = _healthChecks = new ServiceHealthServer(() => Health(time.GetUtcNow()).Healthy, log);
        var watches = Task.WhenAll(feeds.RunAsync("/api/v1/services", (c, cache) => Forward(false, c, cache), stop.Token),
            feeds.RunAsync("/apis/discovery.k8s.io/v1/endpointslices", (c, cache) => Forward(true, c, cache), stop.Token));
        bool servicesListed = false, slicesListed = false, full = true;
        int failures = 0;
        var nextCheck = time.GetUtcNow() + options.CheckPeriod;
        var nextFull = time.GetUtcNow() + options.FullSyncPeriod;
        try
        {
            while (true)
            {
                while (_inbox.Reader.TryRead(out var msg))
                {
                    if (msg is Listed l) { if (l.Slices) slicesListed = true; else servicesListed = true; }
                    Apply(msg);
                }
                var now = time.GetUtcNow();
                if ((full || _dirty.Count > 0) && Interlocked.Read(ref _pendingSinceTicks) == 0) Interlocked.Exchange(ref _pendingSinceTicks, now.UtcTicks);
                if (servicesListed && slicesListed && (full || _dirty.Count > 0 || now >= nextFull))
                {
                    if (now >= nextFull) { full = true; nextFull = now + options.FullSyncPeriod; }
                    try
                    {
                        await SyncAsync(full, ct).ConfigureAwait(false);
                        full = false;
                        failures = 0;
                        Interlocked.Exchange(ref _pendingSinceTicks, 0);
                        if (Interlocked.Read(ref _lastSyncTicks) == 0) Interlocked.Exchange(ref _lastSyncTicks, time.GetUtcNow().UtcTicks);
                    }
                    catch (Exception e) when (e is NftException or NodeAgent.Os.NetlinkException)
                    {
                        Metrics.SyncFailed();
                        failures++;
                        full = true; // what the kernel has is no longer known exactly: rewrite it all next time
                        var delay = TimeSpan.FromMilliseconds(Math.Min(30_000, 500 * Math.Pow(2, Math.Min(failures, 6))) * (0.8 + 0.4 * Random.Shared.NextDouble()));
                        LogSyncFailed(log, e.Message, delay.TotalSeconds);
                        await Task.Delay(delay, time, ct).ConfigureAwait(false);
                        continue;
                    }
                    // Coalesce: changes arriving now wait for the next round at most MinSyncPeriod away.
                    await Task.Delay(options.MinSyncPeriod, time, ct).ConfigureAwait(false);
                    continue;
                }
                if (servicesListed && slicesListed && now >= nextCheck)
                {
                    nextCheck = now + options.CheckPeriod;
                    if (!await rules.IntactAsync(ct).ConfigureAwait(false)) full = true;
                    if (full) continue;
                }
                var until = Min(nextCheck, nextFull) - time.GetUtcNow();
                // A deadline that passed since `now` was read (the check above takes a process
                // spawn) is acted on at once: waiting without a timeout would sleep until the next
                // API event, and a damaged table would stay damaged until then.
                if (until <= TimeSpan.Zero && servicesListed && slicesListed) continue;
                using var wake = CancellationTokenSource.CreateLinkedTokenSource(ct);
                if (until > TimeSpan.Zero) wake.CancelAfter(until);
                try { await _inbox.Reader.WaitToReadAsync(wake.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await watches.ConfigureAwait(false);
        }
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private void Forward(bool slices, InformerChange c, IReadOnlyDictionary<string, JsonObject> cache)
    {
        if (c.Type == InformerChange.Synced) _inbox.Writer.TryWrite(new Listed(slices, [.. cache.Values]));
        else if (c.Object is not null) _inbox.Writer.TryWrite(new Changed(slices, c.Type, c.Object));
    }

    private static string Str(JsonNode? n, string name) => n?[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";

    private void Apply(Msg msg)
    {
        switch (msg)
        {
            case Listed { Slices: false } l:
                foreach (var k in _services.Keys) _dirty.Add(k);
                _services.Clear();
                foreach (var s in l.Items) { string k = KeyOf(s); _services[k] = s; _dirty.Add(k); }
                break;
            case Listed l:
                foreach (var k in _slices.Keys) _dirty.Add(k);
                _slices.Clear();
                foreach (var s in l.Items) AddSlice(s);
                break;
            case Changed { Slices: false } c:
                Metrics.ServiceChanged();
                Metrics.Queued(time.GetUtcNow());
                string key = KeyOf(c.Obj);
                if (c.Type == "DELETED") _services.Remove(key); else _services[key] = c.Obj;
                _dirty.Add(key);
                break;
            case Changed c:
                Metrics.EndpointsChanged();
                Metrics.Queued(time.GetUtcNow());
                if (NodeAgent.Api.Meta.ApiTime.TryParse(Str(c.Obj["metadata"]?["annotations"], "endpoints.kubernetes.io/last-change-trigger-time")) is { } trigger)
                {
                    string svcKey = SliceService(c.Obj);
                    if (!_triggers.TryGetValue(svcKey, out var seen) || trigger > seen) _triggers[svcKey] = trigger;
                }
                if (c.Type == "DELETED")
                {
                    string svc = SliceService(c.Obj);
                    if (_slices.TryGetValue(svc, out var set) && set.Remove(Str(c.Obj["metadata"], "name")) && set.Count == 0) _slices.Remove(svc);
                    _dirty.Add(svc);
                }
                else AddSlice(c.Obj);
                break;
        }
    }

    private void AddSlice(JsonObject slice)
    {
        string svc = SliceService(slice);
        if (svc.EndsWith('/')) return; // not tied to a service
        if (!_slices.TryGetValue(svc, out var set)) _slices[svc] = set = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        set[Str(slice["metadata"], "name")] = slice;
        _dirty.Add(svc);
    }

    private static string KeyOf(JsonObject o) => Str(o["metadata"], "namespace") + "/" + Str(o["metadata"], "name");

    private static string SliceService(JsonObject slice) =>
        Str(slice["metadata"], "namespace") + "/" + Str(slice["metadata"]?["labels"], ServiceModel.ServiceNameLabel);

    private async Task SyncAsync(bool full, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var problems = new List<string>();
        var cleanup = new List<string[]>();
        var programmed = new List<DateTimeOffset>();
        foreach (var key in _dirty)
        {
            if (_triggers.Remove(key, out var trigger)) programmed.Add(trigger);
            var udpBefore = _udp.GetValueOrDefault(key) ?? [];
            var udpAfter = new List<ProxyServicePort>();
            _noLocal.Remove(key);
            if (!_services.TryGetValue(key, out var svc))
            {
                rules.RemoveService(key);
            }
            else
            {
                var slices = _slices.TryGetValue(key, out var set) ? set.Values : (IEnumerable<JsonObject>)[];
                problems.Clear();
                foreach (var family in (ReadOnlySpan<AddressFamily>)[AddressFamily.InterNetwork, AddressFamily.InterNetworkV6])
                {
                    var ports = ServiceModel.Build(svc, slices, family, options.NodeName, problems);
                    rules.SetService(key, family, ports);
                    foreach (var p in ports)
                    {
                        if (p.Protocol == "udp") udpAfter.Add(p);
                        // kube-proxy counts a Local service without a local endpoint when it has endpoints elsewhere.
                        bool elsewhere = p.Usable(false).Count > 0;
                        bool i = p.InternalLocal && elsewhere && p.Usable(true).Count == 0;
                        bool x = p.ExternalLocal && elsewhere && p.Usable(true).Count == 0 && (p.NodePort > 0 || p.ExternalIps.Length > 0 || p.LoadBalancerIps.Length > 0);
                        if (i || x)
                        {
                            var was = _noLocal.GetValueOrDefault(key);
                            _noLocal[key] = (was.Internal || i, was.External || x);
                        }
                    }
                }
                Report(key, svc, problems);
            }
            HealthCheck(key, svc);
            if (udpBefore.Count > 0 || udpAfter.Count > 0) cleanup.AddRange(ConntrackCleanup.Plan(udpBefore, udpAfter));
            if (udpAfter.Count > 0) _udp[key] = udpAfter; else _udp.Remove(key);
        }
        _dirty.Clear();
        bool applied = await rules.SyncAsync(full, ct).ConfigureAwait(false);
        // Only once the rules no longer send traffic to a gone endpoint is its conntrack state cleared.
        foreach (var args in cleanup)
        {
            try { await conntrack.DeleteAsync(args, ct).ConfigureAwait(false); }
            catch (NftException e) { LogConntrackFailed(log, e.Message); }
        }
        var done = time.GetUtcNow();
        Metrics.Synced(full, Stopwatch.GetElapsedTime(started), done);
        rules.Report(Metrics);
        int internalNoLocal = 0, externalNoLocal = 0;
        foreach (var (_, (i, x)) in _noLocal) { if (i) internalNoLocal++; if (x) externalNoLocal++; }
        Metrics.NoLocalEndpoints(internalNoLocal, externalNoLocal);
        foreach (var t in programmed) Metrics.Programmed(done - t);
        if (!applied) return;
        Interlocked.Exchange(ref _lastSyncTicks, done.UtcTicks);
        Syncs++;
        LogSynced(log, full ? "full" : "partial", rules.ServicePorts, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>
    /// The service's health-check port: with a LoadBalancer, externalTrafficPolicy Local and a
    /// spec.healthCheckNodePort, how many of its ready endpoints are on this node.
    /// </summary>
    private void HealthCheck(string key, JsonObject? svc)
    {
        if (_healthChecks is null) return;
        var spec = svc?["spec"];
        long port = spec?["healthCheckNodePort"] is JsonValue v && v.TryGetValue<long>(out long p) ? p : 0;
        if (svc is null || Str(spec, "type") != "LoadBalancer" || Str(spec, "externalTrafficPolicy") != "Local" || port is < 1 or > 65535)
        {
            _healthChecks.Set(key, 0, null);
            return;
        }
        var local = new HashSet<string>(StringComparer.Ordinal);
        if (_slices.TryGetValue(key, out var slices))
            foreach (var slice in slices.Values)
                foreach (var e in (slice["endpoints"] as JsonArray)?.OfType<JsonObject>() ?? [])
                    if (Str(e, "nodeName") == options.NodeName && e["conditions"]?["ready"]?.GetValueKind() != System.Text.Json.JsonValueKind.False)
                        foreach (var a in (e["addresses"] as JsonArray) ?? []) if (a?.GetValueKind() == System.Text.Json.JsonValueKind.String) local.Add(a.GetValue<string>());
        var meta = svc["metadata"];
        _healthChecks.Set(key, (int)port, new ServiceHealthServer.Entry(Str(meta, "namespace"), Str(meta, "name"), local.Count));
    }

    /// <summary>Logs a service's problems, and posts them as a Warning event on the Service, once per distinct set (not on every sync).</summary>
    private void Report(string key, JsonObject svc, List<string> problems)
    {
        string text = string.Join("; ", problems);
        if (_reported.GetValueOrDefault(key, "") == text) return;
        if (text.Length == 0) _reported.Remove(key);
        else
        {
            _reported[key] = text;
            LogSkipped(log, key, text);
            var meta = svc["metadata"];
            events?.Warning(new NodeAgent.Pods.EventSubject("Service", "v1", Str(meta, "namespace"), Str(meta, "name"), Str(meta, "uid") is { Length: > 0 } uid ? uid : null, "kube-proxy"),
                "SkippedInvalid", $"node {options.NodeName}: not programmed: {text}");
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "service rules synced ({Kind}): {Ports} service ports in {Milliseconds:F1} ms")]
    private static partial void LogSynced(ILogger log, string kind, int ports, double milliseconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "applying service rules failed, the last good rules stay in place; retrying in {Seconds:F1} s: {Error}")]
    private static partial void LogSyncFailed(ILogger log, string error, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "service {Service}: skipped what is invalid: {Problems}")]
    private static partial void LogSkipped(ILogger log, string service, string problems);

    [LoggerMessage(Level = LogLevel.Warning, Message = "clearing stale UDP conntrack entries failed: {Error}")]
    private static partial void LogConntrackFailed(ILogger log, string error);

}
