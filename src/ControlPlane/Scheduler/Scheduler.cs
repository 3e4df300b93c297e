using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Api.Scheduling;

namespace NodeAgent.ControlPlane.Scheduler;

/// <summary>
/// The default scheduler, as a client of the API like kube-scheduler: informers on nodes and pods
/// feed one loop that owns all scheduling state (no locks); pending pods with our schedulerName are
/// filtered against every node (unschedulable, untolerated NoSchedule/NoExecute taints, not ready,
/// resources fit allocatable minus bound and assumed pods, nodeSelector and required node affinity,
/// host ports, required pod anti-affinity on kubernetes.io/hostname), the feasible ones scored
/// (least allocated, balanced allocation, spreading one owner's pods) and the best bound through
/// pods/binding, asynchronously, with the pod assumed on its node meanwhile. A pod that fits
/// nowhere gets PodScheduled=False/Unschedulable and a FailedScheduling event with upstream's
/// "0/N nodes are available: ..." message, and is retried when a node changes or a pod goes, or
/// after 5 minutes; failed bindings are retried with backoff (1 s doubling to 10 s, as upstream).
/// Tests: SchedulerTests (unit), NodeAgent.IntegrationTests SchedulingTests (real node).
/// </summary>
public sealed partial class Scheduler(ApiClient api, TimeProvider time, ILogger<Scheduler> log, string name = Scheduler.DefaultName)
{
    public const string DefaultName = "default-scheduler";
    private static readonly TimeSpan UnschedulableFlush = TimeSpan.FromMinutes(5);

    private abstract record Msg;
    private sealed record NodeChanged(string Type, string Name, JsonObject? Node) : Msg;
    private sealed record NodesListed(List<JsonObject> Nodes) : Msg;
    private sealed record PodChanged(string Type, string Key, JsonObject? Pod) : Msg;
    private sealed record PodsListed(List<(string Key, JsonObject Pod)> Pods) : Msg;
    private sealed record Retry(string Key) : Msg;
    private sealed record Bound(string Key, string Node, string? Error) : Msg;

    private readonly Channel<Msg> _inbox = Channel.CreateUnbounded<Msg>(new UnboundedChannelOptions { SingleReader = true });

    // Owned by the loop.
    private readonly Dictionary<string, NodeState> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NodeUsage> _usage = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PodState> _pods = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _assumed = new(StringComparer.Ordinal);
    private readonly Queue<string> _active = new();
    private readonly HashSet<string> _queued = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _unschedulable = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _attempts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _lastFailure = new(StringComparer.Ordinal);
    private bool _nodesSynced, _podsSynced;

    /// <summary>Pods bound so far (for the benchmark and tests).</summary>
    public long Scheduled { get; private set; }

