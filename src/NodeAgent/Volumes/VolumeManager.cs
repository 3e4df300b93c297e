using Microsoft.Extensions.Logging;
using NodeAgent.Api.Core;
using NodeAgent.Os;

namespace NodeAgent.Volumes;

/// <summary>
/// Prepares a pod's volumes on the host and tears them down with the pod, in the kubelet's layout:
/// &lt;root&gt;/pods/&lt;uid&gt;/volumes/kubernetes.io~empty-dir/&lt;name&gt;. emptyDir with medium Memory is a
/// tmpfs sized by sizeLimit; hostPath honours its type (DirectoryOrCreate, FileOrCreate, ...).
/// Called only from the pod's own worker.
/// </summary>
public sealed partial class VolumeManager(string rootDir, IMounter mounter, ILogger<VolumeManager> log)
{
    public string PodDir(string uid) => Path.Combine(rootDir, "pods", uid);
    public IMounter Mounter => mounter;

    /// <summary>Returns host paths by volume name. Throws <see cref="VolumeException"/> naming the volume.</summary>
    public Dictionary<string, string> SetUp(Pod pod)
    {
        var paths = new Dictionary<string, string>(StringComparer.Ordinal);
        string uid = pod.Metadata.Uid!;
        if (pod.Spec.Volumes is null) return paths;
        foreach (var v in pod.Spec.Volumes)
        {
            if (v.EmptyDir is { } ed)
            {
                string dir = Path.Combine(PodDir(uid), "volumes", "kubernetes.io~empty-dir", v.Name);
                Directory.CreateDirectory(dir);
                if (ed.Medium == "Memory" && !mounter.IsMountPoint(dir))
                {
                    try { mounter.MountTmpfs(dir, ed.SizeLimit is { } sl && sl.IsValid ? sl.ToLong() : 0); }
                    catch (IOException e) { throw new VolumeException(v.Name, e.Message); }
                }
                // Pods running as non-root must be able to write: 0777 like the kubelet's emptyDir.
                File.SetUnixFileMode(dir, (UnixFileMode)0b111_111_111);
                paths[v.Name] = dir;
            }
            else if (v.HostPath is { } hp)
            {
                CheckHostPath(v.Name, hp);
                paths[v.Name] = hp.Path;
            }
        }
        return paths;
    }

    /// <summary>Resolves a volumeMount's host path, creating the subPath directory if missing (as the kubelet does).</summary>
    public static string MountSource(string volumePath, string? subPath, string volumeName)
    {
        if (string.IsNullOrEmpty(subPath)) return volumePath;
        string full = Path.GetFullPath(Path.Combine(volumePath, subPath));
        if (!full.StartsWith(Path.GetFullPath(volumePath).TrimEnd('/') + "/", StringComparison.Ordinal))
            throw new VolumeException(volumeName, $"subPath \"{subPath}\" escapes the volume");
        if (!File.Exists(full) && !Directory.Exists(full))
        {
            Directory.CreateDirectory(full);
            File.SetUnixFileMode(full, (UnixFileMode)0b111_111_111);
        }
        return full;
    }

    /// <summary>Unmounts and deletes the pod directory. Safe to call repeatedly.</summary>
    public void TearDown(string uid)
    {
        string podDir = PodDir(uid);
        if (!Directory.Exists(podDir)) return;
        // tmpfs mounts: emptyDir with medium Memory, secret, projected and downwardAPI volumes.
        foreach (var kind in (string[])["kubernetes.io~empty-dir", .. ApiVolumes.TmpfsPlugins])
        {
            string dirs = Path.Combine(podDir, "volumes", kind);
            if (!Directory.Exists(dirs)) continue;
            foreach (var d in Directory.EnumerateDirectories(dirs))
                if (mounter.IsMountPoint(d))
                {
                    try { mounter.Unmount(d); }
                    catch (IOException e) { LogTeardownFailed(log, uid, e.Message); return; }
                }
        }
        try { Directory.Delete(podDir, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { LogTeardownFailed(log, uid, e.Message); }
    }

    /// <summary>Pod UIDs with a directory under the root (for orphan cleanup).</summary>
    public IEnumerable<string> ListPodDirs()
    {
        string pods = Path.Combine(rootDir, "pods");
        return Directory.Exists(pods) ? Directory.EnumerateDirectories(pods).Select(Path.GetFileName).OfType<string>() : [];
    }

    private static void CheckHostPath(string name, HostPathVolumeSource hp)
    {
        string p = hp.Path;
        switch (hp.Type ?? "")
        {
            case "":
                return;
            case "DirectoryOrCreate":
                if (!Directory.Exists(p))
                {
                    if (File.Exists(p)) throw new VolumeException(name, $"hostPath type check failed: {p} is not a directory");
                    Directory.CreateDirectory(p);
                    File.SetUnixFileMode(p, (UnixFileMode)0b111_101_101);
                }
                return;
            case "Directory":
                if (!Directory.Exists(p)) throw new VolumeException(name, $"hostPath type check failed: {p} is not a directory");
                return;
            case "FileOrCreate":
                if (Directory.Exists(p)) throw new VolumeException(name, $"hostPath type check failed: {p} is not a file");
                if (!File.Exists(p))
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(p)!);
                    using (File.Create(p)) { }
                    File.SetUnixFileMode(p, (UnixFileMode)0b110_100_100);
                }
                return;
            case "File":
                if (!File.Exists(p)) throw new VolumeException(name, $"hostPath type check failed: {p} is not a file");
                return;
            case "Socket" or "CharDevice" or "BlockDevice":
                var info = new FileInfo(p);
                if (!info.Exists && !Directory.Exists(p)) throw new VolumeException(name, $"hostPath type check failed: {p} is not a {hp.Type}");
                return;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "cannot tear down volumes of pod {Uid} yet: {Error}")]
    private static partial void LogTeardownFailed(ILogger logger, string uid, string error);
}

public sealed class VolumeException(string volume, string message) : Exception($"volume \"{volume}\": {message}")
{
    public string Volume { get; } = volume;
}
