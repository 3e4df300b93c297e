using System.Globalization;
using System.Text.Json;
using NodeAgent.Api.Core;

namespace NodeAgent.Api.Scheduling;

/// <summary>A node taint, as admission and scheduling compare it with tolerations.</summary>
public readonly record struct Taint(string Key, string? Value, string Effect)
{
    /// <summary>spec.taints of a v1 Node.</summary>
    public static List<Taint> Of(System.Text.Json.Nodes.JsonObject node)
    {
        var taints = new List<Taint>();
        if (node["spec"]?["taints"] is System.Text.Json.Nodes.JsonArray ts)
            foreach (var t in ts.OfType<System.Text.Json.Nodes.JsonObject>())
                taints.Add(new Taint(t["key"]?.GetValue<string>() ?? "", t["value"]?.GetValue<string>(), t["effect"]?.GetValue<string>() ?? ""));
        return taints;
    }
}

/// <summary>
/// The pod-versus-node checks the kubelet's admission and the scheduler share: effective resource
/// requests, nodeSelector and required node affinity, taints and tolerations, host ports. Each
/// caller words its own verdicts (the kubelet's "Predicate X failed", the scheduler's counts).
/// </summary>
public static class PodPredicates
{
    /// <summary>metadata.labels of any object, as a dictionary.</summary>
    public static Dictionary<string, string> LabelsOf(System.Text.Json.Nodes.JsonObject obj)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (obj["metadata"]?["labels"] is System.Text.Json.Nodes.JsonObject l)
            foreach (var (k, v) in l) labels[k] = v?.GetValue<string>() ?? "";
        return labels;
    }

    /// <summary>Effective requests: the larger of the app containers' (with sidecars) sum and any one init container's.</summary>
    public static (long MilliCpu, long Memory) Requests(Pod pod)
    {
        long cpu = 0, mem = 0, initCpu = 0, initMem = 0;
        foreach (var c in pod.Spec.Containers) Add(c, ref cpu, ref mem);
        foreach (var c in pod.Spec.InitContainers ?? [])
        {
            if (c.RestartPolicy == "Always") { Add(c, ref cpu, ref mem); continue; }
            long ic = 0, im = 0;
            Add(c, ref ic, ref im);
            initCpu = Math.Max(initCpu, ic);
            initMem = Math.Max(initMem, im);
        }
        return (Math.Max(cpu, initCpu), Math.Max(mem, initMem));

        static void Add(Container c, ref long cpu, ref long mem)
        {
            var r = c.Resources?.Requests;
            // As the API server defaults it: a limit without a request is the request.
            var l = c.Resources?.Limits;
            if ((r?.TryGetValue("cpu", out var q) == true || l?.TryGetValue("cpu", out q) == true) && q.IsValid) cpu += q.ToMilli();
            if ((r?.TryGetValue("memory", out var m) == true || l?.TryGetValue("memory", out m) == true) && m.IsValid) mem += m.ToLong();
        }
    }

    public static IEnumerable<(int Port, string Protocol, string Ip)> HostPorts(Pod pod)
    {
        foreach (var c in PodDefaults.AllContainers(pod.Spec))
            foreach (var port in c.Ports ?? [])
                if (port.HostPort is > 0 and var hp)
                    yield return (hp, port.Protocol ?? "TCP", string.IsNullOrEmpty(port.HostIP) ? "0.0.0.0" : port.HostIP);
    }

    /// <summary>True when a host port the pod wants is taken by one of <paramref name="others"/> (0.0.0.0 overlaps every address).</summary>
    public static bool HostPortsConflict(Pod pod, IEnumerable<Pod> others)
    {
        var wanted = HostPorts(pod).ToList();
        if (wanted.Count == 0) return false;
        foreach (var p in others)
            foreach (var used in HostPorts(p))
                foreach (var w in wanted)
                    if (w.Port == used.Port && w.Protocol == used.Protocol && (w.Ip == used.Ip || w.Ip is "0.0.0.0" || used.Ip is "0.0.0.0"))
                        return true;
        return false;
    }

    /// <summary>nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity.</summary>
    public static bool MatchesNodeSelectorAndAffinity(Pod pod, string nodeName, IReadOnlyDictionary<string, string> labels)
    {
        foreach (var (k, v) in pod.Spec.NodeSelector ?? [])
            if (!labels.TryGetValue(k, out var have) || have != v) return false;
        if (pod.Spec.Affinity is not { ValueKind: JsonValueKind.Object } affinity
            || !affinity.TryGetProperty("nodeAffinity", out var na) || na.ValueKind != JsonValueKind.Object
            || !na.TryGetProperty("requiredDuringSchedulingIgnoredDuringExecution", out var req) || req.ValueKind != JsonValueKind.Object
            || !req.TryGetProperty("nodeSelectorTerms", out var terms) || terms.ValueKind != JsonValueKind.Array)
            return true;
        // Terms are ORed; the expressions of one term are ANDed; an empty term matches nothing.
        foreach (var term in terms.EnumerateArray())
        {
            bool any = false, all = true;
            foreach (var (prop, fields) in new[] { ("matchExpressions", false), ("matchFields", true) })
            {
                if (!term.TryGetProperty(prop, out var exprs) || exprs.ValueKind != JsonValueKind.Array) continue;
                foreach (var e in exprs.EnumerateArray())
                {
                    any = true;
                    string key = e.TryGetProperty("key", out var kk) ? kk.GetString() ?? "" : "";
                    string? value = fields ? (key == "metadata.name" ? nodeName : null) : labels.GetValueOrDefault(key);
                    if (!Matches(value, e)) all = false;
                }
            }
            if (any && all) return true;
        }
        return false;
    }

    private static bool Matches(string? value, JsonElement expr)
    {
        string op = expr.TryGetProperty("operator", out var o) ? o.GetString() ?? "" : "";
        var values = expr.TryGetProperty("values", out var vs) && vs.ValueKind == JsonValueKind.Array
            ? vs.EnumerateArray().Select(v => v.GetString() ?? "").ToList() : [];
        return op switch
        {
            "In" => value is not null && values.Contains(value),
            "NotIn" => value is null || !values.Contains(value),
            "Exists" => value is not null,
            "DoesNotExist" => value is null,
            "Gt" or "Lt" => value is not null && values.Count == 1
                && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long have)
                && long.TryParse(values[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long bound)
                && (op == "Gt" ? have > bound : have < bound),
            _ => false,
        };
    }

    public static bool Tolerates(IEnumerable<Toleration>? tolerations, Taint taint)
    {
        foreach (var tol in tolerations ?? [])
        {
            if (!string.IsNullOrEmpty(tol.Effect) && tol.Effect != taint.Effect) continue;
            if (string.IsNullOrEmpty(tol.Key)) { if (tol.Operator == "Exists") return true; continue; }
            if (tol.Key != taint.Key) continue;
            if (tol.Operator == "Exists" || (tol.Value ?? "") == (taint.Value ?? "")) return true;
        }
        return false;
    }
}
