using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;

namespace NodeAgent.Pods;

/// <summary>What admission needs of the Node: its labels, NoExecute-relevant taints and allocatable.</summary>
public sealed record AdmissionNode(string Name, IReadOnlyDictionary<string, string> Labels, IReadOnlyList<(string Key, string? Value, string Effect)> Taints,
    long AllocatableMilliCpu, long AllocatableMemory, long AllocatablePods)
{
    /// <summary>From a v1 Node (the API's, or the one the agent registers when the API has not answered yet).</summary>
    public static AdmissionNode From(JsonObject node)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (node["metadata"]?["labels"] is JsonObject l)
            foreach (var (k, v) in l) labels[k] = v?.GetValue<string>() ?? "";
        var taints = new List<(string, string?, string)>();
        if (node["spec"]?["taints"] is JsonArray ts)
            foreach (var t in ts.OfType<JsonObject>())
                taints.Add((t["key"]?.GetValue<string>() ?? "", t["value"]?.GetValue<string>(), t["effect"]?.GetValue<string>() ?? ""));
        var alloc = node["status"]?["allocatable"] as JsonObject;
        long Q(string name, Func<Quantity, long> conv) => alloc?[name]?.GetValue<string>() is { } s && new Quantity(s) is { IsValid: true } q ? conv(q) : long.MaxValue;
        return new AdmissionNode(node["metadata"]?["name"]?.GetValue<string>() ?? "", labels, taints,
            Q("cpu", q => q.ToMilli()), Q("memory", q => q.ToLong()), Q("pods", q => q.ToLong()));
    }
}

/// <summary>The kubelet's verdict on a pod: admitted, or rejected with a reason (OutOfcpu, NodeAffinity, ...).</summary>
public readonly record struct AdmissionResult(bool Admitted, string Reason, string Message)
{
    public static readonly AdmissionResult Ok = new(true, "", "");
}

/// <summary>
/// The kubelet's admission predicates (pkg/kubelet/lifecycle/predicate.go), run before an API pod
/// may start: resources fit the allocatable left by the other active pods (OutOfcpu, OutOfmemory,
/// OutOfpods), host ports are free (NodePorts), nodeSelector and required node affinity match
/// (NodeAffinity), NoExecute taints are tolerated (TaintToleration). Messages are upstream's.
/// Tests: AdmissionTests (unit), ApiPodTests (a rejected pod through the API).
/// </summary>
public static class Admission
{
    public static AdmissionResult Admit(Pod pod, IReadOnlyCollection<Pod> active, AdmissionNode node)
    {
        var (cpu, mem) = Requests(pod);
        long usedCpu = 0, usedMem = 0;
        foreach (var p in active)
        {
            var (c, m) = Requests(p);
            usedCpu += c;
            usedMem += m;
        }
        if (active.Count + 1 > node.AllocatablePods) return Insufficient("pods", 1, active.Count, node.AllocatablePods);
        if (cpu > 0 && cpu > node.AllocatableMilliCpu - usedCpu) return Insufficient("cpu", cpu, usedCpu, node.AllocatableMilliCpu);
        if (mem > 0 && mem > node.AllocatableMemory - usedMem) return Insufficient("memory", mem, usedMem, node.AllocatableMemory);
        if (HostPortConflict(pod, active))
            return Predicate("NodePorts", "node(s) didn't have free ports for the requested pod ports");
        if (!MatchesSelectorAndAffinity(pod, node))
            return Predicate("NodeAffinity", "node(s) didn't match Pod's node affinity/selector");
        foreach (var t in node.Taints)
            if (t.Effect == "NoExecute" && !(pod.Spec.Tolerations ?? []).Any(tol => Tolerates(tol, t)))
                return Predicate("TaintToleration", "node(s) had taints that the pod didn't tolerate");
        return AdmissionResult.Ok;
    }

    private static AdmissionResult Insufficient(string resource, long requested, long used, long capacity) =>
        new(false, "OutOf" + resource, FormattableString.Invariant($"Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"));

    private static AdmissionResult Predicate(string name, string description) => new(false, name, $"Predicate {name} failed: {description}");

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

    private static bool HostPortConflict(Pod pod, IReadOnlyCollection<Pod> active)
    {
        var wanted = HostPorts(pod).ToList();
        if (wanted.Count == 0) return false;
        foreach (var p in active)
            foreach (var used in HostPorts(p))
                foreach (var w in wanted)
                    if (w.Port == used.Port && w.Protocol == used.Protocol && (w.Ip == used.Ip || w.Ip is "0.0.0.0" || used.Ip is "0.0.0.0"))
                        return true;
        return false;
    }

    private static IEnumerable<(int Port, string Protocol, string Ip)> HostPorts(Pod pod)
    {
        foreach (var c in PodDefaults.AllContainers(pod.Spec))
            foreach (var port in c.Ports ?? [])
                if (port.HostPort is > 0 and var hp)
                    yield return (hp, port.Protocol ?? "TCP", string.IsNullOrEmpty(port.HostIP) ? "0.0.0.0" : port.HostIP);
    }

    public static bool MatchesSelectorAndAffinity(Pod pod, AdmissionNode node)
    {
        foreach (var (k, v) in pod.Spec.NodeSelector ?? [])
            if (!node.Labels.TryGetValue(k, out var have) || have != v) return false;
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
                    string? value = fields ? (key == "metadata.name" ? node.Name : null) : node.Labels.GetValueOrDefault(key);
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

    private static bool Tolerates(Toleration tol, (string Key, string? Value, string Effect) taint)
    {
        if (!string.IsNullOrEmpty(tol.Effect) && tol.Effect != taint.Effect) return false;
        if (string.IsNullOrEmpty(tol.Key)) return tol.Operator == "Exists";
        if (tol.Key != taint.Key) return false;
        return tol.Operator == "Exists" || (tol.Value ?? "") == (taint.Value ?? "");
    }
}
