using System.Text.Json;
using System.Text.Json.Nodes;
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
/// one has its mirror deleted, and a mirror someone else deleted is created again. One loop
/// reconciles the latest static set against the mirror pods the pod watch shows (ApiSource), so
/// nothing is listed and an unchanged set costs no request.
/// </summary>
public sealed partial class MirrorPods(ApiClient api, PodManager manager, ApiStatusManager status, ApiSource source, Func<string?> nodeUid, string nodeName,
    ILogger<MirrorPods> log)
{
    // Static-set changes and mirror-pod changes both just wake the loop, which then reconciles the
    // latest static set: nothing queues up, and nothing is lost between two wake-ups.
    private readonly SemaphoreSlim _wake = new(0, 1);

    public async Task RunAsync(CancellationToken ct)
    {
        manager.DesiredChanged += OnDesired;
        source.MirrorsChanged += Wake;
        try
        {
            var retry = new RetryBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
            bool failed = false;
            while (!ct.IsCancellationRequested)
            {
                // The static set may have been handed over before this loop subscribed: look first, then wait.
                if (manager.SourcesReady(StaticPods.Source))
                {
                    try
                    {
                        await ReconcileAsync(manager.DesiredOf(StaticPods.Source), ct).ConfigureAwait(false);
                        retry.Reset();
                        failed = false;
                    }
                    catch (ApiError e)
                    {
                        LogFailed(log, e.Message);
                        failed = true;
                    }
                }
                if (failed) await _wake.WaitAsync(retry.Next(), ct).ConfigureAwait(false);
                else await _wake.WaitAsync(ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        finally
        {
            manager.DesiredChanged -= OnDesired;
            source.MirrorsChanged -= Wake;
        }
    }

    private void OnDesired(string source)
    {
        if (source == StaticPods.Source) Wake();
    }

    private void Wake()
    {
        if (_wake.CurrentCount == 0) try { _wake.Release(); } catch (SemaphoreFullException) { }
    }

    public async Task ReconcileAsync(IReadOnlyCollection<Pod> statics, CancellationToken ct)
    {
        // Before the pod watch has listed once, the next MirrorsChanged brings this round back.
        if (source.Mirrors is not { } mirrors) return;
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var pod in statics)
        {
            string key = $"{pod.Metadata.Namespace}/{pod.Metadata.Name}";
            wanted.Add(key);
            string hash = pod.Metadata.Uid!;
            if (mirrors.TryGetValue(key, out var m))
            {
                // A mirror of another version, or one someone is deleting: replaced (as the kubelet does).
                if (m.Hash == hash && !m.Deleting) continue;
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
