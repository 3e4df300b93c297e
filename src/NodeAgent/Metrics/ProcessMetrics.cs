using System.Globalization;
using Prometheus;

namespace NodeAgent.Metrics;

/// <summary>
/// The process's own footprint on /metrics, as the kubelet has it: the Prometheus process
/// collector's series (process_resident_memory_bytes, process_virtual_memory_bytes,
/// process_cpu_seconds_total, process_start_time_seconds, process_open_fds, process_max_fds), so
/// dashboards that watch the kubelet's memory and CPU work unchanged, and the GC's figures under
/// the .NET runtime's metric names (dotnet.gc.* as the OpenTelemetry Prometheus exporter spells
/// them) where the kubelet has go_memstats_*. Read from /proc/self and the GC when scraped.
/// </summary>
public static class ProcessMetrics
{
    private const double ClockTicks = 100; // USER_HZ on Linux

    public static void Register(CollectorRegistry registry)
    {
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        var rss = f.CreateGauge("process_resident_memory_bytes", "Resident memory size in bytes.");
        var vsize = f.CreateGauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
        var cpu = f.CreateCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
        var start = f.CreateGauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.");
        var openFds = f.CreateGauge("process_open_fds", "Number of open file descriptors.");
        var maxFds = f.CreateGauge("process_max_fds", "Maximum number of open file descriptors.");
        var heap = f.CreateGauge("dotnet_gc_last_collection_heap_size_bytes", "The managed GC heap size (including fragmentation), as observed during the latest garbage collection.");
        var committed = f.CreateGauge("dotnet_gc_last_collection_memory_committed_size_bytes", "The amount of committed virtual memory in use by the .NET GC, as observed during the latest garbage collection.");
        var allocated = f.CreateCounter("dotnet_gc_heap_total_allocated_bytes_total", "The approximate number of bytes allocated on the managed GC heap since the process has started.");
        var collections = f.CreateCounter("dotnet_gc_collections_total", "The number of garbage collections that have occurred since the process has started.",
            new CounterConfiguration { LabelNames = ["gc_heap_generation"] });
        double? startTime = null;
        registry.AddBeforeCollectCallback(() =>
        {
            if (ReadStat() is { } stat)
            {
                rss.Set(stat.RssPages * (double)Environment.SystemPageSize);
                vsize.Set(stat.VsizeBytes);
                cpu.IncTo((stat.Utime + stat.Stime) / ClockTicks);
                startTime ??= NodeAgent.Os.HostInfo.BootTime().ToUnixTimeSeconds() + stat.StartTicks / ClockTicks;
                start.Set(startTime.Value);
            }
            try { openFds.Set(Directory.GetFiles("/proc/self/fd").Length); } catch (IOException) { }
            if (MaxOpenFiles() is { } max) maxFds.Set(max);
            var info = GC.GetGCMemoryInfo();
            heap.Set(info.HeapSizeBytes);
            committed.Set(info.TotalCommittedBytes);
            allocated.IncTo(GC.GetTotalAllocatedBytes());
            collections.WithLabels("gen0").IncTo(GC.CollectionCount(0) - GC.CollectionCount(1));
            collections.WithLabels("gen1").IncTo(GC.CollectionCount(1) - GC.CollectionCount(2));
            collections.WithLabels("gen2").IncTo(GC.CollectionCount(2));
        });
    }

    /// <summary>/proc/self/stat after the command name: utime, stime, starttime (ticks), vsize (bytes), rss (pages).</summary>
    private static (long Utime, long Stime, long StartTicks, long VsizeBytes, long RssPages)? ReadStat()
    {
        string text;
        try { text = File.ReadAllText("/proc/self/stat"); } catch (IOException) { return null; }
        // Fields after ") " start at field 3 (state); utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        var f = text.AsSpan(text.LastIndexOf(')') + 2);
        Span<Range> parts = stackalloc Range[24];
        int n = f.Split(parts, ' ');
        if (n < 23) return null;
        return (Field(f, parts, 14), Field(f, parts, 15), Field(f, parts, 22), Field(f, parts, 23), Field(f, parts, 24));
    }

    private static long Field(ReadOnlySpan<char> fields, ReadOnlySpan<Range> parts, int number) =>
        long.Parse(fields[parts[number - 3]], CultureInfo.InvariantCulture);

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
}
