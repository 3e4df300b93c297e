using System.Globalization;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Core;

namespace NodeAgent.Cm;

/// <summary>The cgroup filesystem seam: real under /sys/fs/cgroup, a directory tree in unit tests.</summary>
public interface ICgroupFs
{
    /// <summary>True for the unified (v2) hierarchy.</summary>
    bool Unified { get; }
    /// <summary>Mount points of the controllers the agent manages (v1: one per controller; v2: one).</summary>
    IReadOnlyList<string> Mounts { get; }
    /// <summary>Every controller mount, for removal (v1 runtimes create the pod cgroup in all of them).</summary>
    IReadOnlyList<string> AllMounts { get; }
}

public sealed class HostCgroupFs : ICgroupFs
{
    public HostCgroupFs(string root = "/sys/fs/cgroup")
    {
        Unified = File.Exists(Path.Combine(root, "cgroup.controllers"));
        if (Unified)
        {
            Mounts = AllMounts = [root];
            return;
        }
        var all = new List<string>();
        if (Directory.Exists(root))
            foreach (var d in Directory.EnumerateDirectories(root))
            {
                // "cpu" -> "cpu,cpuacct" links would list one hierarchy twice.
                if (new DirectoryInfo(d).LinkTarget is not null) continue;
                all.Add(d);
            }
        // Runtimes also create the pod cgroup in the named systemd hierarchy and, on hybrid hosts,
        // in the cgroup2 mount ("unified"): removal covers those too; limits only go to v1 controllers.
        AllMounts = all;
        Mounts = all.Where(d => Path.GetFileName(d).Split(',').Any(c => c is "cpu" or "memory" or "pids")).ToList();
    }

    public bool Unified { get; }
    public IReadOnlyList<string> Mounts { get; }
    public IReadOnlyList<string> AllMounts { get; }
}

/// <summary>
/// Creates each pod's cgroup with the pod-level limits before its sandbox starts, and removes it
/// (in every controller, children first) when the pod is gone: runtimes leave it behind. Failures
/// to write a limit are warnings: a host may forbid them, and the runtime still enforces the
/// container-level limits.
/// </summary>
public sealed partial class PodCgroups(ICgroupFs fs, CgroupLayout layout, ILogger<PodCgroups> log)
{
    public CgroupLayout Layout => layout;

    public void EnsurePod(Pod pod, string qosClass)
    {
        if (layout.Systemd) return; // systemd creates slices itself when the runtime asks for them
        string rel = layout.PodRelativePath(qosClass, pod.Metadata.Uid!);
        var (shares, quota, memory) = ResourceMath.PodLimits(pod.Spec, qosClass);
        foreach (var mount in fs.Mounts)
        {
            string dir = Path.Combine(mount, rel);
            try
            {
                if (fs.Unified) EnableControllers(mount, rel);
                Directory.CreateDirectory(dir);
                string controllers = Path.GetFileName(mount);
                if (fs.Unified)
                {
                    Write(dir, "cpu.weight", ResourceMath.SharesToWeight(shares).ToString(CultureInfo.InvariantCulture));
                    Write(dir, "cpu.max", quota > 0 ? $"{quota} {ResourceMath.CfsPeriodUs}" : $"max {ResourceMath.CfsPeriodUs}");
                    if (memory > 0) Write(dir, "memory.max", memory.ToString(CultureInfo.InvariantCulture));
                }
                else
                {
                    if (controllers.Split(',').Contains("cpu"))
                    {
                        Write(dir, "cpu.shares", shares.ToString(CultureInfo.InvariantCulture));
                        if (quota > 0)
                        {
                            Write(dir, "cpu.cfs_period_us", ResourceMath.CfsPeriodUs.ToString(CultureInfo.InvariantCulture));
                            Write(dir, "cpu.cfs_quota_us", quota.ToString(CultureInfo.InvariantCulture));
                        }
                    }
                    if (controllers == "memory" && memory > 0) Write(dir, "memory.limit_in_bytes", memory.ToString(CultureInfo.InvariantCulture));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogCgroupWarning(log, dir, e.Message);
            }
        }
    }

    /// <summary>Removes the pod cgroup in every hierarchy. Returns false if some directory is still busy.</summary>
    public bool RemovePod(string podUid)
    {
        if (layout.Systemd) return true;
        bool ok = true;
        foreach (var qos in (string[])[QosClass.Guaranteed, QosClass.Burstable, QosClass.BestEffort])
        {
            string rel = layout.PodRelativePath(qos, podUid);
            foreach (var mount in fs.AllMounts)
            {
                string dir = Path.Combine(mount, rel);
                if (!Directory.Exists(dir)) continue;
                ok &= RemoveTree(dir);
            }
        }
        return ok;
    }

    /// <summary>Pod UIDs that have a cgroup on this host (for garbage collection of leftovers).</summary>
    public IEnumerable<string> ListPodUids()
    {
        if (layout.Systemd || fs.Mounts.Count == 0) yield break;
        string mount = fs.Mounts[0];
        foreach (var qos in (string[])[QosClass.Guaranteed, QosClass.Burstable, QosClass.BestEffort])
        {
            string parent = Path.GetDirectoryName(Path.Combine(mount, layout.PodRelativePath(qos, "x")))!;
            if (!Directory.Exists(parent)) continue;
            foreach (var d in Directory.EnumerateDirectories(parent, "pod*"))
                yield return Path.GetFileName(d)[3..];
        }
    }

    private bool RemoveTree(string dir)
    {
        try
        {
            // cgroup directories can only be removed empty of child cgroups: deepest first.
            foreach (var child in Directory.EnumerateDirectories(dir)) RemoveTree(child);
            Directory.Delete(dir);
            return true;
        }
        catch (DirectoryNotFoundException) { return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogCgroupRemoveFailed(log, dir, e.Message);
            return false;
        }
    }

    private static void EnableControllers(string mount, string rel)
    {
        // v2: a child can use a controller only if every ancestor enables it in subtree_control.
        string current = mount;
        foreach (var seg in rel.Split('/'))
        {
            try { File.WriteAllText(Path.Combine(current, "cgroup.subtree_control"), "+cpu +memory +pids"); }
            catch (IOException) { }
            current = Path.Combine(current, seg);
            Directory.CreateDirectory(current);
        }
    }

    private static void Write(string dir, string file, string value) => File.WriteAllText(Path.Combine(dir, file), value);

    [LoggerMessage(Level = LogLevel.Warning, Message = "cannot configure pod cgroup {Dir}: {Error}")]
    private static partial void LogCgroupWarning(ILogger logger, string dir, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "cannot remove pod cgroup {Dir} yet: {Error}")]
    private static partial void LogCgroupRemoveFailed(ILogger logger, string dir, string error);
}
