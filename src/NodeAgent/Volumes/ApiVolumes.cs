using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NodeAgent.Api.Core;
using NodeAgent.Os;
using NodeAgent.Pods;

namespace NodeAgent.Volumes;

/// <summary>
/// configMap and secret volumes, laid out as the kubelet's atomic writer does: the files live in a
/// timestamped directory, "..data" is a symlink to it and every top-level name is a symlink through
/// "..data". An update writes a new directory and renames a fresh "..data" link over the old one,
/// so a container never sees a half-written set. Secret volumes sit on tmpfs. Refreshed on every
/// pod sync, so a changed ConfigMap reaches running containers in place.
/// </summary>
public static class ApiVolumes
{
    public static bool IsApiVolume(Volume v) => v.Extra is { } x && (x.ContainsKey("configMap") || x.ContainsKey("secret"));

    /// <summary>Fetches and writes every configMap/secret volume; returns host paths by volume name.</summary>
    public static async Task<Dictionary<string, string>> SetUpAsync(Pod pod, string podDir, IObjectSource objects, IMounter mounter, CancellationToken ct)
    {
        var paths = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in pod.Spec.Volumes ?? [])
        {
            if (!IsApiVolume(v)) continue;
            bool secret = v.Extra!.TryGetValue("secret", out var src);
            if (!secret) src = v.Extra["configMap"];
            string? name = secret ? Str(src, "secretName") : Str(src, "name");
            bool optional = src.ValueKind == JsonValueKind.Object && src.TryGetProperty("optional", out var o) && o.ValueKind == JsonValueKind.True;
            int defaultMode = src.ValueKind == JsonValueKind.Object && src.TryGetProperty("defaultMode", out var dm) && dm.TryGetInt32(out int m) ? m : 420;
            var kind = secret ? ObjectKind.Secret : ObjectKind.ConfigMap;
            IReadOnlyDictionary<string, string>? data;
            try { data = await objects.GetDataAsync(kind, pod.Metadata.Namespace ?? "default", name ?? "", ct).ConfigureAwait(false); }
            catch (NodeAgent.Api.Client.ApiError e) { throw new VolumeException(v.Name, e.Message); }
            if (data is null)
            {
                if (!optional) throw new VolumeException(v.Name, $"{(secret ? "secret" : "configmap")} \"{name}\" not found");
                data = new Dictionary<string, string>();
            }
            var files = new SortedDictionary<string, (string Content, int Mode)>(StringComparer.Ordinal);
            if (src.ValueKind == JsonValueKind.Object && src.TryGetProperty("items", out var items) && items.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in items.EnumerateArray())
                {
                    string key = Str(item, "key") ?? "", path = Str(item, "path") ?? key;
                    int mode = item.TryGetProperty("mode", out var im) && im.TryGetInt32(out int imv) ? imv : defaultMode;
                    if (!data.TryGetValue(key, out var content))
                    {
                        if (optional) continue;
                        throw new VolumeException(v.Name, $"configmap references non-existent config key: {key}");
                    }
                    files[CheckPath(v.Name, path)] = (content, mode);
                }
            }
            else foreach (var (k, content) in data) files[CheckPath(v.Name, k)] = (content, defaultMode);
            string dir = Path.Combine(podDir, "volumes", secret ? "kubernetes.io~secret" : "kubernetes.io~configmap", v.Name);
            Directory.CreateDirectory(dir);
            if (secret && !mounter.IsMountPoint(dir))
            {
                try { mounter.MountTmpfs(dir, 0); }
                catch (IOException e) { throw new VolumeException(v.Name, e.Message); }
            }
            Write(dir, files);
            paths[v.Name] = dir;
        }
        return paths;
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;

    private static string CheckPath(string volume, string path)
    {
        if (path.Length == 0 || path.StartsWith('/') || path.Split('/').Any(p => p is ".." or "") || path.StartsWith("..", StringComparison.Ordinal))
            throw new VolumeException(volume, $"invalid path \"{path}\"");
        return path;
    }

    /// <summary>The atomic writer: new timestamped dir, then rename a fresh ..data link over the old one.</summary>
    public static void Write(string dir, SortedDictionary<string, (string Content, int Mode)> files)
    {
        var sb = new StringBuilder();
        foreach (var (p, (c, m)) in files) sb.Append(p).Append('\0').Append(m).Append('\0').Append(c).Append('\0');
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..12];
        string dataLink = Path.Combine(dir, "..data");
        string? current = File.Exists(dataLink) || Directory.Exists(dataLink) ? new FileInfo(dataLink).LinkTarget : null;
        if (current is not null && current.EndsWith("." + hash, StringComparison.Ordinal)) return;

        string stamp = $"..{DateTime.UtcNow:yyyy_MM_dd_HH_mm_ss.fffffff}.{hash}";
        string target = Path.Combine(dir, stamp);
        Directory.CreateDirectory(target);
        File.SetUnixFileMode(target, (UnixFileMode)0b111_101_101);
        foreach (var (p, (content, mode)) in files)
        {
            string f = Path.Combine(target, p);
            Directory.CreateDirectory(Path.GetDirectoryName(f)!);
            File.WriteAllText(f, content);
            File.SetUnixFileMode(f, (UnixFileMode)(mode & 0b111_111_111));
        }
        string tmp = Path.Combine(dir, "..data_tmp");
        if (File.Exists(tmp) || new FileInfo(tmp).LinkTarget is not null) File.Delete(tmp);
        File.CreateSymbolicLink(tmp, stamp);
        PosixFs.Rename(tmp, dataLink); // rename(2) of the link itself: atomic
        // Top-level names point through ..data; names no longer present go.
        var tops = files.Keys.Select(p => p.Split('/')[0]).ToHashSet(StringComparer.Ordinal);
        foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos())
        {
            if (entry.Name.StartsWith("..", StringComparison.Ordinal)) continue;
            if (entry.LinkTarget is { } lt && lt.StartsWith("..data/", StringComparison.Ordinal) && !tops.Contains(entry.Name)) entry.Delete();
        }
        foreach (var t in tops)
        {
            string link = Path.Combine(dir, t);
            if (new FileInfo(link).LinkTarget is null && !File.Exists(link) && !Directory.Exists(link)) File.CreateSymbolicLink(link, "..data/" + t);
        }
        if (current is not null && current.StartsWith("..", StringComparison.Ordinal) && current != stamp)
        {
            string old = Path.Combine(dir, current);
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        }
    }
}
