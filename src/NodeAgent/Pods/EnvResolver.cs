using System.Globalization;
using System.Text;
using NodeAgent.Api.Core;
using NodeAgent.Cm;

namespace NodeAgent.Pods;

/// <summary>
/// Container environment as the kubelet builds it (kubelet_pods.go makeEnvironmentVariables):
/// values in order, fieldRef and resourceFieldRef from the pod, and $(VAR) references expanded
/// against variables defined earlier ($$ escapes a dollar; unknown references stay as written).
/// </summary>
public static class EnvResolver
{
    public sealed record PodFacts(string NodeName, string? HostIP, string? PodIP, IReadOnlyList<string> PodIPs, long NodeCpuMilli, long NodeMemoryBytes)
    {
        /// <summary>The ConfigMaps and Secrets the container references, fetched beforehand (null value: not found).</summary>
        public IReadOnlyDictionary<(ObjectKind Kind, string Name), IReadOnlyDictionary<string, string>?> Objects { get; init; } =
            new Dictionary<(ObjectKind, string), IReadOnlyDictionary<string, string>?>();
    }

    /// <summary>The ConfigMaps and Secrets a container's env and envFrom name.</summary>
    public static IEnumerable<(ObjectKind Kind, string Name)> References(Container c)
    {
        foreach (var f in c.EnvFrom ?? [])
        {
            if (f.ConfigMapRef?.Name is { } cm) yield return (ObjectKind.ConfigMap, cm);
            if (f.SecretRef?.Name is { } sec) yield return (ObjectKind.Secret, sec);
        }
        foreach (var e in c.Env ?? [])
        {
            if (e.ValueFrom?.ConfigMapKeyRef?.Name is { } cm) yield return (ObjectKind.ConfigMap, cm);
            if (e.ValueFrom?.SecretKeyRef?.Name is { } sec) yield return (ObjectKind.Secret, sec);
        }
    }

    private static string KindName(ObjectKind k) => k == ObjectKind.ConfigMap ? "configmap" : "secret";

