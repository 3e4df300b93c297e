using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Meta;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The pod garbage collector (kube-controller-manager's podgc), for pods no kubelet will ever
/// finish:
/// - orphans: a pod bound to a node that no longer exists. After a 40 s quarantine (upstream's,
///   against a node that is re-registering or an informer that lags) and a GET that confirms the
///   node is gone, it is marked Failed with a DisruptionTarget condition (DeletionByPodGC) and
///   deleted at once (grace 0);
/// - terminating pods that were never scheduled: deleted at once;
/// - terminated pods (Succeeded or Failed) beyond --terminated-pod-gc-threshold (12500; 0
///   disables): the oldest are deleted.
/// Tests: ControlPlane.IntegrationTests PodGcTests.
/// </summary>
public sealed partial class PodGcController(ApiClient api, TimeProvider time, ILogger<PodGcController> log, int terminatedThreshold)
    : ControllerLoop(api, time, log, "/api/v1/pods", "/api/v1/nodes")
{
    public static readonly TimeSpan Quarantine = TimeSpan.FromSeconds(40);
    public const int DefaultTerminatedThreshold = 12500;

    private readonly Dictionary<string, JsonObject> _pods = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _podsByNode = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodes = new(StringComparer.Ordinal);
    /// <summary>When each missing node was first found missing (the quarantine's start).</summary>
    private readonly Dictionary<string, DateTimeOffset> _missingSince = new(StringComparer.Ordinal);
    /// <summary>Terminated pods, oldest first.</summary>
    private readonly SortedSet<(DateTimeOffset Created, string Key)> _terminated = [];

    protected override bool Exists(string key) => _pods.ContainsKey(key);

    private static string NodeOf(JsonObject pod) => ControllerKit.Str(pod["spec"], "nodeName");
    private static bool Terminated(JsonObject pod) => ControllerKit.Str(pod["status"], "phase") is "Succeeded" or "Failed";
    private static DateTimeOffset Created(JsonObject pod) => ApiTime.TryParse(ControllerKit.Str(pod["metadata"], "creationTimestamp")) ?? DateTimeOffset.MinValue;

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        if (source == 0)
        {
            _pods.Clear();
            _podsByNode.Clear();
            _terminated.Clear();
        }
        else _nodes.Clear();
        foreach (var (k, o) in items) OnChanged(source, "ADDED", k, o);
        if (source == 1) foreach (var key in _pods.Keys) Dirty.Add(key);
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        if (source == 1)
        {
            string node = ControllerKit.Str(obj?["metadata"], "name");
            if (type == "DELETED")
            {
                _nodes.Remove(node);
                foreach (var pod in _podsByNode.GetValueOrDefault(node) ?? []) Dirty.Add(pod);
            }
            else
            {
                _nodes.Add(node);
                _missingSince.Remove(node);
            }
            return;
        }
        if (_pods.Remove(key, out var old))
        {
            if (_podsByNode.TryGetValue(NodeOf(old), out var set)) set.Remove(key);
            _terminated.Remove((Created(old), key));
        }
        if (type == "DELETED" || obj is null) return;
        _pods[key] = obj;
        string nodeName = NodeOf(obj);
        if (nodeName.Length > 0)
        {
            if (!_podsByNode.TryGetValue(nodeName, out var set)) _podsByNode[nodeName] = set = new(StringComparer.Ordinal);
            set.Add(key);
        }
        if (Terminated(obj)) _terminated.Add((Created(obj), key));
        Dirty.Add(key);
    }

    protected override async Task SyncAsync(string key, CancellationToken ct)
    {
        if (!_pods.TryGetValue(key, out var pod)) return;
        if (terminatedThreshold > 0 && _terminated.Count > terminatedThreshold)
        {
            int excess = _terminated.Count - terminatedThreshold;
            foreach (var (_, oldest) in _terminated.Take(excess).ToList())
            {
                LogTerminated(Log, oldest, terminatedThreshold);
                await ForceDeleteAsync(_pods[oldest], ct).ConfigureAwait(false);
            }
        }

        string node = NodeOf(pod);
        if (node.Length == 0)
        {
            if (pod["metadata"]?["deletionTimestamp"] is not null)
            {
                LogUnscheduled(Log, key);
                await ForceDeleteAsync(pod, ct).ConfigureAwait(false);
            }
            return;
        }
        if (_nodes.Contains(node)) return;
        var now = Time.GetUtcNow();
        if (!_missingSince.TryGetValue(node, out var since)) _missingSince[node] = since = now;
        if (now - since < Quarantine)
        {
            Later(key, Quarantine - (now - since) + TimeSpan.FromMilliseconds(100));
            return;
        }
        try
        {
            await Api.GetAsync($"/api/v1/nodes/{node}", ct).ConfigureAwait(false);
            return; // it is back; the watch will say so
        }
        catch (ApiError e) when (e.IsNotFound) { }
        LogOrphan(Log, key, node);
        var m = pod["metadata"]!;
        if (!Terminated(pod))
        {
            try
            {
                await Api.PatchAsync($"/api/v1/namespaces/{m["namespace"]}/pods/{m["name"]}/status", new JsonObject
                {
                    ["status"] = new JsonObject
                    {
                        ["phase"] = "Failed",
                        ["conditions"] = new JsonArray((JsonNode)new JsonObject
                        {
                            ["type"] = "DisruptionTarget", ["status"] = "True", ["reason"] = "DeletionByPodGC",
                            ["message"] = "PodGC: node no longer exists", ["lastTransitionTime"] = ApiTime.Format(now),
                        }),
                    },
                }, ct).ConfigureAwait(false);
            }
            catch (ApiError e) when (e.IsNotFound) { return; }
        }
        await ForceDeleteAsync(pod, ct).ConfigureAwait(false);
    }

    /// <summary>Grace 0: no kubelet will confirm the deletion.</summary>
    private Task ForceDeleteAsync(JsonObject pod, CancellationToken ct) => ControllerKit.DeletePodAsync(Api, pod, 0, ct);

    [LoggerMessage(Level = LogLevel.Information, Message = "deleting orphaned pod {Pod}: its node {Node} no longer exists")]
    private static partial void LogOrphan(ILogger log, string pod, string node);

    [LoggerMessage(Level = LogLevel.Information, Message = "deleting terminating pod {Pod}: it was never scheduled")]
    private static partial void LogUnscheduled(ILogger log, string pod);

    [LoggerMessage(Level = LogLevel.Information, Message = "deleting terminated pod {Pod}: more than {Threshold} terminated pods")]
    private static partial void LogTerminated(ILogger log, string pod, int threshold);
}
