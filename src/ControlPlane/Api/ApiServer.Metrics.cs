using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// metrics.k8s.io/v1beta1, what metrics-server serves and <c>kubectl top</c> reads: NodeMetrics and
/// PodMetrics built from each node's kubelet /metrics/resource, scraped every 15 s (metrics-server's
/// default resolution) with the apiserver's kubelet-client certificate. CPU usage is the rate
/// between a node's last two scrapes (their samples' timestamps give the window), memory the
/// latest working set. Until a node has been scraped twice it has no metrics (kubectl says
/// "metrics not available yet", as with metrics-server).
/// </summary>
public sealed partial class ApiServer
{
    public const string MetricsGroup = "metrics.k8s.io", MetricsVersion = "v1beta1";
    public static readonly TimeSpan MetricsResolution = TimeSpan.FromSeconds(15);

    /// <summary>One scrape of a node: its own figures and its containers' (namespace, pod, container → cpu seconds, working set).</summary>
    private sealed record ResourceScrape(long NodeTimestampMs, double NodeCpu, double NodeMemory,
        Dictionary<(string Ns, string Pod, string Container), (double Cpu, double Memory, long TimestampMs)> Containers);

    private readonly ConcurrentDictionary<string, (ResourceScrape? Previous, ResourceScrape Latest)> _usage = new(StringComparer.Ordinal);

