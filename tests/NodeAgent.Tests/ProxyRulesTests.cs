using System.Net.Sockets;
using System.Text.Json.Nodes;
using NodeAgent.Proxy;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>The service model and the nftables transaction it becomes: golden files and deltas.</summary>
public sealed class ProxyRulesTests
{
    private const string Node = ProxyFixture.Node;

    private static JsonObject Service(string name, string spec) => ProxyFixture.Service(name, spec);

    private static JsonObject Slice(string service, string name, string ports, params (string Ip, string Node, bool Ready, bool Terminating)[] endpoints) =>
        ProxyFixture.Slice(service, name, ports, endpoints);

    private static List<(string Key, JsonObject Service, List<JsonObject> Slices)> Fixture() => ProxyFixture.Cluster();

    private static NftRuleset Ruleset(out List<string> problems) => ProxyFixture.Ruleset(out problems);

    private static void Golden(string name, string actual)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Golden", name);
        string expected = File.ReadAllText(path);
        if (expected != actual)
        {
            string written = Path.Combine(Path.GetTempPath(), name);
            File.WriteAllText(written, actual);
            Assert.Fail($"{name} differs from the checked-in file; the new text is in {written} (diff it, and copy it to tests/NodeAgent.Tests/Golden if it is right)");
        }
    }

    [Fact]
    public void TheFullTransactionForAFixedClusterEqualsTheCheckedInFile()
    {
        var rules = Ruleset(out var problems);
        Assert.Empty(problems);
        Golden("nft-full.txt", rules.Full());
    }

    [Fact]
    public void NodePortsAreServedOnlyOnTheNodePortAddressesWhenTheyAreGiven()
    {
        var rules = Ruleset(out _);
        string all = rules.Full();
        Assert.Contains("fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports", all);
        Assert.DoesNotContain("nodeport-ips", all);

        rules.NodePortIps = [System.Net.IPAddress.Parse("192.0.2.10"), System.Net.IPAddress.Parse("192.0.2.11")];
        string some = rules.Full();
        Assert.Contains("add set ip node-agent-test nodeport-ips { type ipv4_addr ; comment \"addresses NodePorts are served on\" ; }\n", some);
        Assert.Contains("flush set ip node-agent-test nodeport-ips\n", some);
        Assert.Contains("add element ip node-agent-test nodeport-ips { 192.0.2.10, 192.0.2.11 }\n", some);
        Assert.Contains("add rule ip node-agent-test services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports\n", some);
        Assert.Contains("add rule ip node-agent-test endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports\n", some);
        Assert.DoesNotContain("fib daddr type local", some);

        rules.NodePortIps = []; // no address of this family: the set stays empty, no NodePort answers
        Assert.DoesNotContain("add element ip node-agent-test nodeport-ips", rules.Full());
    }

    [Fact]
    public void ADualStackServiceIsProgrammedInEachFamilysTableWithThatFamilysClusterCidr()
    {
        var svc = Service("ds", """{"type":"ClusterIP","clusterIP":"10.96.0.20","clusterIPs":["10.96.0.20","fd00:96::20"],"ipFamilies":["IPv4","IPv6"],"ipFamilyPolicy":"RequireDualStack","ports":[{"name":"","port":80,"protocol":"TCP"}]}""");
        var v4Slice = Slice("ds", "ds-v4", """[{"name":"","port":8080,"protocol":"TCP"}]""", ("10.244.0.20", Node, true, false));
        var v6Slice = Slice("ds", "ds-v6", """[{"name":"","port":8080,"protocol":"TCP"}]""", ("fd00:244::20", Node, true, false));
        v6Slice["addressType"] = "IPv6";
        var options = new NftOptions("node-agent-test", "10.244.0.0/16, fd00:244::/56");
        Assert.Equal("10.244.0.0/16", options.ClusterCidrOf(AddressFamily.InterNetwork));
        Assert.Equal("fd00:244::/56", options.ClusterCidrOf(AddressFamily.InterNetworkV6));
        Assert.Null(new NftOptions("t", "10.244.0.0/16").ClusterCidrOf(AddressFamily.InterNetworkV6));

        var problems = new List<string>();
        var v4 = new NftRuleset(AddressFamily.InterNetwork, options);
        v4.SetService("default/ds", ServiceModel.Build(svc, [v4Slice, v6Slice], AddressFamily.InterNetwork, Node, problems));
        var v6 = new NftRuleset(AddressFamily.InterNetworkV6, options);
        v6.SetService("default/ds", ServiceModel.Build(svc, [v4Slice, v6Slice], AddressFamily.InterNetworkV6, Node, problems));
        Assert.Empty(problems);
        string four = v4.Full(), six = v6.Full();
        Assert.Contains("ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade", four);
        Assert.Contains("dnat to 10.244.0.20:8080", four);
        Assert.DoesNotContain("fd00", four);
        Assert.Contains("ip6 daddr fd00:96::20 tcp dport 80 ip6 saddr != fd00:244::/56 jump mark-for-masquerade", six);
        Assert.Contains("dnat to [fd00:244::20]:8080", six);
        Assert.DoesNotContain("10.2", six);
        Assert.DoesNotContain("10.96", six);
    }

    [Fact]
    public void NodePortAddressesResolveAsKubeProxysFlag()
    {
        var v4 = AddressFamily.InterNetwork;
        var v6 = AddressFamily.InterNetworkV6;
        System.Net.IPAddress[] node = [System.Net.IPAddress.Parse("10.0.0.5")];
        System.Net.IPAddress[] host = [.. new[] { "127.0.0.1", "10.0.0.5", "10.0.1.7", "192.168.9.1", "::1", "fe80::1", "fd00::5" }.Select(System.Net.IPAddress.Parse)];

        var primary = NodePortAddresses.Parse("primary");
        Assert.Equal(["10.0.0.5"], primary.Resolve(v4, node, host)!.Select(a => a.ToString()));
        Assert.Empty(primary.Resolve(v6, node, host)!);
        Assert.True(NodePortAddresses.Parse(null).Primary);

        var cidrs = NodePortAddresses.Parse("10.0.0.0/16, fd00::/8");
        Assert.Equal(["10.0.0.5", "10.0.1.7"], cidrs.Resolve(v4, node, host)!.Select(a => a.ToString()));
        Assert.Equal(["fd00::5"], cidrs.Resolve(v6, node, host)!.Select(a => a.ToString()));

        var everything = NodePortAddresses.Parse("0.0.0.0/0");
        Assert.Null(everything.Resolve(v4, node, host)); // every local address: matched by address type
        Assert.Empty(everything.Resolve(v6, node, host)!); // no IPv6 CIDR given: no IPv6 NodePorts

        Assert.Equal("nodePortAddresses: \"10.0.0.0/33\" is not a CIDR such as 10.0.0.0/8 (or \"primary\")",
            Assert.Throws<ArgumentException>(() => NodePortAddresses.Parse("10.0.0.0/33")).Message);
        Assert.Throws<ArgumentException>(() => NodePortAddresses.Parse("primary,10.0.0.0/8"));
    }

    [Fact]
    public void AnUnchangedResyncWritesNothingAndOneEndpointChangeTouchesOnlyThatService()
    {
        var rules = Ruleset(out _);
        rules.Full();
        rules.Commit();
        Assert.Null(rules.Delta());

        // Same objects again (a resync): still nothing.
        foreach (var (key, svc, slices) in Fixture()) rules.SetService(key, ServiceModel.Build(svc, slices, AddressFamily.InterNetwork, Node, []));
        Assert.Null(rules.Delta());

        // The second ready pod of np goes away.
        var (_, np, _) = Fixture()[1];
        rules.SetService("default/np", ServiceModel.Build(np, [Slice("np", "np-a", """[{"name":"","port":8080,"protocol":"TCP"}]""", ("10.244.0.8", Node, true, false))],
            AddressFamily.InterNetwork, Node, []));
        string delta = rules.Delta()!.Text;
        Golden("nft-delta-one-endpoint.txt", delta);
        foreach (var line in delta.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            Assert.True(line.Contains("default/np/") || line.Contains("-default/np/") || line.Contains("10.96.0.11") || line.Contains("30080"), $"the delta touches another service: {line}");
        rules.Commit();
        Assert.Null(rules.Delta());
    }

    private static NftRuleset.Counts CountLines(string transaction)
    {
        int Count(string prefix) => transaction.Split('\n').Count(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return new NftRuleset.Counts(Count("add chain "), Count("add rule "), Count("add element "), Count("add set ") + Count("add map "));
    }

    [Fact]
    public void TheObjectCountsFollowFullWritesAndDeltas()
    {
        var rules = Ruleset(out _);
        string full = rules.Full();
        Assert.Equal(default, rules.Committed); // nothing counts until it is committed
        rules.Commit();
        Assert.Equal(CountLines(full), rules.Committed);

        // After deltas (an endpoint gone, a service gone), the counts are what a fresh full write of the same state has.
        var (_, np, _) = Fixture()[1];
        rules.SetService("default/np", ServiceModel.Build(np, [Slice("np", "np-a", """[{"name":"","port":8080,"protocol":"TCP"}]""", ("10.244.0.8", Node, true, false))],
            AddressFamily.InterNetwork, Node, []));
        rules.RemoveService("default/lb");
        rules.Delta();
        rules.Commit();
        var fresh = new NftRuleset(AddressFamily.InterNetwork, new NftOptions("node-agent-test", "10.244.0.0/16"));
        foreach (var (key, svc, slices) in Fixture())
            if (key != "default/lb")
                fresh.SetService(key, ServiceModel.Build(svc, key == "default/np" ? [Slice("np", "np-a", """[{"name":"","port":8080,"protocol":"TCP"}]""", ("10.244.0.8", Node, true, false))] : slices, AddressFamily.InterNetwork, Node, []));
        Assert.Equal(CountLines(fresh.Full()), rules.Committed);
    }

    [Fact]
    public void AHealthCheckAnswersAsKubeProxysDoes()
    {
        string ok = System.Text.Encoding.ASCII.GetString(ServiceHealthServer.Response(new("default", "lb", 2), proxyHealthy: true));
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", ok);
        Assert.Contains("Content-Type: application/json\r\n", ok);
        Assert.Contains("X-Load-Balancing-Endpoint-Weight: 2\r\n", ok);
        Assert.EndsWith("\r\n\r\n{\"service\":{\"namespace\":\"default\",\"name\":\"lb\"},\"localEndpoints\":2,\"serviceProxyHealthy\":true}", ok);
        Assert.StartsWith("HTTP/1.1 503 ", System.Text.Encoding.ASCII.GetString(ServiceHealthServer.Response(new("default", "lb", 0), proxyHealthy: true)));
        Assert.StartsWith("HTTP/1.1 503 ", System.Text.Encoding.ASCII.GetString(ServiceHealthServer.Response(new("default", "lb", 2), proxyHealthy: false)));
    }

    [Fact]
    public void EndpointsAreChosenAsKubeProxyChoosesThem()
    {
        var problems = new List<string>();
        var fixture = Fixture();
        var web = ServiceModel.Build(fixture[0].Service, fixture[0].Slices, AddressFamily.InterNetwork, Node, problems);
        Assert.Equal(["default/web:http/tcp", "default/web:dns/udp"], web.Select(p => p.Key));
        Assert.Equal(["10.244.0.5:8080", "10.244.0.6:8080"], web[0].Usable(false).Select(e => $"{e.Ip}:{e.Port}"));
        Assert.Equal([5353, 5353], web[1].Usable(false).Select(e => e.Port));
        // Local policy: only this node's endpoints.
        var np = Assert.Single(ServiceModel.Build(fixture[1].Service, fixture[1].Slices, AddressFamily.InterNetwork, Node, problems));
        Assert.Equal(["10.244.0.8"], np.Usable(np.ExternalLocal).Select(e => e.Ip));
        Assert.Equal(2, np.Usable(false).Count);
        // No ready endpoint: the serving-terminating ones carry the traffic.
        var draining = Assert.Single(ServiceModel.Build(fixture[4].Service, fixture[4].Slices, AddressFamily.InterNetwork, Node, problems));
        Assert.Equal(["10.244.0.10"], draining.Usable(false).Select(e => e.Ip));
        // Headless: nothing to program; IPv6 of an IPv4-only service: nothing either.
        Assert.Empty(ServiceModel.Build(fixture[5].Service, fixture[5].Slices, AddressFamily.InterNetwork, Node, problems));
        Assert.Empty(ServiceModel.Build(fixture[0].Service, fixture[0].Slices, AddressFamily.InterNetworkV6, Node, problems));
        Assert.Empty(problems);
    }

    [Fact]
    public void BadAddressesPortsAndProtocolsAreSkippedWithAReasonAndTheRestStays()
    {
        var problems = new List<string>();
        var svc = Service("bad", """{"clusterIP":"10.96.0.20","clusterIPs":["10.96.0.20"],"externalIPs":["not-an-ip"],"ports":[{"name":"a","port":80,"protocol":"TCP"},{"name":"b","port":70000,"protocol":"TCP"},{"name":"c","port":81,"protocol":"ICMP"}]}""");
        var slice = Slice("bad", "bad-a", """[{"name":"a","port":8080,"protocol":"TCP"}]""", ("10.244.0.30", Node, true, false), ("10.244.0.999", Node, true, false));
        var ports = ServiceModel.Build(svc, [slice], AddressFamily.InterNetwork, Node, problems);
        var a = Assert.Single(ports);
        Assert.Equal(["10.244.0.30"], a.Endpoints.Select(e => e.Ip));
        Assert.Contains(problems, p => p.Contains("spec.externalIPs") && p.Contains("not-an-ip"));
        Assert.Contains(problems, p => p.Contains("port b") && p.Contains("70000"));
        Assert.Contains(problems, p => p.Contains("port c") && p.Contains("ICMP"));
        Assert.Contains(problems, p => p.Contains("10.244.0.999"));
    }

    [Fact]
    public void UdpEndpointsThatGoAwayAndFirstEndpointsClearConntrackAsKubeProxyDoes()
    {
        var web = ServiceModel.Build(Fixture()[0].Service, Fixture()[0].Slices, AddressFamily.InterNetwork, Node, []);
        // 10.244.0.6 leaves the UDP (dns) port: its entries from the ClusterIP go; the TCP port needs nothing.
        var fewer = ServiceModel.Build(Fixture()[0].Service,
            [Slice("web", "web-a", """[{"name":"http","port":8080,"protocol":"TCP"},{"name":"dns","port":5353,"protocol":"UDP"}]""", ("10.244.0.5", Node, true, false))],
            AddressFamily.InterNetwork, Node, []);
        var plan = ConntrackCleanup.Plan(web, fewer).Select(a => string.Join(' ', a)).ToList();
        Assert.Equal(["-D -p udp --orig-dst 10.96.0.10 --dst-nat 10.244.0.6"], plan);
        // Nothing changed: nothing to clear.
        Assert.Empty(ConntrackCleanup.Plan(web, web));
        // From no endpoint to one: the entries that recorded the refusal go.
        var none = ServiceModel.Build(Fixture()[0].Service, [], AddressFamily.InterNetwork, Node, []);
        Assert.Equal(["-D -p udp --orig-dst 10.96.0.10"], ConntrackCleanup.Plan(none, fewer).Select(a => string.Join(' ', a)));
        // The service deleted: every endpoint's entries go.
        Assert.Equal(2, ConntrackCleanup.Plan(web, []).Count);
    }
}
