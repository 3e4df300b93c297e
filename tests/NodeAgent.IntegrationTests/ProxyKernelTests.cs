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
        await Nft(rules.Delta()!);
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
