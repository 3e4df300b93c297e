using System.Net;
using NodeAgent.Os;

namespace NodeAgent.Proxy.Ipvs;

/// <summary>One change to the kernel's IPVS table.</summary>
public sealed record IpvsOperation(IpvsOperation.Kinds Kind, IpvsService Service, IpvsDestination? Destination = null)
{
    public enum Kinds { AddService, UpdateService, DeleteService, AddDestination, UpdateDestination, DeleteDestination }

    /// <summary>This operation as its generic netlink message to family <paramref name="family"/>.</summary>
    public void Encode(NetlinkWriter w, ushort family, uint sequence)
    {
        switch (Kind)
        {
            case Kinds.AddService: IpvsNetlink.NewService(w, family, sequence, Service); break;
            case Kinds.UpdateService: IpvsNetlink.SetService(w, family, sequence, Service); break;
            case Kinds.DeleteService: IpvsNetlink.DelService(w, family, sequence, Service); break;
            case Kinds.AddDestination: IpvsNetlink.NewDest(w, family, sequence, Service, Destination!); break;
            case Kinds.UpdateDestination: IpvsNetlink.SetDest(w, family, sequence, Service, Destination!); break;
            case Kinds.DeleteDestination: IpvsNetlink.DelDest(w, family, sequence, Service, Destination!); break;
        }
    }

    public override string ToString() => Destination is null ? $"{Kind} {Service.Key} {Service.Scheduler} persistence={Service.PersistenceSeconds}" : $"{Kind} {Service.Key} -> {Destination.Key} weight={Destination.Weight}";
}

/// <summary>
/// What the IPVS mode wants in the kernel, kube-proxy's IPVS design: a virtual server per
/// service port and address (ClusterIPs, external IPs, load-balancer IPs, and the NodePort on each
/// of the node's addresses), its real servers the usable endpoints (ready, else serving and
/// terminating; only this node's where the traffic policy is Local), persistence for ClientIP
/// affinity. <see cref="Diff"/> turns the last applied table into the wanted one with the fewest
/// operations: unchanged virtual servers and real servers are not touched.
/// Tests: NodeAgent.Tests IpvsPlanTests.
/// </summary>
public static class IpvsPlan
{
    public static Dictionary<string, (IpvsService Service, List<IpvsDestination> Destinations)> Desired(
        IEnumerable<ProxyServicePort> ports, IReadOnlyList<IPAddress> nodeAddresses, string scheduler)
    {
        var result = new Dictionary<string, (IpvsService, List<IpvsDestination>)>(StringComparer.Ordinal);
        void Add(string address, int port, string protocol, int persistence, List<ProxyEndpoint> endpoints)
        {
            if (!IPAddress.TryParse(address, out var ip)) return;
            var service = new IpvsService(ip, protocol, port, scheduler, persistence);
            var destinations = new List<IpvsDestination>(endpoints.Count);
            foreach (var e in endpoints) destinations.Add(new IpvsDestination(IPAddress.Parse(e.Ip), e.Port));
            result[service.Key] = (service, destinations);
        }
        foreach (var p in ports)
        {
            var inside = p.Usable(p.InternalLocal);
            var outside = p.Usable(p.ExternalLocal);
            foreach (var ip in p.ClusterIps) Add(ip, p.Port, p.Protocol, p.AffinitySeconds, inside);
            foreach (var ip in p.ExternalIps) Add(ip, p.Port, p.Protocol, p.AffinitySeconds, outside);
            foreach (var ip in p.LoadBalancerIps) Add(ip, p.Port, p.Protocol, p.AffinitySeconds, outside);
            if (p.NodePort > 0)
            {
                // A service port is built per IP family: its NodePort goes on the node's addresses of that family.
                bool portV6 = (p.ClusterIps.Length > 0 ? p.ClusterIps[0] : p.ExternalIps.Length > 0 ? p.ExternalIps[0] : "").Contains(':');
                foreach (var node in nodeAddresses)
                    if ((node.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6) == portV6)
                        Add(node.ToString(), p.NodePort, p.Protocol, p.AffinitySeconds, outside);
            }
        }
        return result;
    }

    /// <summary>
    /// The operations from <paramref name="applied"/> to <paramref name="desired"/>, in an order the
    /// kernel accepts: gone real servers and virtual servers first, then changed virtual servers,
    /// new virtual servers, then real servers added or reweighted.
    /// </summary>
    public static List<IpvsOperation> Diff(
        IReadOnlyDictionary<string, (IpvsService Service, List<IpvsDestination> Destinations)> applied,
        IReadOnlyDictionary<string, (IpvsService Service, List<IpvsDestination> Destinations)> desired)
    {
        var removals = new List<IpvsOperation>();
        var additions = new List<IpvsOperation>();
        foreach (var (key, old) in applied.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            if (!desired.ContainsKey(key)) removals.Add(new(IpvsOperation.Kinds.DeleteService, old.Service));
        foreach (var (key, want) in desired.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!applied.TryGetValue(key, out var old))
            {
                additions.Add(new(IpvsOperation.Kinds.AddService, want.Service));
                foreach (var d in want.Destinations) additions.Add(new(IpvsOperation.Kinds.AddDestination, want.Service, d));
                continue;
            }
            if (old.Service != want.Service) additions.Add(new(IpvsOperation.Kinds.UpdateService, want.Service));
            var before = old.Destinations.ToDictionary(d => d.Key, StringComparer.Ordinal);
            var after = want.Destinations.ToDictionary(d => d.Key, StringComparer.Ordinal);
            foreach (var d in old.Destinations)
                if (!after.ContainsKey(d.Key)) removals.Add(new(IpvsOperation.Kinds.DeleteDestination, want.Service, d));
            foreach (var d in want.Destinations)
            {
                if (!before.TryGetValue(d.Key, out var was)) additions.Add(new(IpvsOperation.Kinds.AddDestination, want.Service, d));
                else if (was != d) additions.Add(new(IpvsOperation.Kinds.UpdateDestination, want.Service, d));
            }
        }
        removals.AddRange(additions);
        return removals;
    }
}
