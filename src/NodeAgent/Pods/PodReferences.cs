using System.Text.Json;
using NodeAgent.Api.Core;

namespace NodeAgent.Pods;

/// <summary>The ConfigMaps and Secrets a pod uses, through env, envFrom and volumes (projected sources included).</summary>
public static class PodReferences
{
    public static bool Uses(Pod pod, ObjectKind kind, string name)
    {
        foreach (var c in PodDefaults.AllContainers(pod.Spec))
            foreach (var r in EnvResolver.References(c))
                if (r.Kind == kind && r.Name == name) return true;
        foreach (var v in pod.Spec.Volumes ?? [])
        {
            if (v.Extra is not { } x) continue;
            if (kind == ObjectKind.ConfigMap && x.TryGetValue("configMap", out var cm) && Str(cm, "name") == name) return true;
            if (kind == ObjectKind.Secret && x.TryGetValue("secret", out var sec) && Str(sec, "secretName") == name) return true;
            if (x.TryGetValue("projected", out var pj) && pj.ValueKind == JsonValueKind.Object
                && pj.TryGetProperty("sources", out var sources) && sources.ValueKind == JsonValueKind.Array)
                foreach (var s in sources.EnumerateArray())
                    if (s.ValueKind == JsonValueKind.Object && s.TryGetProperty(kind == ObjectKind.ConfigMap ? "configMap" : "secret", out var src) && Str(src, "name") == name)
                        return true;
        }
        return false;
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
}
