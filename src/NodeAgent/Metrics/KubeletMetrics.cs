using NodeAgent.Api.Core;
using NodeAgent.Probes;
using NodeAgent.Status;
using Prometheus;

namespace NodeAgent.Metrics;

/// <summary>
/// The agent's own metrics under the kubelet's names, labels and buckets (through prometheus-net,
/// a registry per endpoint): /metrics has kubelet_running_pods, kubelet_running_containers,
/// kubelet_pod_start_duration_seconds, kubelet_pleg_relist_duration_seconds and
/// kubelet_runtime_operations_{total,duration_seconds,errors_total}; /metrics/probes has
/// prober_probe_total and prober_probe_duration_seconds. Observations come from hooks on the CRI
/// client, the PLEG and the prober, and from the pod status store's change events; the running
/// counts are computed when scraped. Thread safe (prometheus-net's metrics are).
/// </summary>
public sealed class KubeletMetrics
{
    public CollectorRegistry Main { get; } = Prometheus.Metrics.NewCustomRegistry();
    public CollectorRegistry Probes { get; } = Prometheus.Metrics.NewCustomRegistry();

    private readonly Gauge _runningPods, _runningContainers;
    private readonly Counter _readErrors;

    /// <summary>The collector's cgroup reader, whose skip counters are exported.</summary>
    public CgroupReader? Reader { get; set; }
    private readonly Histogram _podStart, _relist, _runtimeDuration, _probeDuration;
    private readonly Counter _runtimeTotal, _runtimeErrors, _probeTotal;
    private readonly PodStatusStore _store;
    private readonly TimeProvider _time;
    /// <summary>Pods seen but not yet running: UID → when first seen (the start of kubelet_pod_start_duration_seconds).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTimeOffset> _starting = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _started = new(StringComparer.Ordinal);

