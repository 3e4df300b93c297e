using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Api.Scheduling;
using NodeAgent.Api.Serialization;

namespace NodeAgent.ControlPlane.Scheduler;

/// <summary>A node as the scheduler filters and scores it.</summary>
public sealed record NodeState(string Name, IReadOnlyDictionary<string, string> Labels, IReadOnlyList<Taint> Taints,
    long MilliCpu, long Memory, long Pods, bool Unschedulable, bool Ready)
{
    public static NodeState From(JsonObject node)
    {
        var labels = PodPredicates.LabelsOf(node);
        var taints = Taint.Of(node);
        var alloc = node["status"]?["allocatable"] as JsonObject;
        long Q(string name, Func<Quantity, long> conv) => alloc?[name]?.GetValue<string>() is { } s && new Quantity(s) is { IsValid: true } q ? conv(q) : 0;
        bool ready = node["status"]?["conditions"] is JsonArray conds
            && conds.OfType<JsonObject>().Any(c => c["type"]?.GetValue<string>() == "Ready" && c["status"]?.GetValue<string>() == "True");
        return new NodeState(node["metadata"]?["name"]?.GetValue<string>() ?? "", labels, taints,
            Q("cpu", q => q.ToMilli()), Q("memory", q => q.ToLong()), Q("pods", q => q.ToLong()),
            node["spec"]?["unschedulable"]?.GetValueKind() == JsonValueKind.True, ready);
    }

    /// <summary>What the scheduler compares to decide whether a change may make pods schedulable.</summary>
    public bool SameForScheduling(NodeState other) =>
        MilliCpu == other.MilliCpu && Memory == other.Memory && Pods == other.Pods && Unschedulable == other.Unschedulable
        && Ready == other.Ready && Taints.SequenceEqual(other.Taints) && Labels.Count == other.Labels.Count
        && Labels.All(kv => other.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value);
}

/// <summary>A pod, decoded once, with what scheduling needs of it.</summary>
public sealed class PodState
{
    public required string Key { get; init; }
    public required Pod Pod { get; init; }
    public string? NodeName { get; set; }
    public long MilliCpu { get; init; }
    public long Memory { get; init; }
    public string? OwnerUid { get; init; }

    public bool Terminal => Pod.Status?.Phase is "Succeeded" or "Failed";

    public static PodState? From(string key, JsonObject obj)
    {
        Pod? pod;
        try { pod = obj.Deserialize(ApiJsonContext.Default.Pod); }
        catch (JsonException) { return null; }
        if (pod is null) return null;
        var (cpu, mem) = PodPredicates.Requests(pod);
        string? owner = obj["metadata"]?["ownerReferences"] is JsonArray refs
            ? refs.OfType<JsonObject>().FirstOrDefault(r => r["controller"]?.GetValueKind() == JsonValueKind.True)?["uid"]?.GetValue<string>()
            : null;
        return new PodState { Key = key, Pod = pod, NodeName = string.IsNullOrEmpty(pod.Spec.NodeName) ? null : pod.Spec.NodeName, MilliCpu = cpu, Memory = mem, OwnerUid = owner };
    }
}

/// <summary>The pods bound (or assumed bound) to one node and what they request.</summary>
public sealed class NodeUsage
{
    public long MilliCpu, Memory;
    public readonly Dictionary<string, PodState> Pods = new(StringComparer.Ordinal);

    public void Add(PodState p)
    {
        if (!Pods.TryAdd(p.Key, p)) return;
        MilliCpu += p.MilliCpu;
        Memory += p.Memory;
    }

    public void Remove(string key)
    {
        if (!Pods.Remove(key, out var p)) return;
        MilliCpu -= p.MilliCpu;
        Memory -= p.Memory;
    }
}
