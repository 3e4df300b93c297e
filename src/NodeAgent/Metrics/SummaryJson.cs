using System.Buffers;
using System.Text.Json;

namespace NodeAgent.Metrics;

/// <summary>What the Summary API needs besides the collector's figures: the node's identity and memory.</summary>
public sealed record SummaryNode(string NodeName, DateTimeOffset StartTime, long MemoryCapacityBytes);

/// <summary>
/// The kubelet's Summary API (GET /stats/summary, stats/v1alpha1) from the collector: the node
/// (cpu, memory, fs of the agent's root directory, runtime.imageFs, rlimit), and per pod its
/// reference, start time, cpu, memory, network, process count, volume and ephemeral-storage, and
/// containers (cpu with usageNanoCores and usageCoreNanoSeconds, memory with workingSetBytes,
/// usageBytes, rssBytes, pageFaults, rootfs and logs), with the upstream field names
/// metrics-server and the eviction tooling read. Filesystem figures appear once a filesystem
/// pass has measured them (<see cref="FsStatsSource"/>).
/// </summary>
public static class SummaryJson
{
    public static void Write(StatsCollector c, SummaryNode node, IBufferWriter<byte> output)
    {
        using var w = new Utf8JsonWriter(output);
        w.WriteStartObject();
        w.WriteStartObject("node");
        w.WriteString("nodeName", node.NodeName);
        w.WriteString("startTime", Time(node.StartTime.ToUnixTimeMilliseconds()));
        var n = c.Node;
        if (n.ReadAtMs != 0)
        {
            Cpu(w, n);
            Memory(w, n, available: node.MemoryCapacityBytes > 0 ? (ulong)Math.Max(0, node.MemoryCapacityBytes - (long)n.Stats.MemoryWorkingSet) : null);
        }
        Fs(w, "fs", c.NodeFs);
        if (c.ImageFs is not null)
        {
            w.WriteStartObject("runtime");
            Fs(w, "imageFs", c.ImageFs);
            w.WriteEndObject();
        }
        if (n.ReadAtMs != 0 && (n.Stats.Parts & StatParts.Pids) != 0)
        {
            w.WriteStartObject("rlimit");
            w.WriteString("time", Time(n.ReadAtMs));
            if (MaxPid.Value is { } maxPid) w.WriteNumber("maxpid", maxPid);
            w.WriteNumber("curproc", n.Stats.Pids);
            w.WriteEndObject();
        }
        w.WriteEndObject();

        w.WriteStartArray("pods");
        foreach (var pod in c.Pods)
        {
            w.WriteStartObject();
            w.WriteStartObject("podRef");
            w.WriteString("name", pod.Pod);
            w.WriteString("namespace", pod.Namespace);
            w.WriteString("uid", pod.PodUid);
            w.WriteEndObject();
            if (pod.StartTimeSeconds > 0) w.WriteString("startTime", Time(pod.StartTimeSeconds * 1000));
            w.WriteStartArray("containers");
            foreach (var ctr in c.ContainersOf(pod.PodUid))
            {
                if (ctr.ReadAtMs == 0) continue;
                w.WriteStartObject();
                w.WriteString("name", ctr.Container);
                if (ctr.StartTimeSeconds > 0) w.WriteString("startTime", Time(ctr.StartTimeSeconds * 1000));
                Cpu(w, ctr);
                Memory(w, ctr, available: ctr.Stats.MemoryLimit > 0 ? (ctr.Stats.MemoryLimit > ctr.Stats.MemoryWorkingSet ? ctr.Stats.MemoryLimit - ctr.Stats.MemoryWorkingSet : 0) : null);
                Fs(w, "rootfs", ctr.Rootfs);
                Fs(w, "logs", ctr.Logs);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (pod.ReadAtMs != 0)
            {
                Cpu(w, pod);
                Memory(w, pod, available: null);
                if (pod.Network.Count > 0)
                {
                    w.WriteStartObject("network");
                    w.WriteString("time", Time(pod.ReadAtMs));
                    var first = pod.Network[0];
                    w.WriteString("name", first.Name);
                    w.WriteNumber("rxBytes", first.RxBytes);
                    w.WriteNumber("rxErrors", first.RxErrors);
                    w.WriteNumber("txBytes", first.TxBytes);
                    w.WriteNumber("txErrors", first.TxErrors);
                    w.WriteStartArray("interfaces");
                    foreach (var iface in pod.Network)
                    {
                        w.WriteStartObject();
                        w.WriteString("name", iface.Name);
                        w.WriteNumber("rxBytes", iface.RxBytes);
                        w.WriteNumber("rxErrors", iface.RxErrors);
                        w.WriteNumber("txBytes", iface.TxBytes);
                        w.WriteNumber("txErrors", iface.TxErrors);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                if ((pod.Stats.Parts & StatParts.Pids) != 0)
                {
                    w.WriteStartObject("process_stats");
                    w.WriteNumber("process_count", pod.Stats.Pids);
                    w.WriteEndObject();
                }
            }
            bool anyVolume = false;
            foreach (var (v, usage) in pod.Volumes)
            {
                if (usage is null) continue;
                if (!anyVolume) { w.WriteStartArray("volume"); anyVolume = true; }
                FsObject(w, usage, v.Name);
            }
            if (anyVolume) w.WriteEndArray();
            Fs(w, "ephemeral-storage", pod.EphemeralStorage);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static string Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private static void Cpu(Utf8JsonWriter w, Measured m)
    {
        if ((m.Stats.Parts & StatParts.Cpu) == 0) return;
        w.WriteStartObject("cpu");
        w.WriteString("time", Time(m.ReadAtMs));
        if (m.UsageNanoCores is { } nano) w.WriteNumber("usageNanoCores", nano);
        w.WriteNumber("usageCoreNanoSeconds", m.Stats.CpuUsageNs);
        w.WriteEndObject();
    }

    private static void Memory(Utf8JsonWriter w, Measured m, ulong? available)
    {
        if ((m.Stats.Parts & StatParts.Memory) == 0) return;
        w.WriteStartObject("memory");
        w.WriteString("time", Time(m.ReadAtMs));
        if (available is { } a) w.WriteNumber("availableBytes", a);
        w.WriteNumber("usageBytes", m.Stats.MemoryUsage);
        w.WriteNumber("workingSetBytes", m.Stats.MemoryWorkingSet);
        w.WriteNumber("rssBytes", m.Stats.MemoryRss);
        w.WriteNumber("pageFaults", m.Stats.PageFaults);
        w.WriteNumber("majorPageFaults", m.Stats.MajorPageFaults);
        w.WriteEndObject();
    }

    private static readonly Lazy<long?> MaxPid = new(() =>
        long.TryParse(File.Exists("/proc/sys/kernel/pid_max") ? File.ReadAllText("/proc/sys/kernel/pid_max").Trim() : "", out long v) ? v : null);

    /// <summary>An FsStats object (time, availableBytes, capacityBytes, usedBytes, inodesFree, inodes, inodesUsed); nothing when unknown.</summary>
    private static void Fs(Utf8JsonWriter w, string name, FsFigures? f)
    {
        if (f is null) return;
        w.WritePropertyName(name);
        FsObject(w, f, volumeName: null);
    }

    private static void FsObject(Utf8JsonWriter w, FsFigures f, string? volumeName)
    {
        w.WriteStartObject();
        w.WriteString("time", Time(f.TimeMs));
        if (f.Capacity is { } c)
        {
            w.WriteNumber("availableBytes", c.AvailableBytes);
            w.WriteNumber("capacityBytes", c.CapacityBytes);
        }
        w.WriteNumber("usedBytes", f.UsedBytes);
        if (f.Capacity is { } i)
        {
            w.WriteNumber("inodesFree", i.InodesFree);
            w.WriteNumber("inodes", i.Inodes);
        }
        if (f.InodesUsed is { } used) w.WriteNumber("inodesUsed", used);
        if (volumeName is not null) w.WriteString("name", volumeName);
        w.WriteEndObject();
    }
}
