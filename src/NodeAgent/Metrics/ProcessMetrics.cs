using NodeAgent.Api.Hosting;
using Prometheus;

namespace NodeAgent.Metrics;

/// <summary>
/// The process's own footprint on /metrics, as the kubelet has it (see <see cref="ProcessStats"/>
/// for the series and where they come from), as prometheus-net collectors read when scraped.
/// </summary>
public static class ProcessMetrics
{
    public static void Register(CollectorRegistry registry)
    {
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        var rss = f.CreateGauge(ProcessStats.ResidentName, ProcessStats.ResidentHelp);
        var vsize = f.CreateGauge(ProcessStats.VirtualName, ProcessStats.VirtualHelp);
        var cpu = f.CreateCounter(ProcessStats.CpuName, ProcessStats.CpuHelp);
        var start = f.CreateGauge(ProcessStats.StartName, ProcessStats.StartHelp);
        var openFds = f.CreateGauge(ProcessStats.OpenFdsName, ProcessStats.OpenFdsHelp);
        var maxFds = f.CreateGauge(ProcessStats.MaxFdsName, ProcessStats.MaxFdsHelp);
        var heap = f.CreateGauge(ProcessStats.HeapName, ProcessStats.HeapHelp);
        var committed = f.CreateGauge(ProcessStats.CommittedName, ProcessStats.CommittedHelp);
        var allocated = f.CreateCounter(ProcessStats.AllocatedName, ProcessStats.AllocatedHelp);
        var collections = f.CreateCounter(ProcessStats.CollectionsName, ProcessStats.CollectionsHelp,
            new CounterConfiguration { LabelNames = ["gc_heap_generation"] });
        registry.AddBeforeCollectCallback(() =>
        {
            if (ProcessStats.Read() is { } p)
            {
                rss.Set(p.ResidentBytes);
                vsize.Set(p.VirtualBytes);
                cpu.IncTo(p.CpuSeconds);
                start.Set(p.StartTimeSeconds);
                if (p.OpenFds is { } open) openFds.Set(open);
                if (p.MaxFds is { } max) maxFds.Set(max);
            }
            var info = GC.GetGCMemoryInfo();
            heap.Set(info.HeapSizeBytes);
            committed.Set(info.TotalCommittedBytes);
            allocated.IncTo(GC.GetTotalAllocatedBytes());
            var (gen0, gen1, gen2) = ProcessStats.Collections();
            collections.WithLabels("gen0").IncTo(gen0);
            collections.WithLabels("gen1").IncTo(gen1);
            collections.WithLabels("gen2").IncTo(gen2);
        });
    }
}
