using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using NodeAgent.ControlPlane.Metrics;

namespace NodeAgent.ControlPlane.Storage;

/// <summary>
/// kube-apiserver's storage metrics for the calls <see cref="Store"/> makes to etcd:
/// etcd_request_duration_seconds (the same buckets as apiserver_request_duration_seconds, as
/// upstream), etcd_requests_total and etcd_request_errors_total, each by {operation, group,
/// resource}. A call's series comes from its key (/registry/RESOURCE/...), looked up without
/// allocating; keys outside the served resources (the ClusterIP and NodePort ranges) get a series
/// named after their second segment. Thread-safe.
/// </summary>
public sealed class StorageMetrics
{
    public enum Operation { Get, List, Create, Update, Delete }
    private static readonly string[] OperationNames = ["get", "list", "create", "update", "delete"];

    private sealed class Series(string group, string resource)
    {
        public readonly string Group = group, Resource = resource;
        public readonly Histogram[] Latency = [.. OperationNames.Select(_ => new Histogram(HistogramBuckets.RequestSeconds))];
        public readonly long[] Errors = new long[OperationNames.Length];
    }

    private const string Root = "/registry/";
    private readonly ConcurrentDictionary<string, Series> _bySegment = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Series>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public StorageMetrics(IEnumerable<(string Group, string Resource)> resources)
    {
        _lookup = _bySegment.GetAlternateLookup<ReadOnlySpan<char>>();
        foreach (var (group, resource) in resources) _bySegment.TryAdd(resource, new Series(group, resource));
    }

    /// <param name="started">The <see cref="Stopwatch.GetTimestamp"/> taken before the call was sent.</param>
    public void Observe(Operation op, string key, long started, bool failed)
    {
        long elapsed = Stopwatch.GetTimestamp() - started;
        var series = SeriesOf(key);
        series.Latency[(int)op].Observe(elapsed);
        if (failed) Interlocked.Increment(ref series.Errors[(int)op]);
    }

    private Series SeriesOf(string key)
    {
        var rest = key.AsSpan(key.StartsWith(Root, StringComparison.Ordinal) ? Root.Length : 0);
        int slash = rest.IndexOf('/');
        var segment = slash >= 0 ? rest[..slash] : rest;
        if (_lookup.TryGetValue(segment, out var s)) return s;
        string name = segment.ToString();
        return _bySegment.GetOrAdd(name, static n => new Series("", n));
    }

    public void WriteTo(StringBuilder sb)
    {
        var all = _bySegment.Values.OrderBy(s => s.Group, StringComparer.Ordinal).ThenBy(s => s.Resource, StringComparer.Ordinal).ToList();
        sb.Append("# HELP etcd_request_duration_seconds Etcd request latency in seconds for each operation and object type.\n");
        sb.Append("# TYPE etcd_request_duration_seconds histogram\n");
        foreach (var s in all)
            for (int op = 0; op < OperationNames.Length; op++)
                if (s.Latency[op].Count > 0) s.Latency[op].WriteTo(sb, "etcd_request_duration_seconds", Labels(s, op));
        sb.Append("# HELP etcd_requests_total Etcd request counts for each operation and object type.\n# TYPE etcd_requests_total counter\n");
        foreach (var s in all)
            for (int op = 0; op < OperationNames.Length; op++)
                if (s.Latency[op].Count > 0) sb.Append(CultureInfo.InvariantCulture, $"etcd_requests_total{{{Labels(s, op)}}} {s.Latency[op].Count}\n");
        sb.Append("# HELP etcd_request_errors_total Etcd failed request counts for each operation and object type.\n# TYPE etcd_request_errors_total counter\n");
        foreach (var s in all)
            for (int op = 0; op < OperationNames.Length; op++)
                if (Interlocked.Read(ref s.Errors[op]) is > 0 and var n) sb.Append(CultureInfo.InvariantCulture, $"etcd_request_errors_total{{{Labels(s, op)}}} {n}\n");
    }

    private static string Labels(Series s, int op) => $"group=\"{s.Group}\",operation=\"{OperationNames[op]}\",resource=\"{s.Resource}\"";
}
