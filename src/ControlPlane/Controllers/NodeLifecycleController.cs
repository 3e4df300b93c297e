using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Meta;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The node lifecycle controller (pkg/controller/nodelifecycle) with its taint-based eviction, as
/// a client of the API. A node is healthy while its kube-node-lease Lease or its Ready heartbeat
/// keeps changing; the time of the last change is this controller's own clock reading, so clock
/// skew between nodes does not matter. A node unheard of for the grace period (40 s, upstream's
/// node-monitor-grace-period) gets its conditions set to Unknown, its pods marked not ready and
/// the node.kubernetes.io/unreachable taints (NoSchedule, NoExecute); a node reporting
/// Ready=False gets node.kubernetes.io/not-ready instead; both go when it is Ready again. Pods on
/// a node with NoExecute taints they do not tolerate are deleted at once, those tolerating with
/// tolerationSeconds when that time has passed since the taint was added (DefaultTolerationSeconds
/// admission gives every pod 300 s), so their controllers replace them elsewhere.
/// Tests: NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed partial class NodeLifecycleController(ApiClient api, TimeProvider time, ILogger<NodeLifecycleController> log, TimeSpan? gracePeriod = null)
    : ControllerLoop(api, time, log, "/api/v1/nodes", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", "/api/v1/pods")
{
    public const string UnreachableTaint = "node.kubernetes.io/unreachable", NotReadyTaint = "node.kubernetes.io/not-ready";
    private const int Nodes = 0, Leases = 1, Pods = 2;

    private readonly TimeSpan _grace = gracePeriod ?? TimeSpan.FromSeconds(40);
    private readonly Dictionary<string, JsonObject> _nodes = new(StringComparer.Ordinal);
    /// <summary>Per node: when a heartbeat (lease renewTime or Ready lastHeartbeatTime) was last seen to change, and the values seen.</summary>
    private readonly Dictionary<string, (DateTimeOffset At, string Lease, string Heartbeat)> _probes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _pods = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _podsByNode = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _nodes.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        if (source == Pods) { _pods.Clear(); _podsByNode.Clear(); }
        if (source == Nodes) _nodes.Clear();
        foreach (var (k, o) in items) OnChanged(source, "ADDED", k, o);
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        var now = Time.GetUtcNow();
        switch (source)
        {
            case Nodes:
                if (type == "DELETED") { _nodes.Remove(key); _probes.Remove(key); return; }
                _nodes[key] = obj!;
                string beat = ControllerKit.Str(ReadyCondition(obj!), "lastHeartbeatTime");
                var p = _probes.GetValueOrDefault(key, (At: now, Lease: "", Heartbeat: beat));
                if (p.Heartbeat != beat) p = (now, p.Lease, beat);
                _probes[key] = p;
                Dirty.Add(key);
                break;
            case Leases:
                if (type == "DELETED" || obj is null) return;
                string node = ControllerKit.Str(obj["metadata"], "name"), renew = ControllerKit.Str(obj["spec"], "renewTime");
                var q = _probes.GetValueOrDefault(node, (At: now, Lease: renew, Heartbeat: ""));
                if (q.Lease != renew) { q = (now, renew, q.Heartbeat); Dirty.Add(node); }
                _probes[node] = q;
                break;
            default:
                if (_pods.TryGetValue(key, out var before)) Unindex(key, before);
                if (type == "DELETED") { _pods.Remove(key); return; }
                _pods[key] = obj!;
                string on = ControllerKit.Str(obj!["spec"], "nodeName");
                if (on.Length == 0) return;
                if (!_podsByNode.TryGetValue(on, out var set)) _podsByNode[on] = set = new HashSet<string>(StringComparer.Ordinal);
                set.Add(key);
                // A pod arriving on a tainted node is judged at once.
                if (_nodes.TryGetValue(on, out var n) && (n["spec"]?["taints"] as JsonArray)?.Count > 0) Dirty.Add(on);
                break;
        }
    }

    private void Unindex(string podKey, JsonObject pod)
    {
        string on = ControllerKit.Str(pod["spec"], "nodeName");
        if (_podsByNode.TryGetValue(on, out var set) && set.Remove(podKey) && set.Count == 0) _podsByNode.Remove(on);
    }

    private static JsonObject? ReadyCondition(JsonObject node) =>
        (node["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => ControllerKit.Str(c, "type") == "Ready");

    protected override async Task SyncAsync(string name, CancellationToken ct)
    {
        if (!_nodes.TryGetValue(name, out var node)) return;
        var now = Time.GetUtcNow();
        var probe = _probes[name];
        bool stale = now - probe.At > _grace;
        string ready = ControllerKit.Str(ReadyCondition(node), "status");
        if (stale && ready != "Unknown")
        {
            LogUnreachable(Log, name, (int)(now - probe.At).TotalSeconds);
            await MarkUnknownAsync(node, now, ct).ConfigureAwait(false);
            ready = "Unknown";
        }
        else if (!stale) Later(name, probe.At + _grace - now + TimeSpan.FromMilliseconds(500));

        // Taints follow the Ready condition.
        string? want = ready switch { "Unknown" => UnreachableTaint, "False" => NotReadyTaint, "" when stale => UnreachableTaint, _ => null };
        var taints = (node["spec"]?["taints"] as JsonArray)?.OfType<JsonObject>().ToList() ?? [];
        var next = taints.Where(t => ControllerKit.Str(t, "key") is not (UnreachableTaint or NotReadyTaint) || ControllerKit.Str(t, "key") == want)
            .Select(t => (JsonObject)t.DeepClone()).ToList();
        if (want is not null)
            foreach (var effect in (string[])["NoSchedule", "NoExecute"])
                if (!next.Any(t => ControllerKit.Str(t, "key") == want && ControllerKit.Str(t, "effect") == effect))
                {
                    var t = new JsonObject { ["key"] = want, ["effect"] = effect };
                    if (effect == "NoExecute") t["timeAdded"] = ApiTime.Format(now);
                    next.Add(t);
                }
        if (next.Count != taints.Count || !next.Zip(taints).All(z => JsonNode.DeepEquals(z.First, z.Second)))
        {
            try
            {
                var updated = await Api.PatchAsync($"/api/v1/nodes/{name}", new JsonObject
                {
                    ["metadata"] = new JsonObject { ["resourceVersion"] = node["metadata"]!["resourceVersion"]!.DeepClone() },
                    ["spec"] = new JsonObject { ["taints"] = next.Count == 0 ? null : new JsonArray([.. next]) },
                }, ct, "application/merge-patch+json").ConfigureAwait(false);
                node = _nodes[name] = updated; // the watch brings it too; evict against what was written
            }
            catch (ApiError e) when (e.IsConflict) { Later(name, TimeSpan.FromMilliseconds(200)); return; }
            catch (ApiError e) when (e.IsNotFound) { return; }
        }
        await EvictAsync(name, node, now, ct).ConfigureAwait(false);
    }

    private async Task MarkUnknownAsync(JsonObject node, DateTimeOffset now, CancellationToken ct)
    {
        string name = ControllerKit.Str(node["metadata"], "name");
        var conditions = new JsonArray();
        foreach (var c in (node["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>() ?? [])
        {
            conditions.Add((JsonNode)new JsonObject
            {
                ["type"] = c["type"]?.DeepClone(), ["status"] = "Unknown", ["reason"] = "NodeStatusUnknown",
                ["message"] = "Kubelet stopped posting node status.", ["lastTransitionTime"] = ApiTime.Format(now),
                ["lastHeartbeatTime"] = c["lastHeartbeatTime"]?.DeepClone(),
            });
        }
        if (conditions.Count == 0)
            conditions.Add((JsonNode)new JsonObject
            {
                ["type"] = "Ready", ["status"] = "Unknown", ["reason"] = "NodeStatusNeverUpdated",
                ["message"] = "Kubelet never posted node status.", ["lastTransitionTime"] = ApiTime.Format(now),
            });
        try
        {
            await Api.PatchAsync($"/api/v1/nodes/{name}/status", new JsonObject { ["status"] = new JsonObject { ["conditions"] = conditions } }, ct)
                .ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsNotFound) { return; }
        // Its pods cannot be known to be ready any more (upstream's MarkPodsNotReady).
        foreach (var key in _podsByNode.GetValueOrDefault(name)?.ToList() ?? [])
        {
            var pod = _pods[key];
            var m = pod["metadata"]!;
            try
            {
                await Api.PatchAsync($"/api/v1/namespaces/{m["namespace"]}/pods/{m["name"]}/status", new JsonObject
                {
                    ["status"] = new JsonObject
                    {
                        ["conditions"] = new JsonArray((JsonNode)new JsonObject
                        {
                            ["type"] = "Ready", ["status"] = "False", ["reason"] = "NodeNotReady", ["lastTransitionTime"] = ApiTime.Format(now),
                        }),
                    },
                }, ct).ConfigureAwait(false);
            }
            catch (ApiError e) when (e.IsNotFound) { }
        }
    }

    /// <summary>Deletes the node's pods that do not tolerate its NoExecute taints (now, or when their tolerationSeconds have passed).</summary>
    private async Task EvictAsync(string name, JsonObject node, DateTimeOffset now, CancellationToken ct)
    {
        var noExecute = (node["spec"]?["taints"] as JsonArray)?.OfType<JsonObject>().Where(t => ControllerKit.Str(t, "effect") == "NoExecute").ToList();
        if (noExecute is not { Count: > 0 }) return;
        DateTimeOffset? nextLook = null;
        foreach (var key in _podsByNode.GetValueOrDefault(name)?.ToList() ?? [])
        {
            var pod = _pods[key];
            if (pod["metadata"]?["deletionTimestamp"] is not null) continue;
            var tolerations = (pod["spec"]?["tolerations"] as JsonArray)?.OfType<JsonObject>().ToList() ?? [];
            DateTimeOffset? deadline = DateTimeOffset.MaxValue;
            foreach (var taint in noExecute)
            {
                var matching = tolerations.Where(t => Tolerates(t, taint)).ToList();
                var added = ApiTime.TryParse(ControllerKit.Str(taint, "timeAdded")) ?? now;
                DateTimeOffset due;
                if (matching.Count == 0) due = now;
                else if (matching.Any(t => t["tolerationSeconds"] is null)) continue;
                else due = added.AddSeconds(Math.Max(0, matching.Min(t => ControllerKit.Long(t, "tolerationSeconds"))));
                if (due < deadline) deadline = due;
            }
            if (deadline == DateTimeOffset.MaxValue) continue;
            if (deadline > now)
            {
                if (nextLook is null || deadline < nextLook) nextLook = deadline;
                continue;
            }
            LogEvicting(Log, key, name);
            await ControllerKit.EventAsync(Api, Time, "taint-eviction-controller", pod, "v1", "Pod", "Normal", "TaintManagerEviction",
                $"Marking for deletion Pod {key}", ct).ConfigureAwait(false);
            await ControllerKit.DeletePodAsync(Api, pod, graceSeconds: null, ct).ConfigureAwait(false);
        }
        if (nextLook is { } at) Later(name, at - now + TimeSpan.FromMilliseconds(100));
    }

    /// <summary>core/v1 Toleration.ToleratesTaint: effect (empty tolerates all), key (empty with Exists tolerates all), operator and value.</summary>
    public static bool Tolerates(JsonObject toleration, JsonObject taint)
    {
        string effect = ControllerKit.Str(toleration, "effect");
        if (effect.Length > 0 && effect != ControllerKit.Str(taint, "effect")) return false;
        string key = ControllerKit.Str(toleration, "key");
        string op = ControllerKit.Str(toleration, "operator") is { Length: > 0 } o ? o : "Equal";
        if (key.Length == 0) return op == "Exists";
        if (key != ControllerKit.Str(taint, "key")) return false;
        return op == "Exists" || ControllerKit.Str(toleration, "value") == ControllerKit.Str(taint, "value");
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "node {Node} not heard from for {Seconds} s: Ready=Unknown, tainted unreachable")]
    private static partial void LogUnreachable(ILogger log, string node, int seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "evicting pod {Pod} from node {Node} (NoExecute taint not tolerated)")]
    private static partial void LogEvicting(ILogger log, string pod, string node);
}
