using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.AspNetCore.Http;
using NodeAgent.ControlPlane.Metrics;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// The API server's request and watch metrics under kube-apiserver's names and labels, so the
/// same dashboards, SLO queries and the API-load benchmark read them: apiserver_request_total{verb,
/// group, version, resource, subresource, scope, component, code},
/// apiserver_request_duration_seconds{verb, dry_run, group, version, resource, subresource, scope,
/// component} (upstream's buckets; no code label, as upstream), and apiserver_watch_events_total /
/// apiserver_watch_events_sizes{group, version, resource}. Recorded once per request when it
/// finishes (long-running watches included, as upstream: dashboards leave out WATCH and CONNECT)
/// and once per watch event; apiserver_longrunning_requests{verb, group, version, resource,
/// subresource, scope, component}, the requests in progress that upstream counts as long-running
/// (watches, exec/attach/portforward, logs, proxy). Exposed at /metrics in the Prometheus text format.
/// </summary>
public sealed class ApiMetrics
{
    private readonly record struct RequestKey(string Verb, string Group, string Version, string Resource, string Subresource, string Scope, int Code);
    private readonly record struct LatencyKey(string Verb, string DryRun, string Group, string Version, string Resource, string Subresource, string Scope);
    private readonly record struct WatchKey(string Group, string Version, string Resource);

    // Upstream: prometheus.ExponentialBuckets(1024, 2.0, 8).
    private static readonly HistogramBuckets WatchSizeBuckets = HistogramBuckets.Units(1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072);

    private readonly ConcurrentDictionary<RequestKey, long> _requests = new();
    private readonly ConcurrentDictionary<LatencyKey, Histogram> _latency = new();
    private readonly ConcurrentDictionary<WatchKey, Histogram> _watch = new();
    private readonly ConcurrentDictionary<Info, StrongBox<long>> _longRunning = new();

    /// <summary>What the router learnt about a resource request, for <see cref="RecordRequest"/>.</summary>
    public sealed record Info(string Verb, string Group, string Version, string Resource, string Subresource, string Scope);

    public static void Describe(HttpContext ctx, Info info) => ctx.Items[typeof(Info)] = info;

    /// <param name="started">The <see cref="Stopwatch.GetTimestamp"/> at which the request was received.</param>
    public void RecordRequest(HttpContext ctx, long started)
    {
        long elapsed = Stopwatch.GetTimestamp() - started;
        var i = ctx.Items.TryGetValue(typeof(Info), out var o) && o is Info info ? info
            : new Info(ctx.Request.Method.ToUpperInvariant(), "", "", "", "", "");
        string verb = KnownVerbs.Contains(i.Verb) ? i.Verb : "other";
        _requests.AddOrUpdate(new RequestKey(verb, i.Group, i.Version, i.Resource, i.Subresource, i.Scope, ctx.Response.StatusCode), 1, static (_, n) => n + 1);
        _latency.GetOrAdd(new LatencyKey(verb, DryRun(ctx.Request.Query), i.Group, i.Version, i.Resource, i.Subresource, i.Scope),
            static _ => new Histogram(HistogramBuckets.RequestSeconds)).Observe(elapsed);
    }

    /// <summary>
    /// Upstream's validRequestMethods: any other method a client sends is counted as "other", so
    /// that made-up methods cannot grow the number of series without bound.
    /// </summary>
    private static readonly HashSet<string> KnownVerbs = new(StringComparer.Ordinal)
        { "APPLY", "CONNECT", "CREATE", "DELETE", "DELETECOLLECTION", "GET", "LIST", "PATCH", "POST", "PROXY", "PUT", "UPDATE", "WATCH", "WATCHLIST" };

    /// <summary>Upstream's dry_run label: "" without the parameter, "All" for dryRun=All, "invalid" otherwise.</summary>
    private static string DryRun(IQueryCollection query)
    {
        if (!query.TryGetValue("dryRun", out var values) || values.Count == 0) return "";
        foreach (var v in values) if (v != "All") return "invalid";
        return "All";
    }

