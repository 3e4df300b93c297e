using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace NodeAgent.Proxy.Ipvs;

/// <summary>
/// What IPVS mode needs besides the virtual servers (the seam to the host): the service addresses
/// bound to a dummy interface so the kernel accepts traffic to them locally (where IPVS hooks), and
/// nftables marks so off-cluster clients and NodePort traffic are masqueraded. Not thread safe.
/// </summary>
public interface IIpvsHost
{
    /// <summary>The dummy interface exists and holds exactly <paramref name="addresses"/> (among those this agent put there).</summary>
    Task SetAddressesAsync(IReadOnlyCollection<string> addresses, CancellationToken ct);

    /// <summary>The masquerade table matches these service address/protocol/port triples and NodePorts.</summary>
    Task SetMasqueradeAsync(IReadOnlyCollection<(string Address, string Protocol, int Port)> services, IReadOnlyCollection<(string Protocol, int Port)> nodePorts, CancellationToken ct);

    Task<bool> IntactAsync(CancellationToken ct);
}

/// <summary>
/// The IPVS mode, kube-proxy's IPVS design: a virtual server per service address and port (and
/// per node address for NodePorts) with the usable endpoints as real servers (masquerading
/// forwarding), the scheduler the operator chose, persistence for ClientIP affinity, the
/// service addresses on the dummy interface <c>kube-ipvs0</c>, and nftables (not iptables) for
/// the masquerade marks. A partial sync changes only the dirty services' virtual servers
/// (<see cref="IpvsPlan.Diff"/>); a full one re-asserts everything (an add of what exists becomes an
/// update) and removes what this agent programmed and no longer wants.
/// Tests: NodeAgent.Tests IpvsRulesTests (with fakes; the build machines' kernel has no IPVS).
/// </summary>
public sealed class IpvsRules(IIpvs ipvs, IIpvsHost host, IReadOnlyList<IPAddress> nodeAddresses, string scheduler) : IProxyRules
{
    private readonly Dictionary<string, List<ProxyServicePort>>[] _ports = [new(StringComparer.Ordinal), new(StringComparer.Ordinal)];
    private readonly Dictionary<string, Dictionary<string, (IpvsService Service, List<IpvsDestination> Destinations)>> _applied = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirty = new(StringComparer.Ordinal);
    private bool _hostDirty = true;

    public string Mode => "ipvs";

    public int ServicePorts { get; private set; }

    public void SetService(string key, AddressFamily family, IReadOnlyList<ProxyServicePort> ports)
    {
        var map = _ports[family == AddressFamily.InterNetworkV6 ? 1 : 0];
        if (map.Remove(key, out var old)) ServicePorts -= old.Count;
        if (ports.Count > 0) { map[key] = [.. ports]; ServicePorts += ports.Count; }
        _dirty.Add(key);
    }

    public void RemoveService(string key)
    {
        foreach (var map in _ports)
            if (map.Remove(key, out var old)) ServicePorts -= old.Count;
        _dirty.Add(key);
    }

    private List<ProxyServicePort> PortsOf(string key)
    {
        var all = new List<ProxyServicePort>();
        if (_ports[0].TryGetValue(key, out var v4)) all.AddRange(v4);
        if (_ports[1].TryGetValue(key, out var v6)) all.AddRange(v6);
        return all;
    }

    public async Task<bool> SyncAsync(bool full, CancellationToken ct)
    {
        var keys = new HashSet<string>(full ? [.. _applied.Keys, .. _ports[0].Keys, .. _ports[1].Keys] : _dirty, StringComparer.Ordinal);
        if (keys.Count == 0 && !_hostDirty) return false;
        var operations = new List<IpvsOperation>();
        var next = new Dictionary<string, Dictionary<string, (IpvsService, List<IpvsDestination>)>>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            var desired = IpvsPlan.Desired(PortsOf(key), nodeAddresses, scheduler);
            var before = _applied.GetValueOrDefault(key) ?? [];
            operations.AddRange(full ? Reassert(before, desired) : IpvsPlan.Diff(before, desired));
            next[key] = desired;
        }
        ipvs.Apply(operations, reconcile: full);
        foreach (var (key, desired) in next)
            if (desired.Count == 0) _applied.Remove(key); else _applied[key] = desired;
        _dirty.Clear();

