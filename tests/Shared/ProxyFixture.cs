using System.Net.Sockets;
using System.Text.Json.Nodes;
using NodeAgent.Proxy;

namespace NodeAgent.Tests;

/// <summary>A fixed set of Services and EndpointSlices for the proxy's golden and kernel tests (shared by the unit and integration tests).</summary>
public static class ProxyFixture
{
    public const string Node = "node-a";

    public static JsonObject Service(string name, string spec, string? status = null) =>
        JsonNode.Parse($$"""{"apiVersion":"v1","kind":"Service","metadata":{"name":"{{name}}","namespace":"default"},"spec":{{spec}}{{(status is null ? "" : ",\"status\":" + status)}}}""")!.AsObject();

    public static JsonObject Slice(string service, string name, string ports, params (string Ip, string Node, bool Ready, bool Terminating)[] endpoints)
    {
        var eps = new JsonArray();
        foreach (var (ip, node, ready, terminating) in endpoints)
            eps.Add((JsonNode)new JsonObject
            {
                ["addresses"] = new JsonArray(ip), ["nodeName"] = node,
                ["conditions"] = new JsonObject { ["ready"] = ready, ["serving"] = ready || terminating, ["terminating"] = terminating },
            });
        return new JsonObject
        {
            ["apiVersion"] = "discovery.k8s.io/v1", ["kind"] = "EndpointSlice", ["addressType"] = "IPv4",
            ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "default", ["labels"] = new JsonObject { [ServiceModel.ServiceNameLabel] = service } },
            ["ports"] = JsonNode.Parse(ports), ["endpoints"] = eps,
        };
    }

    /// <summary>A fixed cluster: ClusterIP with two ports, NodePort with Local policy, LoadBalancer with affinity, externalIPs, no endpoints, terminating-only.</summary>
    public static List<(string Key, JsonObject Service, List<JsonObject> Slices)> Cluster() =>
    [
        ("default/web", Service("web", """{"type":"ClusterIP","clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],"ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":"http"},{"name":"dns","port":53,"protocol":"UDP","targetPort":53}]}"""),
            [Slice("web", "web-a", """[{"name":"http","port":8080,"protocol":"TCP"},{"name":"dns","port":5353,"protocol":"UDP"}]""",
                ("10.244.0.5", Node, true, false), ("10.244.0.6", "node-b", true, false), ("10.244.0.7", Node, false, false))]),
        ("default/np", Service("np", """{"type":"NodePort","clusterIP":"10.96.0.11","ports":[{"name":"","port":80,"protocol":"TCP","nodePort":30080}],"externalTrafficPolicy":"Local"}"""),
            [Slice("np", "np-a", """[{"name":"","port":8080,"protocol":"TCP"}]""", ("10.244.0.8", Node, true, false), ("10.244.1.8", "node-b", true, false))]),
        ("default/lb", Service("lb", """{"type":"LoadBalancer","clusterIP":"10.96.0.12","ports":[{"name":"","port":443,"protocol":"TCP","nodePort":30443}],"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":600}},"externalIPs":["192.0.2.10"]}""",
                """{"loadBalancer":{"ingress":[{"ip":"198.51.100.7"}]}}"""),
            [Slice("lb", "lb-a", """[{"name":"","port":8443,"protocol":"TCP"}]""", ("10.244.0.9", Node, true, false))]),
        ("default/empty", Service("empty", """{"type":"ClusterIP","clusterIP":"10.96.0.13","ports":[{"name":"","port":80,"protocol":"TCP"}]}"""), []),
        ("default/draining", Service("draining", """{"type":"ClusterIP","clusterIP":"10.96.0.14","ports":[{"name":"","port":80,"protocol":"TCP"}]}"""),
            [Slice("draining", "draining-a", """[{"name":"","port":8080,"protocol":"TCP"}]""", ("10.244.0.10", Node, false, true), ("10.244.0.11", Node, false, false))]),
        ("default/headless", Service("headless", """{"clusterIP":"None","ports":[{"name":"","port":80,"protocol":"TCP"}]}"""),
            [Slice("headless", "headless-a", """[{"name":"","port":80,"protocol":"TCP"}]""", ("10.244.0.12", Node, true, false))]),
    ];

    public static NftRuleset Ruleset(out List<string> problems)
    {
        var rules = new NftRuleset(AddressFamily.InterNetwork, new NftOptions("node-agent-test", "10.244.0.0/16"));
        problems = [];
        foreach (var (key, svc, slices) in Cluster())
            rules.SetService(key, ServiceModel.Build(svc, slices, AddressFamily.InterNetwork, Node, problems));
        return rules;
    }
}
