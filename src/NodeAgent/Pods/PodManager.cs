using Microsoft.Extensions.Logging;
using NodeAgent.Api.Core;

namespace NodeAgent.Pods;

/// <summary>
/// Keeps one <see cref="PodWorker"/> per desired pod UID (kubelet podWorkers). A source hands in
/// its complete desired set; new UIDs get workers, vanished UIDs are terminated. A pod that
/// replaces another of the same namespace/name starts only after the old one is gone, as the
/// kubelet does for static pods. Calls come from the sources' single loops and the PLEG; the
/// worker table is guarded by one lock held only for dictionary operations.
/// </summary>
public sealed partial class PodManager(PodServices services, ILogger<PodManager> log)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, PodWorker> _workers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dictionary<string, Pod>> _desiredBySource = new(StringComparer.Ordinal);
    private readonly HashSet<string> _readySources = new(StringComparer.Ordinal);
    /// <summary>API pods admission rejected: never started, reported Failed until they leave the desired set.</summary>
    private readonly Dictionary<string, Pod> _rejected = new(StringComparer.Ordinal);
    private CancellationToken _shutdown;
    /// <summary>When each recently ended worker ended (TimeProvider timestamp); pruned once a relist has listed after that.</summary>
    private readonly Dictionary<string, long> _ended = new(StringComparer.Ordinal);

    /// <summary>The PLEG's view of the whole runtime, when there is one: lets a brand-new pod skip its first runtime read.</summary>
    public IRuntimeListing? Listing { get; set; }

    public void Start(CancellationToken shutdown) => _shutdown = shutdown;

    /// <summary>
    /// Raised (off the lock) when a pod that was being deleted through the API (deletionTimestamp set)
    /// has nothing left running: its source may now remove the object for good.
    /// </summary>
    public event Action<Pod>? Deleted;

    /// <summary>Raised (on the caller's thread, off the lock) when a source's desired set changed; read it with <see cref="DesiredOf"/>.</summary>
    public event Action<string>? DesiredChanged;

    /// <summary>True once every registered source has delivered its first full set (kubelet sourcesReady): only then may orphans be collected.</summary>
    public bool SourcesReady(params string[] sources)
    {
        lock (_lock) return sources.All(_readySources.Contains);
    }

    /// <summary>The last desired set a source handed in.</summary>
    public IReadOnlyCollection<Pod> DesiredOf(string source)
    {
        lock (_lock) return _desiredBySource.TryGetValue(source, out var d) ? [.. d.Values] : [];
    }

    /// <summary>Replaces the desired pods of one source (a full list: the first, and every relist).</summary>
    public void SetDesired(string source, IReadOnlyCollection<Pod> pods)
    {
        lock (_lock)
        {
            var desired = new Dictionary<string, Pod>(StringComparer.Ordinal);
            foreach (var p in pods) desired[p.Metadata.Uid!] = p;
            _desiredBySource[source] = desired;
            _readySources.Add(source);

            var all = new HashSet<string>(StringComparer.Ordinal);
            foreach (var d in _desiredBySource.Values) all.UnionWith(d.Keys);
            foreach (var (uid, w) in _workers)
                if (!all.Contains(uid) && !w.Terminating)
                {
                    LogRemoving(log, w.FullName, uid);
                    w.Terminate();
                }
            foreach (var uid in _rejected.Keys.Where(u => !all.Contains(u)).ToList())
            {
                _rejected.Remove(uid);
                services.Store.Remove(uid);
            }
            List<Pod>? finished = null;
            List<Pod>? fresh = null;
            foreach (var (uid, pod) in desired) Reconcile(uid, pod, ref finished, ref fresh);
            if (fresh is not null) AdmitAndStart(source, fresh);
            if (finished is not null) _ = Task.Run(() => { foreach (var p in finished) Deleted?.Invoke(p); });
        }
        DesiredChanged?.Invoke(source);
    }

    /// <summary>
    /// One pod of a source added, changed or (with <paramref name="pod"/> null) gone: the watch path,
    /// which costs the same however many pods the node runs. The source must have handed over a
    /// full set first (<see cref="SetDesired"/>).
    /// </summary>
    public void UpdateDesired(string source, string uid, Pod? pod)
    {
        lock (_lock)
        {
            if (!_desiredBySource.TryGetValue(source, out var desired))
                throw new InvalidOperationException($"source {source} has not handed over its first set");
            List<Pod>? finished = null;
            List<Pod>? fresh = null;
            if (pod is not null)
            {
                desired[uid] = pod;
                Reconcile(uid, pod, ref finished, ref fresh);
            }
            else if (desired.Remove(uid) && !_desiredBySource.Values.Any(d => d.ContainsKey(uid)))
            {
                if (_workers.TryGetValue(uid, out var w) && !w.Terminating)
                {
                    LogRemoving(log, w.FullName, uid);
                    w.Terminate();
                }
                if (_rejected.Remove(uid)) services.Store.Remove(uid);
            }
            if (fresh is not null) AdmitAndStart(source, fresh);
            if (finished is not null) _ = Task.Run(() => { foreach (var p in finished) Deleted?.Invoke(p); });
        }
        DesiredChanged?.Invoke(source);
    }

    /// <summary>Brings one desired pod's worker in line; new pods are collected for admission. Lock held.</summary>
    private void Reconcile(string uid, Pod pod, ref List<Pod>? finished, ref List<Pod>? fresh)
    {
        if (pod.Metadata.DeletionTimestamp is not null)
        {
            // Deleted through the API: stop it within deletionGracePeriodSeconds (the worker
            // reads it from the updated pod); with nothing running, it is finished already.
            if (_workers.TryGetValue(uid, out var dying))
            {
                if (!dying.Terminating)
                {
                    dying.Update(pod);
                    LogRemoving(log, dying.FullName, uid);
                    dying.Terminate();
                }
            }
            else (finished ??= []).Add(pod);
            return;
        }
        if (_workers.TryGetValue(uid, out var existing))
        {
            if (existing.Terminating) return; // same UID re-added while dying: it comes back after
            if (!ReferenceEquals(existing.Pod, pod)) existing.Update(pod);
            return;
        }
        if (!_rejected.ContainsKey(uid)) (fresh ??= []).Add(pod);
    }

    /// <summary>
    /// New pods in creation order, each admitted against the active pods and those admitted before
    /// it (as the kubelet's HandlePodAdditions does); static pods are not subject to admission.
    /// Called with the lock held.
    /// </summary>
    private void AdmitAndStart(string source, List<Pod> fresh)
    {
        fresh.Sort(static (a, b) => Nullable.Compare(a.Metadata.CreationTimestamp, b.Metadata.CreationTimestamp));
        var node = source == Config.ApiSource.Source ? services.AdmissionNode?.Invoke() : null;
        List<Pod>? active = null;
        if (node is not null)
        {
            active = [];
            foreach (var (uid, w) in _workers)
                if (!w.Terminating && services.Store.Get(uid)?.Status?.Phase is not ("Succeeded" or "Failed")) active.Add(w.Pod);
        }
        foreach (var pod in fresh)
        {
            string uid = pod.Metadata.Uid!;
            if (node is not null)
            {
                var verdict = Admission.Admit(pod, active!, node);
                if (!verdict.Admitted)
                {
                    _rejected[uid] = pod;
                    LogRejected(log, $"{pod.Metadata.Namespace}/{pod.Metadata.Name}", uid, verdict.Reason, verdict.Message);
                    services.Events.Warning(pod, verdict.Reason, verdict.Message);
                    services.Store.Set(uid, new Pod
                    {
                        ApiVersion = pod.ApiVersion, Kind = pod.Kind, Metadata = pod.Metadata, Spec = pod.Spec,
                        Status = new Api.Core.PodStatus
                        {
                            Phase = "Failed", Reason = verdict.Reason, Message = "Pod was rejected: " + verdict.Message,
                            StartTime = services.Time.GetUtcNow(), QosClass = PodDefaults.QosClassOf(pod.Spec),
                        },
                    });
                    continue;
                }
                active!.Add(pod);
            }
            StartWorker(uid, pod);
        }
    }

    /// <summary>Creates a worker; called with the lock held.</summary>
    private void StartWorker(string uid, Pod pod)
    {
        Task? predecessor = null;
        foreach (var w in _workers.Values)
            if (w.Terminating && w.Pod.Metadata.Name == pod.Metadata.Name && w.Pod.Metadata.Namespace == pod.Metadata.Namespace)
                predecessor = w.Completion;
        LogAdding(log, $"{pod.Metadata.Namespace}/{pod.Metadata.Name}", uid);
        var worker = new PodWorker(pod, services, predecessor, _shutdown, predecessor is null && RuntimeHasNothingOf(uid));
        _workers[uid] = worker;
        _ = worker.Completion.ContinueWith(_ => Forget(uid, worker), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }

    /// <summary>
    /// True when the runtime cannot hold anything of the pod: the last relist saw nothing of it, and
    /// no worker for it has run since that relist began listing (only a worker creates a pod's
    /// sandbox). Called with the lock held.
    /// </summary>
    private bool RuntimeHasNothingOf(string uid)
    {
        if (Listing is null || _workers.ContainsKey(uid) || !Listing.SawNothingOf(uid, out long listedAt)) return false;
        bool endedSince = _ended.TryGetValue(uid, out long ended) && ended >= listedAt;
        if (_ended.Count > 0)
            foreach (var (u, t) in _ended)
                if (t < listedAt) _ended.Remove(u); // covered by the relist from now on
        return !endedSince;
    }

    private void Forget(string uid, PodWorker worker)
    {
        Pod? deleted = null;
        lock (_lock)
        {
            if (_workers.TryGetValue(uid, out var w) && w == worker) _workers.Remove(uid);
            if (Listing is not null) _ended[uid] = services.Time.GetTimestamp();
            if (_shutdown.IsCancellationRequested) return;
            foreach (var d in _desiredBySource.Values)
            {
                if (!d.TryGetValue(uid, out var p) || _workers.ContainsKey(uid)) continue;
                if (p.Metadata.DeletionTimestamp is not null) { deleted = p; break; }
                // The UID was wanted again while its old worker was tearing down: start it afresh.
                StartWorker(uid, p);
                return;
            }
        }
        if (deleted is not null) Deleted?.Invoke(deleted);
    }

    /// <summary>Wakes the worker of one pod (PLEG event). Unknown UIDs are left to garbage collection.</summary>
    public void Notify(string uid)
    {
        PodWorker? w;
        lock (_lock) _workers.TryGetValue(uid, out w);
        w?.Signal();
    }

    /// <summary>Wakes the workers of the desired pods that match (an object they use changed).</summary>
    public void NotifyWhere(Func<Pod, bool> match)
    {
        var wake = new List<PodWorker>();
        lock (_lock)
        {
            foreach (var desired in _desiredBySource.Values)
                foreach (var (uid, pod) in desired)
                    if (match(pod) && _workers.TryGetValue(uid, out var w)) wake.Add(w);
        }
        foreach (var w in wake) w.Signal();
    }

    /// <summary>UIDs the agent currently runs or is tearing down: everything else on the runtime is an orphan.</summary>
    public HashSet<string> KnownUids()
    {
        lock (_lock) return [.. _workers.Keys];
    }

    /// <summary>Waits for every worker's loop to end (after shutdown was signalled).</summary>
    public Task DrainAsync()
    {
        Task[] tasks;
        lock (_lock) tasks = _workers.Values.Select(w => w.Completion).ToArray();
        return Task.WhenAll(tasks);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "pod {Pod} ({Uid}) rejected by admission: {Reason}: {Message}")]
    private static partial void LogRejected(ILogger logger, string pod, string uid, string reason, string message);

    [LoggerMessage(Level = LogLevel.Information, Message = "pod {Pod} ({Uid}) added")]
    private static partial void LogAdding(ILogger logger, string pod, string uid);

    [LoggerMessage(Level = LogLevel.Information, Message = "pod {Pod} ({Uid}) is no longer wanted: tearing it down")]
    private static partial void LogRemoving(ILogger logger, string pod, string uid);
}
