using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Os;
using NodeAgent.Pods;

namespace NodeAgent.Volumes;

/// <summary>
/// Volumes filled from the API and the pod itself: configMap, secret, downwardAPI and projected
/// (configMap, secret, downwardAPI and serviceAccountToken sources in one directory), laid out as
/// the kubelet's atomic writer does: the files live in a timestamped directory, "..data" is a
/// symlink to it and every top-level name is a symlink through "..data". An update writes a new
/// directory and renames a fresh "..data" link over the old one, so a container never sees a
/// half-written set. Everything but configMap volumes sits on tmpfs (secrets and tokens never touch
/// the disk). Refreshed on pod syncs, so changed objects, labels and tokens reach running containers.
/// </summary>
public static class ApiVolumes
{
    public static bool IsApiVolume(Volume v) => v.Extra is { } x
        && (x.ContainsKey("configMap") || x.ContainsKey("secret") || x.ContainsKey("projected") || x.ContainsKey("downwardAPI"));

    private const int DefaultMode = 420; // 0644, the API default for every one of these volume types

    /// <summary>Fetches and writes every such volume; returns host paths by volume name.</summary>
    public static async Task<Dictionary<string, string>> SetUpAsync(Pod pod, string podDir, IObjectSource objects, IMounter mounter,
        EnvResolver.PodFacts facts, CancellationToken ct)
    {
        var paths = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in pod.Spec.Volumes ?? [])
        {
            if (!IsApiVolume(v)) continue;
            var files = new SortedDictionary<string, (string Content, int Mode)>(StringComparer.Ordinal);
            string plugin;
            bool tmpfs = true;
            var x = v.Extra!;
            try
            {
                if (x.TryGetValue("configMap", out var cm))
                {
                    plugin = "kubernetes.io~configmap";
                    tmpfs = false;
                    await AddObjectAsync(v.Name, ObjectKind.ConfigMap, cm, Mode(cm, "defaultMode", DefaultMode), pod, objects, files, ct).ConfigureAwait(false);
                }
                else if (x.TryGetValue("secret", out var sec))
                {
                    plugin = "kubernetes.io~secret";
                    await AddObjectAsync(v.Name, ObjectKind.Secret, sec, Mode(sec, "defaultMode", DefaultMode), pod, objects, files, ct).ConfigureAwait(false);
                }
                else if (x.TryGetValue("downwardAPI", out var da))
                {
                    plugin = "kubernetes.io~downward-api";
                    AddDownwardApi(v.Name, da, Mode(da, "defaultMode", DefaultMode), pod, facts, files);
                }
                else
                {
                    plugin = "kubernetes.io~projected";
                    var pj = x["projected"];
                    int mode = Mode(pj, "defaultMode", DefaultMode);
                    if (pj.ValueKind == JsonValueKind.Object && pj.TryGetProperty("sources", out var sources) && sources.ValueKind == JsonValueKind.Array)
                        foreach (var src in sources.EnumerateArray())
                        {
                            if (src.ValueKind != JsonValueKind.Object) continue;
                            if (src.TryGetProperty("configMap", out var pcm)) await AddObjectAsync(v.Name, ObjectKind.ConfigMap, pcm, mode, pod, objects, files, ct).ConfigureAwait(false);
                            else if (src.TryGetProperty("secret", out var ps)) await AddObjectAsync(v.Name, ObjectKind.Secret, ps, mode, pod, objects, files, ct).ConfigureAwait(false);
                            else if (src.TryGetProperty("downwardAPI", out var pda)) AddDownwardApi(v.Name, pda, mode, pod, facts, files);
                            else if (src.TryGetProperty("serviceAccountToken", out var sat)) await AddTokenAsync(v.Name, sat, mode, pod, objects, files, ct).ConfigureAwait(false);
                            else throw new VolumeException(v.Name, "unsupported projected volume source (supported: configMap, secret, downwardAPI, serviceAccountToken)");
                        }
                }
            }
            catch (NodeAgent.Api.Client.ApiError e) { throw new VolumeException(v.Name, e.Message); }
            catch (ContainerConfigException e) { throw new VolumeException(v.Name, e.Message); }
            string dir = Path.Combine(podDir, "volumes", plugin, v.Name);
            Directory.CreateDirectory(dir);
            if (tmpfs && !mounter.IsMountPoint(dir))
            {
                try { mounter.MountTmpfs(dir, 0); }
                catch (IOException e) { throw new VolumeException(v.Name, e.Message); }
            }
            Write(dir, files);
            paths[v.Name] = dir;
        }
        return paths;
    }

    /// <summary>The directories under a pod that are tmpfs mounts to undo at teardown.</summary>
    public static readonly string[] TmpfsPlugins = ["kubernetes.io~secret", "kubernetes.io~projected", "kubernetes.io~downward-api"];

    private static async Task AddObjectAsync(string volume, ObjectKind kind, JsonElement src, int defaultMode, Pod pod, IObjectSource objects,
        SortedDictionary<string, (string Content, int Mode)> files, CancellationToken ct)
    {
        bool secret = kind == ObjectKind.Secret;
        // A secret volume names its object "secretName"; projected secret sources and every configMap say "name".
        string? name = (secret ? Str(src, "secretName") : null) ?? Str(src, "name");
        bool optional = src.ValueKind == JsonValueKind.Object && src.TryGetProperty("optional", out var o) && o.ValueKind == JsonValueKind.True;
        var data = await objects.GetDataAsync(kind, pod.Metadata.Namespace ?? "default", name ?? "", ct).ConfigureAwait(false);
        if (data is null)
        {
            if (!optional) throw new VolumeException(volume, $"{(secret ? "secret" : "configmap")} \"{name}\" not found");
            return;
        }
        if (src.ValueKind == JsonValueKind.Object && src.TryGetProperty("items", out var items) && items.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in items.EnumerateArray())
            {
                string key = Str(item, "key") ?? "", path = Str(item, "path") ?? key;
                if (!data.TryGetValue(key, out var content))
                {
                    if (optional) continue;
                    throw new VolumeException(volume, $"{(secret ? "secret" : "configmap")} references non-existent {(secret ? "secret" : "config")} key: {key}");
                }
                files[CheckPath(volume, path)] = (content, Mode(item, "mode", defaultMode));
            }
        }
        else foreach (var (k, content) in data) files[CheckPath(volume, k)] = (content, defaultMode);
    }

    private static void AddDownwardApi(string volume, JsonElement src, int defaultMode, Pod pod, EnvResolver.PodFacts facts,
        SortedDictionary<string, (string Content, int Mode)> files)
    {
        if (src.ValueKind != JsonValueKind.Object || !src.TryGetProperty("items", out var items) || items.ValueKind != JsonValueKind.Array) return;
        foreach (var item in items.EnumerateArray())
        {
            string path = CheckPath(volume, Str(item, "path") ?? "");
            string content;
            if (item.TryGetProperty("fieldRef", out var fr) && Str(fr, "fieldPath") is { } fieldPath)
            {
                // Volumes see the pod's metadata only (status and spec fields are for env).
                if (!fieldPath.StartsWith("metadata.", StringComparison.Ordinal))
                    throw new VolumeException(volume, $"unsupported fieldPath \"{fieldPath}\" in item \"{path}\" (volumes take metadata fields)");
                content = EnvResolver.FieldValue(pod, fieldPath, facts);
            }
            else if (item.TryGetProperty("resourceFieldRef", out var rf))
            {
                var sel = new ResourceFieldSelector
                {
                    ContainerName = Str(rf, "containerName"),
                    Resource = Str(rf, "resource") ?? "",
                    Divisor = Str(rf, "divisor") is { } d ? new Quantity(d) : null,
                };
                if (string.IsNullOrEmpty(sel.ContainerName)) throw new VolumeException(volume, $"item \"{path}\": resourceFieldRef.containerName is required in a volume");
                content = EnvResolver.ResourceValue(pod, null, sel, facts);
            }
            else throw new VolumeException(volume, $"item \"{path}\" needs a fieldRef or a resourceFieldRef");
            files[path] = (content, Mode(item, "mode", defaultMode));
        }
    }

    private static async Task AddTokenAsync(string volume, JsonElement src, int mode, Pod pod, IObjectSource objects,
        SortedDictionary<string, (string Content, int Mode)> files, CancellationToken ct)
    {
        string path = CheckPath(volume, Str(src, "path") ?? "");
        // Upstream's default lifetime is one hour; ten minutes is the API's minimum.
        long seconds = src.TryGetProperty("expirationSeconds", out var es) && es.TryGetInt64(out long e) ? e : 3600;
        string sa = string.IsNullOrEmpty(pod.Spec.ServiceAccountName) ? "default" : pod.Spec.ServiceAccountName;
        string token = await objects.GetServiceAccountTokenAsync(pod.Metadata.Namespace ?? "default", sa, Str(src, "audience"), seconds,
            pod.Metadata.Name ?? "", pod.Metadata.Uid ?? "", ct).ConfigureAwait(false);
        files[path] = (token, mode);
    }

    private static int Mode(JsonElement e, string name, int fallback) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var m) && m.TryGetInt32(out int v) ? v : fallback;

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
