using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace NodeAgent.Metrics;

/// <summary>
/// The kubelet's /metrics/cadvisor in the Prometheus text format: cAdvisor's series names, help
/// texts and labels (container, id, image, name, namespace, pod; cpu="total" on CPU usage;
/// device/major/minor/operation on block I/O), a sample per container, per pod and for the node
/// ("/"), each with the time it was read. Labels are rendered once per cgroup; a scrape writes
/// bytes into the collector's pooled buffer.
/// Tests: NodeAgent.Tests CadvisorTextTests; promtool in the integration tests.
/// </summary>
public static class CadvisorText
{
    /// <summary>container="..",id="..",image="..",name="..",namespace="..",pod=".." (Prometheus label escaping).</summary>
    public static byte[] Labels(Measured m)
    {
        var sb = new StringBuilder(256);
        void Label(string name, string value, bool comma = true)
        {
            sb.Append(name).Append("=\"");
            foreach (char c in value)
                sb.Append(c switch { '\\' => "\\\\", '"' => "\\\"", '\n' => "\\n", _ => c.ToString() });
            sb.Append('"');
            if (comma) sb.Append(',');
        }
        Label("container", m.Container);
        Label("id", m.CgroupName);
        Label("image", m.Image);
        Label("name", m.ContainerId);
        Label("namespace", m.Namespace);
        Label("pod", m.Pod, comma: false);
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private delegate bool Value(Measured m, out double value);

    private sealed record Series(string Name, string Help, string Type, StatParts Part, Value Get, string Extra = "");

    private static readonly Series[] All =
    [
        new("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", "counter", StatParts.Cpu, (Measured m, out double v) => { v = m.Stats.CpuUsageNs / 1e9; return true; }, "cpu=\"total\","),
        new("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", "counter", StatParts.Cpu, (Measured m, out double v) => { v = m.Stats.CpuUserNs / 1e9; return true; }),
        new("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", "counter", StatParts.Cpu, (Measured m, out double v) => { v = m.Stats.CpuSystemNs / 1e9; return true; }),
        new("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", "counter", StatParts.Cpu, (Measured m, out double v) => { v = m.Stats.CfsPeriods; return m.Stats.CpuQuotaUs > 0; }),
        new("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", "counter", StatParts.Cpu, (Measured m, out double v) => { v = m.Stats.CfsThrottledPeriods; return m.Stats.CpuQuotaUs > 0; }),
        new("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", "counter", StatParts.Cpu, (Measured m, out double v) => { v = m.Stats.CfsThrottledNs / 1e9; return m.Stats.CpuQuotaUs > 0; }),
        new("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", "gauge", StatParts.Memory, (Measured m, out double v) => { v = m.Stats.MemoryUsage; return true; }),
        new("container_memory_working_set_bytes", "Current working set in bytes.", "gauge", StatParts.Memory, (Measured m, out double v) => { v = m.Stats.MemoryWorkingSet; return true; }),
        new("container_memory_rss", "Size of RSS in bytes.", "gauge", StatParts.Memory, (Measured m, out double v) => { v = m.Stats.MemoryRss; return true; }),
        new("container_memory_cache", "Number of bytes of page cache memory.", "gauge", StatParts.Memory, (Measured m, out double v) => { v = m.Stats.MemoryCache; return true; }),
        new("container_memory_swap", "Container swap usage in bytes.", "gauge", StatParts.Memory, (Measured m, out double v) => { v = m.Stats.MemorySwap; return true; }),
        new("container_memory_mapped_file", "Size of memory mapped files in bytes.", "gauge", StatParts.Memory, (Measured m, out double v) => { v = m.Stats.MemoryMappedFile; return true; }),
        // cAdvisor types this one a counter; without a _total suffix promtool rejects that, so it is a
        // gauge here (same name and values: queries and dashboards do not see a difference).
        new("container_memory_failcnt", "Number of memory usage hits limits", "gauge", StatParts.Memory, (Measured m, out double v) => { v = m.Stats.MemoryFailCount; return true; }),
        new("container_oom_events_total", "Count of out of memory events observed for the container", "counter", StatParts.Memory, (Measured m, out double v) => { v = m.Stats.OomKills + m.PastOoms; return true; }),
        new("container_spec_memory_limit_bytes", "Memory limit for the container.", "gauge", StatParts.Memory, (Measured m, out double v) => { v = m.Stats.MemoryLimit; return true; }),
        new("container_spec_cpu_period", "CPU period of the container.", "gauge", StatParts.Cpu, (Measured m, out double v) => { v = m.Stats.CpuPeriodUs; return m.Stats.CpuPeriodUs > 0; }),
        new("container_spec_cpu_quota", "CPU quota of the container.", "gauge", StatParts.Cpu, (Measured m, out double v) => { v = m.Stats.CpuQuotaUs; return m.Stats.CpuQuotaUs > 0; }),
        new("container_spec_cpu_shares", "CPU share of the container.", "gauge", StatParts.Cpu, (Measured m, out double v) => { v = m.Stats.CpuShares; return m.Stats.CpuShares > 0; }),
        new("container_processes", "Number of processes running inside the container.", "gauge", StatParts.Pids, (Measured m, out double v) => { v = m.Stats.Pids; return true; }),
        new("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", "gauge", StatParts.None, (Measured m, out double v) => { v = m.StartTimeSeconds; return m.StartTimeSeconds > 0; }),
        new("container_last_seen", "Last time a container was seen by the exporter", "gauge", StatParts.None, (Measured m, out double v) => { v = m.ReadAtMs / 1000; return true; }),
    ];

    private static readonly (string Name, string Help, bool Bytes, bool Write)[] Io =
    [
        ("container_fs_reads_bytes_total", "Cumulative count of bytes read", true, false),
        ("container_fs_writes_bytes_total", "Cumulative count of bytes written", true, true),
        ("container_fs_reads_total", "Cumulative count of reads completed", false, false),
        ("container_fs_writes_total", "Cumulative count of writes completed", false, true),
    ];

    private static readonly (string Name, string Help, int Field)[] Net =
    [
        ("container_network_receive_bytes_total", "Cumulative count of bytes received", 0),
        ("container_network_receive_packets_total", "Cumulative count of packets received", 1),
        ("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", 2),
        ("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", 3),
        ("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", 4),
        ("container_network_transmit_packets_total", "Cumulative count of packets transmitted", 5),
        ("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", 6),
        ("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", 7),
    ];

    // cAdvisor types all four gauges; promtool rejects a gauge named _total, so the inode count
    // (constant for a filesystem) is typed a counter here: same name and values for dashboards.
    private static readonly (string Name, string Help, string Type, int Field)[] Fs =
    [
        ("container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", "gauge", 0),
        ("container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", "gauge", 1),
        ("container_fs_inodes_free", "Number of available Inodes", "gauge", 2),
        ("container_fs_inodes_total", "Number of Inodes", "counter", 3),
    ];

    private static ulong Field(in NetInterface n, int f) => f switch
    {
        0 => n.RxBytes, 1 => n.RxPackets, 2 => n.RxErrors, 3 => n.RxDropped,
        4 => n.TxBytes, 5 => n.TxPackets, 6 => n.TxErrors, _ => n.TxDropped,
    };

    /// <summary>Writes every series for the node, the pods and the containers.</summary>
    public static void Write(StatsCollector c, IBufferWriter<byte> w)
    {
        foreach (var s in All)
        {
            Head(w, s.Name, s.Help, s.Type);
            Samples(w, s, c.Node);
            foreach (var m in c.Pods) Samples(w, s, m);
            foreach (var m in c.Containers) Samples(w, s, m);
        }
        // Network: per pod (the pod's network namespace), as cAdvisor reports it on the pod cgroup.
        foreach (var (name, help, field) in Net)
        {
            Head(w, name, help, "counter");
            foreach (var m in c.Pods)
            {
                if (m.ReadAtMs == 0) continue;
                foreach (var n in m.Network)
                {
                    Ascii(w, name); Ascii(w, "{"); Bytes(w, m.Labels); Ascii(w, ",interface=\""); Bytes(w, n.NameBytes); Ascii(w, "\"} ");
                    Integer(w, (long)Field(n, field)); Ascii(w, " "); Integer(w, m.ReadAtMs); Ascii(w, "\n");
                }
            }
        }
        foreach (var (name, help, bytes, write) in Io)
        {
            Head(w, name, help, "counter");
            IoSamples(w, name, bytes, write, c.Node);
            foreach (var m in c.Pods) IoSamples(w, name, bytes, write, m);
            foreach (var m in c.Containers) IoSamples(w, name, bytes, write, m);
        }
        // Filesystems: the node's (the agent's root directory, and the image filesystem when it is
        // another device) on "/", and each container's writable layer as the runtime measures it.
        foreach (var (name, help, type, field) in Fs)
        {
            Head(w, name, help, type);
            if (c.NodeFs is { Capacity: { } nc } nf) FsSample(w, name, field, nc.UsedBytes, nc, nf.Device, nf.TimeMs, c.Node);
            if (c.ImageFs is { Capacity: { } ic } imf && imf.Device != c.NodeFs?.Device) FsSample(w, name, field, ic.UsedBytes, ic, imf.Device, imf.TimeMs, c.Node);
            foreach (var m in c.Containers)
                if (m.ReadAtMs != 0 && m.Rootfs is { } r && (field == 0 || r.Capacity is not null))
                    FsSample(w, name, field, r.UsedBytes, r.Capacity.GetValueOrDefault(), r.Device, r.TimeMs, m);
        }
    }

    private static void FsSample(IBufferWriter<byte> w, string name, int field, ulong used, NodeAgent.Os.FsCapacity fs, string device, long timeMs, Measured m)
    {
        ulong v = field switch { 0 => used, 1 => fs.CapacityBytes, 2 => fs.InodesFree, _ => fs.Inodes };
        Ascii(w, name); Ascii(w, "{device=\""); LabelValue(w, device); Ascii(w, "\",");
        Bytes(w, m.Labels); Ascii(w, "} "); Integer(w, (long)v); Ascii(w, " "); Integer(w, timeMs); Ascii(w, "\n");
    }

    /// <summary>A label value in UTF-8 with the exposition format's escapes (\\, \", \n).</summary>
    private static void LabelValue(IBufferWriter<byte> w, string value)
    {
        var rest = value.AsSpan();
        while (true)
        {
            int i = rest.IndexOfAny('\\', '"', '\n');
            var plain = i < 0 ? rest : rest[..i];
            w.Advance(Encoding.UTF8.GetBytes(plain, w.GetSpan(Encoding.UTF8.GetMaxByteCount(plain.Length))));
            if (i < 0) return;
            Ascii(w, rest[i] switch { '\\' => "\\\\", '"' => "\\\"", _ => "\\n" });
            rest = rest[(i + 1)..];
        }
    }

    private static void Head(IBufferWriter<byte> w, string name, string help, string type)
    {
        Ascii(w, "# HELP "); Ascii(w, name); Ascii(w, " "); Ascii(w, help); Ascii(w, "\n# TYPE "); Ascii(w, name); Ascii(w, " "); Ascii(w, type); Ascii(w, "\n");
    }

    private static void Samples(IBufferWriter<byte> w, Series s, Measured m)
    {
        if (m.ReadAtMs == 0 || (s.Part != StatParts.None && (m.Stats.Parts & s.Part) == 0) || !s.Get(m, out double v)) return;
        Ascii(w, s.Name); Ascii(w, "{"); Ascii(w, s.Extra); Bytes(w, m.Labels); Ascii(w, "} "); Number(w, v); Ascii(w, " "); Integer(w, m.ReadAtMs); Ascii(w, "\n");
    }

    private static void IoSamples(IBufferWriter<byte> w, string name, bool bytes, bool write, Measured m)
    {
        if (m.ReadAtMs == 0 || (m.Stats.Parts & StatParts.Io) == 0) return;
        foreach (var d in m.Stats.Io)
        {
            ulong v = bytes ? (write ? d.WriteBytes : d.ReadBytes) : (write ? d.WriteOps : d.ReadOps);
            Ascii(w, name); Ascii(w, "{device=\""); Integer(w, d.Major); Ascii(w, ":"); Integer(w, d.Minor); Ascii(w, "\",");
            Bytes(w, m.Labels); Ascii(w, "} "); Integer(w, (long)v); Ascii(w, " "); Integer(w, m.ReadAtMs); Ascii(w, "\n");
        }
    }

    private static void Ascii(IBufferWriter<byte> w, string s)
    {
        var span = w.GetSpan(s.Length);
        for (int i = 0; i < s.Length; i++) span[i] = (byte)s[i];
        w.Advance(s.Length);
    }

    private static void Bytes(IBufferWriter<byte> w, byte[] b)
    {
        b.CopyTo(w.GetSpan(b.Length));
        w.Advance(b.Length);
    }

    private static void Integer(IBufferWriter<byte> w, long v)
    {
        var span = w.GetSpan(24);
        Utf8Formatter.TryFormat(v, span, out int n);
        w.Advance(n);
    }

    private static void Number(IBufferWriter<byte> w, double v)
    {
        var span = w.GetSpan(32);
        int n;
        if (v == Math.Floor(v) && Math.Abs(v) < 1e15) Utf8Formatter.TryFormat((long)v, span, out n);
        else v.TryFormat(span, out n, "R", System.Globalization.CultureInfo.InvariantCulture);
        w.Advance(n);
    }
}
