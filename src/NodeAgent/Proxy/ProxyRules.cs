using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace NodeAgent.Proxy;

/// <summary>
/// How a proxy mode programs the kernel (the seam between the proxy's loop and nftables or IPVS).
/// Owned by the proxy's single loop: not thread safe. The loop tells it what each service's ports
/// are, per IP family, then asks it to sync; a sync that throws (<see cref="NftException"/>,
/// <see cref="NodeAgent.Os.NetlinkException"/>) leaves the last good state in place as far as the
/// kernel allows, and the next sync is a full one.
/// </summary>
public interface IProxyRules
{
    /// <summary>"nftables" or "ipvs".</summary>
    string Mode { get; }

    /// <summary>Replaces the service ports of service <paramref name="key"/> (namespace/name) for one family.</summary>
    void SetService(string key, AddressFamily family, IReadOnlyList<ProxyServicePort> ports);

    void RemoveService(string key);

    /// <summary>Writes what changed since the last sync, or everything when <paramref name="full"/>; false when there was nothing to write.</summary>
    Task<bool> SyncAsync(bool full, CancellationToken ct);

    /// <summary>A cheap check that what was written is still there; false makes the next sync full.</summary>
    Task<bool> IntactAsync(CancellationToken ct);

    /// <summary>Service ports programmed (both families).</summary>
    int ServicePorts { get; }

    /// <summary>Puts the mode's own gauges (object counts) into <paramref name="metrics"/>.</summary>
    void Report(ProxyMetrics metrics);
}

/// <summary>
/// The nftables mode: one <see cref="NftRuleset"/> per family (the IPv6 table only once there is
/// an IPv6 service port), full writes through <c>nft -f</c>, deltas as netlink batches.
/// </summary>
public sealed partial class NftablesRules(INftables nft, NftOptions options, ILogger log,
    Func<AddressFamily, IReadOnlyList<System.Net.IPAddress>?>? nodePortIps = null) : IProxyRules
{
    private readonly NftRuleset[] _rulesets = [new(AddressFamily.InterNetwork, options), new(AddressFamily.InterNetworkV6, options)];
    /// <summary>Families whose table this process has written.</summary>
    private readonly HashSet<string> _written = new(StringComparer.Ordinal);

    public string Mode => "nftables";

    public int ServicePorts => _rulesets[0].ServicePorts + _rulesets[1].ServicePorts;

    private NftRuleset Of(AddressFamily family) => family == AddressFamily.InterNetworkV6 ? _rulesets[1] : _rulesets[0];

    public void SetService(string key, AddressFamily family, IReadOnlyList<ProxyServicePort> ports) => Of(family).SetService(key, ports);

    public void RemoveService(string key)
    {
        foreach (var r in _rulesets) r.RemoveService(key);
    }

    /// <summary>The IPv4 table always; the IPv6 one once there is an IPv6 service port (and from then on, so removals reach it).</summary>
    private bool Wanted(NftRuleset r) => r.Family == "ip" || r.ServicePorts > 0 || _written.Contains(r.Family);

    public async Task<bool> SyncAsync(bool full, CancellationToken ct)
    {
        bool applied = false;
        foreach (var r in _rulesets)
        {
            if (!Wanted(r)) continue;
            try
            {
                if (full || !_written.Contains(r.Family))
                {
                    // The NodePort addresses are looked up again at every full write (start, repair, periodic resync).
                    r.NodePortIps = nodePortIps?.Invoke(r.Family == "ip6" ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork);
                    await nft.ApplyAsync(r.FullUtf8(), ct).ConfigureAwait(false);
                }
                else if (r.Delta() is { } delta) await nft.ApplyAsync(delta, ct).ConfigureAwait(false);
                else continue;
            }
            catch { r.Abandon(); throw; }
            r.Commit();
            _written.Add(r.Family);
            applied = true;
        }
        return applied;
    }

    public async Task<bool> IntactAsync(CancellationToken ct)
    {
        bool intact = true;
        foreach (var r in _rulesets)
            if (_written.Contains(r.Family) && !await nft.IntactAsync(r.Family, r.Table, ct).ConfigureAwait(false))
            {
                LogDamaged(log, r.Family, r.Table);
                intact = false;
            }
        return intact;
    }

    public void Report(ProxyMetrics metrics)
    {
        metrics.Objects(0, _rulesets[0].Committed);
        metrics.Objects(1, _rulesets[1].Committed);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "the {Family} {Table} table was changed by someone else; rewriting it")]
    private static partial void LogDamaged(ILogger log, string family, string table);
}
