using Microsoft.Extensions.Logging;
using NodeAgent.Cri;
using NodeAgent.Os;

namespace NodeAgent.Metrics;

/// <summary>
/// One filesystem usage, as the Summary API's FsStats and cAdvisor's container_fs_* carry it: what
/// is used (bytes, inodes) and, when known, the size of the filesystem that holds it.
/// </summary>
public sealed record FsFigures(long TimeMs, ulong UsedBytes, ulong? InodesUsed, FsCapacity? Capacity, string Device = "");

/// <summary>A pod volume whose directory the collector measures; <paramref name="Ephemeral"/> counts toward the pod's ephemeral storage (kubelet's rule: disk emptyDir and configMap).</summary>
public sealed record PodVolume(string Name, string Dir, bool Ephemeral);

/// <summary>What one filesystem pass found.</summary>
public sealed class FsReading
{
    /// <summary>Writable layers by container ID (from the runtime).</summary>
    public Dictionary<string, FsFigures> Writable { get; } = new(StringComparer.Ordinal);
    /// <summary>Log and volume directories by path.</summary>
    public Dictionary<string, FsFigures> Dirs { get; } = new(StringComparer.Ordinal);
    /// <summary>The filesystem of the agent's root directory (the Summary API's node.fs, "nodefs").</summary>
    public FsFigures? NodeFs { get; set; }
    /// <summary>What the runtime's images take, on the filesystem that holds them ("imagefs").</summary>
    public FsFigures? ImageFs { get; set; }
}

/// <summary>
/// The slow half of the collector: container writable layers (CRI ListContainerStats) and the
/// image filesystem (CRI ImageFsInfo) as the runtime measures them, the node filesystem
/// (statvfs), and the sizes of container log and pod volume directories. Run once per
/// housekeeping interval beside the cgroup reads, never on the scrape path; the runtime's own
/// figures are as fresh as its snapshot accounting (containerd: every 10 s). A runtime that fails
/// to answer leaves the last figures out of this pass (logged at debug level, and counted in
/// kubelet_runtime_operations_errors_total); it never fails the rest.
/// </summary>
public sealed partial class FsStatsSource(IContainerStatsManager? stats, IImageService? images, string rootDir, string podLogsDir, TimeProvider time, ILogger log)
{
    public string RootDir => rootDir;
    public string PodLogsDir => podLogsDir;

    public async Task<FsReading> ReadAsync(IReadOnlyList<string> dirs, CancellationToken ct)
    {
        var r = new FsReading();
        long now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var capacities = new Dictionary<string, (FsCapacity? Capacity, string Device)>(StringComparer.Ordinal);
        (FsCapacity? Capacity, string Device) Of(string path)
        {
            if (!capacities.TryGetValue(path, out var c))
                capacities[path] = c = (Filesystems.TryStat(path, out var fs) ? fs : null, Filesystems.DeviceOf(path));
            return c;
        }

        if (Of(rootDir) is ({ } node, var nodeDevice))
            r.NodeFs = new FsFigures(now, node.UsedBytes, node.Inodes - node.InodesFree, node, nodeDevice);
        if (images is not null)
        {
            try
            {
                var info = await images.ImageFsInfoAsync(ct).ConfigureAwait(false);
                if (info.ImageFilesystems.Count > 0)
                {
                    var fs = info.ImageFilesystems[0];
                    var (cap, dev) = Of(fs.FsId?.Mountpoint ?? rootDir);
                    r.ImageFs = new FsFigures(Ms(fs.Timestamp, now), fs.UsedBytes?.Value ?? 0, fs.InodesUsed?.Value, cap, dev);
                }
            }
            catch (CriException e) { LogRuntimeFailed("ImageFsInfo", e.Message); }
        }
        if (stats is not null)
        {
            try
            {
                foreach (var s in await stats.ListContainerStatsAsync(null, ct).ConfigureAwait(false))
                {
                    if (s.WritableLayer is not { UsedBytes: not null } wl || s.Attributes?.Id is not { Length: > 0 } id) continue;
                    var (cap, dev) = Of(wl.FsId?.Mountpoint is { Length: > 0 } mp ? mp : rootDir);
                    r.Writable[id] = new FsFigures(Ms(wl.Timestamp, now), wl.UsedBytes.Value, wl.InodesUsed?.Value, cap, dev);
                }
            }
            catch (CriException e) { LogRuntimeFailed("ListContainerStats", e.Message); }
        }
        foreach (var dir in dirs)
        {
            if (r.Dirs.ContainsKey(dir) || !Directory.Exists(dir)) continue;
            var (bytes, files) = Filesystems.Usage(dir);
            r.Dirs[dir] = new FsFigures(now, bytes, files, Filesystems.TryStat(dir, out var fs) ? fs : null);
        }
        return r;
    }

    /// <summary>CRI timestamps are nanoseconds since the epoch.</summary>
    private static long Ms(long nanos, long fallback) => nanos > 0 ? nanos / 1_000_000 : fallback;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Filesystem stats: the runtime's {Call} failed ({Error}); those figures are left out of this pass")]
    private partial void LogRuntimeFailed(string call, string error);
}
