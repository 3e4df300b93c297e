using System.Buffers;
using System.Text;

namespace NodeAgent.Metrics;

/// <summary>
/// The kubelet's /metrics/resource, what metrics-server scrapes: node and per-pod and
/// per-container CPU (cumulative core-seconds) and memory working set, container start times,
/// and resource_scrape_error, with the kubelet's names, help texts and labels (container,
/// namespace, pod), each sample with the time it was read.
/// </summary>
public static class ResourceText
{
    public static void Write(StatsCollector c, IBufferWriter<byte> w)
    {
        var node = c.Node;
        bool nodeOk = node.ReadAtMs != 0;
        Head(w, "container_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the container in core-seconds", "counter");
        foreach (var m in c.Containers) if (Has(m, StatParts.Cpu)) Sample(w, "container_cpu_usage_seconds_total", ContainerLabels(m), m.Stats.CpuUsageNs / 1e9, m.ReadAtMs);
        Head(w, "container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes", "gauge");
        foreach (var m in c.Containers) if (Has(m, StatParts.Memory)) Sample(w, "container_memory_working_set_bytes", ContainerLabels(m), m.Stats.MemoryWorkingSet, m.ReadAtMs);
        Head(w, "container_start_time_seconds", "[STABLE] Start time of the container since unix epoch in seconds", "gauge");
        foreach (var m in c.Containers) if (m.ReadAtMs != 0 && m.StartTimeSeconds > 0) Sample(w, "container_start_time_seconds", ContainerLabels(m), m.StartTimeSeconds, m.ReadAtMs);
        Head(w, "node_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the node in core-seconds", "counter");
        if (nodeOk && Has(node, StatParts.Cpu)) Sample(w, "node_cpu_usage_seconds_total", "", node.Stats.CpuUsageNs / 1e9, node.ReadAtMs);
        Head(w, "node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes", "gauge");
        if (nodeOk && Has(node, StatParts.Memory)) Sample(w, "node_memory_working_set_bytes", "", node.Stats.MemoryWorkingSet, node.ReadAtMs);
        Head(w, "pod_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds", "counter");
        foreach (var m in c.Pods) if (Has(m, StatParts.Cpu)) Sample(w, "pod_cpu_usage_seconds_total", PodLabels(m), m.Stats.CpuUsageNs / 1e9, m.ReadAtMs);
        Head(w, "pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes", "gauge");
        foreach (var m in c.Pods) if (Has(m, StatParts.Memory)) Sample(w, "pod_memory_working_set_bytes", PodLabels(m), m.Stats.MemoryWorkingSet, m.ReadAtMs);
        Head(w, "resource_scrape_error", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", "gauge");
        Sample(w, "resource_scrape_error", "", nodeOk ? 0 : 1, 0);
    }

    private static bool Has(Measured m, StatParts part) => m.ReadAtMs != 0 && (m.Stats.Parts & part) != 0;

    // Rendered per scrape from strings the entry already holds (a few hundred bytes per pod).
    private static string ContainerLabels(Measured m) => $"container=\"{Escape(m.Container)}\",namespace=\"{Escape(m.Namespace)}\",pod=\"{Escape(m.Pod)}\"";
    private static string PodLabels(Measured m) => $"namespace=\"{Escape(m.Namespace)}\",pod=\"{Escape(m.Pod)}\"";

    private static string Escape(string s) => s.IndexOfAny(['\\', '"', '\n']) < 0 ? s : s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    private static void Head(IBufferWriter<byte> w, string name, string help, string type) =>
        Utf8(w, $"# HELP {name} {help}\n# TYPE {name} {type}\n");

    private static void Sample(IBufferWriter<byte> w, string name, string labels, double value, long ms)
    {
        string v = value == Math.Floor(value) && Math.Abs(value) < 1e15 ? ((long)value).ToString(System.Globalization.CultureInfo.InvariantCulture) : value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        Utf8(w, labels.Length == 0 ? $"{name} {v}" : $"{name}{{{labels}}} {v}");
        Utf8(w, ms > 0 ? $" {ms}\n" : "\n");
    }

    private static void Utf8(IBufferWriter<byte> w, string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        Encoding.UTF8.GetBytes(s, w.GetSpan(n));
        w.Advance(n);
    }
}
