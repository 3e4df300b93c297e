using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Serialization;
using NodeAgent.Config;
using NodeAgent.Pods;

namespace NodeAgent.Status;

/// <summary>
/// Reports API pods' status to the API server (kubelet's status manager): the pod workers write
/// computed status to the <see cref="PodStatusStore"/>; this single loop patches pods/status when
/// it differs from what was last sent. Bursts coalesce (a pod is queued once however often it
/// changes) and each patch carries the latest status read at send time, so an older status is
/// never written over a newer one. The patch carries metadata.uid, so it cannot land on a newer
/// pod of the same name.
/// </summary>
public sealed partial class ApiStatusManager(ApiClient api, PodStatusStore store, TimeProvider time, ILogger<ApiStatusManager> log)
{
    private readonly Channel<string> _queue = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
    private readonly HashSet<string> _queued = [];
    private readonly Lock _lock = new();
    private readonly Dictionary<string, string> _sent = new(StringComparer.Ordinal);

    /// <summary>Patches sent so far (tests, metrics).</summary>
    public int Patches { get; private set; }

    public async Task RunAsync(CancellationToken ct)
    {
        store.Changed += Enqueue;
        try
        {
            await foreach (var uid in _queue.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                lock (_lock) _queued.Remove(uid);
                await SyncAsync(uid, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            store.Changed -= Enqueue;
        }
    }

    /// <summary>Sends the pod's status again even if unchanged (e.g. its mirror pod was just created).</summary>
    public void Resync(string uid)
    {
        _resync[uid] = 0;
        Enqueue(uid);
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _resync = new(StringComparer.Ordinal);

    private void Enqueue(string uid)
    {
        lock (_lock) if (!_queued.Add(uid)) return;
        _queue.Writer.TryWrite(uid);
    }

    private async Task SyncAsync(string uid, CancellationToken ct)
    {
        var pod = store.Get(uid);
        if (pod is null) { _sent.Remove(uid); return; }
        string? source = pod.Metadata.Annotations?.GetValueOrDefault(ApiSource.ConfigSourceAnnotation);
        if (source is not (ApiSource.Source or StaticPods.Source) || pod.Status is null) return;
        string status = JsonSerializer.Serialize(pod.Status, ApiJsonContext.Default.PodStatus);
        bool forced = _resync.TryRemove(uid, out _);
        if (!forced && _sent.TryGetValue(uid, out var last) && last == status) return;
        // A static pod's status goes to its mirror pod, which has a uid of its own.
        var patch = new JsonObject { ["status"] = JsonNode.Parse(status) };
        if (source == ApiSource.Source) patch["metadata"] = new JsonObject { ["uid"] = uid };
        var retry = new RetryBackoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10));
        for (int attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                await api.PatchAsync($"/api/v1/namespaces/{pod.Metadata.Namespace}/pods/{pod.Metadata.Name}/status", patch, ct).ConfigureAwait(false);
                _sent[uid] = status;
                Patches++;
                return;
            }
            catch (ApiError e) when (e.IsNotFound || e.Code == 422)
            {
                _sent.Remove(uid);
                return; // the pod is gone (or replaced by another of that name)
            }
            catch (ApiError e)
            {
                LogPatchFailed(log, $"{pod.Metadata.Namespace}/{pod.Metadata.Name}", e.Message);
                try { await Task.Delay(retry.Next(), time, ct).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
            }
        }
        Enqueue(uid); // try again later with whatever is newest then
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "pod {Pod}: status update failed: {Error}; retrying")]
    private static partial void LogPatchFailed(ILogger log, string pod, string error);
}
