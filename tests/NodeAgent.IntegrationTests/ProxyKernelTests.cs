using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using NodeAgent.Proxy;
using NodeAgent.Tests;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>The proxy's nftables transactions against the real kernel, in a network namespace of their own.</summary>
public sealed class ProxyKernelTests : IAsyncLifetime
{
    private readonly string _netns = "na-proxy-" + Guid.NewGuid().ToString("N")[..6];

    public async Task InitializeAsync() => await Run("ip", ["netns", "add", _netns]);

    public async Task DisposeAsync() => await Run("ip", ["netns", "del", _netns], check: false);

    private static async Task<string> Run(string file, string[] args, string? stdin = null, bool check = true)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"{file} is required (apt-get install nftables iproute2): {e.Message}"); }
        using (p)
        {
            if (stdin is not null) { await p.StandardInput.WriteAsync(stdin); p.StandardInput.Close(); }
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            if (check && p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {await e}{await o}");
            return await o;
        }
    }

    private Task<string> Nft(string transaction) => Run("ip", ["netns", "exec", _netns, "nft", "-f", "-"], transaction);

    private Task<string> List() => Run("ip", ["netns", "exec", _netns, "nft", "list", "table", "ip", "node-agent-test"]);

    [Fact]
    public async Task TheFullTransactionAndADeltaApplyToTheKernelAndAResyncRestoresADeletedRule()
    {
        var rules = ProxyFixture.Ruleset(out _);
        await Nft(rules.Full());
        rules.Commit();
        var listed = await List();
        Assert.Contains("10.96.0.10 . tcp . 80 : goto service-OSC5D42R-default/web/tcp/http", listed);
        Assert.Contains("numgen random mod 2 0 goto endpoint-QBOMKUOK-default/web/http__10.244.0.5/8080", listed);

        // One endpoint of np goes: the delta applies on top of what is there.
        var np = ProxyFixture.Cluster()[1];
        rules.SetService("default/np", ServiceModel.Build(np.Service,
            [ProxyFixture.Slice("np", "np-a", """[{"name":"","port":8080,"protocol":"TCP"}]""", ("10.244.0.8", ProxyFixture.Node, true, false))],
            AddressFamily.InterNetwork, ProxyFixture.Node, []));
        await Nft(rules.Delta()!.Text);
        rules.Commit();
        listed = await List();
        Assert.DoesNotContain("10.244.1.8", listed);
        Assert.Contains("10.244.0.8", listed);

        // Someone deletes a map element and a chain's rules: a full resync puts them back, in one transaction.
        await Run("ip", ["netns", "exec", _netns, "nft", "delete", "element", "ip", "node-agent-test", "service-ips", "{ 10.96.0.10 . tcp . 80 }"]);
        await Run("ip", ["netns", "exec", _netns, "nft", "flush", "chain", "ip", "node-agent-test", "service-OSC5D42R-default/web/tcp/http"]);
        Assert.DoesNotContain("10.96.0.10 . tcp . 80", await List());
        await Nft(rules.Full());
        rules.Commit();
        listed = await List();
        Assert.Contains("10.96.0.10 . tcp . 80 : goto service-OSC5D42R-default/web/tcp/http", listed);
        Assert.Contains("goto endpoint-VHUVB4ED-default/web/http__10.244.0.6/8080", listed);

        // A full resync keeps clients' affinity (the sets are not recreated) and drops what is no longer wanted.
        string affinity = listed.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("set affinity-", StringComparison.Ordinal))["set ".Length..].Split(' ')[0];
        await Run("ip", ["netns", "exec", _netns, "nft", "add", "element", "ip", "node-agent-test", affinity, "{ 192.0.2.77 }"]);
        rules.RemoveService("default/draining");
        await Nft(rules.Full());
        rules.Commit();
        listed = await List();
        Assert.Contains("192.0.2.77", listed);
        Assert.DoesNotContain("default/draining", listed);
        Assert.DoesNotContain("10.96.0.14", listed);
    }

    /// <summary>The cluster after a round of changes: an endpoint moved, a port dropped, affinity timeout changed, endpoints appearing and going, a service added, one removed.</summary>
    private static List<(string Key, JsonObject Service, List<JsonObject> Slices)> Changed()
    {
        var c = ProxyFixture.Cluster();
        c[0] = ("default/web", ProxyFixture.Service("web", """{"type":"ClusterIP","clusterIP":"10.96.0.10","ports":[{"name":"http","port":80,"protocol":"TCP"}]}"""), c[0].Slices);
        c[1] = (c[1].Key, c[1].Service, [ProxyFixture.Slice("np", "np-a", """[{"name":"","port":8080,"protocol":"TCP"}]""", ("10.244.0.8", ProxyFixture.Node, true, false))]);
        c[2] = ("default/lb", ProxyFixture.Service("lb", """{"type":"LoadBalancer","clusterIP":"10.96.0.12","ports":[{"name":"","port":443,"protocol":"TCP","nodePort":30443}],"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}},"externalIPs":["192.0.2.10"]}""",
            """{"loadBalancer":{"ingress":[{"ip":"198.51.100.7"}]}}"""), [ProxyFixture.Slice("lb", "lb-a", """[{"name":"","port":8443,"protocol":"TCP"}]""", ("10.244.0.9", ProxyFixture.Node, true, false), ("10.244.3.9", "node-b", true, false))]);
        c[3] = (c[3].Key, c[3].Service, [ProxyFixture.Slice("empty", "empty-a", """[{"name":"","port":80,"protocol":"TCP"}]""", ("10.244.0.13", ProxyFixture.Node, true, false))]);
        c.RemoveAt(4);
        c.Add(("default/udp", ProxyFixture.Service("udp", """{"type":"NodePort","clusterIP":"10.96.0.15","ports":[{"name":"dns","port":53,"protocol":"UDP","nodePort":30053}],"externalTrafficPolicy":"Local"}"""),
            [ProxyFixture.Slice("udp", "udp-a", """[{"name":"dns","port":53,"protocol":"UDP"}]""", ("10.244.1.20", "node-b", true, false))]));
        return c;
    }

    private static void Load(NftRuleset rules, List<(string Key, JsonObject Service, List<JsonObject> Slices)> cluster, AddressFamily family, HashSet<string> keys)
    {
        foreach (var k in keys) rules.RemoveService(k);
        keys.Clear();
        foreach (var (key, svc, slices) in cluster)
        {
            rules.SetService(key, ServiceModel.Build(svc, slices, family, ProxyFixture.Node, []));
            keys.Add(key);
        }
    }

    private async Task<string> ListAs(string family, string table) =>
        (await Run("ip", ["netns", "exec", _netns, "nft", "list", "table", family, table])).Replace(table, "TABLE", StringComparison.Ordinal);

    [Theory]
    [InlineData("10.244.0.0/16")]
    [InlineData("10.240.0.0/12")]
    public async Task ANetlinkDeltaLeavesTheKernelExactlyAsTheSameDeltaThroughNft(string clusterCidr)
    {
        // Two tables built the same way; deltas go to one through nft -f, to the other as a netlink batch.
        var text = new NftRuleset(AddressFamily.InterNetwork, new NftOptions("na-text", clusterCidr));
        var netlink = new NftRuleset(AddressFamily.InterNetwork, new NftOptions("na-netlink", clusterCidr));
        using var backend = new NftNetlinkBackend(_netns);
        HashSet<string> textKeys = [], netlinkKeys = [];
        Load(text, ProxyFixture.Cluster(), AddressFamily.InterNetwork, textKeys);
        Load(netlink, ProxyFixture.Cluster(), AddressFamily.InterNetwork, netlinkKeys);
        await Nft(text.Full()); text.Commit();
        await Nft(netlink.Full()); netlink.Commit();
        Assert.Equal(await ListAs("ip", "na-text"), await ListAs("ip", "na-netlink"));

        foreach (var cluster in (List<(string, JsonObject, List<JsonObject>)>[])[Changed(), ProxyFixture.Cluster(), Changed()])
        {
            Load(text, cluster, AddressFamily.InterNetwork, textKeys);
            Load(netlink, cluster, AddressFamily.InterNetwork, netlinkKeys);
            var textDelta = text.Delta()!;
            var netlinkDelta = netlink.Delta()!;
            Assert.False(netlinkDelta.IsEmpty);
            await Nft(textDelta.Text); text.Commit();
            await backend.ApplyAsync(netlinkDelta, CancellationToken.None); netlink.Commit();
            Assert.Equal(await ListAs("ip", "na-text"), await ListAs("ip", "na-netlink"));
        }
        Assert.Equal((3, 0), (backend.Batches, backend.CliFallbacks));
    }

    [Fact]
    public async Task ANetlinkDeltaForIpv6MatchesNftAndARefusedBatchNamesTheCommandAndChangesNothing()
    {
        static List<(string, JsonObject, List<JsonObject>)> V6(params string[] endpoints)
        {
            var slice = ProxyFixture.Slice("web6", "web6-a", """[{"name":"","port":8080,"protocol":"TCP"}]""", [.. endpoints.Select(e => (e, ProxyFixture.Node, true, false))]);
            slice["addressType"] = "IPv6";
            return [("default/web6", ProxyFixture.Service("web6", """{"type":"NodePort","clusterIP":"fd00:96::10","clusterIPs":["fd00:96::10"],"ipFamilies":["IPv6"],"ports":[{"name":"","port":80,"protocol":"TCP","nodePort":30081}],"sessionAffinity":"ClientIP"}"""), [slice])];
        }
        var text = new NftRuleset(AddressFamily.InterNetworkV6, new NftOptions("na-text", "fd00:244::/56"));
        var netlink = new NftRuleset(AddressFamily.InterNetworkV6, new NftOptions("na-netlink", "fd00:244::/56"));
        using var backend = new NftNetlinkBackend(_netns);
        HashSet<string> textKeys = [], netlinkKeys = [];
        Load(text, V6("fd00:244::5", "fd00:244::6"), AddressFamily.InterNetworkV6, textKeys);
        Load(netlink, V6("fd00:244::5", "fd00:244::6"), AddressFamily.InterNetworkV6, netlinkKeys);
        await Nft(text.Full()); text.Commit();
        await Nft(netlink.Full()); netlink.Commit();
        Load(text, V6("fd00:244::5", "fd00:244::7"), AddressFamily.InterNetworkV6, textKeys);
        Load(netlink, V6("fd00:244::5", "fd00:244::7"), AddressFamily.InterNetworkV6, netlinkKeys);
        await Nft(text.Delta()!.Text); text.Commit();
        await backend.ApplyAsync(netlink.Delta()!, CancellationToken.None); netlink.Commit();
        string listed = await ListAs("ip6", "na-netlink");
        Assert.Contains("dnat to [fd00:244::7]:8080", listed);
        Assert.Equal(await ListAs("ip6", "na-text"), listed);
        Assert.Equal((1, 0), (backend.Batches, backend.CliFallbacks));

        // A batch the kernel refuses (its last command names a chain that does not exist) is
        // rejected whole: the error names the command, and the table is as it was.
        var bad = new NftDelta(NftFamily.Ip6, "na-netlink");
        bad.ElementsOut.Add(new NftElement("service-ips", "fd00:96::10", "tcp", 80, null));
        bad.ChainDeletes.Add("no-such-chain");
        var e = await Assert.ThrowsAsync<NftException>(() => backend.ApplyAsync(bad, CancellationToken.None));
        Assert.Contains("delete chain ip6 na-netlink no-such-chain", e.Message);
        Assert.Equal(listed, await ListAs("ip6", "na-netlink"));
    }

    [Fact]
    public async Task TenThousandServicesApplyInOneTransaction()
    {
        var rules = new NftRuleset(AddressFamily.InterNetwork, new NftOptions("node-agent-test"));
        for (int i = 0; i < 10_000; i++)
        {
            string ip = $"10.{96 + i / 65536}.{i / 256 % 256}.{i % 256}";
            var svc = ProxyFixture.Service($"s{i}", $$"""{"type":"ClusterIP","clusterIP":"{{ip}}","ports":[{"name":"","port":80,"protocol":"TCP"}]}""");
            var slice = ProxyFixture.Slice($"s{i}", $"s{i}-a", """[{"name":"","port":8080,"protocol":"TCP"}]""",
                ($"10.244.{i / 128 % 256}.{i % 128 * 2 + 1}", ProxyFixture.Node, true, false), ($"10.244.{i / 128 % 256}.{i % 128 * 2 + 2}", "node-b", true, false));
            rules.SetService($"default/s{i}", ServiceModel.Build(svc, [slice], AddressFamily.InterNetwork, ProxyFixture.Node, []));
        }
        await Nft(rules.Full());
        rules.Commit();
        var count = await Run("ip", ["netns", "exec", _netns, "nft", "list", "map", "ip", "node-agent-test", "service-ips"]);
        Assert.Equal(10_000, System.Text.RegularExpressions.Regex.Count(count, ": goto service-"));
    }

    [Fact]
    public async Task ConntrackDeletionsRunAgainstTheKernelAndFindingNothingIsNotAnError()
    {
        // A UDP flow to a made-up service address, then the deletion the proxy would issue for it.
        using (var udp = new UdpClient())
            await udp.SendAsync(new byte[] { 1 }, new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.255.255.254"), 53));
        var conntrack = new ConntrackCli();
        await conntrack.DeleteAsync(["-D", "-p", "udp", "--orig-dst", "10.255.255.254"], CancellationToken.None);
        var left = await Run("conntrack", ["-L", "-p", "udp", "--orig-dst", "10.255.255.254"], check: false);
        Assert.DoesNotContain("10.255.255.254", left);
        // Nothing left to delete: still fine.
        await conntrack.DeleteAsync(["-D", "-p", "udp", "--orig-dst", "10.255.255.254"], CancellationToken.None);
    }
}