    public KubeletMetrics(PodStatusStore store, TimeProvider time)
    {
        _store = store;
        _time = time;
        var f = Prometheus.Metrics.WithCustomRegistry(Main);
        _runningPods = f.CreateGauge("kubelet_running_pods", "[ALPHA] Number of pods that have a running pod sandbox");
        _runningContainers = f.CreateGauge("kubelet_running_containers", "[ALPHA] Number of containers currently running", new GaugeConfiguration { LabelNames = ["container_state"] });
        _podStart = f.CreateHistogram("kubelet_pod_start_duration_seconds", "[ALPHA] Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
            new HistogramConfiguration { Buckets = [0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600] });
        _relist = f.CreateHistogram("kubelet_pleg_relist_duration_seconds", "[ALPHA] Duration in seconds for relisting pods in PLEG.",
            new HistogramConfiguration { Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _runtimeTotal = f.CreateCounter("kubelet_runtime_operations_total", "[ALPHA] Cumulative number of runtime operations by operation type.", new CounterConfiguration { LabelNames = ["operation_type"] });
        _runtimeErrors = f.CreateCounter("kubelet_runtime_operations_errors_total", "[ALPHA] Cumulative number of runtime operation errors by operation type.", new CounterConfiguration { LabelNames = ["operation_type"] });
        _runtimeDuration = f.CreateHistogram("kubelet_runtime_operations_duration_seconds", "[ALPHA] Duration in seconds of runtime operations. Broken down by operation type.",
            new HistogramConfiguration { LabelNames = ["operation_type"], Buckets = Histogram.ExponentialBuckets(0.005, 2.5, 14) });
        var p = Prometheus.Metrics.WithCustomRegistry(Probes);
        _probeTotal = p.CreateCounter("prober_probe_total", "[ALPHA] Cumulative number of a liveness, readiness or startup probe for a container by result.",
            new CounterConfiguration { LabelNames = ["probe_type", "result", "container", "pod", "namespace", "pod_uid"] });
        _probeDuration = p.CreateHistogram("prober_probe_duration_seconds", "[ALPHA] Duration in seconds for a probe response.",
            new HistogramConfiguration { LabelNames = ["probe_type", "container", "pod", "namespace"], Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        _readErrors = f.CreateCounter("nodeagent_cgroup_read_errors_total",
            "Cgroup and /proc files the stats collector skipped since start, by reason (vanished: the cgroup went away mid-read; malformed; denied)",
            new CounterConfiguration { LabelNames = ["reason"] });
        Main.AddBeforeCollectCallback(CountRunning);
        ProcessMetrics.Register(Main);
        Main.AddBeforeCollectCallback(() =>
        {
            if (Reader is not { } r) return;
            _readErrors.WithLabels("vanished").IncTo(Interlocked.Read(ref r.Vanished));
            _readErrors.WithLabels("malformed").IncTo(Interlocked.Read(ref r.Malformed));
            _readErrors.WithLabels("denied").IncTo(Interlocked.Read(ref r.Denied));
        });
        store.Changed += OnPodChanged;
    }

    /// <summary>For <see cref="NodeAgent.Cri.RemoteRuntime.Observe"/>.</summary>
    public void RuntimeOperation(string operation, TimeSpan took, bool failed)
    {
        _runtimeTotal.WithLabels(operation).Inc();
        _runtimeDuration.WithLabels(operation).Observe(took.TotalSeconds);
        if (failed) _runtimeErrors.WithLabels(operation).Inc();
    }

    /// <summary>For <see cref="NodeAgent.Pleg.GenericPleg.ObserveRelist"/>.</summary>
    public void Relisted(TimeSpan took) => _relist.Observe(took.TotalSeconds);

    /// <summary>For <see cref="Prober.Observe"/>.</summary>
    public void Probed(ProbeType type, ProbeOutcome outcome, ProbeSubject pod, string container, TimeSpan took)
    {
        string result = outcome.Error ? "unknown" : outcome.Result switch { ProbeResult.Success => "successful", ProbeResult.Failure => "failed", _ => "unknown" };
        string t = type.ToString();
        _probeTotal.WithLabels(t, result, container, pod.Pod, pod.Namespace, pod.Uid).Inc();
        _probeDuration.WithLabels(t, container, pod.Pod, pod.Namespace).Observe(took.TotalSeconds);
    }

    private void OnPodChanged(string uid)
    {
        var pod = _store.Get(uid);
        if (pod is null) { _starting.TryRemove(uid, out _); _started.TryRemove(uid, out _); return; }
        if (_started.ContainsKey(uid)) return;
        var firstSeen = _starting.GetOrAdd(uid, _time.GetUtcNow());
        // Running: every container has started (what the kubelet's pod start SLI measures up to).
        var statuses = pod.Status?.ContainerStatuses;
        if (statuses is not { Count: > 0 } || statuses.Count < (pod.Spec?.Containers?.Count ?? 0)) return;
        foreach (var cs in statuses) if (cs.State?.Running is null) return;
        if (_started.TryAdd(uid, true))
        {
            _starting.TryRemove(uid, out _);
            _podStart.Observe(Math.Max(0, (_time.GetUtcNow() - firstSeen).TotalSeconds));
        }
    }

    private void CountRunning()
    {
        int pods = 0, running = 0, exited = 0, created = 0, unknown = 0;
        foreach (var pod in _store.Snapshot().Items)
        {
            if (pod.Status?.Phase is "Running" or "Pending" && pod.Status?.PodIP is { Length: > 0 }) pods++;
            foreach (var cs in pod.Status?.ContainerStatuses ?? [])
            {
                if (cs.State?.Running is not null) running++;
                else if (cs.State?.Terminated is not null) exited++;
                else if (cs.State?.Waiting is not null && cs.ContainerID is { Length: > 0 }) created++;
                else unknown++;
            }
        }
        _runningPods.Set(pods);
        _runningContainers.WithLabels("running").Set(running);
        _runningContainers.WithLabels("exited").Set(exited);
        _runningContainers.WithLabels("created").Set(created);
        _runningContainers.WithLabels("unknown").Set(unknown);
    }
}
