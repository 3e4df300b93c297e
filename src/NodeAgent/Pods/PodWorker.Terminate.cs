using NodeAgent.Cri;
using NodeAgent.Cri.V1;

namespace NodeAgent.Pods;

public sealed partial class PodWorker
{
    /// <summary>
    /// Tears the pod down completely (kubelet SyncTerminatingPod + SyncTerminatedPod): app
    /// containers stop in parallel with their grace period, then init/sidecar containers, then the
    /// sandbox; then containers, sandboxes, volumes, logs and the pod cgroup are removed. Throws to
    /// be retried; every step is idempotent.
    /// </summary>
    private async Task TerminateAsync(CancellationToken ct)
    {
        _probes.StopAll();
        var rt = await _s.Reader.ReadAsync(Uid, ct).ConfigureAwait(false);
        var appNames = _pod.Spec.Containers.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        await Task.WhenAll(rt.Containers.Where(c => c.Running && appNames.Contains(c.Name))
            .Select(c => KillContainerAsync(c, SpecOf(c.Name), "Killing", $"Stopping container {c.Name}", null, ct))).ConfigureAwait(false);
        await Task.WhenAll(rt.Containers.Where(c => c.Running && !appNames.Contains(c.Name))
            .Select(c => KillContainerAsync(c, SpecOf(c.Name), "Killing", $"Stopping container {c.Name}", null, ct))).ConfigureAwait(false);
        foreach (var sb in rt.Sandboxes)
            if (sb.State == PodSandboxState.SandboxReady) await _s.Runtime.StopPodSandboxAsync(sb.Id, ct).ConfigureAwait(false);
        foreach (var c in rt.Containers) await RemoveContainerAndLogAsync(c, ct).ConfigureAwait(false);
        foreach (var sb in rt.Sandboxes)
        {
            try { await _s.Runtime.RemovePodSandboxAsync(sb.Id, ct).ConfigureAwait(false); }
            catch (CriException e) when (e.Kind == CriErrorKind.NotFound) { }
        }
        _s.Volumes.TearDown(Uid);
        string logDir = _s.Builder.PodLogDir(_pod);
        if (Directory.Exists(logDir)) Directory.Delete(logDir, recursive: true);
        if (!_s.Cgroups.RemovePod(Uid)) LogPodWarning(_log, FullName, "pod cgroup still busy; garbage collection will remove it");
        _s.Store.Remove(Uid);
        LogRemoved(_log, FullName, Uid);
    }
}
