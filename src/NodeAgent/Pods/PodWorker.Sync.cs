using NodeAgent.Api.Core;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using NodeAgent.Status;
using CriContainerState = NodeAgent.Cri.V1.ContainerState;

namespace NodeAgent.Pods;

public sealed partial class PodWorker
{
    /// <summary>What one sync pass did: whether the runtime changed, and when the worker must look again.</summary>
    private sealed class SyncResult
    {
        public bool Changed;
        public DateTimeOffset? WakeAt;
        public void WakeNoLaterThan(DateTimeOffset t) { if (WakeAt is null || t < WakeAt) WakeAt = t; }
    }

    /// <summary>One convergence pass (kubelet SyncPod + computePodActions). Returns when to wake at the latest.</summary>
    private async Task<DateTimeOffset?> SyncAsync(CancellationToken ct)
    {
        var pod = _pod;
        if (!ReferenceEquals(pod.Spec, _lastSpec)) { ComputeHashes(pod); _qos = PodDefaults.QosClassOf(pod.Spec); _lastSpec = pod.Spec; }
        var rt = _runtimeEmpty ? new RuntimePod(Uid, [], []) : await _s.Reader.ReadAsync(Uid, ct).ConfigureAwait(false);
        _runtimeEmpty = false;
        _probes.Reconcile(pod, rt);
        var result = new SyncResult();
        await ConvergeAsync(pod, rt, result, ct).ConfigureAwait(false);
        if (result.Changed)
        {
            rt = await _s.Reader.ReadAsync(Uid, ct).ConfigureAwait(false);
            _probes.Reconcile(pod, rt);
        }
        await CollectDeadAsync(rt, ct).ConfigureAwait(false);
        PublishStatus(pod, rt);
        return result.WakeAt;
    }

    private Api.Core.PodSpec? _lastSpec;

    private void PublishStatus(Pod pod, RuntimePod rt)
    {
        var status = PodStatusComputer.Compute(pod, rt, _view, _lastStatus, _s.Time.GetUtcNow());
        _lastStatus = status;
        var snapshot = new Pod { ApiVersion = "v1", Kind = "Pod", Metadata = pod.Metadata, Spec = pod.Spec, Status = status, Extra = pod.Extra };
        _s.Store.Set(Uid, snapshot);
    }

