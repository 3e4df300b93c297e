using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using NodeAgent.Api.Serialization;
using NodeAgent.Cm;
using NodeAgent.Metrics;
using NodeAgent.Status;

namespace NodeAgent.Bench;

/// <summary>
/// Metrics benchmark (issue 7): the cost of one full collection and of one /metrics/cadvisor
/// render with 10, 50 and 110 pods (one container each), on a cgroup v1 tree laid out as the
/// cgroupfs driver does and filled with the recorded fixture's files (the same files, in the same
/// places, the agent reads on a node; a real kernel tree is not used so that runs are repeatable
/// without 110 live pods). The floor is reading the same files (open/read/close into one buffer,
/// as the reader does) with no parsing and nothing else.
/// Each figure is the median of 200 runs after 20 warm-up runs; allocations are per run, on this
/// thread.
/// </summary>
internal static class MetricsBench
{
    public static int Run(int[] sizes)
    {
        string fixture = Path.Combine(BenchUtil.FindRepo(), "tests", "NodeAgent.Tests", "Fixtures", "cgroup", "v1");
        string src = Path.Combine("kubepods", "besteffort", "pod0d5c2a1e-fixture", "3f1c9a");
        Console.WriteLine($"metrics benchmark: one collection and one /metrics/cadvisor render, cgroup v1 tree from {fixture}");
        Console.WriteLine();
        Console.WriteLine("| pods | collection: time | collection: allocated | floor: read the same files | /metrics/cadvisor render: time | render: allocated | render: bytes | goal |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (int n in sizes)
        {
            string root = Path.Combine(Path.GetTempPath(), "na-metrics-bench-" + Guid.NewGuid().ToString("N")[..6]);
            try
            {
                var store = new PodStatusStore();
                var files = new List<string>();
                foreach (var controller in Directory.GetDirectories(fixture))
                {
                    string c = Path.GetFileName(controller);
                    foreach (var f in Directory.GetFiles(Path.Combine(controller, src)))
                    {
                        // The node's root and, per pod, the pod cgroup and its container's: the fixture's files.
                        Copy(f, Path.Combine(root, c), files);
                        for (int i = 0; i < n; i++)
                        {
                            string pod = Path.Combine(root, c, "kubepods", "besteffort", $"pod{Uid(i)}");
                            Copy(f, pod, files);
                            Copy(f, Path.Combine(pod, Id(i)), files);
                        }
                    }
                }
                var collector = new StatsCollector(new CgroupReader(root, CgroupVersion.V1), new CgroupLayout("cgroupfs"), store, TimeProvider.System,
                    TimeSpan.FromSeconds(10), NullLogger<StatsCollector>.Instance);
                for (int i = 0; i < n; i++) store.Set(Uid(i), Pod(i)); // the collector follows the store's change events
                collector.CollectOnce();
                if (collector.Containers.Count != n) throw new InvalidOperationException($"{collector.Containers.Count} containers found, {n} expected");

                var (collectMs, collectBytes) = Measure(() => collector.CollectOnce());
                var buffer = new byte[64 * 1024];
                var encoded = files.Select(NodeAgent.Os.RawFile.Path).ToArray();
                var (floorMs, _) = Measure(() =>
                {
                    foreach (var f in encoded) NodeAgent.Os.RawFile.Read(f, buffer);
                });
                var output = new ArrayBufferWriter<byte>(1 << 20);
                var (renderMs, renderBytes) = Measure(() => { output.ResetWrittenCount(); CadvisorText.Write(collector, output); });
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n} | {collectMs:F2} ms | {collectBytes / 1024.0:F1} KiB | {floorMs:F2} ms ({files.Count} files) | {renderMs:F2} ms | {renderBytes / 1024.0:F1} KiB | {output.WrittenCount / 1024.0:F0} KiB | {(n == 110 ? "scrape < 20 ms, < 1 MiB" : "")} |"));
            }
            finally
            {
                try { Directory.Delete(root, true); } catch (IOException) { }
            }
        }
        return 0;
    }

    private static string Uid(int i) => $"00000000-0000-4000-8000-{i:D12}";
    private static string Id(int i) => $"c{i:D63}";

    private static void Copy(string file, string dir, List<string> files)
    {
        Directory.CreateDirectory(dir);
        string to = Path.Combine(dir, Path.GetFileName(file));
        File.Copy(file, to, overwrite: true);
        files.Add(to);
    }

    private static NodeAgent.Api.Core.Pod Pod(int i) => JsonSerializer.Deserialize("""
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"bench-NAME","namespace":"default","uid":"UID"},
         "spec":{"containers":[{"name":"app","image":"busybox:1.36"}]},
         "status":{"qosClass":"BestEffort","startTime":"2026-11-23T08:00:00Z","containerStatuses":[{"name":"app","image":"docker.io/library/busybox:1.36","containerID":"containerd://CID",
           "ready":true,"restartCount":0,"imageID":"","state":{"running":{"startedAt":"2026-11-23T08:00:01Z"}}}]}}
        """.Replace("NAME", i.ToString(CultureInfo.InvariantCulture)).Replace("UID", Uid(i)).Replace("CID", Id(i)), ApiJsonContext.Default.Pod)!;

    /// <summary>Median wall time of 200 runs after 20 warm-up runs, and bytes allocated per run on this thread.</summary>
    internal static (double Ms, long Bytes) Measure(Action run)
    {
        for (int i = 0; i < 20; i++) run();
        var times = new double[200];
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < times.Length; i++)
        {
            long t = Stopwatch.GetTimestamp();
            run();
            times[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
        }
        long bytes = (GC.GetAllocatedBytesForCurrentThread() - before) / times.Length;
        Array.Sort(times);
        return (times[times.Length / 2], bytes);
    }
}
