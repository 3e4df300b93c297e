using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// The API server's request and watch counters under kube-apiserver's names, so the same
/// dashboards and the API-load benchmark read them: apiserver_request_total{verb, group, version,
/// resource, subresource, scope, component, code} and apiserver_watch_events_total /
/// apiserver_watch_events_sizes{group, version, resource}. Recorded once per request when it
/// finishes (long-running watches included) and once per watch event; exposed at /metrics in the
/// Prometheus text format. A handful of counters do not need a metrics library.
/// </summary>
public sealed class ApiMetrics
{
    private readonly record struct RequestKey(string Verb, string Group, string Version, string Resource, string Subresource, string Scope, int Code);
    private readonly record struct WatchKey(string Group, string Version, string Resource);

    private sealed class WatchSizes
    {
        public long Count, Sum;
        public readonly long[] Buckets = new long[Bounds.Length];
    }

    // Upstream: prometheus.ExponentialBuckets(1024, 2.0, 8).
    private static readonly long[] Bounds = [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];

    private readonly ConcurrentDictionary<RequestKey, long> _requests = new();
    private readonly ConcurrentDictionary<WatchKey, WatchSizes> _watch = new();

    /// <summary>What the router learnt about a resource request, for <see cref="RecordRequest"/>.</summary>
    public sealed record Info(string Verb, string Group, string Version, string Resource, string Subresource, string Scope);

    public static void Describe(HttpContext ctx, Info info) => ctx.Items[typeof(Info)] = info;

    public void RecordRequest(HttpContext ctx)
    {
        var i = ctx.Items.TryGetValue(typeof(Info), out var o) && o is Info info ? info
            : new Info(ctx.Request.Method.ToUpperInvariant(), "", "", "", "", "");
        _requests.AddOrUpdate(new RequestKey(i.Verb, i.Group, i.Version, i.Resource, i.Subresource, i.Scope, ctx.Response.StatusCode), 1, static (_, n) => n + 1);
    }

    public void RecordWatchEvent(string group, string version, string resource, long bytes)
    {
        var s = _watch.GetOrAdd(new WatchKey(group, version, resource), static _ => new WatchSizes());
        Interlocked.Increment(ref s.Count);
        Interlocked.Add(ref s.Sum, bytes);
        for (int b = 0; b < Bounds.Length; b++)
            if (bytes <= Bounds[b]) Interlocked.Increment(ref s.Buckets[b]);
    }

    public string Exposition()
    {
        var sb = new StringBuilder();
        sb.Append("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n");
        sb.Append("# TYPE apiserver_request_total counter\n");
        foreach (var (k, n) in _requests.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
            sb.Append(CultureInfo.InvariantCulture, $"apiserver_request_total{{code=\"{k.Code}\",component=\"apiserver\",group=\"{k.Group}\",resource=\"{k.Resource}\",scope=\"{k.Scope}\",subresource=\"{k.Subresource}\",verb=\"{k.Verb}\",version=\"{k.Version}\"}} {n}\n");
        sb.Append("# HELP apiserver_watch_events_total Number of events sent in watch clients\n# TYPE apiserver_watch_events_total counter\n");
        foreach (var (k, s) in _watch.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
            sb.Append(CultureInfo.InvariantCulture, $"apiserver_watch_events_total{{group=\"{k.Group}\",resource=\"{k.Resource}\",version=\"{k.Version}\"}} {Interlocked.Read(ref s.Count)}\n");
        sb.Append("# HELP apiserver_watch_events_sizes Watch event size distribution in bytes\n# TYPE apiserver_watch_events_sizes histogram\n");
        foreach (var (k, s) in _watch.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
        {
            string labels = $"group=\"{k.Group}\",resource=\"{k.Resource}\",version=\"{k.Version}\"";
            for (int b = 0; b < Bounds.Length; b++)
                sb.Append(CultureInfo.InvariantCulture, $"apiserver_watch_events_sizes_bucket{{{labels},le=\"{Bounds[b]}\"}} {Interlocked.Read(ref s.Buckets[b])}\n");
            long count = Interlocked.Read(ref s.Count);
            sb.Append(CultureInfo.InvariantCulture, $"apiserver_watch_events_sizes_bucket{{{labels},le=\"+Inf\"}} {count}\n");
            sb.Append(CultureInfo.InvariantCulture, $"apiserver_watch_events_sizes_sum{{{labels}}} {Interlocked.Read(ref s.Sum)}\n");
            sb.Append(CultureInfo.InvariantCulture, $"apiserver_watch_events_sizes_count{{{labels}}} {count}\n");
        }
        return sb.ToString();
    }
}