    /// <summary>Whether upstream counts such a request as long-running: watch and proxy verbs, the streaming subresources.</summary>
    public static bool IsLongRunning(Info i) => i.Verb is "WATCH" or "CONNECT" or "PROXY" || i.Subresource is "log" or "proxy";

    /// <summary>Counts a long-running request in apiserver_longrunning_requests until the scope is disposed.</summary>
    public InProgress LongRunning(Info i)
    {
        var box = _longRunning.GetOrAdd(i, static _ => new StrongBox<long>());
        Interlocked.Increment(ref box.Value);
        return new InProgress(box);
    }

    /// <summary>One request counted in a gauge; <c>default</c> counts nothing.</summary>
    public readonly struct InProgress(StrongBox<long>? box) : IDisposable
    {
        public void Dispose()
        {
            if (box is not null) Interlocked.Decrement(ref box.Value);
        }
    }

    public void RecordWatchEvent(string group, string version, string resource, long bytes) =>
        _watch.GetOrAdd(new WatchKey(group, version, resource), static _ => new Histogram(WatchSizeBuckets)).Observe(bytes);

    public string Exposition()
    {
        var sb = new StringBuilder();
        sb.Append("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n");
        sb.Append("# TYPE apiserver_request_total counter\n");
        foreach (var (k, n) in _requests.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
            sb.Append(CultureInfo.InvariantCulture, $"apiserver_request_total{{code=\"{k.Code}\",component=\"apiserver\",group=\"{k.Group}\",resource=\"{k.Resource}\",scope=\"{k.Scope}\",subresource=\"{k.Subresource}\",verb=\"{k.Verb}\",version=\"{k.Version}\"}} {n}\n");
        sb.Append("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n");
        sb.Append("# TYPE apiserver_request_duration_seconds histogram\n");
        foreach (var (k, h) in _latency.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
            h.WriteTo(sb, "apiserver_request_duration_seconds",
                $"component=\"apiserver\",dry_run=\"{k.DryRun}\",group=\"{k.Group}\",resource=\"{k.Resource}\",scope=\"{k.Scope}\",subresource=\"{k.Subresource}\",verb=\"{k.Verb}\",version=\"{k.Version}\"");
        sb.Append("# HELP apiserver_longrunning_requests Long-running requests (watches, exec, attach, port-forward, logs, proxy) in progress, by verb, group, version, resource, subresource, scope and component.\n");
        sb.Append("# TYPE apiserver_longrunning_requests gauge\n");
        foreach (var (k, n) in _longRunning.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
            sb.Append(CultureInfo.InvariantCulture, $"apiserver_longrunning_requests{{component=\"apiserver\",group=\"{k.Group}\",resource=\"{k.Resource}\",scope=\"{k.Scope}\",subresource=\"{k.Subresource}\",verb=\"{k.Verb}\",version=\"{k.Version}\"}} {Interlocked.Read(ref n.Value)}\n");
        sb.Append("# HELP apiserver_watch_events_total Number of events sent in watch clients\n# TYPE apiserver_watch_events_total counter\n");
        foreach (var (k, h) in _watch.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
            sb.Append(CultureInfo.InvariantCulture, $"apiserver_watch_events_total{{group=\"{k.Group}\",resource=\"{k.Resource}\",version=\"{k.Version}\"}} {h.Count}\n");
        sb.Append("# HELP apiserver_watch_events_sizes Watch event size distribution in bytes\n# TYPE apiserver_watch_events_sizes histogram\n");
        foreach (var (k, h) in _watch.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
            h.WriteTo(sb, "apiserver_watch_events_sizes", $"group=\"{k.Group}\",resource=\"{k.Resource}\",version=\"{k.Version}\"");
        return sb.ToString();
    }
}
