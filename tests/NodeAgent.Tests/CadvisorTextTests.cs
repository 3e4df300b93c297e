using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using NodeAgent.Api.Serialization;
using NodeAgent.Cm;
using NodeAgent.Metrics;
using NodeAgent.Status;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>/metrics/cadvisor from the recorded v1 tree: cAdvisor's names, labels and values, following the pod store.</summary>
public sealed class CadvisorTextTests
{
    private static NodeAgent.Api.Core.Pod Pod(bool running) => JsonSerializer.Deserialize("""
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default","uid":"0d5c2a1e-fixture"},
         "spec":{"containers":[{"name":"app","image":"busybox:1.36"}]},
         "status":{"qosClass":"BestEffort","startTime":"2026-11-23T08:00:00Z","containerStatuses":[{"name":"app","image":"busybox:1.36","containerID":"containerd://3f1c9a",
           "ready":true,"restartCount":0,"imageID":"","state":{RUNNING}}]}}
        """.Replace("{RUNNING}", running ? """{"running":{"startedAt":"2026-11-23T08:00:01Z"}}""" : """{"terminated":{"exitCode":0}}"""), ApiJsonContext.Default.Pod)!;

    [Fact]
    public void ARunningContainersSeriesCarryCadvisorsLabelsAndTheCgroupsValues()
    {
        var store = new PodStatusStore();
        var time = new FakeTime(DateTimeOffset.Parse("2026-11-23T08:00:10Z", System.Globalization.CultureInfo.InvariantCulture));
        var collector = new StatsCollector(new CgroupReader(Path.Combine(AppContext.BaseDirectory, "Fixtures", "cgroup", "v1")), new CgroupLayout("cgroupfs"),
            store, time, TimeSpan.FromSeconds(10), NullLogger<StatsCollector>.Instance);
        store.Set("0d5c2a1e-fixture", Pod(running: true));
        collector.CollectOnce();
        var buffer = new ArrayBufferWriter<byte>();
        CadvisorText.Write(collector, buffer);
        string text = Encoding.UTF8.GetString(buffer.WrittenSpan);
        const string labels = "container=\"app\",id=\"/kubepods/besteffort/pod0d5c2a1e-fixture/3f1c9a\",image=\"busybox:1.36\",name=\"3f1c9a\",namespace=\"default\",pod=\"p\"";
        const string at = " 1795420810000\n";
        Assert.Contains("# TYPE container_cpu_usage_seconds_total counter\n", text);
        Assert.Contains("container_cpu_usage_seconds_total{cpu=\"total\"," + labels + "} 0.384741623" + at, text);
        Assert.Contains("container_cpu_cfs_throttled_seconds_total{" + labels + "} 0.261238733" + at, text);
        Assert.Contains("container_memory_working_set_bytes{" + labels + "} 1327104" + at, text);
        Assert.Contains("container_memory_rss{" + labels + "} 114688" + at, text);
        Assert.Contains("container_spec_memory_limit_bytes{" + labels + "} 268435456" + at, text);
        Assert.Contains("container_start_time_seconds{" + labels + "} 1795420801" + at, text);
        Assert.Contains("container_fs_reads_bytes_total{device=\"8:0\"," + labels + "} 16777216" + at, text);
        Assert.Contains("container_oom_events_total{" + labels + "} 0" + at, text);

        // /metrics/resource: the kubelet's names and labels for metrics-server.
        buffer.ResetWrittenCount();
        ResourceText.Write(collector, buffer);
        string resource = Encoding.UTF8.GetString(buffer.WrittenSpan);
        Assert.Contains("# TYPE container_cpu_usage_seconds_total counter\ncontainer_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"p\"} 0.384741623" + at, resource);
        Assert.Contains("container_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"p\"} 1327104" + at, resource);
        Assert.Contains("resource_scrape_error 1\n", resource); // the fixture has no root cgroup files

        // /stats/summary: the Summary API's field names, as metrics-server reads them.
        buffer.ResetWrittenCount();
        SummaryJson.Write(collector, new SummaryNode("node-a", DateTimeOffset.FromUnixTimeSeconds(1795400000), 8L << 30, AppContext.BaseDirectory), buffer);
        var summary = System.Text.Json.Nodes.JsonNode.Parse(buffer.WrittenSpan)!;
        Assert.Equal("node-a", summary["node"]!["nodeName"]!.GetValue<string>());
        Assert.True(summary["node"]!["fs"]!["capacityBytes"]!.GetValue<long>() > 0);
        var podStats = summary["pods"]![0]!;
        Assert.Equal(("p", "default", "0d5c2a1e-fixture"), (podStats["podRef"]!["name"]!.GetValue<string>(), podStats["podRef"]!["namespace"]!.GetValue<string>(), podStats["podRef"]!["uid"]!.GetValue<string>()));
        var ctr = podStats["containers"]![0]!;
        Assert.Equal("app", ctr["name"]!.GetValue<string>());
        Assert.Equal(384741623UL, ctr["cpu"]!["usageCoreNanoSeconds"]!.GetValue<ulong>());
        Assert.Equal("2026-11-23T08:00:10Z", ctr["cpu"]!["time"]!.GetValue<string>());
        Assert.Equal(1327104UL, ctr["memory"]!["workingSetBytes"]!.GetValue<ulong>());
        Assert.Equal((831UL, 2UL), (ctr["memory"]!["pageFaults"]!.GetValue<ulong>(), ctr["memory"]!["majorPageFaults"]!.GetValue<ulong>()));
        Assert.Equal(268435456UL - 1327104UL, ctr["memory"]!["availableBytes"]!.GetValue<ulong>());

        // The container stops: its series go with it.
        store.Set("0d5c2a1e-fixture", Pod(running: false));
        collector.CollectOnce();
        buffer.ResetWrittenCount();
        CadvisorText.Write(collector, buffer);
        Assert.DoesNotContain("name=\"3f1c9a\"", Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    private sealed class FakeTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
