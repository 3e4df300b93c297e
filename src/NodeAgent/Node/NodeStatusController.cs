using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Options;
using NodeAgent.Pods;

namespace NodeAgent.Node;

/// <summary>
/// Registers the Node and keeps its status current, as the kubelet's node status manager does:
/// status is computed every nodeStatusUpdateFrequency (10 s) and patched when it changed, or at
/// least every nodeStatusReportFrequency (5 min); liveness in between comes from the Lease. A Node
/// deleted by someone else is registered again. Every call is a standard API request (POST nodes,
/// PATCH nodes/status), so any API server works.
/// </summary>
public sealed partial class NodeStatusController(
    ApiClient api, NodeInfoSource info, AgentConfiguration config, AgentHealth health, TimeProvider time, ILogger<NodeStatusController> log)
{
    private static readonly (string Type, string Reason, string Message)[] Pressure =
    [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ];

    private readonly Dictionary<string, (string Status, string Since)> _transitions = [];
    private string? _lastPosted;
    private DateTimeOffset _lastPostTime;
    private bool _registered;

    private volatile AdmissionNode? _watchedNode;
    private AdmissionNode? _localNode;

    /// <summary>
    /// The Node for pod admission: as the API last showed it (labels others added, allocatable),
    /// or, before the first watch event, the Node this agent registers (the kubelet's initial node).
    /// </summary>
    public AdmissionNode AdmissionNode() => _watchedNode ?? (_localNode ??= Pods.AdmissionNode.From(new JsonObject
    {
        ["metadata"] = new JsonObject { ["name"] = info.NodeName, ["labels"] = info.Labels() },
        ["spec"] = new JsonObject { ["taints"] = info.Taints() },
        ["status"] = info.Status(),
    }));

    /// <summary>The Node's uid once registered (the Lease's owner).</summary>
    public string? NodeUid { get; private set; }

    private readonly SemaphoreSlim _wake = new(0, 1);
    private volatile bool _nodeGone;

    public async Task RunAsync(CancellationToken ct)
    {
        // A watch on our own Node: a deletion is noticed at once, at no steady-state cost.
        Informer? own = null;
        own = new Informer(api, "/api/v1/nodes", "fieldSelector=" + Uri.EscapeDataString("metadata.name=" + info.NodeName), OnNodeChange, log, time);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watch = own.RunAsync(stop.Token);
        try
        {
            await LoopAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await watch.ConfigureAwait(false);
        }

        void OnNodeChange(InformerChange change)
        {
            if (change.Type is "ADDED" or "MODIFIED" && change.Object is { } node) _watchedNode = Pods.AdmissionNode.From(node);
            bool gone = change.Type == "DELETED" || change.Type == InformerChange.Synced && own!.Cache.Count == 0;
            if (!gone || !_registered) return;
            _nodeGone = true;
            if (_wake.CurrentCount == 0) try { _wake.Release(); } catch (SemaphoreFullException) { }
        }
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        var retry = new RetryBackoff(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(30));
        do
        {
            try
            {
                await SyncOnceAsync(ct).ConfigureAwait(false);
                retry.Reset();
                health.MarkApiConnected(); // the API answered and the Node is registered: part of the agent's readiness
            }
            catch (ApiError e)
            {
                LogSyncFailed(log, info.NodeName, e.Message);
                try { await Task.Delay(retry.Next(), time, ct).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
                continue;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
        } while (await WaitAsync(ct).ConfigureAwait(false));
    }

    /// <summary>Waits for the next status period, or less when our Node was deleted.</summary>
    private async Task<bool> WaitAsync(CancellationToken ct)
    {
        try
        {
            await _wake.WaitAsync(config.NodeStatusUpdateFrequencySpan, ct).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) { return false; }
    }

    /// <summary>Registers if needed, then posts status if it changed or is due.</summary>
    public async Task SyncOnceAsync(CancellationToken ct)
    {
        if (_nodeGone)
        {
            _nodeGone = false;
            _registered = false;
            _lastPosted = null;
            LogNodeGone(log, info.NodeName);
        }
        if (!_registered && config.RegisterNode) await RegisterAsync(ct).ConfigureAwait(false);
        var status = Status();
        string comparable = Comparable(status);
        var now = time.GetUtcNow();
        if (comparable == _lastPosted && now - _lastPostTime < config.NodeStatusReportFrequencySpan) return;
        try
        {
            var node = await api.PatchAsync($"/api/v1/nodes/{info.NodeName}/status", new JsonObject { ["status"] = status }, ct).ConfigureAwait(false);
            NodeUid = node["metadata"]?["uid"]?.GetValue<string>();
        }
        catch (ApiError e) when (e.IsNotFound)
        {
            // Someone deleted our Node: register again next round (kubelet does the same).
            _registered = false;
            _lastPosted = null;
            LogNodeGone(log, info.NodeName);
            if (config.RegisterNode) await RegisterAsync(ct).ConfigureAwait(false);
            return;
        }
        _lastPosted = comparable;
        _lastPostTime = now;
    }

    private async Task RegisterAsync(CancellationToken ct)
    {
        var node = new JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "Node",
            ["metadata"] = new JsonObject
            {
                ["name"] = info.NodeName, ["labels"] = info.Labels(),
                ["annotations"] = new JsonObject { ["volumes.kubernetes.io/controller-managed-attach-detach"] = "true" },
            },
            ["spec"] = new JsonObject(),
            ["status"] = Status(),
        };
        if (info.Taints() is { Count: > 0 } taints) node["spec"]!["taints"] = taints;
        try
        {
            var created = await api.CreateAsync("/api/v1/nodes", node, ct).ConfigureAwait(false);
            NodeUid = created["metadata"]?["uid"]?.GetValue<string>();
            LogRegistered(log, info.NodeName);
        }
        catch (ApiError e) when (e.IsConflict)
        {
            // Already registered (an earlier run of this agent): make sure our labels are on it.
            var patched = await api.PatchAsync($"/api/v1/nodes/{info.NodeName}", new JsonObject { ["metadata"] = new JsonObject { ["labels"] = info.Labels() } }, ct).ConfigureAwait(false);
            NodeUid = patched["metadata"]?["uid"]?.GetValue<string>();
        }
        _registered = true;
    }

    /// <summary>The node status: host facts plus conditions with kubelet's reasons.</summary>
    public JsonObject Status()
    {
        var status = info.Status();
        string now = Json(time.GetUtcNow());
        var conditions = new JsonArray();
        foreach (var (type, reason, message) in Pressure) conditions.Add((JsonNode)Condition(type, "False", reason, message, now));
        bool ready = health.Started && health.RuntimeVersion is not null;
        conditions.Add((JsonNode)(ready
            ? Condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", now)
            : Condition("Ready", "False", "KubeletNotReady", "container runtime is down", now)));
        status["conditions"] = conditions;
        return status;
    }

    private JsonObject Condition(string type, string status, string reason, string message, string now)
    {
        if (!_transitions.TryGetValue(type, out var t) || t.Status != status) _transitions[type] = t = (status, now);
        return new JsonObject
        {
            ["type"] = type, ["status"] = status, ["lastHeartbeatTime"] = now, ["lastTransitionTime"] = t.Since,
            ["reason"] = reason, ["message"] = message,
        };
    }

    /// <summary>The status without heartbeat times: what decides whether it changed.</summary>
    private static string Comparable(JsonObject status)
    {
        var copy = (JsonObject)status.DeepClone();
        if (copy["conditions"] is JsonArray conds)
            foreach (var c in conds) (c as JsonObject)?.Remove("lastHeartbeatTime");
        return copy.ToJsonString();
    }

    public static string Json(DateTimeOffset t) => NodeAgent.Api.Meta.ApiTime.Format(t);

    [LoggerMessage(Level = LogLevel.Information, Message = "registered node {Node}")]
    private static partial void LogRegistered(ILogger log, string node);

    [LoggerMessage(Level = LogLevel.Warning, Message = "node {Node} was deleted from the API; registering it again")]
    private static partial void LogNodeGone(ILogger log, string node);

    [LoggerMessage(Level = LogLevel.Warning, Message = "node {Node}: status update failed: {Error}; retrying")]
    private static partial void LogSyncFailed(ILogger log, string node, string error);
}
