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
        SummaryJson.Write(collector, new SummaryNode("node-a", DateTimeOffset.FromUnixTimeSeconds(1795400000), 8L << 30), buffer);
        var summary = System.Text.Json.Nodes.JsonNode.Parse(buffer.WrittenSpan)!;
        Assert.Equal("node-a", summary["node"]!["nodeName"]!.GetValue<string>());
        Assert.Null(summary["node"]!["fs"]); // no filesystem pass without a source
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

    private static NodeAgent.Api.Core.Pod PodWithVolumes() => JsonSerializer.Deserialize("""
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default","uid":"0d5c2a1e-fixture"},
         "spec":{"containers":[{"name":"app","image":"busybox:1.36"}],
                 "volumes":[{"name":"scratch","emptyDir":{}},{"name":"token","secret":{"secretName":"s"}},{"name":"ram","emptyDir":{"medium":"Memory"}}]},
         "status":{"qosClass":"BestEffort","containerStatuses":[{"name":"app","image":"busybox:1.36","containerID":"containerd://3f1c9a",
           "ready":true,"restartCount":0,"imageID":"","state":{"running":{"startedAt":"2026-11-23T08:00:01Z"}}}]}}
        """, ApiJsonContext.Default.Pod)!;

    /// <summary>The runtime's view of the writable layers (a seam fake: ListContainerStats only).</summary>
    private sealed class StubStats(string mountpoint) : NodeAgent.Cri.IContainerStatsManager
    {
        public Task<IReadOnlyList<NodeAgent.Cri.V1.ContainerStats>> ListContainerStatsAsync(NodeAgent.Cri.V1.ContainerStatsFilter? filter, CancellationToken ct) =>
            Task.FromResult<IReadOnlyList<NodeAgent.Cri.V1.ContainerStats>>(
            [
                new()
                {
                    Attributes = new() { Id = "3f1c9a" },
                    WritableLayer = new()
                    {
                        Timestamp = 1795420805_000_000_000, FsId = new() { Mountpoint = mountpoint },
                        UsedBytes = new() { Value = 5 << 20 }, InodesUsed = new() { Value = 7 },
                    },
                },
                new() { Attributes = new() { Id = "gone" } }, // no writable layer figures: skipped
            ]);
    }

    [Fact]
    public async Task FilesystemFiguresComeFromTheRuntimeTheLogDirectoryAndTheVolumes()
    {
        string root = Directory.CreateTempSubdirectory("fs-root-").FullName, logs = Directory.CreateTempSubdirectory("fs-logs-").FullName;
        try
        {
            string logDir = Path.Combine(logs, "default_p_0d5c2a1e-fixture", "app");
            Directory.CreateDirectory(logDir);
            File.WriteAllBytes(Path.Combine(logDir, "0.log"), new byte[1000]);
            string volumes = Path.Combine(root, "pods", "0d5c2a1e-fixture", "volumes");
            Directory.CreateDirectory(Path.Combine(volumes, "kubernetes.io~empty-dir", "scratch", "sub"));
            File.WriteAllBytes(Path.Combine(volumes, "kubernetes.io~empty-dir", "scratch", "sub", "data"), new byte[3000]);
            Directory.CreateDirectory(Path.Combine(volumes, "kubernetes.io~secret", "token"));
            File.WriteAllBytes(Path.Combine(volumes, "kubernetes.io~secret", "token", "t"), new byte[100]);

            var store = new PodStatusStore();
            var time = new FakeTime(DateTimeOffset.Parse("2026-11-23T08:00:10Z", System.Globalization.CultureInfo.InvariantCulture));
            var collector = new StatsCollector(new CgroupReader(Path.Combine(AppContext.BaseDirectory, "Fixtures", "cgroup", "v1")), new CgroupLayout("cgroupfs"),
                store, time, TimeSpan.FromSeconds(10), NullLogger<StatsCollector>.Instance)
            {
                Filesystems = new FsStatsSource(new StubStats(root), new Fakes.FakeRuntime(), root, logs, time, NullLogger<FsStatsSource>.Instance),
            };
            store.Set("0d5c2a1e-fixture", PodWithVolumes());
            collector.CollectOnce();
            await collector.RefreshFilesystemsAsync(TimeSpan.FromSeconds(5), default);

            var buffer = new ArrayBufferWriter<byte>();
            CadvisorText.Write(collector, buffer);
            string text = Encoding.UTF8.GetString(buffer.WrittenSpan);
            string device = NodeAgent.Os.Filesystems.DeviceOf(root);
            Assert.NotEqual("", device);
            const string labels = "container=\"app\",id=\"/kubepods/besteffort/pod0d5c2a1e-fixture/3f1c9a\",image=\"busybox:1.36\",name=\"3f1c9a\",namespace=\"default\",pod=\"p\"";
            Assert.Contains("# TYPE container_fs_usage_bytes gauge\n", text);
            Assert.Contains($"container_fs_usage_bytes{{device=\"{device}\",{labels}}} 5242880 1795420805000\n", text);
            Assert.Contains($"container_fs_limit_bytes{{device=\"{device}\",{labels}}} ", text);
            Assert.Contains($"container_fs_inodes_total{{device=\"{device}\",{labels}}} ", text);
            // The node's own filesystem, on "/".
            Assert.Contains($"container_fs_usage_bytes{{device=\"{device}\",container=\"\",id=\"/\",", text);

            buffer.ResetWrittenCount();
            SummaryJson.Write(collector, new SummaryNode("node-a", DateTimeOffset.FromUnixTimeSeconds(1795400000), 8L << 30), buffer);
            var summary = System.Text.Json.Nodes.JsonNode.Parse(buffer.WrittenSpan)!;
            var node = summary["node"]!;
            Assert.True(node["fs"]!["capacityBytes"]!.GetValue<ulong>() > 0);
            Assert.True(node["fs"]!["inodes"]!.GetValue<ulong>() > 0);
            Assert.Equal(4096UL, node["runtime"]!["imageFs"]!["usedBytes"]!.GetValue<ulong>());
            Assert.Equal(3UL, node["runtime"]!["imageFs"]!["inodesUsed"]!.GetValue<ulong>());
            var pod = summary["pods"]![0]!;
            var ctr = pod["containers"]![0]!;
            Assert.Equal((5UL << 20, 7UL), (ctr["rootfs"]!["usedBytes"]!.GetValue<ulong>(), ctr["rootfs"]!["inodesUsed"]!.GetValue<ulong>()));
            Assert.Equal("2026-11-23T08:00:05Z", ctr["rootfs"]!["time"]!.GetValue<string>());
            Assert.True(ctr["rootfs"]!["capacityBytes"]!.GetValue<ulong>() > 0);
            Assert.Equal(1000UL, ctr["logs"]!["usedBytes"]!.GetValue<ulong>());
            var volumesJson = pod["volume"]!.AsArray().ToDictionary(v => v!["name"]!.GetValue<string>(), v => v!["usedBytes"]!.GetValue<ulong>());
            Assert.Equal(3000UL, volumesJson["scratch"]);
            Assert.Equal(100UL, volumesJson["token"]);
            Assert.False(volumesJson.ContainsKey("ram")); // not set up: no directory, no figures
            // Ephemeral storage: the writable layer, the logs and the disk emptyDir (not the secret).
            Assert.Equal((5UL << 20) + 1000 + 3000, pod["ephemeral-storage"]!["usedBytes"]!.GetValue<ulong>());
        }
        finally
        {
            Directory.Delete(root, recursive: true);
            Directory.Delete(logs, recursive: true);
        }
    }

    [Fact]
    public void TheDeviceOfAPathIsTheSourceOfItsLongestMountPoint()
    {
        string mountinfo = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(mountinfo,
            [
                "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
                "30 22 8:2 / /var/lib rw,relatime shared:2 - xfs /dev/sdb1 rw",
                "31 30 0:40 / /var/lib/containerd/tmp\\040dir rw - tmpfs tmpfs rw",
                "32 22 0:41 / /variable rw - tmpfs other rw",
            ]);
            Assert.Equal("/dev/sdb1", NodeAgent.Os.Filesystems.DeviceOf("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs", mountinfo));
            Assert.Equal("/dev/sdb1", NodeAgent.Os.Filesystems.DeviceOf("/var/lib/", mountinfo));
            Assert.Equal("tmpfs", NodeAgent.Os.Filesystems.DeviceOf("/var/lib/containerd/tmp dir/x", mountinfo));
            Assert.Equal("/dev/sda1", NodeAgent.Os.Filesystems.DeviceOf("/var/log/pods", mountinfo));
            Assert.Equal("/dev/sda1", NodeAgent.Os.Filesystems.DeviceOf("/var", mountinfo));
        }
        finally { File.Delete(mountinfo); }
    }

    [Fact]
    public void TheDeviceLookupReadsALongMountTableAndTheLaterOfStackedMountsWins()
    {
        string mountinfo = Path.GetTempFileName();
        try
        {
            // A busy node: hundreds of container mounts (the table is read as bytes into a pooled
            // buffer that grows), a mount stacked over another, escaped and non-ASCII mount points.
            var lines = new List<string> { "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw" };
            for (int i = 0; i < 400; i++)
                lines.Add($"{100 + i} 22 0:{50 + i} / /run/containerd/io.containerd.runtime.v2.task/k8s.io/{i:x64}/rootfs rw,relatime - overlay overlay rw,lowerdir=/var/lib/containerd/snapshots/{i}/fs");
            lines.Add("600 22 8:2 / /data rw - xfs /dev/sdb1 rw");
            lines.Add("601 22 8:3 / /data rw - xfs /dev/sdc1 rw");
            lines.Add("602 22 0:90 / /mnt/back\\134slash rw - tmpfs with\\040space rw");
            lines.Add("603 22 0:91 / /mnt/é rw - tmpfs accent rw");
            File.WriteAllLines(mountinfo, lines);
            Assert.True(new FileInfo(mountinfo).Length > 64 * 1024);
            Assert.Equal("overlay", NodeAgent.Os.Filesystems.DeviceOf($"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{399:x64}/rootfs/etc", mountinfo));
            Assert.Equal("/dev/sdc1", NodeAgent.Os.Filesystems.DeviceOf("/data/x", mountinfo));
            Assert.Equal("accent", NodeAgent.Os.Filesystems.DeviceOf("/mnt/é/y", mountinfo));
            Assert.Equal("/dev/sda1", NodeAgent.Os.Filesystems.DeviceOf("/mnt/éx", mountinfo));
            Assert.Equal("with space", NodeAgent.Os.Filesystems.DeviceOf("/mnt/back\\slash/z", mountinfo));
            Assert.Equal("/dev/sda1", NodeAgent.Os.Filesystems.DeviceOf("/", mountinfo));
            Assert.Equal("", NodeAgent.Os.Filesystems.DeviceOf("/data", mountinfo + ".missing"));
        }
        finally { File.Delete(mountinfo); }
    }

    private sealed class FakeTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}

