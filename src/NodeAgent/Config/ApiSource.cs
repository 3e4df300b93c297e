using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Pods;

namespace NodeAgent.Config;

/// <summary>
/// Pods bound to this node, from the API server: an informer on pods with
/// fieldSelector=spec.nodeName=NODE hands the pod manager the whole set after each (re)list and
/// then one pod per watch event. A pod with a deletionTimestamp is stopped within its grace
/// period; once nothing of it runs, this source deletes the object with gracePeriodSeconds=0 and a
/// uid precondition, as the kubelet's status manager does. Mirror pods are not run.
/// </summary>
public sealed partial class ApiSource(ApiClient api, string nodeName, PodManager manager, TimeProvider time, ILogger<ApiSource> log)
{
    public const string Source = "api";
    public const string ConfigSourceAnnotation = "kubernetes.io/config.source";
    public const string MirrorAnnotation = "kubernetes.io/config.mirror";

    private readonly Dictionary<string, (string Rv, Pod? Pod)> _pods = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Hash, string Uid, bool Deleting)> _mirrors = new(StringComparer.Ordinal);
    private volatile bool _synced;

    /// <summary>
    /// Mirror pods on this node as the watch last showed them (namespace/name → config.mirror hash, uid,
    /// whether someone is deleting it), or null before the first list: what <see cref="MirrorPods"/>
    /// reconciles against, without listing.
    /// </summary>
    public IReadOnlyDictionary<string, (string Hash, string Uid, bool Deleting)>? Mirrors =>
        _synced ? new Dictionary<string, (string, string, bool)>(_mirrors) : null;

    /// <summary>Raised (on the informer's loop) after the first list and whenever a mirror pod appeared, changed or went.</summary>
    public event Action? MirrorsChanged;
    private readonly Channel<Pod> _deletions = Channel.CreateUnbounded<Pod>(new UnboundedChannelOptions { SingleReader = true });
    private Informer? _informer;

    public async Task RunAsync(CancellationToken ct)
    {
        manager.Deleted += OnDeleted;
        try
        {
            _informer = new Informer(api, "/api/v1/pods", "fieldSelector=" + Uri.EscapeDataString("spec.nodeName=" + nodeName), OnChange, log, time);
            await Task.WhenAll(_informer.RunAsync(ct), DeleteLoopAsync(ct)).ConfigureAwait(false);
        }
        finally
        {
            manager.Deleted -= OnDeleted;
        }
    }

    private void OnDeleted(Pod pod)
    {
        if (pod.Metadata.Annotations?.GetValueOrDefault(ConfigSourceAnnotation) == Source) _deletions.Writer.TryWrite(pod);
    }

    /// <summary>Informer callback (its loop is the only caller): refresh changed pods, hand over the set.</summary>
    private void OnChange(InformerChange change)
    {
        var cache = _informer!.Cache;
        bool mirrorsChanged = false;
        if (change.Type == InformerChange.Synced)
        {
            // A (re)list: the whole set.
            foreach (var key in _pods.Keys.ToList()) if (!cache.ContainsKey(key)) _pods.Remove(key);
            foreach (var key in _mirrors.Keys) if (!cache.ContainsKey(key)) _mirrors.TryRemove(key, out _);
            foreach (var (key, obj) in cache) mirrorsChanged |= Refresh(key, obj);
            _synced = mirrorsChanged = true;
            var desired = new List<Pod>(_pods.Count);
            foreach (var (_, p) in _pods.Values) if (p is not null) desired.Add(p);
            manager.SetDesired(Source, desired);
        }
        else if (_synced)
        {
            // One event: only that pod is handed over.
            _pods.TryGetValue(change.Key, out var before);
            if (change.Type == "DELETED")
            {
                _pods.Remove(change.Key);
                mirrorsChanged = _mirrors.TryRemove(change.Key, out _);
            }
            else mirrorsChanged = Refresh(change.Key, change.Object!);
            _pods.TryGetValue(change.Key, out var after);
            if (before.Pod is { } gone && gone.Metadata.Uid != after.Pod?.Metadata.Uid) manager.UpdateDesired(Source, gone.Metadata.Uid!, null);
            if (after.Pod is { } now && !ReferenceEquals(now, before.Pod)) manager.UpdateDesired(Source, now.Metadata.Uid!, now);
        }
        if (mirrorsChanged) MirrorsChanged?.Invoke();
    }

    /// <summary>Decodes a changed pod; returns true when it is a mirror pod that appeared or changed.</summary>
    private bool Refresh(string key, JsonObject obj)
    {
        string rv = obj["metadata"]?["resourceVersion"]?.GetValue<string>() ?? "";
        if (_pods.TryGetValue(key, out var known) && known.Rv == rv) return false;
        bool mirror = false;
        Pod? pod = null;
        try
        {
            pod = obj.Deserialize(ApiJsonContext.Default.Pod);
            if (pod is not null)
            {
                if (pod.Metadata.Annotations?.GetValueOrDefault(MirrorAnnotation) is { } hash)
                {
                    var entry = (hash, pod.Metadata.Uid ?? "", pod.Metadata.DeletionTimestamp is not null);
                    mirror = !_mirrors.TryGetValue(key, out var before) || before != entry;
                    _mirrors[key] = entry;
                    pod = null;
                }
                else
                {
                    PodDefaults.Apply(pod);
                    (pod.Metadata.Annotations ??= [])[ConfigSourceAnnotation] = Source;
                }
            }
        }
        catch (JsonException e)
        {
            LogUndecodable(log, key, e.Message);
        }
        _pods[key] = (rv, pod);
        return mirror;
    }

    private async Task DeleteLoopAsync(CancellationToken ct)
    {
        await foreach (var pod in _deletions.Reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            var retry = new RetryBackoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10));
            for (int attempt = 0; attempt < 8 && !ct.IsCancellationRequested; attempt++)
            {
                try
                {
                    if (await api.DeletePodNowAsync(pod.Metadata.Namespace!, pod.Metadata.Name!, pod.Metadata.Uid, ct).ConfigureAwait(false))
                        LogDeleted(log, $"{pod.Metadata.Namespace}/{pod.Metadata.Name}");
                    break; // gone, or a different pod of that name now
                }
                catch (ApiError e)
                {
                    LogDeleteFailed(log, $"{pod.Metadata.Namespace}/{pod.Metadata.Name}", e.Message);
                    try { await Task.Delay(retry.Next(), time, ct).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
                }
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "pod {Pod} from the API cannot be decoded, not running it: {Error}")]
    private static partial void LogUndecodable(ILogger log, string pod, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "pod {Pod} terminated; deleted from the API")]
    private static partial void LogDeleted(ILogger log, string pod);

    [LoggerMessage(Level = LogLevel.Warning, Message = "pod {Pod}: final delete failed: {Error}; retrying")]
    private static partial void LogDeleteFailed(ILogger log, string pod, string error);
}