    private async Task ConvergeAsync(Pod pod, RuntimePod rt, SyncResult result, CancellationToken ct)
    {
        var spec = pod.Spec;
        var now = _s.Time.GetUtcNow();
        if (_view.TerminalPhase is not null)
        {
            await StopLeftoversAsync(rt, result, ct).ConfigureAwait(false);
            return;
        }

        var sb = rt.CurrentSandbox;
        if (sb is null || sb.State != PodSandboxState.SandboxReady)
        {
            if (sb is not null && FinishedFor(spec, rt) is { } phase)
            {
                // The pod ran to completion and its sandbox is gone: never start it again.
                _view.TerminalPhase = phase;
                return;
            }
            // Anything left of an earlier sandbox dies with it (kubelet: killPodWithSyncResult).
            foreach (var c in rt.Containers)
                if (c.Running) await KillContainerAsync(c, SpecOf(c.Name), "Killing", "Pod sandbox changed, it will be killed and re-created.", null, ct).ConfigureAwait(false);
            foreach (var old in rt.Sandboxes)
                if (old.State == PodSandboxState.SandboxReady) await _s.Runtime.StopPodSandboxAsync(old.Id, ct).ConfigureAwait(false);
            if (sb is not null) _s.Events.Normal(pod, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.");
            sb = await CreateSandboxAsync(pod, sb is null ? 0u : sb.Attempt + 1, ct).ConfigureAwait(false);
            if (sb is null) { result.WakeNoLaterThan(now + TimeSpan.FromSeconds(10)); return; }
            result.Changed = true;
        }
        var sandboxConfig = _s.Builder.Sandbox(pod, sb.Attempt, _qos);
        _volumePaths ??= SetUpVolumes(pod);
        if (_volumePaths is null || !await RefreshApiVolumesAsync(pod, ct).ConfigureAwait(false)) { result.WakeNoLaterThan(now + TimeSpan.FromSeconds(10)); return; }

        // Init containers, in order. Once app containers exist in this sandbox, init is done for good.
        bool appStarted = spec.Containers.Any(c => rt.LatestIn(c.Name, sb.Id) is not null);
        if (spec.InitContainers is { } inits)
        {
            foreach (var c in inits)
            {
                var cur = rt.LatestIn(c.Name, sb.Id);
                bool sidecar = c.RestartPolicy == RestartPolicy.Always;
                if (sidecar)
                {
                    bool blocked = await SyncSidecarAsync(pod, c, cur, rt, sb, sandboxConfig, result, now, ct).ConfigureAwait(false);
                    if (blocked && !appStarted) return;
                    continue;
                }
                if (appStarted) continue;
                if (cur is null)
                {
                    await StartContainerAsync(pod, c, rt, sb, sandboxConfig, result, ct).ConfigureAwait(false);
                    return;
                }
                if (cur.Running) return;
                if (cur.Exited && cur.ExitCode == 0) continue;
                if (cur.Exited)
                {
                    if (spec.RestartPolicy == RestartPolicy.Never)
                    {
                        _view.TerminalPhase = PodPhase.Failed;
                        await StopLeftoversAsync(rt, result, ct).ConfigureAwait(false);
                        return;
                    }
                    await RestartWithBackoffAsync(pod, c, cur, rt, sb, sandboxConfig, result, now, ct).ConfigureAwait(false);
                    return;
                }
                // Created but never started (the agent died in between): replace it.
                await _s.Runtime.RemoveContainerAsync(cur.Id, ct).ConfigureAwait(false);
                await StartContainerAsync(pod, c, rt, sb, sandboxConfig, result, ct).ConfigureAwait(false);
                return;
            }
        }

        // App containers.
        bool allDone = spec.RestartPolicy != RestartPolicy.Always;
        foreach (var c in spec.Containers)
        {
            var cur = rt.LatestIn(c.Name, sb.Id);
            if (cur is null)
            {
                allDone = false;
                var before = rt.Latest(c.Name);
                if (before is { Exited: true } && !ShouldRestart(spec.RestartPolicy, before.ExitCode)) { allDone = true; continue; }
                await StartContainerAsync(pod, c, rt, sb, sandboxConfig, result, ct).ConfigureAwait(false);
                continue;
            }
            if (cur.Running)
            {
                allDone = false;
                await CheckRunningAsync(pod, c, cur, result, ct).ConfigureAwait(false);
                continue;
            }
            if (cur.Exited)
            {
                if (!ShouldRestart(spec.RestartPolicy, cur.ExitCode)) { _view.Waiting.Remove(c.Name); continue; }
                allDone = false;
                await RestartWithBackoffAsync(pod, c, cur, rt, sb, sandboxConfig, result, now, ct).ConfigureAwait(false);
                continue;
            }
            allDone = false;
            await _s.Runtime.RemoveContainerAsync(cur.Id, ct).ConfigureAwait(false);
            await StartContainerAsync(pod, c, rt, sb, sandboxConfig, result, ct).ConfigureAwait(false);
        }

        if (allDone && spec.Containers.Count > 0)
        {
            // Every app container finished and none restarts: the pod is terminal. Stop sidecars
            // and the sandbox (its IP goes back to the pool); the containers stay for status.
            bool failed = spec.Containers.Any(c => rt.LatestIn(c.Name, sb.Id) is { ExitCode: not 0 });
            _view.TerminalPhase = failed ? PodPhase.Failed : PodPhase.Succeeded;
            await StopLeftoversAsync(rt, result, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Returns true while the sidecar blocks the next init container (not started yet).</summary>
    private async Task<bool> SyncSidecarAsync(Pod pod, Api.Core.Container c, ContainerInfo? cur, RuntimePod rt, SandboxInfo sb,
        PodSandboxConfig sandboxConfig, SyncResult result, DateTimeOffset now, CancellationToken ct)
    {
        if (cur is null)
        {
            await StartContainerAsync(pod, c, rt, sb, sandboxConfig, result, ct).ConfigureAwait(false);
            return true;
        }
        if (cur.Running)
        {
            await CheckRunningAsync(pod, c, cur, result, ct).ConfigureAwait(false);
            return !_probes.IsStarted(c.Name, cur.Id);
        }
        if (cur.State is CriContainerState.ContainerCreated or CriContainerState.ContainerUnknown)
            await _s.Runtime.RemoveContainerAsync(cur.Id, ct).ConfigureAwait(false);
        // Sidecars restart whatever the pod's restartPolicy says (KEP-753).
        await RestartWithBackoffAsync(pod, c, cur, rt, sb, sandboxConfig, result, now, ct).ConfigureAwait(false);
        return true;
    }

    /// <summary>A running container is killed if its spec changed or its liveness/startup probe failed.</summary>
    private async Task CheckRunningAsync(Pod pod, Api.Core.Container c, ContainerInfo cur, SyncResult result, CancellationToken ct)
    {
        _view.Waiting.Remove(c.Name);
        if (cur.Hash is { } h && _hashes.TryGetValue(c.Name, out var want) && h != want)
        {
            await KillContainerAsync(cur, c, "Killing", $"Container {c.Name} definition changed, will be restarted", null, ct).ConfigureAwait(false);
            result.Changed = true;
            return;
        }
        if (_probes.FailedHealth(c.Name, cur.Id) is { } failed)
        {
            string what = failed.Type == Probes.ProbeType.Startup ? "startup" : "liveness";
            var probe = failed.Type == Probes.ProbeType.Startup ? c.StartupProbe : c.LivenessProbe;
            await KillContainerAsync(cur, c, "Killing", $"Container {c.Name} failed {what} probe, will be restarted", probe?.TerminationGracePeriodSeconds, ct).ConfigureAwait(false);
            result.Changed = true;
        }
    }

    private async Task RestartWithBackoffAsync(Pod pod, Api.Core.Container c, ContainerInfo cur, RuntimePod rt, SandboxInfo sb,
        PodSandboxConfig sandboxConfig, SyncResult result, DateTimeOffset now, CancellationToken ct)
    {
        string key = $"{c.Name}/{_hashes.GetValueOrDefault(c.Name)}";
        var finished = ContainerInfo.Time(cur.FinishedAt) ?? now;
        if (_backoff.InBackoff(key, finished, now, out var until))
        {
            var delay = _backoff.CurrentDelay(key);
            string msg = $"back-off {FormatDelay(delay)} restarting failed container={c.Name} pod={pod.Metadata.Name}_{pod.Metadata.Namespace}({Uid})";
            if (!_view.Waiting.TryGetValue(c.Name, out var w) || w.Reason != "CrashLoopBackOff" || w.Message != msg)
                _s.Events.Warning(pod, "BackOff", "Back-off restarting failed container " + c.Name);
            _view.Waiting[c.Name] = ("CrashLoopBackOff", msg);
            result.WakeNoLaterThan(until);
            return;
        }
        _backoff.Next(key, finished);
        await StartContainerAsync(pod, c, rt, sb, sandboxConfig, result, ct).ConfigureAwait(false);
    }

    private static string FormatDelay(TimeSpan d) =>
        d.TotalMinutes >= 1 ? $"{(int)d.TotalMinutes}m{d.Seconds}s" : $"{(int)d.TotalSeconds}s";

    public static bool ShouldRestart(string? policy, int exitCode) => policy switch
    {
        RestartPolicy.Never => false,
        RestartPolicy.OnFailure => exitCode != 0,
        _ => true,
    };

    /// <summary>The terminal phase if every app container has exited for good, else null.</summary>
    private static string? FinishedFor(Api.Core.PodSpec spec, RuntimePod rt)
    {
        if (spec.RestartPolicy == RestartPolicy.Always) return null;
        bool failed = false;
        foreach (var c in spec.Containers)
        {
            var latest = rt.Latest(c.Name);
            if (latest is not { Exited: true } || ShouldRestart(spec.RestartPolicy, latest.ExitCode)) return null;
            failed |= latest.ExitCode != 0;
        }
        return failed ? PodPhase.Failed : PodPhase.Succeeded;
    }

    private async Task StopLeftoversAsync(RuntimePod rt, SyncResult result, CancellationToken ct)
    {
        foreach (var c in rt.Containers)
            if (c.Running)
            {
                await KillContainerAsync(c, SpecOf(c.Name), "Killing", $"Stopping container {c.Name}", null, ct).ConfigureAwait(false);
                result.Changed = true;
            }
        foreach (var sb in rt.Sandboxes)
            if (sb.State == PodSandboxState.SandboxReady)
            {
                await _s.Runtime.StopPodSandboxAsync(sb.Id, ct).ConfigureAwait(false);
                result.Changed = true;
            }
    }

    private Api.Core.Container? SpecOf(string name)
    {
        foreach (var c in PodDefaults.AllContainers(_pod.Spec)) if (c.Name == name) return c;
        return null;
    }

    /// <summary>
    /// Keeps, per container name, the newest instance and the one before it (for lastState), and
    /// drops older exited ones with their log files; drops dead sandboxes that hold no containers.
    /// </summary>
    private async Task CollectDeadAsync(RuntimePod rt, CancellationToken ct)
    {
        if (rt.Containers.Count <= 1 && rt.Sandboxes.Count <= 1) return;
        foreach (var group in rt.Containers.GroupBy(c => c.Name))
        {
            int kept = 0;
            foreach (var c in group.OrderByDescending(c => c.CreatedAt))
            {
                if (kept++ < 2 || !c.Exited) continue;
                await RemoveContainerAndLogAsync(c, ct).ConfigureAwait(false);
            }
        }
        var current = rt.CurrentSandbox;
        foreach (var sb in rt.Sandboxes)
        {
            if (sb == current || sb.State == PodSandboxState.SandboxReady) continue;
            if (rt.Containers.Any(c => c.SandboxId == sb.Id)) continue;
            await _s.Runtime.RemovePodSandboxAsync(sb.Id, ct).ConfigureAwait(false);
        }
    }

    private async Task RemoveContainerAndLogAsync(ContainerInfo c, CancellationToken ct)
    {
        try { await _s.Runtime.RemoveContainerAsync(c.Id, ct).ConfigureAwait(false); }
        catch (CriException e) when (e.Kind == CriErrorKind.NotFound) { }
        if (!string.IsNullOrEmpty(c.LogPath))
        {
            TryDelete(c.LogPath);
            foreach (var rotated in Logs.ContainerLogManager.RotatedFiles(c.LogPath)) TryDelete(rotated);
        }
        if (c.TerminationMessageHostPath is { } tm) TryDelete(tm);
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
