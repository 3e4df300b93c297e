using System.Globalization;
using Microsoft.Extensions.Logging;

namespace NodeAgent.Proxy;

/// <summary>Deletes conntrack entries (the seam between the proxy and the kernel's connection table).</summary>
public interface IConntrack
{
    /// <summary>Runs one deletion (<c>conntrack</c> arguments); finding nothing to delete is not an error.</summary>
    Task DeleteAsync(string[] args, CancellationToken ct);
}

/// <summary><see cref="IConntrack"/> through the conntrack tool (conntrack-tools).</summary>
public sealed class ConntrackCli : IConntrack
{
    public async Task DeleteAsync(string[] args, CancellationToken ct)
    {
        (int code, _, string text) = (0, "", "");
        try { (code, _, text) = await NodeAgent.Os.Exec.RunAsync("conntrack", args, null, "conntrack", ct).ConfigureAwait(false); }
        catch (NodeAgent.Os.ToolMissingException e) { throw new NftException(e.Message); }
        // conntrack exits 1 with "0 flow entries have been deleted" when nothing matched.
        if (code != 0 && !text.Contains("0 flow entries", StringComparison.Ordinal))
            throw new NftException($"conntrack {string.Join(' ', args)}: {text.Trim()}");
    }
}

/// <summary>
/// What kube-proxy clears from conntrack when UDP services change, so datagram traffic (DNS) does
/// not keep flowing to an endpoint that is gone, or keep being refused once a service gets its
/// first endpoint: UDP has no connection end, and an entry lives as long as traffic keeps it warm.
/// - an endpoint no longer used by a UDP service port: the entries DNATed to it from the service's
///   addresses (<c>--orig-dst SVC --dst-nat EP</c>) and from its NodePort (<c>--dport NP --dst-nat EP</c>);
/// - a UDP service port that had no usable endpoint and now has one: the entries to its addresses
///   and NodePort, which recorded the refusal.
/// Tests: NodeAgent.Tests ProxyRulesTests.
/// </summary>
public static class ConntrackCleanup
{
    public static List<string[]> Plan(IReadOnlyList<ProxyServicePort> before, IReadOnlyList<ProxyServicePort> after)
    {
        var plan = new List<string[]>();
        foreach (var old in before)
        {
            if (old.Protocol != "udp") continue;
            var now = after.FirstOrDefault(p => p.Key == old.Key);
            var kept = now?.Usable(false).Select(e => e.Ip).ToHashSet(StringComparer.Ordinal) ?? [];
            foreach (var ip in old.Usable(false).Select(e => e.Ip).Distinct(StringComparer.Ordinal))
            {
                if (kept.Contains(ip)) continue;
                foreach (var svc in old.ClusterIps.Concat(old.ExternalIps).Concat(old.LoadBalancerIps))
                    plan.Add(["-D", "-p", "udp", "--orig-dst", svc, "--dst-nat", ip]);
                if (old.NodePort > 0) plan.Add(["-D", "-p", "udp", "--dport", old.NodePort.ToString(CultureInfo.InvariantCulture), "--dst-nat", ip]);
            }
        }
        foreach (var now in after)
        {
            if (now.Protocol != "udp" || now.Usable(false).Count == 0) continue;
            var old = before.FirstOrDefault(p => p.Key == now.Key);
            if (old is not null && old.Usable(false).Count > 0) continue;
            foreach (var svc in now.ClusterIps.Concat(now.ExternalIps).Concat(now.LoadBalancerIps))
                plan.Add(["-D", "-p", "udp", "--orig-dst", svc]);
            if (now.NodePort > 0) plan.Add(["-D", "-p", "udp", "--dport", now.NodePort.ToString(CultureInfo.InvariantCulture)]);
        }
        return plan;
    }
}
