using System.Buffers;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Core;
using NodeAgent.Cm;
using NodeAgent.Status;

namespace NodeAgent.Metrics;

/// <summary>One cgroup being measured: a container, a pod, or the node (the root).</summary>
public sealed class Measured
{
    public required string ContainerId { get; init; }
    /// <summary>cAdvisor's "id": the cgroup path from the hierarchy root, e.g. /kubepods/besteffort/pod&lt;uid&gt;/&lt;id&gt;.</summary>
    public required string CgroupName { get; init; }
    public required string Namespace { get; init; }
    public required string Pod { get; init; }
    public required string PodUid { get; init; }
    public required string Container { get; init; }
    public required string Image { get; init; }
    public required CgroupReader.Handle Handle { get; init; }
    public CgroupStats Stats { get; } = new();
    public long StartTimeSeconds { get; init; }
    /// <summary>
    /// OOM kills of earlier instances of this container (their cgroups are gone), from the pod
    /// status' OOMKilled terminations; container_oom_events_total adds the current cgroup's own.
    /// </summary>
    public ulong PastOoms { get; set; }
    /// <summary>When <see cref="Stats"/> were read (Unix ms); 0 until the first successful read.</summary>
    public long ReadAtMs { get; set; }
    /// <summary>CPU usage in nanocores between the last two reads (the Summary API's usageNanoCores); null after a single read.</summary>
    public ulong? UsageNanoCores { get; set; }
    /// <summary>A pod's network interfaces (not loopback) in its network namespace; empty for host-network pods and containers.</summary>
    public List<NetInterface> Network { get; } = [];
    internal bool HostNetwork;
    /// <summary>/proc/PID/net/dev of a process in the pod (found through a container's cgroup.procs), encoded; null until found.</summary>
    internal byte[]? NetDevPath;
    /// <summary>A container's cgroup.procs, encoded (how its pod's network namespace is found).</summary>
    internal byte[]? ProcsPath;
    internal ulong PreviousCpuNs;
    internal long PreviousReadAtMs;
    /// <summary>The exposition labels, rendered once: container, id, image, name, namespace, pod.</summary>
    internal byte[] Labels { get; set; } = [];

    /// <summary>A container's writable layer, as the runtime measures it; null until a filesystem pass saw it.</summary>
    public FsFigures? Rootfs { get; internal set; }
    /// <summary>A container's log directory; null until a filesystem pass saw it.</summary>
    public FsFigures? Logs { get; internal set; }
    /// <summary>A pod's local ephemeral storage: its containers' writable layers and logs and its disk emptyDir and configMap volumes.</summary>
    public FsFigures? EphemeralStorage { get; internal set; }
    /// <summary>A pod's volumes (from its spec) and, after a filesystem pass, what each holds.</summary>
    public List<(PodVolume Volume, FsFigures? Usage)> Volumes { get; } = [];
    /// <summary>The pod's volumes as (name, plugin directory, ephemeral), before the agent's root directory is known.</summary>
    internal (string Name, string Plugin, bool Ephemeral)[] VolumeSpecs = [];
    internal string? LogDir;
}

/// <summary>
/// cAdvisor inside the agent: keeps a <see cref="Measured"/> per running container, per pod and
/// for the node, refreshed every housekeeping interval (with jitter) and on demand when a scrape
/// finds them older than the interval. The set of containers follows the pod status store's change
/// events (no listing); reading is <see cref="CgroupReader"/>'s, allocation-free in steady state.
/// One owner: its loop. Scrapes post a request and get the exposition rendered by the loop into a
/// pooled buffer (<see cref="ScrapeAsync"/>); nobody else touches the entries.
/// </summary>
public sealed partial class StatsCollector
{
    private readonly CgroupReader _reader;
    private readonly CgroupLayout _layout;
    private readonly PodStatusStore _store;
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly ILogger _log;
    private readonly Channel<string> _podChanges = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Channel<Request> _requests = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<string, Measured> _containers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Measured> _pods = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _containersOfPod = new(StringComparer.Ordinal);
    /// <summary>Per pod UID: container name → OOMKilled terminations seen, and the IDs of the terminated containers counted.</summary>
    private readonly Dictionary<string, (Dictionary<string, ulong> Counts, HashSet<string> Seen)> _ooms = new(StringComparer.Ordinal);
    private readonly Measured _node;
    private long _lastCollectMs;

