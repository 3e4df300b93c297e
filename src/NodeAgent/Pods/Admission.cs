using System.Text.Json.Nodes;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Api.Scheduling;

namespace NodeAgent.Pods;

/// <summary>What admission needs of the Node: its labels, NoExecute-relevant taints and allocatable.</summary>
public sealed record AdmissionNode(string Name, IReadOnlyDictionary<string, string> Labels, IReadOnlyList<Taint> Taints,
    long AllocatableMilliCpu, long AllocatableMemory, long AllocatablePods)
{
    /// <summary>From a v1 Node (the API's, or the one the agent registers when the API has not answered yet).</summary>
    public static AdmissionNode From(JsonObject node)
    {
        var labels = PodPredicates.LabelsOf(node);
        var taints = Taint.Of(node);
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
        if (PodPredicates.HostPortsConflict(pod, active))
            return Predicate("NodePorts", "node(s) didn't have free ports for the requested pod ports");
        if (!MatchesSelectorAndAffinity(pod, node))
            return Predicate("NodeAffinity", "node(s) didn't match Pod's node affinity/selector");
        foreach (var t in node.Taints)
            if (t.Effect == "NoExecute" && !PodPredicates.Tolerates(pod.Spec.Tolerations, t))
                return Predicate("TaintToleration", "node(s) had taints that the pod didn't tolerate");
        return AdmissionResult.Ok;
    }

    private static AdmissionResult Insufficient(string resource, long requested, long used, long capacity) =>
        new(false, "OutOf" + resource, FormattableString.Invariant($"Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"));

    private static AdmissionResult Predicate(string name, string description) => new(false, name, $"Predicate {name} failed: {description}");

    public static (long MilliCpu, long Memory) Requests(Pod pod) => PodPredicates.Requests(pod);

    public static bool MatchesSelectorAndAffinity(Pod pod, AdmissionNode node) => PodPredicates.MatchesNodeSelectorAndAffinity(pod, node.Name, node.Labels);
}
