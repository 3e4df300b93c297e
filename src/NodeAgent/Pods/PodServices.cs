using Microsoft.Extensions.Logging;
using NodeAgent.Cm;
using NodeAgent.Cri;
using NodeAgent.Probes;
using NodeAgent.Status;
using NodeAgent.Volumes;

namespace NodeAgent.Pods;

/// <summary>Facts about this node that pods see (env, status, OOM score).</summary>
public sealed record NodeFacts(string NodeName, string? HostIP, long CpuMilli, long MemoryBytes)
{
    /// <summary>The node's addresses, one per family, primary (<see cref="HostIP"/>) first: a pod's status.hostIPs.</summary>
    public IReadOnlyList<string> HostIPs { get; init; } = HostIP is null ? [] : [HostIP];

    public string RuntimeName { get; set; } = "containerd";
}

/// <summary>Shared, thread-safe services every pod worker uses. Holds no per-pod state.</summary>
public sealed class PodServices(
    IRuntimeService runtime, IImageService images, CriConfigBuilder builder, PodCgroups cgroups, VolumeManager volumes,
    Prober prober, PodStatusStore store, IEventRecorder events, NodeFacts node, TimeProvider time, ILoggerFactory loggers,
    TimeSpan syncFrequency)
{
    public IRuntimeService Runtime => runtime;
    public IImageService Images => images;
    public RuntimePodReader Reader { get; } = new(runtime);
    public CriConfigBuilder Builder => builder;
    public PodCgroups Cgroups => cgroups;
    public VolumeManager Volumes => volumes;
    public Prober Prober => prober;
    public PodStatusStore Store => store;
    public IEventRecorder Events => events;
    public NodeFacts Node => node;
    public TimeProvider Time => time;
    public ILoggerFactory Loggers => loggers;
    public TimeSpan SyncFrequency => syncFrequency;
    public DateTimeOffset AgentStart { get; } = time.GetUtcNow();
    /// <summary>ConfigMaps and Secrets pods reference (none without an API server).</summary>
    public IObjectSource Objects { get; init; } = new NoObjectSource();
    /// <summary>The Node as admission sees it; null admits every pod (no API server: static pods only).</summary>
    public Func<AdmissionNode>? AdmissionNode { get; init; }
}
