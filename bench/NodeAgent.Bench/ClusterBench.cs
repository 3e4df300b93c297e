using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using static NodeAgent.Bench.BenchUtil;

namespace NodeAgent.Bench;

/// <summary>
/// The agent joined to a cluster (etcd + the AOT control plane on loopback, the private containerd):
/// <list type="bullet">
/// <item>Pod startup latency as the SLO defines it: N pods (spec.nodeName set, images present)
/// are POSTed at once; a pod's latency runs from its creation to the moment a watch on the API
/// shows all its containers running. "Creation" is when the client sent the POST (the API's
/// creationTimestamp has one-second resolution; it lies between the send and the response).
/// The CRI floor (the agent's CRI calls for N pods at once, nothing else) is measured in the same run.</item>
/// <item>Steady-state API load: with N pods running and nothing changing, the requests the API
/// server served and the watch bytes it sent over a window, from its apiserver_request_total and
/// apiserver_watch_events_sizes (the agent is the only client then).</item>
/// </list>
/// </summary>
internal sealed class ClusterBench(string work, string sock, string agentBin, string controlPlaneBin, int pods, int window, TextWriter progress,
    Func<Task<int>> sandboxes)
    : IAsyncDisposable
{
    private const string Node = "bench-node", Ns = "bench", Token = "bench-token-0123456789";
    private readonly List<Process> _procs = [];
    private readonly HttpClient _http = new(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } })
        { Timeout = TimeSpan.FromMinutes(2) };
    private Process? _agent;

    public async Task<int> RunAsync(List<(List<double> Latencies, double Total)> floors, Func<Task> cleanRuntime)
    {
        await StartClusterAsync();
        var sloAll = new List<double>();
        var totals = new List<double>();
        for (int round = 1; round <= floors.Count; round++)
        {
            var (lat, total) = await StartPodsAsync($"r{round}");
            sloAll.AddRange(lat);
            totals.Add(total);
            progress.WriteLine($"round {round}: floor all-running {floors[round - 1].Total:F0} ms, agent all-running {total:F0} ms");
            if (round < floors.Count) await DeleteAllAsync();
        }
        // Steady state: the last round's pods keep running; let probes, status and events settle.
        await Task.Delay(TimeSpan.FromSeconds(30));
        var before = await MetricsAsync();
        long rss0 = Rss(_agent!.Id);
        double cpu = await CpuPerMinuteAsync(_agent.Id, window);
        var after = await MetricsAsync();
        long rss1 = Rss(_agent.Id);
        double minutes = window / 60.0;
        var byCall = new SortedDictionary<string, double>(StringComparer.Ordinal);
        double requests = 0, watchBytes = 0, watchEvents = 0;
        foreach (var (k, v) in after)
        {
            double d = v - before.GetValueOrDefault(k);
            if (d <= 0) continue;
            if (k.StartsWith("apiserver_request_total{", StringComparison.Ordinal) && Label(k, "resource").Length > 0)
            {
                string call = $"{Label(k, "verb")} {Label(k, "resource")}{(Label(k, "subresource") is { Length: > 0 } sr ? "/" + sr : "")}";
                byCall[call] = byCall.GetValueOrDefault(call) + d;
                requests += d;
            }
            else if (k.StartsWith("apiserver_watch_events_sizes_sum{", StringComparison.Ordinal)) watchBytes += d;
            else if (k.StartsWith("apiserver_watch_events_sizes_count{", StringComparison.Ordinal)) watchEvents += d;
        }
        await DeleteAllAsync();
        _agent.Kill();
        await _agent.WaitForExitAsync();

        var floorAll = floors.SelectMany(f => f.Latencies).ToList();
        double fp50 = P(floorAll, 50), fp99 = P(floorAll, 99), ap50 = P(sloAll, 50), ap99 = P(sloAll, 99);
        double ft = P(floors.Select(f => f.Total).ToList(), 50), at = P(totals, 50);
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"""
            | {pods} pods created at once, {floors.Count} rounds | floor: raw CRI calls | node-agent via the API (SLO) | overhead | goal |
            |---|---|---|---|---|
            | per-pod startup p50 | {fp50:F0} ms | {ap50:F0} ms | {Pct(ap50, fp50)} | |
            | per-pod startup p99 | {fp99:F0} ms | {ap99:F0} ms | {Pct(ap99, fp99)} | p99 < 1000 ms |
            | all {pods} running (median of rounds) | {ft:F0} ms | {at:F0} ms | {Pct(at, ft)} | |

            | steady state, {pods} running pods, {window} s window | measured |
            |---|---|
            | API requests per minute (all, agent is the only client) | {requests / minutes:F1} |
            """);
        foreach (var (call, n) in byCall) sb.AppendLine(CultureInfo.InvariantCulture, $"| &nbsp;&nbsp;{call} | {n / minutes:F1} /min |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| watch events per minute | {watchEvents / minutes:F1} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| watch bytes per minute | {watchBytes / minutes:F0} B |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| agent RSS with {pods} pods (start / end of window) | {rss0 / 1048576.0:F1} / {rss1 / 1048576.0:F1} MiB |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| agent CPU in the window | {cpu:F2} CPU-s/min |");
        Console.WriteLine(sb.ToString());
        await cleanRuntime();
        return 0;
    }

    private static string Label(string series, string name)
    {
        foreach (char sep in (char[])['{', ','])
        {
            int i = series.IndexOf(sep + name + "=\"", StringComparison.Ordinal);
            if (i < 0) continue;
            i += name.Length + 3;
            return series[i..series.IndexOf('"', i)];
        }
        return "";
    }

    private int Port(string what)
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        int p = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        progress.WriteLine($"{what} on port {p}");
        return p;
    }

    private Process Spawn(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        string log = Path.Combine(work, Path.GetFileName(file) + ".log");
        var sink = TextWriter.Synchronized(new StreamWriter(log, append: true) { AutoFlush = true });
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) sink.WriteLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) sink.WriteLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _procs.Add(p);
        return p;
    }

    private async Task StartClusterAsync()
    {
        int etcd = Port("etcd"), api = Port("control plane"), kubelet = Port("kubelet");
        Spawn("etcd", "--name", "bench", "--data-dir", Path.Combine(work, "etcd"), "--listen-client-urls", $"http://127.0.0.1:{etcd}",
            "--advertise-client-urls", $"http://127.0.0.1:{etcd}", "--listen-peer-urls", $"http://127.0.0.1:{Port("etcd peer")}");
        using (var plain = new HttpClient())
            await WaitAsync(async () => { try { return (await plain.GetStringAsync($"http://127.0.0.1:{etcd}/health")).Contains("true"); } catch (HttpRequestException) { return false; } }, TimeSpan.FromSeconds(30));
        string data = Path.Combine(work, "control-plane");
        File.WriteAllText(Path.Combine(work, "tokens.csv"), $"{Token},bench,bench-uid,\"system:masters\"\n");
        Spawn(controlPlaneBin, "--data-dir", data, "--etcd-servers", $"http://127.0.0.1:{etcd}", "--secure-port", api.ToString(CultureInfo.InvariantCulture),
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--token-auth-file", Path.Combine(work, "tokens.csv"));
        _http.BaseAddress = new Uri($"https://127.0.0.1:{api}");
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        await WaitAsync(async () => { try { return await _http.GetStringAsync("/readyz") == "ok"; } catch (HttpRequestException) { return false; } }, TimeSpan.FromSeconds(30));
        string kubeconfig = Path.Combine(work, "node.kubeconfig");
        Sh($"{controlPlaneBin} node-kubeconfig --node {Node} --data-dir {data} --server https://127.0.0.1:{api} --out {kubeconfig}");
        string manifests = Path.Combine(work, "cluster-manifests");
        Directory.CreateDirectory(manifests);
        _agent = Spawn(agentBin, "--container-runtime-endpoint", "unix://" + sock, "--pod-manifest-path", manifests,
            "--root-dir", Path.Combine(work, "cluster-root"), "--pod-logs-dir", Path.Combine(work, "cluster-logs"),
            "--read-only-port", "0", "--healthz-port", "0", "--hostname-override", Node, "--kubeconfig", kubeconfig,
            "--port", kubelet.ToString(CultureInfo.InvariantCulture));
        await WaitAsync(async () =>
        {
            try
            {
                var n = JsonNode.Parse(await _http.GetStringAsync($"/api/v1/nodes/{Node}"))!;
                return n["status"]?["conditions"]?.AsArray().Any(c => c?["type"]?.GetValue<string>() == "Ready" && c["status"]?.GetValue<string>() == "True") == true;
            }
            catch (HttpRequestException) { return false; }
        }, TimeSpan.FromSeconds(60));
        var ns = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = Ns } };
        (await _http.PostAsync("/api/v1/namespaces", Json(ns))).EnsureSuccessStatusCode();
        progress.WriteLine("cluster up: node Ready");
    }

    private static StringContent Json(JsonNode n) => new(n.ToJsonString(), Encoding.UTF8, "application/json");

    /// <summary>POSTs N pods at once and watches until each shows all containers running.</summary>
    private async Task<(List<double> Latencies, double Total)> StartPodsAsync(string prefix)
    {
        var list = JsonNode.Parse(await _http.GetStringAsync($"/api/v1/namespaces/{Ns}/pods"))!;
        string rv = list["metadata"]!["resourceVersion"]!.GetValue<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var sent = new Dictionary<string, long>();
        var running = new Dictionary<string, long>();
        var allRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watch = Task.Run(async () =>
        {
            using var resp = await _http.GetAsync($"/api/v1/namespaces/{Ns}/pods?watch=1&resourceVersion={rv}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(cts.Token));
            while (await reader.ReadLineAsync(cts.Token) is { } line)
            {
                long now = Stopwatch.GetTimestamp();
                var ev = JsonNode.Parse(line)!;
                var pod = ev["object"]!;
                string name = pod["metadata"]!["name"]!.GetValue<string>();
                var statuses = pod["status"]?["containerStatuses"]?.AsArray();
                int want = pod["spec"]!["containers"]!.AsArray().Count;
                if (statuses is null || statuses.Count != want || !statuses.All(c => c?["state"]?["running"] is not null)) continue;
                lock (running)
                {
                    running.TryAdd(name, now);
                    if (running.Count == pods) { allRunning.TrySetResult(); return; }
                }
            }
        });
        await Task.Delay(500); // the watch is established
        long start = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, pods).Select(async i =>
        {
            string name = $"{prefix}-{i}";
            var pod = JsonNode.Parse("""
                {"apiVersion":"v1","kind":"Pod","metadata":{"name":"NAME","namespace":"NS"},
                 "spec":{"nodeName":"NODE","terminationGracePeriodSeconds":0,
                         "containers":[{"name":"app","image":"busybox:1.36","imagePullPolicy":"Never","command":["sleep","3600"]}]}}
                """.Replace("NAME", name, StringComparison.Ordinal).Replace("NS", Ns, StringComparison.Ordinal).Replace("NODE", Node, StringComparison.Ordinal))!;
            lock (sent) sent[name] = Stopwatch.GetTimestamp();
            (await _http.PostAsync($"/api/v1/namespaces/{Ns}/pods", Json(pod), cts.Token)).EnsureSuccessStatusCode();
        }));
        await allRunning.Task.WaitAsync(cts.Token);
        var lat = running.Select(kv => Stopwatch.GetElapsedTime(sent[kv.Key], kv.Value).TotalMilliseconds).ToList();
        double total = Stopwatch.GetElapsedTime(start, running.Values.Max()).TotalMilliseconds;
        await cts.CancelAsync();
        try { await watch; } catch (OperationCanceledException) { }
        return (lat, total);
    }

    /// <summary>Deletes the pods and waits until the agent has torn every one down, so rounds do not overlap.</summary>
    private async Task DeleteAllAsync()
    {
        (await _http.DeleteAsync($"/api/v1/namespaces/{Ns}/pods?gracePeriodSeconds=0")).EnsureSuccessStatusCode();
        await WaitAsync(async () => JsonNode.Parse(await _http.GetStringAsync($"/api/v1/namespaces/{Ns}/pods"))!["items"]!.AsArray().Count == 0, TimeSpan.FromMinutes(3));
        await WaitAsync(async () => await sandboxes() == 0, TimeSpan.FromMinutes(3));
    }

    private async Task<Dictionary<string, double>> MetricsAsync()
    {
        var d = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in (await _http.GetStringAsync("/metrics")).Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            int sp = line.LastIndexOf(' ');
            d[line[..sp]] = double.Parse(line[(sp + 1)..], CultureInfo.InvariantCulture);
        }
        return d;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in Enumerable.Reverse(_procs))
        {
            try { p.Kill(true); await p.WaitForExitAsync(); } catch (InvalidOperationException) { }
        }
        _http.Dispose();
    }
}