    public StatsCollector(CgroupReader reader, CgroupLayout layout, PodStatusStore store, TimeProvider time, TimeSpan interval, ILogger<StatsCollector> log)
    {
        _reader = reader;
        _layout = layout;
        _store = store;
        _time = time;
        _interval = interval;
        _log = log;
        _node = new Measured { ContainerId = "", CgroupName = "/", Namespace = "", Pod = "", PodUid = "", Container = "", Image = "", Handle = reader.Open("") };
        _node.Labels = CadvisorText.Labels(_node);
        store.Changed += uid => _podChanges.Writer.TryWrite(uid);
    }

    public Measured Node => _node;
    public CgroupReader Reader => _reader;

    /// <summary>The agent's own metrics (/metrics, /metrics/probes), served beside the collector's.</summary>
    public KubeletMetrics? Kubelet { get; set; }

    /// <summary>The node's identity for the Summary API (set at start).</summary>
    public SummaryNode? Summary { get; set; }
    /// <summary>Where filesystem figures come from (the runtime, statvfs, directory sizes); none when null.</summary>
    public FsStatsSource? Filesystems { get; set; }
    /// <summary>The node filesystem (the agent's root directory), from the last filesystem pass.</summary>
    public FsFigures? NodeFs { get; private set; }
    /// <summary>The runtime's image filesystem, from the last filesystem pass.</summary>
    public FsFigures? ImageFs { get; private set; }
    public IReadOnlyCollection<Measured> Pods => _pods.Values;
    public IReadOnlyCollection<Measured> Containers => _containers.Values;

    /// <summary>The running containers of pod <paramref name="uid"/> (from the pod → containers index, not a scan).</summary>
    public IEnumerable<Measured> ContainersOf(string uid)
    {
        if (!_containersOfPod.TryGetValue(uid, out var ids)) yield break;
        foreach (var id in ids)
            if (_containers.TryGetValue(id, out var m)) yield return m;
    }

    /// <summary>What a scrape wants: the exposition rendered by <paramref name="Render"/> into a pooled buffer.</summary>
    private sealed record Request(Action<StatsCollector, ArrayBufferWriter<byte>> Render, TaskCompletionSource<ArrayBufferWriter<byte>> Done);

    private readonly Stack<ArrayBufferWriter<byte>> _buffers = new();
    private readonly Lock _bufferLock = new();

    /// <summary>
    /// Renders with fresh stats (collected now if the last collection is older than the
    /// interval). Pass the result back to <see cref="Return"/> once written.
    /// </summary>
    public async Task<ArrayBufferWriter<byte>> ScrapeAsync(Action<StatsCollector, ArrayBufferWriter<byte>> render, CancellationToken ct)
    {
        var done = new TaskCompletionSource<ArrayBufferWriter<byte>>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _requests.Writer.WriteAsync(new Request(render, done), ct).ConfigureAwait(false);
        return await done.Task.WaitAsync(ct).ConfigureAwait(false);
    }

    public void Return(ArrayBufferWriter<byte> buffer)
    {
        buffer.ResetWrittenCount();
        lock (_bufferLock) if (_buffers.Count < 4) _buffers.Push(buffer);
    }

    private ArrayBufferWriter<byte> Rent()
    {
        lock (_bufferLock) return _buffers.TryPop(out var b) ? b : new ArrayBufferWriter<byte>(256 * 1024);
    }

