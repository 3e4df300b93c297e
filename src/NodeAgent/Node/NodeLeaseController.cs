using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Options;
using NodeAgent.Pods;

namespace NodeAgent.Node;

/// <summary>
/// The node heartbeat: a coordination.k8s.io/v1 Lease named after the node in kube-node-lease,
/// renewed every quarter of its duration (10 s for the default 40 s), owned by the Node so it goes
/// when the Node goes. Renewals are updates against the last seen resourceVersion; a conflict or a
/// missing lease is fixed on the next round with a fresh read, as the kubelet's lease controller does.
/// </summary>
public sealed partial class NodeLeaseController(
    ApiClient api, AgentConfiguration config, Func<string?> nodeUid, TimeProvider time, ILogger<NodeLeaseController> log)
{
    private const string Namespace = "kube-node-lease";
    private JsonObject? _lease;

    public TimeSpan RenewInterval => TimeSpan.FromSeconds(config.NodeLeaseDurationSeconds / 4.0);

    public async Task RunAsync(CancellationToken ct)
    {
        var retry = new RetryBackoff(TimeSpan.FromMilliseconds(200), RenewInterval);
        while (!ct.IsCancellationRequested)
        {
            TimeSpan next = RenewInterval;
            try
            {
                await RenewOnceAsync(ct).ConfigureAwait(false);
                retry.Reset();
            }
            catch (ApiError e)
            {
                _lease = null;
                LogRenewFailed(log, config.NodeName, e.Message);
                next = retry.Next();
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            try { await Task.Delay(next, time, ct).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
        }
    }

    public static string MicroTime(DateTimeOffset t) => NodeAgent.Api.Meta.ApiTime.FormatMicro(t);

    public Task RenewOnceAsync(CancellationToken ct) => RenewAsync(retryOnConflict: true, ct);

    private async Task RenewAsync(bool retryOnConflict, CancellationToken ct)
    {
        string path = $"/apis/coordination.k8s.io/v1/namespaces/{Namespace}/leases/{config.NodeName}";
        if (_lease is null)
        {
            try { _lease = await api.GetAsync(path, ct).ConfigureAwait(false); }
            catch (ApiError e) when (e.IsNotFound)
            {
                var lease = new JsonObject
                {
                    ["apiVersion"] = "coordination.k8s.io/v1", ["kind"] = "Lease",
                    ["metadata"] = new JsonObject { ["name"] = config.NodeName, ["namespace"] = Namespace },
                    ["spec"] = Spec(),
                };
                SetOwner(lease);
                _lease = await api.CreateAsync($"/apis/coordination.k8s.io/v1/namespaces/{Namespace}/leases", lease, ct).ConfigureAwait(false);
                return;
            }
        }
        var next = (JsonObject)_lease.DeepClone();
        var spec = next["spec"] as JsonObject ?? new JsonObject();
        spec["holderIdentity"] = config.NodeName;
        spec["leaseDurationSeconds"] = config.NodeLeaseDurationSeconds;
        spec["renewTime"] = MicroTime(time.GetUtcNow());
        next["spec"] = spec;
        SetOwner(next);
        try { _lease = await api.UpdateAsync(path, next, ct).ConfigureAwait(false); }
        catch (ApiError e) when (e.IsConflict || e.IsNotFound)
        {
            // Someone else wrote the lease (or deleted it): read it again and retry once.
            _lease = null;
            if (retryOnConflict) await RenewAsync(retryOnConflict: false, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The Lease is owned by the Node (set once the Node's uid is known, and again if it was re-registered).</summary>
    private void SetOwner(JsonObject lease)
    {
        if (nodeUid() is not { } uid) return;
        var meta = lease["metadata"] as JsonObject ?? new JsonObject();
        lease["metadata"] = meta;
        meta["ownerReferences"] = new JsonArray((JsonNode)new JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "Node", ["name"] = config.NodeName, ["uid"] = uid,
        });
    }

    private JsonObject Spec() => new()
    {
        ["holderIdentity"] = config.NodeName,
        ["leaseDurationSeconds"] = config.NodeLeaseDurationSeconds,
        ["renewTime"] = MicroTime(time.GetUtcNow()),
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "node {Node}: lease renewal failed: {Error}; retrying")]
    private static partial void LogRenewFailed(ILogger log, string node, string error);
}
