using System.Globalization;
using System.Text;

namespace NodeAgent.Proxy;

/// <summary>
/// The service proxy's metrics under kube-proxy's names and buckets, so kube-proxy dashboards and
/// alerts work: sync durations (all, full, partial), the last sync and last queued change
/// timestamps, service and endpoint change counters, and network programming latency (from an
/// EndpointSlice's endpoints.kubernetes.io/last-change-trigger-time to the rules being in the
/// kernel). Written from the proxy's loop, read by the metrics endpoint: counters use Interlocked,
/// histograms lock their own buckets. A handful of series do not need a metrics library.
/// </summary>
public sealed class ProxyMetrics
{
    private sealed class Histogram(double[] bounds)
    {
        private readonly long[] _counts = new long[bounds.Length];
        private long _count;
        private double _sum;
        private readonly Lock _lock = new();

        public void Observe(double v)
        {
            lock (_lock)
            {
                _count++;
                _sum += v;
                for (int i = 0; i < bounds.Length; i++) if (v <= bounds[i]) _counts[i]++;
            }
        }

        public void Write(StringBuilder sb, string name, string help)
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(" histogram\n");
            lock (_lock)
            {
                for (int i = 0; i < bounds.Length; i++)
                    sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"{bounds[i].ToString("G", CultureInfo.InvariantCulture)}\"}} {_counts[i]}\n");
                sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"+Inf\"}} {_count}\n");
                sb.Append(CultureInfo.InvariantCulture, $"{name}_sum {_sum.ToString("G17", CultureInfo.InvariantCulture)}\n");
                sb.Append(CultureInfo.InvariantCulture, $"{name}_count {_count}\n");
            }
        }
    }

    // kube-proxy: metrics.ExponentialBuckets(0.001, 2, 15) for sync durations.
    private static double[] SyncBuckets() => [.. Enumerable.Range(0, 15).Select(i => 0.001 * Math.Pow(2, i))];

    // kube-proxy: LinearBuckets(0.25, 0.25, 2) + LinearBuckets(1, 1, 59) + LinearBuckets(60, 5, 12) + LinearBuckets(120, 30, 7).
    private static double[] ProgrammingBuckets() =>
    [
        .. Enumerable.Range(0, 2).Select(i => 0.25 + 0.25 * i), .. Enumerable.Range(0, 59).Select(i => 1.0 + i),
        .. Enumerable.Range(0, 12).Select(i => 60.0 + 5 * i), .. Enumerable.Range(0, 7).Select(i => 120.0 + 30 * i),
    ];

    private readonly Histogram _sync = new(SyncBuckets()), _full = new(SyncBuckets()), _partial = new(SyncBuckets()), _programming = new(ProgrammingBuckets());
    private long _serviceChanges, _endpointChanges, _lastSync, _lastQueued, _failures;

    public void Synced(bool full, TimeSpan took, DateTimeOffset at)
    {
        _sync.Observe(took.TotalSeconds);
        (full ? _full : _partial).Observe(took.TotalSeconds);
        Interlocked.Exchange(ref _lastSync, at.ToUnixTimeMilliseconds());
    }

    public void Queued(DateTimeOffset at) => Interlocked.Exchange(ref _lastQueued, at.ToUnixTimeMilliseconds());
    public void ServiceChanged() => Interlocked.Increment(ref _serviceChanges);
    public void EndpointsChanged() => Interlocked.Increment(ref _endpointChanges);
    public void SyncFailed() => Interlocked.Increment(ref _failures);
    public void Programmed(TimeSpan latency) => _programming.Observe(Math.Max(0, latency.TotalSeconds));

    private readonly NftRuleset.Counts[] _objects = new NftRuleset.Counts[2];
    private readonly int[] _noLocal = new int[2];
    private readonly Lock _gauges = new();

    /// <summary>What the tables hold after a sync (index 0 IPv4, 1 IPv6).</summary>
    public void Objects(int family, NftRuleset.Counts counts) { lock (_gauges) _objects[family] = counts; }

    /// <summary>Services with a Local traffic policy and no local endpoint (index 0 internal, 1 external), as kube-proxy counts them.</summary>
    public void NoLocalEndpoints(int internalPolicy, int externalPolicy) { lock (_gauges) { _noLocal[0] = internalPolicy; _noLocal[1] = externalPolicy; } }

    public string Exposition()
    {
        var sb = new StringBuilder(8192);
        _sync.Write(sb, "kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds");
        _full.Write(sb, "kubeproxy_sync_full_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for full resyncs");
        _partial.Write(sb, "kubeproxy_sync_partial_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for partial resyncs");
        _programming.Write(sb, "kubeproxy_network_programming_duration_seconds", "In Cluster Network Programming Latency in seconds");
        void Gauge(string name, string help, double value)
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(" gauge\n")
              .Append(name).Append(' ').Append(value.ToString("G17", CultureInfo.InvariantCulture)).Append('\n');
        }
        void Counter(string name, string help, long value)
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(" counter\n")
              .Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced", Interlocked.Read(ref _lastSync) / 1000.0);
        Gauge("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "The last time a sync of proxy rules was queued", Interlocked.Read(ref _lastQueued) / 1000.0);
        Counter("kubeproxy_sync_proxy_rules_service_changes_total", "Cumulative proxy rules Service changes", Interlocked.Read(ref _serviceChanges));
        Counter("kubeproxy_sync_proxy_rules_endpoint_changes_total", "Cumulative proxy rules Endpoint changes", Interlocked.Read(ref _endpointChanges));
        Counter("kubeproxy_sync_proxy_rules_nftables_sync_failures_total", "Cumulative proxy nftables sync failures", Interlocked.Read(ref _failures));
        lock (_gauges)
        {
            const string noLocal = "kubeproxy_sync_proxy_rules_no_local_endpoints_total";
            sb.Append("# HELP ").Append(noLocal).Append(" Number of services with a Local traffic policy and no endpoints\n# TYPE ").Append(noLocal).Append(" gauge\n");
            sb.Append(CultureInfo.InvariantCulture, $"{noLocal}{{traffic_policy=\"internal\"}} {_noLocal[0]}\n{noLocal}{{traffic_policy=\"external\"}} {_noLocal[1]}\n");
            // No upstream name exists for nftables rule counts (iptables mode has kubeproxy_sync_proxy_rules_iptables_total{table}).
            const string objects = "nodeagent_proxy_nftables_objects";
            sb.Append("# HELP ").Append(objects).Append(" Objects in the service proxy's nftables table after the last sync, by kind\n# TYPE ").Append(objects).Append(" gauge\n");
            for (int f = 0; f < 2; f++)
            {
                string family = f == 0 ? "IPv4" : "IPv6";
                var c = _objects[f];
                foreach (var (kind, n) in (ReadOnlySpan<(string, int)>)[("chains", c.Chains), ("rules", c.Rules), ("elements", c.Elements), ("sets", c.Sets)])
                    sb.Append(CultureInfo.InvariantCulture, $"{objects}{{ip_family=\"{family}\",kind=\"{kind}\"}} {n}\n");
            }
        }
        return sb.ToString();
    }
}
