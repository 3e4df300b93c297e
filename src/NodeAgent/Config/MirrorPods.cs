using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Pods;
using NodeAgent.Status;

namespace NodeAgent.Config;

/// <summary>
/// Mirror pods: each static pod gets a read-only copy in the API server (annotation
/// kubernetes.io/config.mirror = the static pod's hash, owned by the Node), so kubectl sees it; its
/// status is the static pod's. A changed static pod (new hash) gets its mirror replaced; a removed
/// one has its mirror deleted. One loop reconciles the latest static set against the mirrors on this node.
/// </summary>
public sealed partial class MirrorPods(ApiClient api, PodManager manager, ApiStatusManager status, Func<string?> nodeUid, string nodeName,
    ILogger<MirrorPods> log)
{
    private readonly Channel<IReadOnlyCollection<Pod>> _sets = Channel.CreateBounded<IReadOnlyCollection<Pod>>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });

    public async Task RunAsync(CancellationToken ct)
    {
        manager.DesiredChanged += OnDesired;
        try
        {
            // The static set may have been handed over before this loop subscribed.
            IReadOnlyCollection<Pod>? latest = manager.SourcesReady(StaticPods.Source) ? manager.DesiredOf(StaticPods.Source) : null;
            var retry = new RetryBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
            while (!ct.IsCancellationRequested)
            {
                // Wait for a new static set; with one pending from a failed round, retry after a backoff.
                if (latest is null) latest = await _sets.Reader.ReadAsync(ct).ConfigureAwait(false);
                else
                {
                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    wait.CancelAfter(retry.Next());
                    try { latest = await _sets.Reader.ReadAsync(wait.Token).ConfigureAwait(false); }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
                }
                try
                {
                    await ReconcileAsync(latest, ct).ConfigureAwait(false);
                    latest = null;
                    retry.Reset();
                }
                catch (ApiError e) { LogFailed(log, e.Message); }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        finally
        {
            manager.DesiredChanged -= OnDesired;
        }
    }

    private void OnDesired(string source, IReadOnlyCollection<Pod> pods)
    {
        if (source == StaticPods.Source) _sets.Writer.TryWrite(pods);
    }

    public async Task ReconcileAsync(IReadOnlyCollection<Pod> statics, CancellationToken ct)
    {
        var list = await api.GetAsync("/api/v1/pods?fieldSelector=" + Uri.EscapeDataString("spec.nodeName=" + nodeName), ct).ConfigureAwait(false);
        var mirrors = new Dictionary<string, (string Hash, string Uid)>(StringComparer.Ordinal);
        foreach (var item in list["items"] as JsonArray ?? [])
        {
            if (item?["metadata"]?["annotations"]?[ApiSource.MirrorAnnotation]?.GetValue<string>() is not { } hash) continue;
            mirrors[$"{item["metadata"]!["namespace"]}/{item["metadata"]!["name"]}"] = (hash, item["metadata"]!["uid"]!.GetValue<string>());
        }
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var pod in statics)
        {
            string key = $"{pod.Metadata.Namespace}/{pod.Metadata.Name}";
            wanted.Add(key);
            string hash = pod.Metadata.Uid!;
            if (mirrors.TryGetValue(key, out var m))
            {
                if (m.Hash == hash) continue;
                await DeleteAsync(pod.Metadata.Namespace!, pod.Metadata.Name!, m.Uid, ct).ConfigureAwait(false);
            }
            await CreateAsync(pod, hash, ct).ConfigureAwait(false);
            status.Resync(pod.Metadata.Uid!);
        }
        foreach (var (key, m) in mirrors)
            if (!wanted.Contains(key))
            {
                var parts = key.Split('/');
                await DeleteAsync(parts[0], parts[1], m.Uid, ct).ConfigureAwait(false);
            }
    }

    private async Task CreateAsync(Pod pod, string hash, CancellationToken ct)
    {
        var spec = JsonNode.Parse(JsonSerializer.Serialize(pod.Spec, ApiJsonContext.Default.PodSpec))!;
        var annotations = new JsonObject();
        foreach (var (k, v) in pod.Metadata.Annotations ?? []) annotations[k] = v;
        annotations[ApiSource.MirrorAnnotation] = hash;
        var labels = new JsonObject();
        foreach (var (k, v) in pod.Metadata.Labels ?? []) labels[k] = v;
        var meta = new JsonObject { ["name"] = pod.Metadata.Name, ["namespace"] = pod.Metadata.Namespace, ["labels"] = labels, ["annotations"] = annotations };
        if (nodeUid() is { } uid)
            meta["ownerReferences"] = new JsonArray((JsonNode)new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Node", ["name"] = nodeName, ["uid"] = uid, ["controller"] = true });
        try
        {
            await api.CreateAsync($"/api/v1/namespaces/{pod.Metadata.Namespace}/pods", new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "Pod", ["metadata"] = meta, ["spec"] = spec,
            }, ct).ConfigureAwait(false);
            LogCreated(log, $"{pod.Metadata.Namespace}/{pod.Metadata.Name}");
        }
        catch (ApiError e) when (e.IsConflict) { } // a mirror with that name already exists
    }

    private Task DeleteAsync(string ns, string name, string uid, CancellationToken ct) => api.DeletePodNowAsync(ns, name, uid, ct);

    [LoggerMessage(Level = LogLevel.Information, Message = "created mirror pod {Pod}")]
    private static partial void LogCreated(ILogger log, string pod);

    [LoggerMessage(Level = LogLevel.Warning, Message = "mirror pods: {Error}; retrying")]
    private static partial void LogFailed(ILogger log, string error);
}
