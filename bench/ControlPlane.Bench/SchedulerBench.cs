using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

/// <summary>
/// Scheduling throughput (issue 5 benchmark): N Node objects (Ready, 32 CPU / 64 GiB / 110 pods,
/// Leases the harness renews every 10 s, as kubelets would), then
/// - floor: P pods created through the API at concurrency C with schedulerName "none" (no
///   scheduler takes them): the API server's raw create throughput, in the same run;
/// - scheduled: P pods created the same way for the default scheduler; a watch records when each
///   is bound. Throughput is pods bound per second from the first create to the last binding.
/// </summary>
internal static class SchedulerBench
{
    public static async Task<int> RunAsync(HttpClient api, int pods, int nodes, int concurrency, int controlPlanePid)
    {
        Console.WriteLine($"scheduler benchmark: {pods} pods over {nodes} nodes, creates at concurrency {concurrency}");
        foreach (var ns in (string[])["floor", "sched"])
            (await api.PostAsync("/api/v1/namespaces", Json("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"NS"}}""".Replace("NS", ns)))).EnsureSuccessStatusCode();
        await Parallel.ForEachAsync(Enumerable.Range(0, nodes), new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, ct) =>
        {
            string name = $"node-{i:D3}";
            (await api.PostAsync("/api/v1/nodes", Json("""{"apiVersion":"v1","kind":"Node","metadata":{"name":"NAME","labels":{"kubernetes.io/hostname":"NAME","kubernetes.io/os":"linux"}}}""".Replace("NAME", name)), ct)).EnsureSuccessStatusCode();
            var status = """
                {"status":{"capacity":{"cpu":"32","memory":"64Gi","pods":"110"},"allocatable":{"cpu":"32","memory":"64Gi","pods":"110"},
                 "conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"bench","lastHeartbeatTime":"NOW","lastTransitionTime":"NOW"}]}}
                """.Replace("NOW", DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
            using var patch = new HttpRequestMessage(HttpMethod.Patch, $"/api/v1/nodes/{name}/status") { Content = new StringContent(status, Encoding.UTF8, "application/merge-patch+json") };
            (await api.SendAsync(patch, ct)).EnsureSuccessStatusCode();
            (await api.PostAsync("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", Json(Lease(name)), ct)).EnsureSuccessStatusCode();
        });
        using var stopLeases = new CancellationTokenSource();
        var leases = RenewLeasesAsync(api, nodes, stopLeases.Token);

        // Floor: the same creates, for pods no scheduler takes.
        var floor = await CreateAsync(api, "floor", pods, concurrency, "none");

        // Scheduled: watch bindings while creating.
        var list = JsonNode.Parse(await api.GetStringAsync("/api/v1/namespaces/sched/pods"))!;
        string rv = list["metadata"]!["resourceVersion"]!.GetValue<string>();
        var bound = new ConcurrentDictionary<string, long>();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var watch = Task.Run(async () =>
        {
            using var resp = await api.GetAsync($"/api/v1/namespaces/sched/pods?watch=1&resourceVersion={rv}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(cts.Token));
            while (await reader.ReadLineAsync(cts.Token) is { } line)
            {
                var pod = JsonNode.Parse(line)!["object"]!;
                if (pod["spec"]?["nodeName"] is null) continue;
                bound.TryAdd(pod["metadata"]!["name"]!.GetValue<string>(), Stopwatch.GetTimestamp());
                if (bound.Count == pods) { done.TrySetResult(); return; }
            }
        });
        await Task.Delay(300);
        double cpu0 = CpuMs(controlPlanePid);
        long start = Stopwatch.GetTimestamp();
        var created = await CreateAsync(api, "sched", pods, concurrency, null);
        await done.Task.WaitAsync(cts.Token);
        double seconds = Stopwatch.GetElapsedTime(start, bound.Values.Max()).TotalSeconds;
        double cpu = CpuMs(controlPlanePid) - cpu0;
        await cts.CancelAsync();
        try { await watch; } catch (OperationCanceledException) { }

        // End to end through the controllers: one Deployment of P replicas, create to last binding.
        double deploySeconds = await DeploymentAsync(api, pods);
        await stopLeases.CancelAsync();
        await leases;

        // Spread: how evenly the pods landed.
        var perNode = new Dictionary<string, int>();
        foreach (var item in JsonNode.Parse(await api.GetStringAsync("/api/v1/namespaces/sched/pods"))!["items"]!.AsArray())
        {
            string n = item!["spec"]!["nodeName"]!.GetValue<string>();
            perNode[n] = perNode.GetValueOrDefault(n) + 1;
        }
        Console.WriteLine($"""

            | {pods} pods, {nodes} nodes (c={concurrency}) | pods/s | goal |
            |---|---|---|
            | floor: API creates alone (no scheduler takes them) | {pods / floor:0} | |
            | creates with the scheduler running | {pods / created:0} | |
            | scheduled: first create to last binding | {pods / seconds:0} | >= 300 |
            | Deployment of {pods} replicas: create to last binding ({deploySeconds:0.00} s) | {pods / deploySeconds:0} | |

            pods per node after scheduling: min {perNode.Values.Min()}, max {perNode.Values.Max()} over {perNode.Count} nodes;
            control-plane CPU while scheduling (API + scheduler, one process): {cpu / pods:0.00} ms per pod
            """);
        return 0;
    }

    /// <summary>Creates a Deployment of <paramref name="replicas"/> and returns the seconds until its last pod is bound (Deployment → ReplicaSet → pods → scheduler).</summary>
    private static async Task<double> DeploymentAsync(HttpClient api, int replicas)
    {
        (await api.PostAsync("/api/v1/namespaces", Json("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"deploy"}}"""))).EnsureSuccessStatusCode();
        string rv = JsonNode.Parse(await api.GetStringAsync("/api/v1/namespaces/deploy/pods"))!["metadata"]!["resourceVersion"]!.GetValue<string>();
        var bound = new HashSet<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        long last = 0;
        var watch = Task.Run(async () =>
        {
            using var resp = await api.GetAsync($"/api/v1/namespaces/deploy/pods?watch=1&resourceVersion={rv}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(cts.Token));
            while (await reader.ReadLineAsync(cts.Token) is { } line)
            {
                var pod = JsonNode.Parse(line)!["object"]!;
                if (pod["spec"]?["nodeName"] is null) continue;
                if (bound.Add(pod["metadata"]!["name"]!.GetValue<string>())) last = Stopwatch.GetTimestamp();
                if (bound.Count == replicas) return;
            }
        });
        await Task.Delay(300);
        long start = Stopwatch.GetTimestamp();
        (await api.PostAsync("/apis/apps/v1/namespaces/deploy/deployments", Json("""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"big","namespace":"deploy"},
             "spec":{"replicas":REPLICAS,"selector":{"matchLabels":{"app":"big"}},"template":{"metadata":{"labels":{"app":"big"}},
              "spec":{"containers":[{"name":"app","image":"registry.example.com/app:1","resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}}}}
            """.Replace("REPLICAS", replicas.ToString(CultureInfo.InvariantCulture))))).EnsureSuccessStatusCode();
        await watch.WaitAsync(cts.Token);
        return Stopwatch.GetElapsedTime(start, last).TotalSeconds;
    }

    private static async Task<double> CreateAsync(HttpClient api, string ns, int pods, int concurrency, string? schedulerName)
    {
        var sw = Stopwatch.StartNew();
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < pods)
            {
                string body = """
                    {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p-NUM","namespace":"NS","labels":{"app":"bench"}},
                     "spec":{SCHED"containers":[{"name":"app","image":"registry.example.com/app:1","resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}}
                    """.Replace("NUM", i.ToString(CultureInfo.InvariantCulture)).Replace("NS", ns)
                    .Replace("SCHED", schedulerName is null ? "" : $"\"schedulerName\":\"{schedulerName}\",");
                using var r = await api.PostAsync($"/api/v1/namespaces/{ns}/pods", Json(body));
                if (r.StatusCode != HttpStatusCode.Created) throw new InvalidOperationException($"create: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
            }
        }));
        return sw.Elapsed.TotalSeconds;
    }

    private static string Lease(string node) => """
        {"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"NAME","namespace":"kube-node-lease"},
         "spec":{"holderIdentity":"NAME","leaseDurationSeconds":40,"renewTime":"NOW"}}
        """.Replace("NAME", node).Replace("NOW", DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture));

    private static async Task RenewLeasesAsync(HttpClient api, int nodes, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try { await Task.Delay(TimeSpan.FromSeconds(10), ct); } catch (OperationCanceledException) { return; }
            for (int i = 0; i < nodes && !ct.IsCancellationRequested; i++)
            {
                string patch = """{"spec":{"renewTime":"NOW"}}""".Replace("NOW", DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture));
                using var req = new HttpRequestMessage(HttpMethod.Patch, $"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-{i:D3}")
                    { Content = new StringContent(patch, Encoding.UTF8, "application/merge-patch+json") };
                try { using var _ = await api.SendAsync(req, ct); } catch (OperationCanceledException) { return; }
            }
        }
    }

    private static StringContent Json(string s) => new(s, Encoding.UTF8, "application/json");

    private static double CpuMs(int pid)
    {
        var f = File.ReadAllText($"/proc/{pid}/stat");
        var rest = f[(f.LastIndexOf(')') + 2)..].Split(' ');
        return (double.Parse(rest[11], CultureInfo.InvariantCulture) + double.Parse(rest[12], CultureInfo.InvariantCulture)) * 10;
    }
}
