using Microsoft.Extensions.Logging;
using NodeAgent.Api.Core;

namespace NodeAgent.Pods;

/// <summary>
/// Records the events users look for (Pulling, Created, Started, Killing, Unhealthy, BackOff...)
/// with the kubelet's reasons: to the structured log, and to the API server when the agent joined
/// one (<see cref="ApiEventRecorder"/>). Thread-safe and non-blocking.
/// </summary>
public interface IEventRecorder
{
    void Normal(Pod pod, string reason, string message);
    void Warning(Pod pod, string reason, string message);

    /// <summary>A warning about another object (a Service the proxy could not fully program), from <see cref="EventSubject.Component"/>.</summary>
    void Warning(EventSubject subject, string reason, string message);
}

/// <summary>The object an event is about, and the component that reports it (kubelet, kube-proxy).</summary>
public sealed record EventSubject(string Kind, string ApiVersion, string Namespace, string Name, string? Uid, string Component)
{
    public static EventSubject Of(Pod pod) => new("Pod", "v1", string.IsNullOrEmpty(pod.Metadata.Namespace) ? "default" : pod.Metadata.Namespace, pod.Metadata.Name ?? "", pod.Metadata.Uid, "kubelet");
}

public sealed partial class LogEventRecorder(ILogger<LogEventRecorder> log) : IEventRecorder
{
    public void Normal(Pod pod, string reason, string message) => LogNormal(log, pod.Metadata.Namespace, pod.Metadata.Name, reason, message);
    public void Warning(Pod pod, string reason, string message) => LogWarning(log, pod.Metadata.Namespace, pod.Metadata.Name, reason, message);
    public void Warning(EventSubject s, string reason, string message) => LogObjectWarning(log, s.Kind, s.Namespace, s.Name, reason, message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "event {Kind}={Namespace}/{Name} type=Warning reason={Reason}: {Message}")]
    private static partial void LogObjectWarning(ILogger logger, string kind, string @namespace, string name, string reason, string message);

    [LoggerMessage(Level = LogLevel.Information, Message = "event pod={Namespace}/{Pod} type=Normal reason={Reason}: {Message}")]
    private static partial void LogNormal(ILogger logger, string? @namespace, string? pod, string reason, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "event pod={Namespace}/{Pod} type=Warning reason={Reason}: {Message}")]
    private static partial void LogWarning(ILogger logger, string? @namespace, string? pod, string reason, string message);
}