    public async Task RunAsync(CancellationToken ct)
    {
        foreach (var p in _store.Snapshot().Items) if (p.Metadata.Uid is { } uid) _podChanges.Writer.TryWrite(uid);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                // The filesystem pass (runtime calls, directory sizes) runs beside the cgroup reads,
                // bounded so that a runtime that hangs cannot hold up the scrapes behind it.
                var fs = StartFilesystems(TimeSpan.FromSeconds(5), ct);
                CollectOnce();
                if (fs is not null) ApplyFilesystems(await fs.ConfigureAwait(false));
                // Jitter: ±10% of the interval, so the nodes of a cluster do not read in step.
                var wait = _interval * (0.9 + 0.2 * Random.Shared.NextDouble());
                using var wake = CancellationTokenSource.CreateLinkedTokenSource(ct);
                wake.CancelAfter(wait);
                try
                {
                    while (await _requests.Reader.WaitToReadAsync(wake.Token).ConfigureAwait(false))
                        while (_requests.Reader.TryRead(out var r)) Serve(r);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        while (_requests.Reader.TryRead(out var r)) r.Done.TrySetCanceled(ct);
    }

    private void Serve(Request r)
    {
        if (_time.GetUtcNow().ToUnixTimeMilliseconds() - _lastCollectMs > _interval.TotalMilliseconds) CollectOnce();
        var buffer = Rent();
        try
        {
            r.Render(this, buffer);
            r.Done.TrySetResult(buffer);
        }
        catch (Exception e)
        {
            Return(buffer);
            r.Done.TrySetException(e);
        }
    }

    /// <summary>
    /// One filesystem pass (<see cref="FsStatsSource"/>), applied to the entries: writable layers
    /// and logs per container, volumes and ephemeral storage per pod, node and image filesystems.
    /// Must be awaited on the loop (the entries' owner), with nothing else touching the entries meanwhile.
    /// </summary>
    public async Task RefreshFilesystemsAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (StartFilesystems(timeout, ct) is { } read) ApplyFilesystems(await read.ConfigureAwait(false));
    }

