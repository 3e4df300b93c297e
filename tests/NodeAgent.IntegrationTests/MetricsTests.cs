using System.Globalization;
using System.Text.RegularExpressions;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>The agent's cAdvisor (/metrics/cadvisor) against real pods on containerd and the kernel's cgroups.</summary>
[Collection(NodeCollection.Name)]
public sealed partial class MetricsTests(NodeFixture node)
{
    private sealed record Sample(string Name, Dictionary<string, string> Labels, double Value, long TimestampMs);

    [GeneratedRegex("^([a-z_]+)\\{([^}]*)\\} (\\S+) (\\d+)$")]
    private static partial Regex SampleLine();

    [GeneratedRegex("([a-z_]+)=\"((?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex LabelPair();

    private async Task<List<Sample>> ScrapeAsync()
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync($"http://127.0.0.1:{node.Port}/metrics/cadvisor");
        var samples = new List<Sample>();
        foreach (var line in text.Split('\n'))
        {
            var m = SampleLine().Match(line);
            if (!m.Success) continue;
            var labels = LabelPair().Matches(m.Groups[2].Value).ToDictionary(p => p.Groups[1].Value, p => p.Groups[2].Value);
            samples.Add(new Sample(m.Groups[1].Value, labels, double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture)));
        }
        return samples;
    }

    private static Sample? Find(List<Sample> samples, string name, string pod, string container) =>
        samples.FirstOrDefault(s => s.Name == name && s.Labels.GetValueOrDefault("pod") == pod && s.Labels.GetValueOrDefault("container") == container);

