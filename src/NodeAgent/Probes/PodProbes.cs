using NodeAgent.Api.Core;
using NodeAgent.Pods;

namespace NodeAgent.Probes;

/// <summary>
/// The probe workers of one pod, owned by its pod worker (single-threaded use except the
/// result reads, which only touch volatile fields). Workers are keyed by container name and
/// probe type and replaced whenever the container ID changes, so results never leak from one
/// container instance to the next.
/// </summary>
public sealed class PodProbes(Prober prober, TimeProvider time, DateTimeOffset agentStart, Action<ProbeWorker> changed, ProbeSubject? subject = null)
{
    private readonly Dictionary<(string Name, ProbeType Type), ProbeWorker> _workers = [];
    private string? _podIp;

    /// <summary>Starts, keeps or stops workers to match the running containers.</summary>
    public void Reconcile(Pod pod, RuntimePod rt)
    {
        var sb = rt.CurrentSandbox;
        _podIp = sb?.Ip ?? _podIp;
        foreach (var c in PodDefaults.AllContainers(pod.Spec))
        {
            var latest = rt.Latest(c.Name);
            bool running = latest is { Running: true };
            Ensure(c, ProbeType.Startup, c.StartupProbe, running ? latest : null);
            Ensure(c, ProbeType.Liveness, c.LivenessProbe, running ? latest : null);
            Ensure(c, ProbeType.Readiness, c.ReadinessProbe, running ? latest : null);
        }
    }

    private void Ensure(Container c, ProbeType type, Probe? probe, ContainerInfo? running)
    {
        var key = (c.Name, type);
        _workers.TryGetValue(key, out var existing);
        if (probe is null || running is null)
        {
            if (existing is not null) { existing.Stop(); _workers.Remove(key); }
            return;
        }
        if (existing is not null && existing.ContainerId == running.Id) return;
        existing?.Stop();
        var startedAt = ContainerInfo.Time(running.StartedAt) ?? time.GetUtcNow();
        // Spread first probes only right after an agent start (kubelet: probeManager.start).
        bool jitter = time.GetUtcNow() - agentStart < TimeSpan.FromSeconds(probe.PeriodSeconds ?? 10);
        _workers[key] = new ProbeWorker(type, probe, c, running.Id, startedAt, prober, () => _podIp,
            () => IsStarted(c.Name, running.Id), changed, time, jitter, subject);
    }

    private ProbeWorker? Get(string name, ProbeType type, string containerId) =>
        _workers.TryGetValue((name, type), out var w) && w.ContainerId == containerId ? w : null;

    private bool Has(string name, ProbeType type) => _workers.ContainsKey((name, type));

    /// <summary>Started: no startup probe, or it has succeeded for this container instance.</summary>
    public bool IsStarted(string name, string containerId)
    {
        if (!Has(name, ProbeType.Startup)) return true;
        return Get(name, ProbeType.Startup, containerId)?.Published == ProbeResult.Success;
    }

    /// <summary>Ready: no readiness probe, or its last published result is success.</summary>
    public bool IsReady(string name, string containerId)
    {
        if (!Has(name, ProbeType.Readiness)) return true;
        return Get(name, ProbeType.Readiness, containerId)?.Published == ProbeResult.Success;
    }

    /// <summary>Liveness or startup failed for this instance: the container must be restarted. Returns the probe type and output.</summary>
    public (ProbeType Type, string Output)? FailedHealth(string name, string containerId)
    {
        if (Get(name, ProbeType.Startup, containerId) is { Published: ProbeResult.Failure } s) return (ProbeType.Startup, s.LastOutput);
        if (Get(name, ProbeType.Liveness, containerId) is { Published: ProbeResult.Failure } l) return (ProbeType.Liveness, l.LastOutput);
        return null;
    }

    public void StopAll()
    {
        foreach (var w in _workers.Values) w.Stop();
        _workers.Clear();
    }
}