        // The addresses and masquerade marks change only when services or their ports do, not with endpoints.
        if (full || _hostDirty || operations.Exists(o => o.Kind is IpvsOperation.Kinds.AddService or IpvsOperation.Kinds.DeleteService))
        {
            var addresses = new SortedSet<string>(StringComparer.Ordinal);
            var services = new SortedSet<(string, string, int)>();
            var nodePorts = new SortedSet<(string, int)>();
            foreach (var map in _ports)
                foreach (var (_, ports) in map)
                    foreach (var p in ports)
                    {
                        foreach (var ip in p.ClusterIps) { addresses.Add(ip); services.Add((ip, p.Protocol, p.Port)); }
                        foreach (var ip in p.ExternalIps) { addresses.Add(ip); services.Add((ip, p.Protocol, p.Port)); }
                        foreach (var ip in p.LoadBalancerIps) { addresses.Add(ip); services.Add((ip, p.Protocol, p.Port)); }
                        if (p.NodePort > 0) nodePorts.Add((p.Protocol, p.NodePort));
                    }
            await host.SetAddressesAsync(addresses, ct).ConfigureAwait(false);
            await host.SetMasqueradeAsync(services, nodePorts, ct).ConfigureAwait(false);
            _hostDirty = false;
        }
        return operations.Count > 0 || full;
    }

    /// <summary>A full sync: every wanted virtual and real server added (an update where it exists), every other one this agent had removed.</summary>
    private static List<IpvsOperation> Reassert(
        Dictionary<string, (IpvsService Service, List<IpvsDestination> Destinations)> before,
        Dictionary<string, (IpvsService Service, List<IpvsDestination> Destinations)> desired)
    {
        var ops = IpvsPlan.Diff(before, new Dictionary<string, (IpvsService, List<IpvsDestination>)>()); // removals of everything that was there
        ops.RemoveAll(o => desired.ContainsKey(o.Service.Key) && o.Kind == IpvsOperation.Kinds.DeleteService);
        foreach (var (key, (service, destinations)) in desired)
        {
            ops.Add(new(IpvsOperation.Kinds.AddService, service));
            foreach (var d in destinations) ops.Add(new(IpvsOperation.Kinds.AddDestination, service, d));
            if (before.TryGetValue(key, out var was))
                foreach (var d in was.Destinations)
                    if (!destinations.Exists(x => x.Key == d.Key)) ops.Add(new(IpvsOperation.Kinds.DeleteDestination, service, d));
        }
        return ops;
    }

    public async Task<bool> IntactAsync(CancellationToken ct)
    {
        bool intact = await host.IntactAsync(ct).ConfigureAwait(false);
        if (!intact) _hostDirty = true;
        return intact;
    }

    public void Report(ProxyMetrics metrics) { }
}

/// <summary>
/// <see cref="IIpvsHost"/> on Linux: <c>kube-ipvs0</c> (a dummy interface) through <c>ip -batch</c>,
/// the IPVS sysctls kube-proxy sets (conntrack, so the masquerade marks apply to IPVS traffic), and
/// the <c>inet node-agent-ipvs</c> table through <c>nft -f</c>, rewritten whole when services come
/// or go (endpoint changes do not touch it).
/// </summary>
public sealed partial class IpvsHost(string? clusterCidr, ILogger log) : IIpvsHost
{
    public const string Interface = "kube-ipvs0", Table = "node-agent-ipvs";
    private readonly HashSet<string> _bound = new(StringComparer.Ordinal);
    private bool _prepared;

    private async Task PrepareAsync(CancellationToken ct)
    {
        if (_prepared) return;
        foreach (var (path, value) in ((string, string)[])[("/proc/sys/net/ipv4/vs/conntrack", "1"), ("/proc/sys/net/ipv4/vs/expire_nodest_conn", "1"),
                     ("/proc/sys/net/ipv4/vs/expire_quiescent_template", "1"), ("/proc/sys/net/ipv4/ip_forward", "1")])
        {
            try { await File.WriteAllTextAsync(path, value, ct).ConfigureAwait(false); }
            catch (IOException e) { LogSysctl(log, path, e.Message); }
            catch (UnauthorizedAccessException e) { LogSysctl(log, path, e.Message); }
        }
        await RunAsync("ip", ["link", "add", Interface, "type", "dummy"], null, check: false, ct).ConfigureAwait(false);
        await RunAsync("ip", ["link", "set", Interface, "up"], null, check: true, ct).ConfigureAwait(false);
        _prepared = true;
    }

    public async Task SetAddressesAsync(IReadOnlyCollection<string> addresses, CancellationToken ct)
    {
        await PrepareAsync(ct).ConfigureAwait(false);
        var batch = new StringBuilder();
        var wanted = new HashSet<string>(addresses, StringComparer.Ordinal);
        foreach (var a in addresses)
            if (!_bound.Contains(a)) batch.Append("address replace ").Append(a).Append(a.Contains(':') ? "/128" : "/32").Append(" dev ").Append(Interface).Append('\n');
        foreach (var a in _bound)
            if (!wanted.Contains(a)) batch.Append("address del ").Append(a).Append(a.Contains(':') ? "/128" : "/32").Append(" dev ").Append(Interface).Append('\n');
        if (batch.Length > 0) await RunAsync("ip", ["-force", "-batch", "-"], batch.ToString(), check: true, ct).ConfigureAwait(false);
        _bound.Clear();
        _bound.UnionWith(wanted);
    }

