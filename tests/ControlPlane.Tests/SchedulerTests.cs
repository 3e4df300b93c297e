using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Scheduler;
using DefaultScheduler = NodeAgent.ControlPlane.Scheduler.Scheduler;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

/// <summary>The scheduler's filters, scores and messages; the live test is NodeAgent.IntegrationTests SchedulingTests.</summary>
public sealed class SchedulerTests
{
    private static NodeState Node(string name, string cpu = "2", string mem = "4Gi", string pods = "110", bool ready = true, string? taint = null,
        bool unschedulable = false, string labels = "")
    {
        string json = """
            {"metadata":{"name":"NAME","labels":{"kubernetes.io/hostname":"NAME"LABELS}},
             "spec":{"unschedulable":UNSCHED,"taints":[TAINT]},
             "status":{"allocatable":{"cpu":"CPU","memory":"MEM","pods":"PODS"},
                       "conditions":[{"type":"Ready","status":"READY"}]}}
            """.Replace("NAME", name).Replace("LABELS", labels).Replace("UNSCHED", unschedulable ? "true" : "false").Replace("TAINT", taint ?? "")
            .Replace("CPU", cpu).Replace("MEM", mem).Replace("PODS", pods).Replace("READY", ready ? "True" : "False");
        return NodeState.From(JsonNode.Parse(json)!.AsObject());
    }

    private static int _n;

    private static PodState Pod(string cpu = "", string extraSpec = "", string labels = "{}", string? owner = null)
    {
        string name = "p" + Interlocked.Increment(ref _n);
        string resources = cpu.Length > 0 ? ""","resources":{"requests":{"cpu":"CPU"}}""".Replace("CPU", cpu) : "";
        string refs = owner is null ? "" : ""","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"OWNER","controller":true}]""".Replace("OWNER", owner);
        string json = """
            {"metadata":{"name":"NAME","namespace":"default","uid":"NAME","labels":LABELS REFS},
             "spec":{"containers":[{"name":"c","image":"i" RESOURCES}] EXTRA}}
            """.Replace("NAME", name).Replace("LABELS", labels).Replace("REFS", refs).Replace("RESOURCES", resources).Replace("EXTRA", extraSpec);
        return PodState.From("default/" + name, JsonNode.Parse(json)!.AsObject())!;
    }

    private static Dictionary<string, NodeUsage> Usage(params (string Node, PodState Pod)[] bound)
    {
        var d = new Dictionary<string, NodeUsage>();
        foreach (var (n, p) in bound) (d.TryGetValue(n, out var u) ? u : d[n] = new NodeUsage()).Add(p);
        return d;
    }

    [Fact]
    public void EachFilterRefusesWithUpstreamsWords()
    {
        Assert.Null(DefaultScheduler.Filter(Pod("1"), Node("a"), null));
        Assert.Equal("node(s) were unschedulable", DefaultScheduler.Filter(Pod(), Node("a", unschedulable: true), null));
        Assert.Equal("node(s) had untolerated taint {node.kubernetes.io/not-ready: }", DefaultScheduler.Filter(Pod(), Node("a", ready: false), null));
        Assert.Equal("node(s) had untolerated taint {dedicated: db}",
            DefaultScheduler.Filter(Pod(), Node("a", taint: """{"key":"dedicated","value":"db","effect":"NoSchedule"}"""), null));
        Assert.Null(DefaultScheduler.Filter(Pod(extraSpec: ""","tolerations":[{"key":"dedicated","operator":"Exists"}]"""),
            Node("a", taint: """{"key":"dedicated","value":"db","effect":"NoSchedule"}"""), null));
        Assert.Null(DefaultScheduler.Filter(Pod(), Node("a", taint: """{"key":"soft","effect":"PreferNoSchedule"}"""), null));
        Assert.Equal("Insufficient cpu", DefaultScheduler.Filter(Pod("1500m"), Node("a"), Usage(("a", Pod("1")))["a"]));
        Assert.Equal("Too many pods", DefaultScheduler.Filter(Pod(), Node("a", pods: "1"), Usage(("a", Pod()))["a"]));
        Assert.Equal("node(s) didn't match Pod's node affinity/selector", DefaultScheduler.Filter(Pod(extraSpec: ""","nodeSelector":{"disk":"ssd"}"""), Node("a"), null));
        Assert.Null(DefaultScheduler.Filter(Pod(extraSpec: ""","nodeSelector":{"disk":"ssd"}"""), Node("a", labels: ""","disk":"ssd" """), null));
        var port = ""","containers":[{"name":"c","image":"i","ports":[{"containerPort":80,"hostPort":8080}]}]""";
        Assert.Equal("node(s) didn't have free ports for the requested pod ports", DefaultScheduler.Filter(Pod(extraSpec: port), Node("a"), Usage(("a", Pod(extraSpec: port)))["a"]));
    }

    [Fact]
    public void RequiredAntiAffinityOnTheHostnameKeepsReplicasApartBothWays()
    {
        const string anti = ""","affinity":{"podAntiAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchLabels":{"app":"db"}}}]}}""";
        var existing = Pod(labels: """{"app":"db"}""");
        Assert.Equal("node(s) didn't match pod anti-affinity rules", DefaultScheduler.Filter(Pod(extraSpec: anti, labels: """{"app":"db"}"""), Node("a"), Usage(("a", existing))["a"]));
        Assert.Null(DefaultScheduler.Filter(Pod(extraSpec: anti, labels: """{"app":"db"}"""), Node("a"), Usage(("a", Pod(labels: """{"app":"web"}""")))["a"]));
        // The pod already there repels the newcomer it selects.
        Assert.Equal("node(s) didn't match pod anti-affinity rules", DefaultScheduler.Filter(Pod(labels: """{"app":"db"}"""), Node("a"), Usage(("a", Pod(extraSpec: anti)))["a"]));
    }

    [Fact]
    public void TheMessageCountsReasonsAcrossNodesSorted()
    {
        var nodes = new[] { Node("a", cpu: "1"), Node("b", ready: false), Node("c", cpu: "1") };
        var (chosen, reasons) = DefaultScheduler.Select(Pod("2"), nodes, Usage());
        Assert.Null(chosen);
        Assert.Equal("0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 2 Insufficient cpu.", DefaultScheduler.Message(3, reasons));
        Assert.Equal("no nodes available to schedule pods", DefaultScheduler.Message(0, []));
    }

    [Fact]
    public void ScoresPreferEmptierNodesAndSpreadOneOwnersPods()
    {
        var nodes = new[] { Node("busy"), Node("idle") };
        Assert.Equal("idle", DefaultScheduler.Select(Pod("500m"), nodes, Usage(("busy", Pod("1")))).Node);
        // Same load, but "a" already runs a sibling: the next replica goes to "b".
        var sibling = Pod("100m", owner: "rs-1");
        var (node, _) = DefaultScheduler.Select(Pod("100m", owner: "rs-1"), [Node("a"), Node("b")], Usage(("a", sibling), ("b", Pod("100m"))));
        Assert.Equal("b", node);
    }
}
