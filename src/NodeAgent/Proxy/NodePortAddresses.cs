using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace NodeAgent.Proxy;

/// <summary>
/// kube-proxy's --nodeport-addresses: which of the node's addresses accept NodePort connections.
/// "primary" (kube-proxy's default in nftables mode): the node's own IPs (--node-ip, or the primary
/// IPv4). A list of CIDRs: every local, non-loopback address inside one of them; a family none of
/// the CIDRs covers gets no NodePorts; 0.0.0.0/0 (::/0) means every local address of the family.
/// Tests: NodeAgent.Tests ProxyRulesTests.
/// </summary>
public sealed class NodePortAddresses
{
    private readonly IPNetwork[] _cidrs;
    public bool Primary { get; }

    private NodePortAddresses(bool primary, IPNetwork[] cidrs)
    {
        Primary = primary;
        _cidrs = cidrs;
    }

    /// <summary>Parses "primary" or "CIDR,CIDR,..." (empty: primary); the message names the flag and the bad entry.</summary>
    public static NodePortAddresses Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Trim() == "primary") return new(true, []);
        var cidrs = new List<IPNetwork>();
        foreach (var entry in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (entry == "primary") throw new ArgumentException("nodePortAddresses: \"primary\" cannot be combined with CIDRs");
            if (!IPNetwork.TryParse(entry, out var n)) throw new ArgumentException($"nodePortAddresses: \"{entry}\" is not a CIDR such as 10.0.0.0/8 (or \"primary\")");
            cidrs.Add(n);
        }
        return new(false, [.. cidrs]);
    }

    /// <summary>True when every local address of <paramref name="family"/> accepts NodePorts (a /0 of that family).</summary>
    public bool MatchesAll(AddressFamily family)
    {
        foreach (var c in _cidrs) if (c.BaseAddress.AddressFamily == family && c.PrefixLength == 0) return true;
        return false;
    }

    /// <summary>
    /// The addresses of <paramref name="family"/> that accept NodePorts, from the node's IPs and the
    /// host's local addresses; null when every local address does (match by address type instead).
    /// </summary>
    public IReadOnlyList<IPAddress>? Resolve(AddressFamily family, IEnumerable<IPAddress> nodeIps, IEnumerable<IPAddress> localAddresses)
    {
        if (MatchesAll(family)) return null;
        var found = new List<IPAddress>();
        if (Primary)
        {
            foreach (var ip in nodeIps) if (ip.AddressFamily == family && !found.Contains(ip)) found.Add(ip);
            return found;
        }
        foreach (var ip in Usable(family, localAddresses))
            foreach (var c in _cidrs)
                if (c.Contains(ip) && !found.Contains(ip)) { found.Add(ip); break; }
        return found;
    }

    /// <summary>
    /// As <see cref="Resolve"/>, but a list also when every local address matches (IPVS needs a
    /// virtual server per address): then every local, non-loopback, non-link-local one.
    /// </summary>
    public IEnumerable<IPAddress> Addresses(AddressFamily family, IEnumerable<IPAddress> nodeIps, IEnumerable<IPAddress> localAddresses) =>
        Resolve(family, nodeIps, localAddresses) ?? Usable(family, localAddresses).Distinct();

    private static IEnumerable<IPAddress> Usable(AddressFamily family, IEnumerable<IPAddress> addresses) =>
        addresses.Where(ip => ip.AddressFamily == family && !IPAddress.IsLoopback(ip) && !ip.IsIPv6LinkLocal);

    /// <summary>The host's unicast addresses, as the kernel has them now.</summary>
    public static IEnumerable<IPAddress> HostAddresses()
    {
        NetworkInterface[] interfaces;
        try { interfaces = NetworkInterface.GetAllNetworkInterfaces(); }
        catch (NetworkInformationException) { yield break; }
        foreach (var i in interfaces)
            foreach (var a in i.GetIPProperties().UnicastAddresses)
                yield return a.Address;
    }
}