    public async Task SetMasqueradeAsync(IReadOnlyCollection<(string Address, string Protocol, int Port)> services, IReadOnlyCollection<(string Protocol, int Port)> nodePorts, CancellationToken ct)
    {
        string t = $"inet {Table}";
        var sb = new StringBuilder();
        sb.Append("add table ").Append(t).Append("\ndelete table ").Append(t).Append("\nadd table ").Append(t).Append('\n');
        sb.Append("add set ").Append(t).Append(" service-ips4 { type ipv4_addr . inet_proto . inet_service ; }\n");
        sb.Append("add set ").Append(t).Append(" service-ips6 { type ipv6_addr . inet_proto . inet_service ; }\n");
        sb.Append("add set ").Append(t).Append(" nodeports { type inet_proto . inet_service ; }\n");
        sb.Append("add chain ").Append(t).Append(" mark-for-masquerade\n");
        sb.Append("add rule ").Append(t).Append(" mark-for-masquerade meta mark set meta mark | 0x").Append(NftOptions.MasqueradeBit.ToString("x", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        foreach (var (chain, hook, priority) in (ReadOnlySpan<(string, string, string)>)[("nat-prerouting", "prerouting", "-100"), ("nat-output", "output", "-100"), ("nat-postrouting", "postrouting", "100")])
            sb.Append("add chain ").Append(t).Append(' ').Append(chain).Append(" { type nat hook ").Append(hook).Append(" priority ").Append(priority).Append(" ; policy accept ; }\n");
        foreach (var chain in (ReadOnlySpan<string>)["nat-prerouting", "nat-output"])
        {
            // Off-cluster clients of a service address, and all NodePort traffic, leave masqueraded
            // (the reply must come back through this node); one rule per family of --cluster-cidr.
            foreach (var cidr in (clusterCidr ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                bool cidrV6 = cidr.Contains(':');
                sb.Append("add rule ").Append(t).Append(' ').Append(chain).Append(cidrV6 ? " ip6" : " ip").Append(" daddr . meta l4proto . th dport @service-ips").Append(cidrV6 ? '6' : '4')
                  .Append(cidrV6 ? " ip6" : " ip").Append(" saddr != ").Append(cidr).Append(" jump mark-for-masquerade\n");
            }
            sb.Append("add rule ").Append(t).Append(' ').Append(chain).Append(" fib daddr type local meta l4proto . th dport @nodeports jump mark-for-masquerade\n");
        }
        sb.Append("add rule ").Append(t).Append(" nat-postrouting meta mark & 0x4000 == 0x4000 masquerade fully-random\n");
        foreach (var (address, protocol, port) in services)
            sb.Append("add element ").Append(t).Append(address.Contains(':') ? " service-ips6 { " : " service-ips4 { ").Append(address).Append(" . ").Append(protocol).Append(" . ")
              .Append(port.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(" }\n");
        foreach (var (protocol, port) in nodePorts)
            sb.Append("add element ").Append(t).Append(" nodeports { ").Append(protocol).Append(" . ").Append(port.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(" }\n");
        await RunAsync("nft", ["-f", "-"], sb.ToString(), check: true, ct).ConfigureAwait(false);
    }

    public async Task<bool> IntactAsync(CancellationToken ct)
    {
        var (link, _) = await RunAsync("ip", ["link", "show", Interface], null, check: false, ct).ConfigureAwait(false);
        var (table, _) = await RunAsync("nft", ["list", "chain", "inet", Table, "nat-postrouting"], null, check: false, ct).ConfigureAwait(false);
        if (link == 0 && table == 0) return true;
        _prepared = false;
        _bound.Clear();
        return false;
    }

    private static async Task<(int Code, string Output)> RunAsync(string file, string[] args, string? stdin, bool check, CancellationToken ct)
    {
        (int code, string output, string error) = (0, "", "");
        try { (code, output, error) = await NodeAgent.Os.Exec.RunAsync(file, args, stdin is null ? null : Encoding.UTF8.GetBytes(stdin), file == "ip" ? "iproute2" : "nftables", ct).ConfigureAwait(false); }
        catch (NodeAgent.Os.ToolMissingException e) { throw new NftException(e.Message); }
        if (check && code != 0) throw new NftException($"{file} {string.Join(' ', args)}: {error.Trim()}");
        return (code, output);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "IPVS mode: cannot set {Path}: {Error}")]
    private static partial void LogSysctl(ILogger log, string path, string error);
}