    /// <summary>Scrapes every node's /metrics/resource every <see cref="MetricsResolution"/> until cancelled.</summary>
    public async Task ScrapeNodeMetricsAsync(CancellationToken ct)
    {
        var nodes = _resources.Get("", "nodes");
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var (items, _, _) = await _store.ListAsync(nodes.KeyPrefix, null, 0, 0, ct).ConfigureAwait(false);
                var seen = new HashSet<string>(StringComparer.Ordinal);
                await Task.WhenAll(items.Select(async it =>
                {
                    var node = Json.ParseObject(it.Value.Span);
                    string name = node.ObjOrNull("metadata").Str("name") ?? "";
                    lock (seen) seen.Add(name);
                    if (KubeletUrl(node) is not { } url) return;
                    try
                    {
                        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                        timeout.CancelAfter(TimeSpan.FromSeconds(10));
                        string text = await Kubelet.GetStringAsync(url + "/metrics/resource", timeout.Token).ConfigureAwait(false);
                        var scrape = ParseResource(text);
                        _usage.AddOrUpdate(name, _ => (null, scrape), (_, old) => old.Latest.NodeTimestampMs < scrape.NodeTimestampMs ? (old.Latest, scrape) : old);
                    }
                    catch (Exception e) when (e is HttpRequestException or OperationCanceledException or FormatException && !ct.IsCancellationRequested)
                    {
                        LogScrapeFailed(_log, name, e.Message);
                    }
                })).ConfigureAwait(false);
                foreach (var gone in _usage.Keys.Where(k => !seen.Contains(k)).ToList()) _usage.TryRemove(gone, out _);
            }
            catch (Etcd.EtcdUnavailableException) { }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            try { await Task.Delay(MetricsResolution * (0.9 + 0.2 * Random.Shared.NextDouble()), _time, ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    private static string? KubeletUrl(System.Text.Json.Nodes.JsonObject node)
    {
        var status = node.ObjOrNull("status");
        string? address = status.ArrOrNull("addresses").Objects().FirstOrDefault(a => a.Str("type") == "InternalIP").Str("address")
            ?? status.ArrOrNull("addresses").Objects().FirstOrDefault(a => a.Str("type") == "Hostname").Str("address");
        long port = status?.ObjOrNull("daemonEndpoints")?.ObjOrNull("kubeletEndpoint").Long("Port") ?? 10250;
        if (address is null || port <= 0) return null;
        string host = IPAddress.TryParse(address, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address;
        return $"https://{host}:{port}";
    }

    /// <summary>The samples of a kubelet's /metrics/resource that metrics-server uses.</summary>
    private static ResourceScrape ParseResource(string text)
    {
        long nodeTs = 0;
        double nodeCpu = double.NaN, nodeMem = double.NaN;
        var containers = new Dictionary<(string, string, string), (double, double, long)>();
        foreach (var raw in text.Split('\n'))
        {
            if (raw.Length == 0 || raw[0] == '#') continue;
            int brace = raw.IndexOf('{');
            int space = brace >= 0 ? raw.IndexOf(' ', raw.IndexOf('}', brace)) : raw.IndexOf(' ');
            if (space < 0) continue;
            string name = brace >= 0 ? raw[..brace] : raw[..space];
            var rest = raw[(space + 1)..].Split(' ');
            if (!double.TryParse(rest[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double value)) continue;
            long ts = rest.Length > 1 && long.TryParse(rest[1], NumberStyles.None, CultureInfo.InvariantCulture, out long t) ? t : 0;
            switch (name)
            {
                case "node_cpu_usage_seconds_total": nodeCpu = value; nodeTs = ts; break;
                case "node_memory_working_set_bytes": nodeMem = value; break;
                case "container_cpu_usage_seconds_total" or "container_memory_working_set_bytes":
                    var labels = Labels(raw[(brace + 1)..raw.IndexOf('}', brace)]);
                    var key = (labels.GetValueOrDefault("namespace", ""), labels.GetValueOrDefault("pod", ""), labels.GetValueOrDefault("container", ""));
                    var cur = containers.GetValueOrDefault(key, (double.NaN, double.NaN, 0L));
                    containers[key] = name == "container_cpu_usage_seconds_total" ? (value, cur.Item2, ts) : (cur.Item1, value, cur.Item3 == 0 ? ts : cur.Item3);
                    break;
            }
        }
        if (double.IsNaN(nodeCpu)) throw new FormatException("no node_cpu_usage_seconds_total in /metrics/resource");
        return new ResourceScrape(nodeTs, nodeCpu, nodeMem, containers);
    }

    private static Dictionary<string, string> Labels(string text)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        int i = 0;
        while (i < text.Length)
        {
            int eq = text.IndexOf('=', i);
            if (eq < 0 || eq + 1 >= text.Length || text[eq + 1] != '"') break;
            var value = new System.Text.StringBuilder();
            int j = eq + 2;
            for (; j < text.Length && text[j] != '"'; j++)
            {
                if (text[j] == '\\' && j + 1 < text.Length) { j++; value.Append(text[j] == 'n' ? '\n' : text[j]); }
                else value.Append(text[j]);
            }
            labels[text[i..eq]] = value.ToString();
            i = j + 2; // past the quote and the comma
        }
        return labels;
    }

    private static string Cpu(double cores) => $"{Math.Max(0, (long)Math.Round(cores * 1e9)).ToString(CultureInfo.InvariantCulture)}n";
    private static string Memory(double bytes) => $"{Math.Max(0, (long)(bytes / 1024)).ToString(CultureInfo.InvariantCulture)}Ki";
    private static string Window(long ms) => (ms / 1000.0).ToString("0.###", CultureInfo.InvariantCulture) + "s";
    private static string Rfc3339(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>GET /apis/metrics.k8s.io[/v1beta1[/nodes[/NAME] | /pods | /namespaces/NS/pods[/NAME]]].</summary>
    private async Task MetricsApiAsync(HttpContext ctx, string[] seg)
    {
        if (!HttpMethods.IsGet(ctx.Request.Method)) throw new ApiException(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
        if (await HandGroupDiscoveryAsync(ctx, seg, MetricsGroup, MetricsVersion).ConfigureAwait(false)) return;
        var rest = seg.AsSpan(3);
        string? ns = null;
        if (rest.Length >= 3 && rest[0] == "namespaces") { ns = rest[1]; rest = rest[2..]; }
        string resource = rest[0];
        string? name = rest.Length > 1 ? rest[1] : null;
        if (resource == "nodes" && ns is null) await NodeMetricsAsync(ctx, name).ConfigureAwait(false);
        else if (resource == "pods") await PodMetricsAsync(ctx, ns, name).ConfigureAwait(false);
        else throw ApiException.UnknownResource();
    }

    private async Task NodeMetricsAsync(HttpContext ctx, string? only)
    {
        var nodes = _resources.Get("", "nodes");
        var (items, _, _) = await _store.ListAsync(nodes.KeyPrefix, null, 0, 0, ctx.RequestAborted).ConfigureAwait(false);
        var list = new List<(System.Text.Json.Nodes.JsonObject Meta, ResourceScrape Latest, long WindowMs, double Cpu)>();
        foreach (var it in items)
        {
            var meta = Json.ParseObject(it.Value.Span).ObjOrNull("metadata") ?? [];
            string name = meta.Str("name") ?? "";
            if (only is not null && name != only) continue;
            if (!_usage.TryGetValue(name, out var u) || u.Previous is not { } prev) continue;
            long window = u.Latest.NodeTimestampMs - prev.NodeTimestampMs;
            if (window <= 0) continue;
            list.Add((meta, u.Latest, window, (u.Latest.NodeCpu - prev.NodeCpu) / (window / 1000.0)));
        }
        if (only is not null && list.Count == 0) throw ApiException.NotFound(new ResourceRef(MetricsGroup, "nodes"), only);
        await WriteJsonAsync(ctx, 200, w =>
        {
            void Item((System.Text.Json.Nodes.JsonObject Meta, ResourceScrape Latest, long WindowMs, double Cpu) n, bool withKind)
            {
                w.WriteStartObject();
                if (withKind) { w.WriteString("kind", "NodeMetrics"); w.WriteString("apiVersion", $"{MetricsGroup}/{MetricsVersion}"); }
                w.WriteStartObject("metadata");
                w.WriteString("name", n.Meta.Str("name"));
                w.WriteString("creationTimestamp", Rfc3339(n.Latest.NodeTimestampMs));
                if (n.Meta.ObjOrNull("labels") is { } labels) { w.WritePropertyName("labels"); labels.WriteTo(w); }
                w.WriteEndObject();
                w.WriteString("timestamp", Rfc3339(n.Latest.NodeTimestampMs));
                w.WriteString("window", Window(n.WindowMs));
                w.WriteStartObject("usage");
                w.WriteString("cpu", Cpu(n.Cpu));
                w.WriteString("memory", Memory(n.Latest.NodeMemory));
                w.WriteEndObject();
                w.WriteEndObject();
            }
            if (only is not null) { Item(list[0], withKind: true); return; }
            MetricsList(w, "NodeMetricsList", () => { foreach (var n in list) Item(n, withKind: false); });
        }).ConfigureAwait(false);
    }

    private async Task PodMetricsAsync(HttpContext ctx, string? ns, string? only)
    {
        // (namespace, pod) → containers with a rate, from every node scraped twice.
        var pods = new SortedDictionary<(string Ns, string Pod), List<(string Container, double Cpu, double Memory, long Ts, long Window)>>();
        foreach (var (_, u) in _usage)
        {
            if (u.Previous is not { } prev) continue;
            foreach (var ((cns, pod, container), now) in u.Latest.Containers)
            {
                if (ns is not null && cns != ns) continue;
                if (only is not null && pod != only) continue;
                if (!prev.Containers.TryGetValue((cns, pod, container), out var before) || now.TimestampMs <= before.TimestampMs) continue;
                long window = now.TimestampMs - before.TimestampMs;
                double cpu = (now.Cpu - before.Cpu) / (window / 1000.0);
                if (!pods.TryGetValue((cns, pod), out var list)) pods[(cns, pod)] = list = [];
                list.Add((container, cpu, now.Memory, now.TimestampMs, window));
            }
        }
        if (only is not null && pods.Count == 0) throw ApiException.NotFound(new ResourceRef(MetricsGroup, "pods"), only);
        await WriteJsonAsync(ctx, 200, w =>
        {
            void Item((string Ns, string Pod) key, List<(string Container, double Cpu, double Memory, long Ts, long Window)> cs, bool withKind)
            {
                long ts = cs.Max(c => c.Ts);
                w.WriteStartObject();
                if (withKind) { w.WriteString("kind", "PodMetrics"); w.WriteString("apiVersion", $"{MetricsGroup}/{MetricsVersion}"); }
                w.WriteStartObject("metadata");
                w.WriteString("name", key.Pod);
                w.WriteString("namespace", key.Ns);
                w.WriteString("creationTimestamp", Rfc3339(ts));
                w.WriteEndObject();
                w.WriteString("timestamp", Rfc3339(ts));
                w.WriteString("window", Window(cs.Max(c => c.Window)));
                w.WriteStartArray("containers");
                foreach (var c in cs.OrderBy(c => c.Container, StringComparer.Ordinal))
                {
                    w.WriteStartObject();
                    w.WriteString("name", c.Container);
                    w.WriteStartObject("usage");
                    w.WriteString("cpu", Cpu(c.Cpu));
                    w.WriteString("memory", Memory(c.Memory));
                    w.WriteEndObject();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            if (only is not null) { var first = pods.First(); Item(first.Key, first.Value, withKind: true); return; }
            MetricsList(w, "PodMetricsList", () => { foreach (var (key, cs) in pods) Item(key, cs, withKind: false); });
        }).ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "metrics: scraping node {Node} failed: {Error}")]
    private static partial void LogScrapeFailed(ILogger log, string node, string error);

    /// <summary>A metrics.k8s.io list: kind, apiVersion, empty metadata, and the items <paramref name="items"/> writes.</summary>
    private static void MetricsList(System.Text.Json.Utf8JsonWriter w, string kind, Action items)
    {
        w.WriteStartObject();
        w.WriteString("kind", kind);
        w.WriteString("apiVersion", $"{MetricsGroup}/{MetricsVersion}");
        w.WriteStartObject("metadata");
        w.WriteEndObject();
        w.WriteStartArray("items");
        items();
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
