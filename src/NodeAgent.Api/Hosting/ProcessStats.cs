using System.Globalization;
using System.Text;

namespace NodeAgent.Api.Hosting;

/// <summary>
/// The process's own footprint as the Prometheus process collector reports it for the kubelet and
/// the apiserver (process_resident_memory_bytes, process_virtual_memory_bytes,
/// process_cpu_seconds_total, process_start_time_seconds, process_open_fds, process_max_fds), read
/// from /proc/self, and the GC's figures under the .NET runtime's metric names (dotnet_gc_*, as the
/// OpenTelemetry Prometheus exporter spells them) where the Go daemons have go_memstats_*. Both
/// daemons expose these, so dashboards that watch the kubelet's and the apiserver's memory and CPU
/// work unchanged.
/// </summary>
public readonly record struct ProcessStats(double ResidentBytes, double VirtualBytes, double CpuSeconds, double StartTimeSeconds, double? OpenFds, double? MaxFds)
{
    private const double ClockTicks = 100; // USER_HZ on Linux

    private static double? s_startTime;

    /// <summary>The figures now, or null where /proc/self/stat cannot be read.</summary>
    public static ProcessStats? Read()
    {
        string text;
        try { text = File.ReadAllText("/proc/self/stat"); } catch (IOException) { return null; }
        // Fields after ") " start at field 3 (state); utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        var f = text.AsSpan(text.LastIndexOf(')') + 2);
        Span<Range> parts = stackalloc Range[24];
        if (f.Split(parts, ' ') < 23) return null;
        long Field(ReadOnlySpan<char> fields, ReadOnlySpan<Range> at, int number) => long.Parse(fields[at[number - 3]], CultureInfo.InvariantCulture);
        double start = s_startTime ??= BootTime().ToUnixTimeSeconds() + Field(f, parts, 22) / ClockTicks;
        double? open = null;
        try { open = Directory.GetFiles("/proc/self/fd").Length; } catch (IOException) { }
        return new ProcessStats(Field(f, parts, 24) * (double)Environment.SystemPageSize, Field(f, parts, 23),
            (Field(f, parts, 14) + Field(f, parts, 15)) / ClockTicks, start, open, MaxOpenFiles());
    }

    /// <summary>When the machine booted (btime in /proc/stat); now if it cannot be read.</summary>
    public static DateTimeOffset BootTime()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/stat"))
                if (line.StartsWith("btime ", StringComparison.Ordinal) && long.TryParse(line.AsSpan(6).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long s))
                    return DateTimeOffset.FromUnixTimeSeconds(s);
        }
        catch (IOException) { }
        return DateTimeOffset.UtcNow;
    }

    private static double? MaxOpenFiles()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    var soft = line.AsSpan(26).TrimStart();
                    int end = soft.IndexOf(' ');
                    return double.TryParse(end < 0 ? soft : soft[..end], CultureInfo.InvariantCulture, out double v) ? v : null;
                }
        }
        catch (IOException) { }
        return null;
    }

    // The series' names and help texts, shared by both daemons' exporters.
    public const string ResidentName = "process_resident_memory_bytes", ResidentHelp = "Resident memory size in bytes.";
    public const string VirtualName = "process_virtual_memory_bytes", VirtualHelp = "Virtual memory size in bytes.";
    public const string CpuName = "process_cpu_seconds_total", CpuHelp = "Total user and system CPU time spent in seconds.";
    public const string StartName = "process_start_time_seconds", StartHelp = "Start time of the process since unix epoch in seconds.";
    public const string OpenFdsName = "process_open_fds", OpenFdsHelp = "Number of open file descriptors.";
    public const string MaxFdsName = "process_max_fds", MaxFdsHelp = "Maximum number of open file descriptors.";
    public const string HeapName = "dotnet_gc_last_collection_heap_size_bytes", HeapHelp = "The managed GC heap size (including fragmentation), as observed during the latest garbage collection.";
    public const string CommittedName = "dotnet_gc_last_collection_memory_committed_size_bytes", CommittedHelp = "The amount of committed virtual memory in use by the .NET GC, as observed during the latest garbage collection.";
    public const string AllocatedName = "dotnet_gc_heap_total_allocated_bytes_total", AllocatedHelp = "The approximate number of bytes allocated on the managed GC heap since the process has started.";
    public const string CollectionsName = "dotnet_gc_collections_total", CollectionsHelp = "The number of garbage collections that have occurred since the process has started.";

    /// <summary>Collections per generation, each counted once (a gen2 collection also collects gen0 and gen1).</summary>
    public static (long Gen0, long Gen1, long Gen2) Collections()
    {
        int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
        return (g0 - g1, g1 - g2, g2);
    }

    /// <summary>All of the above in the Prometheus text format, for an exporter without a client library.</summary>
    public static void WriteExposition(StringBuilder sb)
    {
        void One(string name, string help, string type, double value) =>
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(' ').Append(type).Append('\n')
              .Append(name).Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        if (Read() is { } p)
        {
            One(ResidentName, ResidentHelp, "gauge", p.ResidentBytes);
            One(VirtualName, VirtualHelp, "gauge", p.VirtualBytes);
            One(CpuName, CpuHelp, "counter", p.CpuSeconds);
            One(StartName, StartHelp, "gauge", p.StartTimeSeconds);
            if (p.OpenFds is { } open) One(OpenFdsName, OpenFdsHelp, "gauge", open);
            if (p.MaxFds is { } max) One(MaxFdsName, MaxFdsHelp, "gauge", max);
        }
        var info = GC.GetGCMemoryInfo();
        One(HeapName, HeapHelp, "gauge", info.HeapSizeBytes);
        One(CommittedName, CommittedHelp, "gauge", info.TotalCommittedBytes);
        One(AllocatedName, AllocatedHelp, "counter", GC.GetTotalAllocatedBytes());
        var (gen0, gen1, gen2) = Collections();
        sb.Append("# HELP ").Append(CollectionsName).Append(' ').Append(CollectionsHelp).Append("\n# TYPE ").Append(CollectionsName).Append(" counter\n");
        sb.Append(CultureInfo.InvariantCulture, $"{CollectionsName}{{gc_heap_generation=\"gen0\"}} {gen0}\n");
        sb.Append(CultureInfo.InvariantCulture, $"{CollectionsName}{{gc_heap_generation=\"gen1\"}} {gen1}\n");
        sb.Append(CultureInfo.InvariantCulture, $"{CollectionsName}{{gc_heap_generation=\"gen2\"}} {gen2}\n");
    }
}
