using System.Net;
using System.Net.Sockets;
using NodeAgent.Os;
using NodeAgent.Proxy;
using NodeAgent.Proxy.Ipvs;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>An in-memory IPVS table with the kernel's rules: no duplicate adds, no deletes of what is absent, real servers only under a virtual server.</summary>
public sealed class FakeIpvs : IIpvs
{
    public readonly Dictionary<string, (IpvsService Service, Dictionary<string, IpvsDestination> Destinations)> Table = new(StringComparer.Ordinal);
    public readonly List<string> Calls = [];

    public void Apply(IReadOnlyList<IpvsOperation> operations, bool reconcile = false)
    {
        foreach (var op in operations)
        {
            Calls.Add(op.ToString());
            string key = op.Service.Key;
            bool exists = Table.TryGetValue(key, out var vs);
            switch (op.Kind)
            {
                case IpvsOperation.Kinds.AddService when exists && !reconcile: throw new NetlinkException(NetlinkException.EEXIST, $"exists: {op}");
                case IpvsOperation.Kinds.AddService or IpvsOperation.Kinds.UpdateService:
                    Table[key] = (op.Service, exists ? vs.Destinations : new(StringComparer.Ordinal));
                    break;
                case IpvsOperation.Kinds.DeleteService when !exists:
                    if (!reconcile) throw new NetlinkException(3, $"no such service: {op}");
                    break;
                case IpvsOperation.Kinds.DeleteService: Table.Remove(key); break;
                case IpvsOperation.Kinds.AddDestination or IpvsOperation.Kinds.UpdateDestination:
                    if (!exists) throw new NetlinkException(3, $"no such service: {op}");
                    if (op.Kind == IpvsOperation.Kinds.AddDestination && vs.Destinations.ContainsKey(op.Destination!.Key) && !reconcile) throw new NetlinkException(NetlinkException.EEXIST, $"exists: {op}");
                    vs.Destinations[op.Destination!.Key] = op.Destination;
                    break;
                case IpvsOperation.Kinds.DeleteDestination:
                    if ((!exists || !vs.Destinations.Remove(op.Destination!.Key)) && !reconcile) throw new NetlinkException(NetlinkException.ENOENT, $"absent: {op}");
                    break;
            }
        }
    }

    /// <summary>The table as "tcp/10.96.0.10:80 rr 0 -> 10.244.0.5:8080,..." lines, sorted.</summary>
    public List<string> Dump() =>
        [.. Table.Values.Select(v => $"{v.Service.Key} {v.Service.Scheduler} {v.Service.PersistenceSeconds} -> {string.Join(",", v.Destinations.Keys.Order(StringComparer.Ordinal))}").Order(StringComparer.Ordinal)];
}

public sealed class FakeIpvsHost : IIpvsHost
{
    public IReadOnlyCollection<string> Addresses = [];
    public IReadOnlyCollection<(string, string, int)> Services = [];
    public IReadOnlyCollection<(string, int)> NodePorts = [];
    public int Writes;
    public bool Damaged;

    public Task SetAddressesAsync(IReadOnlyCollection<string> addresses, CancellationToken ct) { Addresses = [.. addresses]; Writes++; Damaged = false; return Task.CompletedTask; }
    public Task SetMasqueradeAsync(IReadOnlyCollection<(string Address, string Protocol, int Port)> services, IReadOnlyCollection<(string Protocol, int Port)> nodePorts, CancellationToken ct)
    { Services = [.. services]; NodePorts = [.. nodePorts]; return Task.CompletedTask; }
    public Task<bool> IntactAsync(CancellationToken ct) => Task.FromResult(!Damaged);
}

/// <summary>The IPVS mode's sync (IpvsRules) against the fakes: the build machines' kernel has no IPVS.</summary>
public sealed class IpvsRulesTests
{
    private static ProxyEndpoint Ep(string ip, bool local = true) => new(ip, 8080, true, true, false, local);

    private static ProxyServicePort Web(params ProxyEndpoint[] eps) =>
        new("default", "web", "http", "tcp", 80, 30080, ["10.96.0.10"], [], ["198.51.100.7"], false, false, 0, eps);