    public async Task RunAsync(CancellationToken ct)
    {
        Informer? nodes = null, pods = null;
        nodes = new Informer(api, "/api/v1/nodes", null, c =>
        {
            if (c.Type == InformerChange.Synced) _inbox.Writer.TryWrite(new NodesListed([.. nodes!.Cache.Values]));
            else _inbox.Writer.TryWrite(new NodeChanged(c.Type, c.Key, c.Object));
        }, log, time);
        pods = new Informer(api, "/api/v1/pods", null, c =>
        {
            if (c.Type == InformerChange.Synced) _inbox.Writer.TryWrite(new PodsListed([.. pods!.Cache.Select(kv => (kv.Key, kv.Value))]));
            else _inbox.Writer.TryWrite(new PodChanged(c.Type, c.Key, c.Object));
        }, log, time);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watches = Task.WhenAll(nodes.RunAsync(stop.Token), pods.RunAsync(stop.Token));
        try
        {
            await LoopAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await watches.ConfigureAwait(false);
        }
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        var lastFlush = time.GetUtcNow();
        while (true)
        {
            while (_inbox.Reader.TryRead(out var msg)) Apply(msg);
            if (_nodesSynced && _podsSynced && _active.TryDequeue(out var key))
            {
                _queued.Remove(key);
                ScheduleOne(key, ct);
                continue;
            }
            var now = time.GetUtcNow();
            if (now - lastFlush > TimeSpan.FromSeconds(30))
            {
                lastFlush = now;
                foreach (var (k, since) in _unschedulable.ToList())
                    if (now - since > UnschedulableFlush) Enqueue(k);
            }
            // Nothing to do: wait for news (informers, binding results, retry timers), at most 30 s.
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(TimeSpan.FromSeconds(30));
            try { await _inbox.Reader.WaitToReadAsync(wait.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
        }
    }

    private void Apply(Msg msg)
    {
        switch (msg)
        {
            case NodesListed l:
                _nodes.Clear();
                foreach (var n in l.Nodes) { var s = NodeState.From(n); _nodes[s.Name] = s; }
                _nodesSynced = true;
                RequeueUnschedulable();
                break;
            case NodeChanged { Type: "DELETED" } d:
                _nodes.Remove(d.Name);
                break;
            case NodeChanged c:
                var state = NodeState.From(c.Node!);
                bool changed = !_nodes.TryGetValue(state.Name, out var before) || !before.SameForScheduling(state);
                _nodes[state.Name] = state;
                if (changed) RequeueUnschedulable();
                break;
            case PodsListed l:
                foreach (var key in _pods.Keys.ToList()) Forget(key);
                foreach (var (key, obj) in l.Pods) Observe(key, obj);
                _podsSynced = true;
                break;
            case PodChanged { Type: "DELETED" } d:
                bool wasBound = _pods.TryGetValue(d.Key, out var gone) && gone.NodeName is not null;
                Forget(d.Key);
                if (wasBound) RequeueUnschedulable();
                break;
            case PodChanged c:
                Observe(c.Key, c.Pod!);
                break;
            case Retry r:
                if (_pods.TryGetValue(r.Key, out var p) && IsPending(p)) Enqueue(r.Key);
                break;
            case Bound b:
                if (b.Error is null)
                {
                    Scheduled++;
                    _attempts.Remove(b.Key);
                    _lastFailure.Remove(b.Key);
                    break;
                }
                // Binding failed: the pod is no longer assumed there; try again after a backoff.
                LogBindFailed(log, b.Key, b.Node, b.Error);
                if (!_assumed.Remove(b.Key, out var node)) break; // the watch already showed it bound
                if (_usage.TryGetValue(node, out var u)) u.Remove(b.Key);
                if (_pods.TryGetValue(b.Key, out var pending))
                {
                    pending.NodeName = null;
                    Backoff(b.Key);
                }
                break;
        }
    }

    private void Observe(string key, JsonObject obj)
    {
        var p = PodState.From(key, obj);
        Forget(key, keepAssumed: true);
        if (p is null) return;
        _pods[key] = p;
        if (p.NodeName is not null)
        {
            // Bound (by us or anyone): counts against its node until it ends.
            _assumed.Remove(key);
            if (!p.Terminal) Usage(p.NodeName).Add(p);
        }
        else if (_assumed.TryGetValue(key, out var node))
        {
            p.NodeName = node; // our binding is on its way
            Usage(node).Add(p);
        }
        else if (IsPending(p) && !_unschedulable.ContainsKey(key)) Enqueue(key);
    }

    private void Forget(string key, bool keepAssumed = false)
    {
        if (_pods.Remove(key, out var old) && old.NodeName is not null && _usage.TryGetValue(old.NodeName, out var u)) u.Remove(key);
        if (keepAssumed) return;
        _assumed.Remove(key);
        _unschedulable.Remove(key);
        _attempts.Remove(key);
        _lastFailure.Remove(key);
    }

    private NodeUsage Usage(string node) => _usage.TryGetValue(node, out var u) ? u : _usage[node] = new NodeUsage();

    private bool IsPending(PodState p) =>
        p.NodeName is null && !p.Terminal && p.Pod.Metadata.DeletionTimestamp is null
        && (string.IsNullOrEmpty(p.Pod.Spec.SchedulerName) ? DefaultName : p.Pod.Spec.SchedulerName) == name;

    private void Enqueue(string key)
    {
        _unschedulable.Remove(key);
        if (_queued.Add(key)) _active.Enqueue(key);
    }

    private void RequeueUnschedulable()
    {
        foreach (var key in _unschedulable.Keys.ToList()) Enqueue(key);
    }

    private void Backoff(string key)
    {
        int n = _attempts[key] = _attempts.GetValueOrDefault(key) + 1;
        var delay = TimeSpan.FromMilliseconds(Math.Min(10_000, 1000 * Math.Pow(2, Math.Min(n - 1, 4))));
        _ = Task.Delay(delay, time).ContinueWith(_ => _inbox.Writer.TryWrite(new Retry(key)), TaskScheduler.Default);
    }

    private void ScheduleOne(string key, CancellationToken ct)
    {
        if (!_pods.TryGetValue(key, out var p) || !IsPending(p)) return;
        var (node, reasons) = Select(p, _nodes.Values, _usage);
        if (node is null)
        {
            string message = Message(_nodes.Count, reasons);
            _unschedulable[key] = time.GetUtcNow();
            _attempts[key] = _attempts.GetValueOrDefault(key) + 1;
            if (_lastFailure.GetValueOrDefault(key) != message)
            {
                _lastFailure[key] = message;
                LogUnschedulable(log, key, message);
                _ = ReportUnschedulableAsync(p.Pod, message, ct);
            }
            return;
        }
        _assumed[key] = node;
        p.NodeName = node;
        Usage(node).Add(p);
        _ = BindAsync(p, node, ct);
    }

    /// <summary>Filters and scores: the chosen node, or null with the reasons each node was refused.</summary>
    public static (string? Node, Dictionary<string, int> Reasons) Select(PodState p, IEnumerable<NodeState> nodes, IReadOnlyDictionary<string, NodeUsage> usage)
    {
        var reasons = new Dictionary<string, int>(StringComparer.Ordinal);
        string? best = null;
        double bestScore = double.MinValue;
        int ties = 0;
        foreach (var n in nodes)
        {
            usage.TryGetValue(n.Name, out var u);
            if (Filter(p, n, u) is { } reason)
            {
                reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
                continue;
            }
            double score = Score(p, n, u);
            if (score > bestScore) { best = n.Name; bestScore = score; ties = 1; }
            else if (score == bestScore && Random.Shared.Next(++ties) == 0) best = n.Name; // reservoir sampling among ties
        }
        return (best, reasons);
    }

    /// <summary>The first reason this node cannot take the pod (upstream's wording), or null.</summary>
    public static string? Filter(PodState p, NodeState n, NodeUsage? u)
    {
        var pod = p.Pod;
        if (n.Unschedulable && !PodPredicates.Tolerates(pod.Spec.Tolerations, new Taint("node.kubernetes.io/unschedulable", null, "NoSchedule")))
            return "node(s) were unschedulable";
        // Until the node lifecycle controller taints not-ready nodes, the Ready condition stands in for its taint.
        if (!n.Ready && !PodPredicates.Tolerates(pod.Spec.Tolerations, new Taint("node.kubernetes.io/not-ready", null, "NoSchedule")))
            return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }";
        foreach (var t in n.Taints)
            if (t.Effect is "NoSchedule" or "NoExecute" && !PodPredicates.Tolerates(pod.Spec.Tolerations, t))
                return $"node(s) had untolerated taint {{{t.Key}: {t.Value}}}";
        if (!PodPredicates.MatchesNodeSelectorAndAffinity(pod, n.Name, n.Labels))
            return "node(s) didn't match Pod's node affinity/selector";
        long usedCpu = u?.MilliCpu ?? 0, usedMem = u?.Memory ?? 0, count = u?.Pods.Count ?? 0;
        if (count + 1 > n.Pods) return "Too many pods";
        if (p.MilliCpu > 0 && p.MilliCpu > n.MilliCpu - usedCpu) return "Insufficient cpu";
        if (p.Memory > 0 && p.Memory > n.Memory - usedMem) return "Insufficient memory";
        if (u is not null && PodPredicates.HostPortsConflict(pod, u.Pods.Values.Select(x => x.Pod)))
            return "node(s) didn't have free ports for the requested pod ports";
        if (u is not null && AntiAffinityConflict(pod, u.Pods.Values))
            return "node(s) didn't match pod anti-affinity rules";
        return null;
    }

    /// <summary>Least allocated + balanced allocation + spreading one owner's pods, each 0..100.</summary>
    public static double Score(PodState p, NodeState n, NodeUsage? u)
    {
        double cpuFrac = n.MilliCpu > 0 ? Math.Min(1, ((u?.MilliCpu ?? 0) + p.MilliCpu) / (double)n.MilliCpu) : 1;
        double memFrac = n.Memory > 0 ? Math.Min(1, ((u?.Memory ?? 0) + p.Memory) / (double)n.Memory) : 1;
        double leastAllocated = ((1 - cpuFrac) + (1 - memFrac)) * 50;
        double balanced = (1 - Math.Abs(cpuFrac - memFrac)) * 100;
        int siblings = 0;
        if (p.OwnerUid is not null && u is not null)
            foreach (var other in u.Pods.Values)
                if (other.OwnerUid == p.OwnerUid) siblings++;
        double spread = 100.0 / (1 + siblings);
        return leastAllocated + balanced + spread;
    }

    /// <summary>Upstream's FailedScheduling message: "0/N nodes are available: " and the counted reasons, sorted.</summary>
    public static string Message(int nodes, Dictionary<string, int> reasons)
    {
        if (nodes == 0) return "no nodes available to schedule pods";
        var parts = reasons.Select(kv => $"{kv.Value} {kv.Key}").Order(StringComparer.Ordinal);
        return $"0/{nodes} nodes are available: {string.Join(", ", parts)}.";
    }

    /// <summary>Required pod anti-affinity with topologyKey kubernetes.io/hostname, both ways (the new pod's terms and the node's pods' terms).</summary>
    private static bool AntiAffinityConflict(Pod pod, IEnumerable<PodState> onNode)
    {
        foreach (var other in onNode)
        {
            if (Repels(pod, other.Pod) || Repels(other.Pod, pod)) return true;
        }
        return false;

        static bool Repels(Pod owner, Pod target)
        {
            if (owner.Spec.Affinity is not { ValueKind: JsonValueKind.Object } a
                || !a.TryGetProperty("podAntiAffinity", out var anti) || anti.ValueKind != JsonValueKind.Object
                || !anti.TryGetProperty("requiredDuringSchedulingIgnoredDuringExecution", out var terms) || terms.ValueKind != JsonValueKind.Array)
                return false;
            foreach (var term in terms.EnumerateArray())
            {
                if (!term.TryGetProperty("topologyKey", out var tk) || tk.GetString() != "kubernetes.io/hostname") continue;
                var namespaces = term.TryGetProperty("namespaces", out var nss) && nss.ValueKind == JsonValueKind.Array && nss.GetArrayLength() > 0
                    ? nss.EnumerateArray().Select(x => x.GetString()).ToList() : [owner.Metadata.Namespace];
                if (!namespaces.Contains(target.Metadata.Namespace)) continue;
                if (term.TryGetProperty("labelSelector", out var sel) && SelectorMatches(sel, target.Metadata.Labels)) return true;
            }
            return false;
        }
    }

    /// <summary>A metav1.LabelSelector (matchLabels, matchExpressions); an empty selector matches everything.</summary>
    public static bool SelectorMatches(JsonElement selector, IReadOnlyDictionary<string, string>? labels)
    {
        if (selector.ValueKind != JsonValueKind.Object) return false;
        if (selector.TryGetProperty("matchLabels", out var ml) && ml.ValueKind == JsonValueKind.Object)
            foreach (var kv in ml.EnumerateObject())
                if (labels is null || !labels.TryGetValue(kv.Name, out var v) || v != kv.Value.GetString()) return false;
        if (selector.TryGetProperty("matchExpressions", out var me) && me.ValueKind == JsonValueKind.Array)
            foreach (var e in me.EnumerateArray())
            {
                string key = e.TryGetProperty("key", out var k) ? k.GetString() ?? "" : "";
                string op = e.TryGetProperty("operator", out var o) ? o.GetString() ?? "" : "";
                var values = e.TryGetProperty("values", out var vs) && vs.ValueKind == JsonValueKind.Array ? vs.EnumerateArray().Select(x => x.GetString() ?? "").ToList() : [];
                if (!Controllers.Selector.Satisfies(op, labels?.GetValueOrDefault(key), values)) return false;
            }
        return true;
    }

    private async Task BindAsync(PodState p, string node, CancellationToken ct)
    {
        var m = p.Pod.Metadata;
        string? error = null;
        try
        {
            await api.CreateAsync($"/api/v1/namespaces/{m.Namespace}/pods/{m.Name}/binding", new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "Binding",
                ["metadata"] = new JsonObject { ["name"] = m.Name, ["namespace"] = m.Namespace, ["uid"] = m.Uid },
                ["target"] = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Node", ["name"] = node },
            }, ct).ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsConflict || e.IsNotFound)
        {
            // Bound by someone else meanwhile, being deleted, or gone: the watch tells the rest.
            _inbox.Writer.TryWrite(new Bound(p.Key, node, null));
            return;
        }
        catch (ApiError e) { error = e.Message; }
        catch (HttpRequestException e) { error = e.Message; }
        catch (OperationCanceledException) { return; }
        _inbox.Writer.TryWrite(new Bound(p.Key, node, error));
        if (error is null) await EventAsync(p.Pod, "Normal", "Scheduled", $"Successfully assigned {m.Namespace}/{m.Name} to {node}", ct).ConfigureAwait(false);
    }