    /// <summary>Throws <see cref="ContainerConfigException"/> for references that cannot be resolved.</summary>
    public static List<KeyValuePair<string, string>> Resolve(Pod pod, Container c, PodFacts facts)
    {
        var result = new List<KeyValuePair<string, string>>();
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in c.EnvFrom ?? [])
        {
            var (kind, name, optional) = f.ConfigMapRef is { } cmr ? (ObjectKind.ConfigMap, cmr.Name ?? "", cmr.Optional == true) : (ObjectKind.Secret, f.SecretRef?.Name ?? "", f.SecretRef?.Optional == true);
            if (!facts.Objects.TryGetValue((kind, name), out var data) || data is null)
            {
                if (optional) continue;
                throw new ContainerConfigException($"{KindName(kind)} \"{name}\" not found");
            }
            foreach (var (k, v) in data.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                string key = (f.Prefix ?? "") + k;
                if (key.Length == 0 || key.Contains('=')) continue; // not a valid variable name: skipped, as the kubelet does
                map[key] = v;
                int at = result.FindIndex(kv => kv.Key == key);
                if (at >= 0) result[at] = new(key, v); else result.Add(new(key, v));
            }
        }
        if (c.Env is null) return result;
        foreach (var e in c.Env)
        {
            string value;
            if (e.ValueFrom is null) value = Expand(e.Value ?? "", map);
            else if (e.ValueFrom.FieldRef is { } fr) value = FieldValue(pod, fr.FieldPath, facts);
            else if (e.ValueFrom.ResourceFieldRef is { } rf) value = ResourceValue(pod, c, rf, facts);
            else if (e.ValueFrom.ConfigMapKeyRef is { } cm)
            {
                if (KeyValue(ObjectKind.ConfigMap, cm, pod, facts) is not { } v) continue;
                value = v;
            }
            else if (e.ValueFrom.SecretKeyRef is { } sk)
            {
                if (KeyValue(ObjectKind.Secret, sk, pod, facts) is not { } v) continue;
                value = v;
            }
            else value = "";
            map[e.Name] = value;
            int existing = result.FindIndex(kv => kv.Key == e.Name);
            if (existing >= 0) result[existing] = new(e.Name, value);
            else result.Add(new(e.Name, value));
        }
        return result;
    }

    /// <summary>A configMapKeyRef/secretKeyRef value; null when optional and missing; kubelet's errors otherwise.</summary>
    private static string? KeyValue(ObjectKind kind, KeySelector sel, Pod pod, PodFacts facts)
    {
        string name = sel.Name ?? "";
        if (!facts.Objects.TryGetValue((kind, name), out var data) || data is null)
        {
            if (sel.Optional == true) return null;
            throw new ContainerConfigException($"{KindName(kind)} \"{name}\" not found");
        }
        if (data.TryGetValue(sel.Key, out var v)) return v;
        if (sel.Optional == true) return null;
        throw new ContainerConfigException($"couldn't find key {sel.Key} in {(kind == ObjectKind.ConfigMap ? "ConfigMap" : "Secret")} {pod.Metadata.Namespace}/{name}");
    }

    public static string FieldValue(Pod pod, string path, PodFacts facts)
    {
        var m = pod.Metadata;
        switch (path)
        {
            case "metadata.name": return m.Name ?? "";
            case "metadata.namespace": return m.Namespace ?? "";
            case "metadata.uid": return m.Uid ?? "";
            case "spec.nodeName": return pod.Spec.NodeName ?? facts.NodeName;
            case "spec.serviceAccountName": return pod.Spec.ServiceAccountName ?? "";
            case "status.podIP": return facts.PodIP ?? "";
            case "status.podIPs": return string.Join(',', facts.PodIPs);
            case "status.hostIP": return facts.HostIP ?? "";
            case "status.hostIPs": return facts.HostIP ?? "";
            case "metadata.labels": return FormatMap(m.Labels);
            case "metadata.annotations": return FormatMap(m.Annotations);
        }
        if (TrySubscript(path, "metadata.labels", out var lk)) return m.Labels?.GetValueOrDefault(lk) ?? "";
        if (TrySubscript(path, "metadata.annotations", out var ak)) return m.Annotations?.GetValueOrDefault(ak) ?? "";
        throw new ContainerConfigException($"unsupported fieldRef fieldPath \"{path}\"");
    }

    /// <summary>A resourceFieldRef value; <paramref name="self"/> is the env's own container (volumes must name one).</summary>
    public static string ResourceValue(Pod pod, Container? self, ResourceFieldSelector rf, PodFacts facts)
    {
        var c = (string.IsNullOrEmpty(rf.ContainerName) ? self : PodDefaults.AllContainers(pod.Spec).FirstOrDefault(x => x.Name == rf.ContainerName))
            ?? throw new ContainerConfigException($"resourceFieldRef: no container named \"{rf.ContainerName}\"");
        decimal divisor = rf.Divisor is { } d && d.IsValid && d.Value != 0 ? d.Value : 1m;
        decimal v = rf.Resource switch
        {
            "limits.cpu" => c.Resources?.Limits?.TryGetValue("cpu", out var q) == true ? q.Value : facts.NodeCpuMilli / 1000m,
            "requests.cpu" => c.Resources?.Requests?.TryGetValue("cpu", out var q) == true ? q.Value : 0,
            "limits.memory" => c.Resources?.Limits?.TryGetValue("memory", out var q) == true ? q.Value : facts.NodeMemoryBytes,
            "requests.memory" => c.Resources?.Requests?.TryGetValue("memory", out var q) == true ? q.Value : 0,
            "limits.ephemeral-storage" => c.Resources?.Limits?.TryGetValue("ephemeral-storage", out var q) == true ? q.Value : 0,
            "requests.ephemeral-storage" => c.Resources?.Requests?.TryGetValue("ephemeral-storage", out var q) == true ? q.Value : 0,
            _ => throw new ContainerConfigException($"unsupported resourceFieldRef resource \"{rf.Resource}\""),
        };
        return ((long)Math.Ceiling(v / divisor)).ToString(CultureInfo.InvariantCulture);
    }

    private static bool TrySubscript(string path, string prefix, out string key)
    {
        key = "";
        if (!path.StartsWith(prefix + "['", StringComparison.Ordinal) || !path.EndsWith("']", StringComparison.Ordinal)) return false;
        key = path[(prefix.Length + 2)..^2];
        return true;
    }

    /// <summary>Labels/annotations as the kubelet writes them: sorted key="value" lines, values quoted as Go's %q does.</summary>
    private static string FormatMap(Dictionary<string, string>? m) =>
        m is null ? "" : string.Join('\n', m.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + GoQuote(kv.Value)));

    internal static string GoQuote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (var rune in s.EnumerateRunes())
        {
            switch (rune.Value)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case < 0x20 or 0x7f: sb.Append("\\x").Append(rune.Value.ToString("x2", CultureInfo.InvariantCulture)); break;
                default: sb.Append(rune.ToString()); break;
            }
        }
        return sb.Append('"').ToString();
    }

    /// <summary>Expands $(NAME) against <paramref name="vars"/>; $$ is a literal $.</summary>
    public static string Expand(string input, IReadOnlyDictionary<string, string> vars)
    {
        if (!input.Contains('$')) return input;
        var sb = new StringBuilder(input.Length);
        for (int i = 0; i < input.Length; i++)
        {
            char ch = input[i];
            if (ch != '$' || i + 1 >= input.Length) { sb.Append(ch); continue; }
            char next = input[i + 1];
            if (next == '$') { sb.Append('$'); i++; continue; }
            if (next == '(')
            {
                int close = input.IndexOf(')', i + 2);
                if (close > 0)
                {
                    string name = input[(i + 2)..close];
                    if (vars.TryGetValue(name, out var v)) sb.Append(v);
                    else sb.Append(input, i, close - i + 1);
                    i = close;
                    continue;
                }
            }
            sb.Append(ch);
        }
        return sb.ToString();
    }
}

/// <summary>A container whose configuration cannot be built (CreateContainerConfigError).</summary>
public sealed class ContainerConfigException(string message) : Exception(message);