    [Fact]
    public async Task ServicesBecomeVirtualServersAndOnlyWhatChangesIsTouched()
    {
        var ipvs = new FakeIpvs();
        var host = new FakeIpvsHost();
        var rules = new IpvsRules(ipvs, host, [IPAddress.Parse("172.18.0.2")], "lc");
        rules.SetService("default/web", AddressFamily.InterNetwork, [Web(Ep("10.244.0.5"), Ep("10.244.1.5", local: false))]);
        rules.SetService("default/dns", AddressFamily.InterNetwork,
            [new("default", "dns", "dns", "udp", 53, 0, ["10.96.0.53"], [], [], false, false, 600, [Ep("10.244.0.9")])]);
        Assert.True(await rules.SyncAsync(full: true, CancellationToken.None));
        Assert.Equal([
            "tcp/10.96.0.10:80 lc 0 -> 10.244.0.5:8080,10.244.1.5:8080",
            "tcp/172.18.0.2:30080 lc 0 -> 10.244.0.5:8080,10.244.1.5:8080",
            "tcp/198.51.100.7:80 lc 0 -> 10.244.0.5:8080,10.244.1.5:8080",
            "udp/10.96.0.53:53 lc 600 -> 10.244.0.9:8080",
        ], ipvs.Dump());
        Assert.Equal(["10.96.0.10", "10.96.0.53", "198.51.100.7"], host.Addresses);
        Assert.Equal([("tcp", 30080)], host.NodePorts);
        Assert.Equal(2, rules.ServicePorts);

        // One endpoint of web moves: three real servers change hands, nothing else; the host is not touched.
        ipvs.Calls.Clear();
        int writes = host.Writes;
        rules.SetService("default/web", AddressFamily.InterNetwork, [Web(Ep("10.244.0.5"), Ep("10.244.1.6", local: false))]);
        Assert.True(await rules.SyncAsync(full: false, CancellationToken.None));
        Assert.Equal(6, ipvs.Calls.Count);
        Assert.All(ipvs.Calls, c => Assert.Contains("Destination", c));
        Assert.Equal(writes, host.Writes);
        Assert.False(await rules.SyncAsync(full: false, CancellationToken.None)); // nothing dirty

        // A service goes: its virtual server and its address go.
        rules.RemoveService("default/dns");
        await rules.SyncAsync(full: false, CancellationToken.None);
        Assert.DoesNotContain(ipvs.Dump(), l => l.StartsWith("udp/", StringComparison.Ordinal));
        Assert.Equal(["10.96.0.10", "198.51.100.7"], host.Addresses);
        Assert.Equal(1, rules.ServicePorts);
    }

    [Fact]
    public async Task AFullSyncRestoresWhatSomeoneElseRemovedAndKeepsWhatIsThere()
    {
        var ipvs = new FakeIpvs();
        var host = new FakeIpvsHost();
        var rules = new IpvsRules(ipvs, host, [IPAddress.Parse("172.18.0.2")], "rr");
        rules.SetService("default/web", AddressFamily.InterNetwork, [Web(Ep("10.244.0.5"))]);
        await rules.SyncAsync(full: true, CancellationToken.None);
        var before = ipvs.Dump();

        // ipvsadm -C by hand, and the dummy interface deleted.
        ipvs.Table.Remove("tcp/10.96.0.10:80");
        host.Damaged = true;
        Assert.False(await rules.IntactAsync(CancellationToken.None));
        await rules.SyncAsync(full: true, CancellationToken.None);
        Assert.Equal(before, ipvs.Dump());
        Assert.False(host.Damaged);

        // Again with nothing missing: adds of what exists become updates, nothing fails.
        await rules.SyncAsync(full: true, CancellationToken.None);
        Assert.Equal(before, ipvs.Dump());
    }

    [Fact]
    public async Task ARefusedOperationFailsTheSyncAndTheNextFullSyncConverges()
    {
        var ipvs = new FakeIpvs();
        var host = new FakeIpvsHost();
        var rules = new IpvsRules(ipvs, host, [], "rr");
        rules.SetService("default/web", AddressFamily.InterNetwork, [Web(Ep("10.244.0.5"))]);
        await rules.SyncAsync(full: true, CancellationToken.None);
        // Someone added the same real server by hand before us: a partial add is refused...
        ipvs.Table["tcp/10.96.0.10:80"].Destinations["10.244.0.6:8080"] = new IpvsDestination(IPAddress.Parse("10.244.0.6"), 8080);
        rules.SetService("default/web", AddressFamily.InterNetwork, [Web(Ep("10.244.0.5"), Ep("10.244.0.6"))]);
        await Assert.ThrowsAsync<NetlinkException>(() => rules.SyncAsync(full: false, CancellationToken.None));
        // ...and the full sync the proxy does next converges.
        rules.SetService("default/web", AddressFamily.InterNetwork, [Web(Ep("10.244.0.5"), Ep("10.244.0.6"))]);
        await rules.SyncAsync(full: true, CancellationToken.None);
        Assert.Equal(["tcp/10.96.0.10:80 rr 0 -> 10.244.0.5:8080,10.244.0.6:8080", "tcp/198.51.100.7:80 rr 0 -> 10.244.0.5:8080,10.244.0.6:8080"], ipvs.Dump());
    }
}