    private async Task ReportUnschedulableAsync(Pod pod, string message, CancellationToken ct)
    {
        var m = pod.Metadata;
        try
        {
            await api.PatchAsync($"/api/v1/namespaces/{m.Namespace}/pods/{m.Name}/status", new JsonObject
            {
                ["status"] = new JsonObject
                {
                    ["conditions"] = new JsonArray((JsonNode)new JsonObject
                    {
                        ["type"] = "PodScheduled", ["status"] = "False", ["reason"] = "Unschedulable", ["message"] = message,
                        ["lastProbeTime"] = null, ["lastTransitionTime"] = ApiTime.Format(time.GetUtcNow()),
                    }),
                },
            }, ct).ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsNotFound) { return; }
        catch (Exception e) when (e is ApiError or HttpRequestException) { LogReportFailed(log, $"{m.Namespace}/{m.Name}", e.Message); }
        catch (OperationCanceledException) { return; }
        await EventAsync(pod, "Warning", "FailedScheduling", message, ct).ConfigureAwait(false);
    }

    private Task EventAsync(Pod pod, string type, string reason, string message, CancellationToken ct) =>
        Controllers.ControllerKit.EventAsync(api, time, name,
            new JsonObject { ["metadata"] = new JsonObject { ["name"] = pod.Metadata.Name, ["namespace"] = pod.Metadata.Namespace, ["uid"] = pod.Metadata.Uid } },
            "v1", "Pod", type, reason, message, ct);

    [LoggerMessage(Level = LogLevel.Information, Message = "pod {Pod} unschedulable: {Message}")]
    private static partial void LogUnschedulable(ILogger log, string pod, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "binding pod {Pod} to {Node} failed: {Error}; retrying")]
    private static partial void LogBindFailed(ILogger log, string pod, string node, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "reporting on pod {Pod} failed: {Error}")]
    private static partial void LogReportFailed(ILogger log, string pod, string error);
}