    /// <summary>Takes the directory list (on the loop) and starts the reads, which touch no entry.</summary>
    private Task<FsReading?>? StartFilesystems(TimeSpan timeout, CancellationToken ct)
    {
        if (Filesystems is not { } src) return null;
        FollowPodChanges();
        var dirs = new List<string>(_containers.Count + _pods.Count);
        foreach (var m in _containers.Values)
            dirs.Add(m.LogDir ??= Path.Combine(src.PodLogsDir, $"{m.Namespace}_{m.Pod}_{m.PodUid}", m.Container));
        foreach (var p in _pods.Values)
        {
            if (p.Volumes.Count != p.VolumeSpecs.Length)
            {
                p.Volumes.Clear();
                foreach (var (name, plugin, ephemeral) in p.VolumeSpecs)
                    p.Volumes.Add((new PodVolume(name, Path.Combine(src.RootDir, "pods", p.PodUid, "volumes", plugin, name), ephemeral), null));
            }
            foreach (var (v, _) in p.Volumes) dirs.Add(v.Dir);
        }
        return Read();

        async Task<FsReading?> Read()
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bounded.CancelAfter(timeout);
            try { return await src.ReadAsync(dirs, bounded.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { LogFsTimedOut(timeout.TotalSeconds); return null; }
        }
    }

    /// <summary>Applies a pass's figures to the entries (on the loop).</summary>
    private void ApplyFilesystems(FsReading? r)
    {
        if (r is null) return;
        long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        NodeFs = r.NodeFs;
        ImageFs = r.ImageFs;
        foreach (var m in _containers.Values)
        {
            if (r.Writable.TryGetValue(m.ContainerId, out var w)) m.Rootfs = w;
            if (m.LogDir is { } d && r.Dirs.TryGetValue(d, out var l)) m.Logs = l;
        }
        foreach (var p in _pods.Values)
        {
            ulong used = 0, inodes = 0;
            foreach (var c in ContainersOf(p.PodUid))
            {
                used += (c.Rootfs?.UsedBytes ?? 0) + (c.Logs?.UsedBytes ?? 0);
                inodes += (c.Rootfs?.InodesUsed ?? 0) + (c.Logs?.InodesUsed ?? 0);
            }
            for (int i = 0; i < p.Volumes.Count; i++)
            {
                var (v, _) = p.Volumes[i];
                var u = r.Dirs.GetValueOrDefault(v.Dir);
                p.Volumes[i] = (v, u);
                if (v.Ephemeral && u is not null) { used += u.UsedBytes; inodes += u.InodesUsed ?? 0; }
            }
            p.EphemeralStorage = new FsFigures(now, used, inodes, r.NodeFs?.Capacity, r.NodeFs?.Device ?? "");
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Filesystem stats took longer than {Seconds} s; this pass is skipped")]
    private partial void LogFsTimedOut(double seconds);

    /// <summary>One housekeeping pass: follow pod changes, then read every cgroup.</summary>
    public void CollectOnce()
    {
        FollowPodChanges();
        long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        Read(_node, now);
        foreach (var m in _pods.Values) Read(m, now);
        foreach (var m in _containers.Values) Read(m, now);
        foreach (var m in _pods.Values) ReadNetwork(m);
        _lastCollectMs = now;
    }

    private void Read(Measured m, long now)
    {
        if (_reader.Read(m.Handle, m.Stats))
        {
            if (m.PreviousReadAtMs > 0 && now > m.PreviousReadAtMs && m.Stats.CpuUsageNs >= m.PreviousCpuNs)
                m.UsageNanoCores = (ulong)((m.Stats.CpuUsageNs - m.PreviousCpuNs) * 1000.0 / (now - m.PreviousReadAtMs));
            m.PreviousCpuNs = m.Stats.CpuUsageNs;
            m.PreviousReadAtMs = now;
            m.ReadAtMs = now;
        }
        else m.ReadAtMs = 0; // gone (the container exited); the store's change will remove it
    }

    /// <summary>The pod's interfaces, from /proc/PID/net/dev of one of its processes (found again when that process is gone).</summary>
    private void ReadNetwork(Measured pod)
    {
        if (pod.HostNetwork || pod.ReadAtMs == 0) return;
        if (pod.NetDevPath is not null && _reader.ReadNetDev(pod.NetDevPath, pod.Network)) return;
        pod.NetDevPath = null;
        pod.Network.Clear();
        foreach (var c in ContainersOf(pod.PodUid))
        {
            if (c.ProcsPath is null) continue;
            int pid = _reader.FirstPid(c.ProcsPath);
            if (pid <= 0) continue;
            var path = NodeAgent.Os.RawFile.Path($"/proc/{pid}/net/dev");
            if (_reader.ReadNetDev(path, pod.Network)) { pod.NetDevPath = path; return; }
        }
    }

    /// <summary>Brings the entries in line with the pods whose status changed since the last call.</summary>
    private void FollowPodChanges()
    {
        while (_podChanges.Reader.TryRead(out var uid)) Refresh(uid);
    }

    /// <summary>Brings the entries of pod <paramref name="uid"/> in line with its stored status.</summary>
    private void Refresh(string uid)
    {
        var pod = _store.Get(uid);
        var wanted = new List<string>();
        if (pod is not null)
        {
            string qos = pod.Status?.QosClass ?? QosClass.BestEffort;
            string podPath = _layout.PodRelativePath(qos, uid);
            if (!_pods.ContainsKey(uid))
            {
                var m = new Measured
                {
                    ContainerId = "", CgroupName = "/" + podPath, Namespace = pod.Metadata.Namespace ?? "", Pod = pod.Metadata.Name ?? "", PodUid = uid,
                    Container = "", Image = "", Handle = _reader.Open(podPath),
                    StartTimeSeconds = pod.Status?.StartTime?.ToUnixTimeSeconds() ?? 0,
                    HostNetwork = pod.Spec?.HostNetwork == true,
                    VolumeSpecs = VolumeSpecsOf(pod),
                };
                m.Labels = CadvisorText.Labels(m);
                _pods[uid] = m;
            }
            foreach (var cs in pod.Status?.ContainerStatuses ?? [])
            {
                CountOom(uid, cs.Name ?? "", cs.LastState?.Terminated);
                CountOom(uid, cs.Name ?? "", cs.State?.Terminated);
                if (cs.State?.Running is null || cs.ContainerID is not { Length: > 0 } cid) continue;
                string id = cid[(cid.IndexOf("://", StringComparison.Ordinal) is int i and >= 0 ? i + 3 : 0)..];
                wanted.Add(id);
                if (_containers.ContainsKey(id)) continue;
                string? dir = ContainerDirectory(podPath, id);
                if (dir is null) continue; // not created yet or already gone: the next change will tell
                var m = new Measured
                {
                    ContainerId = id, CgroupName = "/" + dir, Namespace = pod.Metadata.Namespace ?? "", Pod = pod.Metadata.Name ?? "", PodUid = uid,
                    Container = cs.Name ?? "", Image = cs.Image ?? "", Handle = _reader.Open(dir),
                    StartTimeSeconds = cs.State.Running.StartedAt?.ToUnixTimeSeconds() ?? 0,
                    ProcsPath = NodeAgent.Os.RawFile.Path(_reader.Version == CgroupVersion.V2
                        ? $"{_reader.Root}/{dir}/cgroup.procs" : $"{_reader.Root}/memory/{dir}/cgroup.procs"),
                };
                m.Labels = CadvisorText.Labels(m);
                _containers[id] = m;
            }
            if (_ooms.TryGetValue(uid, out var ooms))
                foreach (var id in wanted)
                    if (_containers.TryGetValue(id, out var m)) m.PastOoms = ooms.Counts.GetValueOrDefault(m.Container);
        }
        else
        {
            _pods.Remove(uid);
            _ooms.Remove(uid);
        }
        if (_containersOfPod.TryGetValue(uid, out var had))
            foreach (var id in had)
                if (!wanted.Contains(id)) _containers.Remove(id);
        if (wanted.Count > 0) _containersOfPod[uid] = wanted; else _containersOfPod.Remove(uid);
    }

    /// <summary>The pod's volumes that live in the agent's pod directory, and whether kubelet counts them as ephemeral storage.</summary>
    private static (string, string, bool)[] VolumeSpecsOf(Pod pod)
    {
        var list = new List<(string, string, bool)>();
        foreach (var v in pod.Spec?.Volumes ?? [])
        {
            if (v.Name is not { Length: > 0 } name) continue;
            if (v.EmptyDir is { } ed) list.Add((name, "kubernetes.io~empty-dir", ed.Medium != "Memory"));
            else if (v.Extra is { } x)
            {
                if (x.ContainsKey("configMap")) list.Add((name, "kubernetes.io~configmap", true));
                else if (x.ContainsKey("secret")) list.Add((name, "kubernetes.io~secret", false));
                else if (x.ContainsKey("projected")) list.Add((name, "kubernetes.io~projected", false));
                else if (x.ContainsKey("downwardAPI")) list.Add((name, "kubernetes.io~downward-api", false));
            }
        }
        return [.. list];
    }

    private void CountOom(string uid, string container, NodeAgent.Api.Core.ContainerStateTerminated? t)
    {
        if (t?.Reason != "OOMKilled" || t.ContainerID is not { Length: > 0 } id) return;
        if (!_ooms.TryGetValue(uid, out var ooms)) _ooms[uid] = ooms = (new(StringComparer.Ordinal), new(StringComparer.Ordinal));
        if (ooms.Seen.Add(id)) ooms.Counts[container] = ooms.Counts.GetValueOrDefault(container) + 1;
    }

    /// <summary>
    /// The container's cgroup below the pod's: <c>&lt;id&gt;</c> (cgroupfs) or
    /// <c>cri-containerd-&lt;id&gt;.scope</c> (systemd), found by listing the pod's directory once.
    /// </summary>
    private string? ContainerDirectory(string podPath, string id)
    {
        string podDir = _reader.Version == CgroupVersion.V2 ? Path.Combine(_reader.Root, podPath) : Path.Combine(_reader.Root, "memory", podPath);
        try
        {
            foreach (var d in Directory.EnumerateDirectories(podDir))
            {
                string name = Path.GetFileName(d);
                if (name == id || name.Contains(id, StringComparison.Ordinal)) return podPath + "/" + name;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
