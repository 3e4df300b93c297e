using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Core;

namespace NodeAgent.Pods;

/// <summary>
/// Posts events to the API server as core/v1 Events (source kubelet, the node as host), besides
/// logging them. Repeats of the same reason and message for the same pod within 10 minutes are
/// aggregated into one Event whose count and lastTimestamp grow (kubelet's event correlator).
/// Recording never blocks a pod worker: events go through a bounded queue to one sender loop; when
/// the API is unreachable the oldest queued events are dropped, never the pods' progress.
/// </summary>
public sealed partial class ApiEventRecorder(LogEventRecorder inner, ApiClient api, string nodeName, TimeProvider time, ILogger<ApiEventRecorder> log) : IEventRecorder
{
    private sealed record Pending(EventSubject Subject, string Type, string Reason, string Message, DateTimeOffset At);
    private sealed class Series { public required string Name; public required string Namespace; public int Count; public DateTimeOffset First; public DateTimeOffset Last; }

    private readonly Channel<Pending> _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(1024) { SingleReader = true, FullMode = BoundedChannelFullMode.DropOldest });
    private readonly Dictionary<(string Uid, string Reason, string Message), Series> _series = [];

    public void Normal(Pod pod, string reason, string message)
    {
        inner.Normal(pod, reason, message);
        _queue.Writer.TryWrite(new Pending(EventSubject.Of(pod), "Normal", reason, message, time.GetUtcNow()));
    }

    public void Warning(Pod pod, string reason, string message)
    {
        inner.Warning(pod, reason, message);
        _queue.Writer.TryWrite(new Pending(EventSubject.Of(pod), "Warning", reason, message, time.GetUtcNow()));
    }

    public void Warning(EventSubject subject, string reason, string message)
    {
        inner.Warning(subject, reason, message);
        _queue.Writer.TryWrite(new Pending(subject, "Warning", reason, message, time.GetUtcNow()));
    }

    public async Task RunAsync(CancellationToken ct)
    {
        await foreach (var e in _queue.Reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            try { await SendAsync(e, ct).ConfigureAwait(false); }
            catch (ApiError err) { LogSendFailed(log, e.Reason, err.Message); }
        }
    }

    private static string Time(DateTimeOffset t) => NodeAgent.Api.Meta.ApiTime.Format(t);

    private async Task SendAsync(Pending e, CancellationToken ct)
    {
        var m = e.Subject;
        string ns = m.Namespace;
        var key = (m.Uid ?? m.Kind + "/" + m.Namespace + "/" + m.Name, e.Reason, e.Message);
        if (_series.TryGetValue(key, out var s) && e.At - s.Last < TimeSpan.FromMinutes(10))
        {
            s.Count++;
            s.Last = e.At;
            try
            {
                await api.PatchAsync($"/api/v1/namespaces/{s.Namespace}/events/{s.Name}",
                    new JsonObject { ["count"] = s.Count, ["lastTimestamp"] = Time(e.At) }, ct, "application/merge-patch+json").ConfigureAwait(false);
                return;
            }
            catch (ApiError err) when (err.IsNotFound) { _series.Remove(key); }
        }
        if (_series.Count > 4096) PruneOld(e.At);
        string name = $"{m.Name}.{e.At.UtcTicks:x}";
        await api.CreateAsync($"/api/v1/namespaces/{ns}/events", new JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "Event",
            ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns },
            ["involvedObject"] = new JsonObject { ["kind"] = m.Kind, ["namespace"] = ns, ["name"] = m.Name, ["uid"] = m.Uid, ["apiVersion"] = m.ApiVersion },
            ["reason"] = e.Reason, ["message"] = e.Message, ["type"] = e.Type,
            ["source"] = new JsonObject { ["component"] = m.Component, ["host"] = nodeName },
            ["firstTimestamp"] = Time(e.At), ["lastTimestamp"] = Time(e.At), ["count"] = 1,
            ["reportingComponent"] = m.Component, ["reportingInstance"] = nodeName,
        }, ct).ConfigureAwait(false);
        _series[key] = new Series { Name = name, Namespace = ns, Count = 1, First = e.At, Last = e.At };
    }

    private void PruneOld(DateTimeOffset now)
    {
        foreach (var (k, v) in _series.ToList())
            if (now - v.Last > TimeSpan.FromMinutes(10)) _series.Remove(k);
        if (_series.Count > 4096) _series.Clear();
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "event {Reason} not posted: {Error}")]
    private static partial void LogSendFailed(ILogger log, string reason, string error);
}