    private async Task PrometheusFindsTheBurnerAsync()
    {
        string dir = Path.Combine(node.Work, "prometheus-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        int port = NodeFixture.FreePort();
        await File.WriteAllTextAsync(Path.Combine(dir, "prometheus.yml"), $$"""
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            scrape_configs:
            - job_name: kubelet-cadvisor
              metrics_path: /metrics/cadvisor
              static_configs: [{targets: ["127.0.0.1:{{node.Port}}"]}]
            - job_name: kubelet
              metrics_path: /metrics
              static_configs: [{targets: ["127.0.0.1:{{node.Port}}"]}]
            """);
        var psi = new System.Diagnostics.ProcessStartInfo("prometheus",
            [$"--config.file={dir}/prometheus.yml", $"--storage.tsdb.path={dir}/data", $"--web.listen-address=127.0.0.1:{port}"])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        System.Diagnostics.Process prom;
        try { prom = System.Diagnostics.Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"prometheus is required (apt-get install prometheus): {e.Message}"); }
        var log = new System.Text.StringBuilder();
        prom.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        prom.BeginErrorReadLine();
        prom.BeginOutputReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            System.Text.Json.Nodes.JsonNode? result = null;
            string query = Uri.EscapeDataString("""container_cpu_usage_seconds_total{job="kubelet-cadvisor",pod="burner",container="burn"}""");
            try
            {
                await node.WaitForAsync("Prometheus returning the burner's CPU series", async () =>
                {
                    try
                    {
                        var body = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/api/v1/query?query={query}"))!;
                        result = body["data"]?["result"]?.AsArray().FirstOrDefault();
                        return result is not null;
                    }
                    catch (HttpRequestException) { return false; }
                }, TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException e) { throw new TimeoutException(e.Message + "\n--- prometheus ---\n" + NodeFixture.Tail(log.ToString(), 20)); }
            var labels = result!["metric"]!;
            Assert.Equal("default", labels["namespace"]!.GetValue<string>());
            Assert.Equal("total", labels["cpu"]!.GetValue<string>());
            Assert.StartsWith("/kubepods/", labels["id"]!.GetValue<string>());
            Assert.EndsWith("busybox:1.36", labels["image"]!.GetValue<string>());
            Assert.True(labels["name"]!.GetValue<string>().Length >= 12);
            // And irate() over it (the last two reads; the samples carry the read times, ~10 s apart): about one core.
            string rate = Uri.EscapeDataString("""irate(container_cpu_usage_seconds_total{job="kubelet-cadvisor",pod="burner",container="burn"}[35s])""");
            double cores = 0;
            await node.WaitForAsync("a rate() of the burner", async () =>
            {
                var body = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/api/v1/query?query={rate}"))!;
                var v = body["data"]?["result"]?.AsArray().FirstOrDefault()?["value"]?[1]?.GetValue<string>();
                return v is not null && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out cores) && cores > 0;
            }, TimeSpan.FromSeconds(40));
            Assert.InRange(cores, 0.5, 1.5);
            // The kubelet job's own series are there too.
            var up = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/api/v1/query?query={Uri.EscapeDataString("kubelet_running_pods")}"))!;
            Assert.NotNull(up["data"]?["result"]?.AsArray().FirstOrDefault());
        }
        finally
        {
            try { prom.Kill(); await prom.WaitForExitAsync(); } catch (InvalidOperationException) { }
            prom.Dispose();
        }
    }

    [Fact]
    public async Task ABurnerAFillerAndAnOomKillShowInTheContainerSeries()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "metrics.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: burner, namespace: default}
            spec:
              terminationGracePeriodSeconds: 1
              containers: [{name: burn, image: busybox:1.36, command: [sh, -c, "while :; do :; done"]}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: filler, namespace: default}
            spec:
              terminationGracePeriodSeconds: 1
              containers:
              - name: fill
                image: busybox:1.36
                command: [sh, -c, "head -c 41943040 /dev/zero > /dev/shm/fill; head -c 8388608 /dev/zero > /disk; echo filled; sleep 3600"]
                readinessProbe: {exec: {command: [test, -f, /dev/shm/fill]}, periodSeconds: 1}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: oomer, namespace: default}
            spec:
              terminationGracePeriodSeconds: 1
              volumes: [{name: data, emptyDir: {}}]
              containers:
              - name: hog
                image: busybox:1.36
                # The first run eats memory until the kernel kills it; the restarted one just sleeps.
                command: [sh, -c, "if [ ! -f /data/oomed ]; then touch /data/oomed; x=aaaaaaaa; while :; do x=$x$x; done; fi; sleep 3600"]
                resources: {limits: {memory: 24Mi}}
                volumeMounts: [{name: data, mountPath: /data}]
            """);
        try
        {
            await node.Kubectl("apply", "-f", file);
            await node.WaitForAsync("the three pods running, the hog restarted after its OOM kill", async () =>
            {
                var phases = await node.Kubectl("get", "pods", "burner", "filler", "oomer", "-o", "jsonpath={.items[*].status.containerStatuses[0].state.running.startedAt}");
                var restarts = await node.Kubectl("get", "pod", "oomer", "-o", "jsonpath={.status.containerStatuses[0].restartCount}");
                return phases.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 3 && restarts is not ("" or "0");
            }, TimeSpan.FromSeconds(90));
            string reason = await node.Kubectl("get", "pod", "oomer", "-o", "jsonpath={.status.containerStatuses[0].lastState.terminated.reason}");
            Assert.Equal("OOMKilled", reason);

            // CPU: ~1 CPU-second per second for the burner, measured between two reads at least 4 s apart.
            Sample? first = null, second = null;
            await node.WaitForAsync("two reads of the burner 4 s apart", async () =>
            {
                var s = Find(await ScrapeAsync(), "container_cpu_usage_seconds_total", "burner", "burn");
                if (s is null) return false;
                first ??= s;
                if (s.TimestampMs - first.TimestampMs >= 4000) { second = s; return true; }
                await Task.Delay(1000);
                return false;
            }, TimeSpan.FromSeconds(60));
            double rate = (second!.Value - first!.Value) / ((second.TimestampMs - first.TimestampMs) / 1000.0);
            Assert.InRange(rate, 0.7, 1.3);
            Assert.Equal("total", second.Labels["cpu"]);
            Assert.StartsWith("/kubepods/besteffort/pod", second.Labels["id"]);
            Assert.EndsWith("busybox:1.36", second.Labels["image"]); // as the runtime names it: docker.io/library/busybox:1.36
            Assert.Equal("default", second.Labels["namespace"]);

            // Memory: the filler's working set within 5% of what its cgroup says (usage - total_inactive_file).
            var samples = await ScrapeAsync();
            var ws = Find(samples, "container_memory_working_set_bytes", "filler", "fill")!;
            string dir = "/sys/fs/cgroup/memory" + ws.Labels["id"];
            double usage = double.Parse((await File.ReadAllTextAsync(Path.Combine(dir, "memory.usage_in_bytes"))).Trim(), CultureInfo.InvariantCulture);
            double inactive = (await File.ReadAllLinesAsync(Path.Combine(dir, "memory.stat")))
                .Select(l => l.Split(' ')).Where(p => p[0] == "total_inactive_file").Select(p => double.Parse(p[1], CultureInfo.InvariantCulture)).Single();
            Assert.InRange(ws.Value, (usage - inactive) * 0.95, (usage - inactive) * 1.05);
            Assert.True(ws.Value > 40_000_000, $"working set {ws.Value}");

            // The OOM kill of the hog's first instance is counted on the running one.
            var oom = Find(samples, "container_oom_events_total", "oomer", "hog");
            Assert.NotNull(oom);
            Assert.True(oom!.Value >= 1, $"container_oom_events_total {oom.Value}");
            Assert.Equal(0, Find(samples, "container_oom_events_total", "filler", "fill")!.Value);

            // The pod's network, from its own namespace: eth0, on the pod (container="").
            var rx = samples.FirstOrDefault(s => s.Name == "container_network_receive_bytes_total" && s.Labels.GetValueOrDefault("pod") == "burner");
            Assert.NotNull(rx);
            Assert.Equal(("eth0", ""), (rx!.Labels["interface"], rx.Labels["container"]));

            // promtool (Debian's prometheus package) finds nothing wrong with the exposition.
            using var http = new HttpClient();
            var text = await http.GetStringAsync($"http://127.0.0.1:{node.Port}/metrics/cadvisor");
            var (code, said) = await NodeAgent.Testing.TestHost.PromtoolAsync(text);
            Assert.True(code == 0 && said.Trim().Length == 0, $"promtool check metrics: exit {code}: {said}");

            // /metrics/resource, what metrics-server reads: the node, the pods, the containers.
            var resource = await http.GetStringAsync($"http://127.0.0.1:{node.Port}/metrics/resource");
            Assert.Matches(@"(?m)^node_cpu_usage_seconds_total [0-9.e+]+ \d{13}$", resource);
            Assert.Matches(@"(?m)^node_memory_working_set_bytes [0-9.e+]+ \d{13}$", resource);
            Assert.Matches(@"(?m)^container_cpu_usage_seconds_total\{container=""burn"",namespace=""default"",pod=""burner""\} [0-9.e+]+ \d{13}$", resource);
            Assert.Matches(@"(?m)^pod_memory_working_set_bytes\{namespace=""default"",pod=""filler""\} [0-9.e+]+ \d{13}$", resource);
            Assert.Contains("\nresource_scrape_error 0\n", resource);
            (code, said) = await NodeAgent.Testing.TestHost.PromtoolAsync(resource);
            Assert.True(code == 0 && said.Trim().Length == 0, $"promtool check metrics /metrics/resource: exit {code}: {said}");

            // /stats/summary: the Summary API with the burner's CPU rate over the last two reads.
            System.Text.Json.Nodes.JsonNode? burnStats = null, summary = null;
            await node.WaitForAsync("the burner's usageNanoCores in /stats/summary", async () =>
            {
                summary = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{node.Port}/stats/summary"))!;
                burnStats = summary["pods"]!.AsArray().FirstOrDefault(p => p!["podRef"]!["name"]!.GetValue<string>() == "burner")?["containers"]?[0];
                return burnStats?["cpu"]?["usageNanoCores"] is not null;
            }, TimeSpan.FromSeconds(30));
            Assert.InRange(burnStats!["cpu"]!["usageNanoCores"]!.GetValue<double>(), 0.6e9, 1.4e9);
            Assert.True(summary!["node"]!["cpu"]!["usageCoreNanoSeconds"]!.GetValue<double>() > 0);
            Assert.True(summary["node"]!["memory"]!["workingSetBytes"]!.GetValue<double>() > 0);
            Assert.Equal(NodeFixture.NodeName, summary["node"]!["nodeName"]!.GetValue<string>());
            var burnPod = summary["pods"]!.AsArray().First(p => p!["podRef"]!["name"]!.GetValue<string>() == "burner")!;
            Assert.Equal("eth0", burnPod["network"]!["name"]!.GetValue<string>());

            // Filesystems: the filler's 8 MiB in its writable layer, as containerd measures it (its
            // snapshot accounting runs every 10 s), in cAdvisor's series and in the Summary API.
            System.Text.Json.Nodes.JsonNode? fillStats = null;
            Sample? fsUsage = null;
            await node.WaitForAsync("the filler's writable layer in container_fs_usage_bytes and /stats/summary", async () =>
            {
                fsUsage = Find(await ScrapeAsync(), "container_fs_usage_bytes", "filler", "fill");
                summary = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{node.Port}/stats/summary"))!;
                fillStats = summary["pods"]!.AsArray().FirstOrDefault(p => p!["podRef"]!["name"]!.GetValue<string>() == "filler");
                return fsUsage?.Value >= 8 << 20 && fillStats?["containers"]?[0]?["rootfs"]?["usedBytes"]?.GetValue<ulong>() >= 8 << 20;
            }, TimeSpan.FromSeconds(60));
            Assert.StartsWith("/", fsUsage!.Labels["device"], StringComparison.Ordinal);
            var fillCtr = fillStats!["containers"]![0]!;
            Assert.True(fillCtr["rootfs"]!["capacityBytes"]!.GetValue<ulong>() > fillCtr["rootfs"]!["usedBytes"]!.GetValue<ulong>());
            Assert.True(fillCtr["logs"]!["usedBytes"]!.GetValue<ulong>() > 0, "the filler's log (\"filled\") in logs.usedBytes");
            Assert.True(fillStats["ephemeral-storage"]!["usedBytes"]!.GetValue<ulong>() >= 8 << 20);
            Assert.True(summary!["node"]!["fs"]!["capacityBytes"]!.GetValue<ulong>() > 0);
            Assert.True(summary["node"]!["runtime"]!["imageFs"]!["usedBytes"]!.GetValue<ulong>() > 0);
            var oomPod = summary["pods"]!.AsArray().First(p => p!["podRef"]!["name"]!.GetValue<string>() == "oomer")!;
            Assert.Contains(oomPod["volume"]!.AsArray(), v => v!["name"]!.GetValue<string>() == "data" && v["usedBytes"] is not null);

            // The agent's own metrics under the kubelet's names, and the prober's.
            var own = await http.GetStringAsync($"http://127.0.0.1:{node.Port}/metrics");
            Assert.Matches(@"(?m)^kubelet_running_pods [3-9]\d*$", own);
            Assert.Matches(@"(?m)^kubelet_running_containers\{container_state=""running""\} [3-9]\d*$", own);
            Assert.Matches(@"(?m)^kubelet_pod_start_duration_seconds_count [1-9]\d*$", own);
            Assert.Matches(@"(?m)^kubelet_pleg_relist_duration_seconds_count [1-9]\d*$", own);
            Assert.Matches(@"(?m)^nodeagent_cgroup_read_errors_total\{reason=""malformed""\} 0$", own);
            Assert.Matches(@"(?m)^kubelet_runtime_operations_total\{operation_type=""list_containers""\} [1-9]\d*$", own);
            Assert.Matches(@"(?m)^kubelet_runtime_operations_duration_seconds_bucket\{operation_type=""create_container"",le=""\+Inf""\} [1-9]\d*$", own);
            // The process collector's series, as the kubelet exports them, and the GC's.
            var rss = System.Text.RegularExpressions.Regex.Match(own, @"(?m)^process_resident_memory_bytes (\S+)$");
            Assert.True(rss.Success);
            Assert.InRange(double.Parse(rss.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 8 << 20, 1L << 30);
            Assert.Matches(@"(?m)^process_start_time_seconds 1\d{9}", own);
            Assert.Matches(@"(?m)^process_open_fds [1-9]\d*$", own);
            Assert.Matches(@"(?m)^dotnet_gc_collections_total\{gc_heap_generation=""gen0""\} [1-9]\d*$", own);
            (code, said) = await NodeAgent.Testing.TestHost.PromtoolAsync(own);
            Assert.True(code == 0 && said.Trim().Length == 0, $"promtool check metrics /metrics: exit {code}: {said}");
            var probes = await http.GetStringAsync($"http://127.0.0.1:{node.Port}/metrics/probes");
            Assert.Matches(@"(?m)^prober_probe_total\{probe_type=""Readiness"",result=""successful"",container=""fill"",pod=""filler"",namespace=""default"",pod_uid=""[0-9a-f-]+""\} [1-9]\d*$", probes);
            Assert.Contains("prober_probe_duration_seconds_count{probe_type=\"Readiness\",container=\"fill\",pod=\"filler\",namespace=\"default\"}", probes);
            (code, said) = await NodeAgent.Testing.TestHost.PromtoolAsync(probes);
            Assert.True(code == 0 && said.Trim().Length == 0, $"promtool check metrics /metrics/probes: exit {code}: {said}");

            // Negotiated as scrapers ask: gzip when accepted; OpenMetrics for the agent's own metrics when accepted.
            using (var raw = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = System.Net.DecompressionMethods.None }))
            {
                using var gz = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{node.Port}/metrics/cadvisor");
                gz.Headers.AcceptEncoding.ParseAdd("gzip");
                using var gzResp = await raw.SendAsync(gz);
                Assert.Equal("gzip", gzResp.Content.Headers.ContentEncoding.Single());
                await using var unzip = new System.IO.Compression.GZipStream(await gzResp.Content.ReadAsStreamAsync(), System.IO.Compression.CompressionMode.Decompress);
                Assert.Contains("container_cpu_usage_seconds_total{", await new StreamReader(unzip).ReadToEndAsync());
                using var om = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{node.Port}/metrics");
                om.Headers.Accept.ParseAdd("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1");
                using var omResp = await raw.SendAsync(om);
                Assert.Equal("application/openmetrics-text", omResp.Content.Headers.ContentType!.MediaType);
                Assert.EndsWith("# EOF\n", await omResp.Content.ReadAsStringAsync());
            }

            // A real Prometheus scrapes the agent; PromQL finds the burner's series with cAdvisor's labels.
            await PrometheusFindsTheBurnerAsync();

            // kubectl top, through the control plane's metrics.k8s.io (two scrapes of the node, 15 s apart, are needed first).
            (int Code, string Out, string Err) top = (0, "", "");
            await node.WaitForAsync("kubectl top nodes printing figures", async () => (top = await node.KubectlAsync("top", "nodes")).Code == 0, TimeSpan.FromSeconds(90));
            Assert.Matches(@"(?m)^it-node\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%", top.Out);
            await node.WaitForAsync("kubectl top pods -A listing the burner", async () => (top = await node.KubectlAsync("top", "pods", "-A")).Code == 0 && top.Out.Contains("burner"), TimeSpan.FromSeconds(60));
            var burner = top.Out.Split('\n').Single(l => l.Contains(" burner ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("default", burner[0]);
            int millicores = int.Parse(burner[2].TrimEnd('m'), CultureInfo.InvariantCulture);
            Assert.InRange(millicores, 600, 1400); // one busy loop: about one core
            Assert.Matches(@"^\d+Mi$", burner[3]);
        }
        finally
        {
            await node.KubectlAsync("delete", "-f", file, "--wait=true", "--timeout=30s");
            // Gone from the API is not gone from the node: wait until the agent has finished them too (the next tests count the node's pods).
            await node.WaitForAsync("the agent done with the metrics pods", async () =>
                !(await node.GetPodsAsync()).Items.Any(p => p.Metadata.Name is "burner" or "filler" or "oomer"), TimeSpan.FromSeconds(60));
        }
    }
}
