using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Pods;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>The kubelet's admission predicates, with upstream's reasons and messages.</summary>
public sealed class AdmissionTests
{
    private static readonly AdmissionNode Node = AdmissionNode.From(JsonNode.Parse("""
        {"metadata":{"name":"n1","labels":{"kubernetes.io/hostname":"n1","disk":"ssd","gen":"5"}},
         "spec":{"taints":[{"key":"dedicated","value":"db","effect":"NoExecute"},{"key":"soft","effect":"NoSchedule"}]},
         "status":{"allocatable":{"cpu":"2","memory":"1Gi","pods":"3"}}}
        """)!.AsObject());

    private static readonly Toleration DbToleration = new() { Key = "dedicated", Operator = "Equal", Value = "db", Effect = "NoExecute" };

    private static Pod P(string cpu = "", string mem = "", int hostPort = 0, string? affinity = null, Dictionary<string, string>? selector = null, bool tolerate = true)
    {
        var requests = new Dictionary<string, Quantity>();
        if (cpu.Length > 0) requests["cpu"] = new Quantity(cpu);
        if (mem.Length > 0) requests["memory"] = new Quantity(mem);
        return new Pod
        {
            Metadata = new ObjectMeta { Name = "p", Namespace = "default", Uid = Guid.NewGuid().ToString() },
            Spec = new PodSpec
            {
                NodeSelector = selector,
                Affinity = affinity is null ? null : JsonDocument.Parse(affinity).RootElement.Clone(),
                Tolerations = tolerate ? [DbToleration] : null,
                Containers = [new Container { Name = "c", Image = "i", Resources = new ResourceRequirements { Requests = requests },
                    Ports = hostPort > 0 ? [new ContainerPort { Number = 80, HostPort = hostPort }] : null }],
            },
        };
    }

    [Fact]
    public void ResourcesMustFitWhatTheOtherActivePodsLeave()
    {
        Assert.True(Admission.Admit(P("1500m", "512Mi"), [P("500m")], Node).Admitted);
        var r = Admission.Admit(P("1600m"), [P("500m")], Node);
        Assert.Equal(("OutOfcpu", "Node didn't have enough resource: cpu, requested: 1600, used: 500, capacity: 2000"), (r.Reason, r.Message));
        r = Admission.Admit(P(mem: "1Gi"), [P(mem: "1")], Node);
        Assert.Equal("OutOfmemory", r.Reason);
        r = Admission.Admit(P(), [P(), P(), P()], Node);
        Assert.Equal(("OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"), (r.Reason, r.Message));
    }

    [Fact]
    public void HostPortsMustBeFree()
    {
        Assert.True(Admission.Admit(P(hostPort: 8080), [P(hostPort: 8081)], Node).Admitted);
        var r = Admission.Admit(P(hostPort: 8080), [P(hostPort: 8080)], Node);
        Assert.Equal(("NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"), (r.Reason, r.Message));
    }

    [Theory]
    [InlineData("""{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"disk","operator":"In","values":["ssd"]}]}]}}}""", true)]
    [InlineData("""{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"disk","operator":"In","values":["hdd"]}]}]}}}""", false)]
    [InlineData("""{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"disk","operator":"In","values":["hdd"]}]},{"matchFields":[{"key":"metadata.name","operator":"In","values":["n1"]}]}]}}}""", true)]
    [InlineData("""{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"gen","operator":"Gt","values":["4"]},{"key":"gpu","operator":"DoesNotExist"}]}]}}}""", true)]
    [InlineData("""{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"gen","operator":"Lt","values":["4"]}]}]}}}""", false)]
    [InlineData("""{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{}]}}}""", false)]
    [InlineData("""{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[]}}""", true)]
    public void RequiredNodeAffinityMustMatch(string affinity, bool admitted)
    {
        var r = Admission.Admit(P(affinity: affinity), [], Node);
        Assert.Equal(admitted, r.Admitted);
        if (!admitted) Assert.Equal(("NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"), (r.Reason, r.Message));
    }

    [Fact]
    public void NodeSelectorMustMatchAndNoExecuteTaintsMustBeTolerated()
    {
        Assert.True(Admission.Admit(P(selector: new() { ["disk"] = "ssd" }), [], Node).Admitted);
        Assert.Equal("NodeAffinity", Admission.Admit(P(selector: new() { ["disk"] = "hdd" }), [], Node).Reason);
        // NoSchedule is the scheduler's business; the kubelet refuses only untolerated NoExecute taints.
        var r = Admission.Admit(P(tolerate: false), [], Node);
        Assert.Equal(("TaintToleration", "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"), (r.Reason, r.Message));
    }

    [Fact]
    public void InitContainersCountByTheirLargestRequestAndSidecarsAddUp()
    {
        var pod = P("500m");
        pod.Spec.InitContainers =
        [
            new Container { Name = "init", Image = "i", Resources = new ResourceRequirements { Requests = new() { ["cpu"] = new Quantity("1") } } },
            new Container { Name = "side", Image = "i", RestartPolicy = "Always", Resources = new ResourceRequirements { Requests = new() { ["cpu"] = new Quantity("300m") } } },
        ];
        Assert.Equal(1000, Admission.Requests(pod).MilliCpu);
        pod.Spec.InitContainers.RemoveAt(0);
        Assert.Equal(800, Admission.Requests(pod).MilliCpu);
    }
}