public sealed class ProcessMetricsTests
{
    [Fact]
    public async Task TheProcessSeriesMatchProcSelfUnderThePrometheusCollectorsNames()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        NodeAgent.Metrics.ProcessMetrics.Register(registry);
        using var ms = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(ms);
        string text = System.Text.Encoding.UTF8.GetString(ms.ToArray());
        double Value(string name)
        {
            var m = System.Text.RegularExpressions.Regex.Match(text, $@"(?m)^{name} (\S+)$");
            Assert.True(m.Success, $"{name} missing in:\n{text}");
            return double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        long vmRss = long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        Assert.InRange(Value("process_resident_memory_bytes"), vmRss * 0.5, vmRss * 2.0);
        Assert.True(Value("process_virtual_memory_bytes") >= Value("process_resident_memory_bytes"));
        var started = System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime();
        Assert.InRange(Value("process_start_time_seconds"), new DateTimeOffset(started).ToUnixTimeSeconds() - 2, new DateTimeOffset(started).ToUnixTimeSeconds() + 2);
        Assert.True(Value("process_cpu_seconds_total") > 0);
        Assert.True(Value("process_open_fds") > 2);
        Assert.True(Value("process_max_fds") >= Value("process_open_fds"));
        Assert.True(Value("dotnet_gc_last_collection_memory_committed_size_bytes") >= 0);
        Assert.True(Value("dotnet_gc_heap_total_allocated_bytes_total") > 0);
        Assert.Matches(@"(?m)^dotnet_gc_collections_total\{gc_heap_generation=""gen2""\} \d+$", text);
    }
}
