using System.Globalization;
using Microsoft.Extensions.Logging;
using NodeAgent.Cm;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using NodeAgent.Volumes;

namespace NodeAgent.Pods;

/// <summary>
/// Removes what belongs to no pod the agent knows (kubelet container GC + orphaned pod cleanup):
/// sandboxes and containers labelled with an unknown pod UID (stopped with their recorded grace
/// period first), and pod log directories, pod directories and pod cgroups left without a pod.
/// Runs only after every pod source has delivered its first full set, so a restarting agent never
/// mistakes its own running pods for orphans. Single owner: its own loop.
/// </summary>
public sealed partial class GarbageCollector(
    IRuntimeService runtime, PodManager manager, VolumeManager volumes, PodCgroups cgroups, string podLogsDir,
    Func<bool> sourcesReady, TimeProvider time, ILogger<GarbageCollector> log)
{
    public static readonly TimeSpan Period = TimeSpan.FromMinutes(1);

    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            // First pass soon after start (sources are usually ready within a second).
            await Task.Delay(TimeSpan.FromSeconds(2), time, ct).ConfigureAwait(false);
            using var timer = new PeriodicTimer(Period, time);
            do
            {
                if (!sourcesReady()) continue;
                try { await CollectOnceAsync(ct).ConfigureAwait(false); }
                catch (CriException e) { LogFailed(log, e.Message); }
                catch (IOException e) { LogFailed(log, e.Message); }
            }
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
        }
        catch (OperationCanceledException) { }
    }

    public async Task CollectOnceAsync(CancellationToken ct)
    {
        var containers = await runtime.ListContainersAsync(null, ct).ConfigureAwait(false);
        var sandboxes = await runtime.ListPodSandboxAsync(null, ct).ConfigureAwait(false);
        // Taken after listing: anything listed was made by a worker that already exists, so a pod
        // that starts while we list is never mistaken for an orphan.
        var known = manager.KnownUids();

        foreach (var c in containers)
        {
            if (!c.Labels.TryGetValue(Labels.PodUid, out var uid) || known.Contains(uid)) continue;
            if (c.State == ContainerState.ContainerRunning)
            {
                long grace = c.Annotations.TryGetValue(Labels.PodTerminationGracePeriod, out var g) && long.TryParse(g, NumberStyles.Integer, CultureInfo.InvariantCulture, out var gv) ? gv : 30;
                LogOrphan(log, "container", c.Id, uid);
                await runtime.StopContainerAsync(c.Id, Math.Max(2, grace), ct).ConfigureAwait(false);
            }
            await runtime.RemoveContainerAsync(c.Id, ct).ConfigureAwait(false);
        }
        foreach (var sb in sandboxes)
        {
            if (!sb.Labels.TryGetValue(Labels.PodUid, out var uid) || known.Contains(uid)) continue;
            LogOrphan(log, "sandbox", sb.Id, uid);
            await runtime.StopPodSandboxAsync(sb.Id, ct).ConfigureAwait(false);
            await runtime.RemovePodSandboxAsync(sb.Id, ct).ConfigureAwait(false);
        }

        // Host leftovers of pods that are gone, including the ones just removed from the runtime
        // (a failed removal above throws and ends the pass). Known again: a worker may have just started.
        known = manager.KnownUids();
        if (Directory.Exists(podLogsDir))
            foreach (var dir in Directory.EnumerateDirectories(podLogsDir))
            {
                var name = Path.GetFileName(dir);
                int sep = name.LastIndexOf('_');
                if (sep < 0) continue;
                string uid = name[(sep + 1)..];
                if (known.Contains(uid)) continue;
                try { Directory.Delete(dir, recursive: true); LogOrphan(log, "log directory", dir, uid); }
                catch (IOException e) { LogFailed(log, e.Message); }
            }
        foreach (var uid in volumes.ListPodDirs().ToList())
            if (!known.Contains(uid))
            {
                LogOrphan(log, "pod directory", volumes.PodDir(uid), uid);
                volumes.TearDown(uid);
            }
        foreach (var uid in cgroups.ListPodUids().ToList())
            if (!known.Contains(uid))
            {
                LogOrphan(log, "pod cgroup", "pod" + uid, uid);
                cgroups.RemovePod(uid);
            }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "garbage collection: removing orphaned {What} {Id} of pod {Uid}")]
    private static partial void LogOrphan(ILogger logger, string what, string id, string uid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "garbage collection failed, will retry: {Error}")]
    private static partial void LogFailed(ILogger logger, string error);
}
