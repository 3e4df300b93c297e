using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using NodeAgent.Proxy;

namespace NodeAgent.Bench;

/// <summary>
/// Service proxy benchmark (issue 6), run as root; everything happens in private network
/// namespaces. For 1,000, 10,000 and 30,000 Services of 2 endpoints each:
/// - full sync: the agent's work (ServiceModel + NftRuleset.Full, the code the agent runs) and
///   applying it with <c>nft -f</c>, next to the floor: <c>nft -f</c> of the same text alone;
/// - one-endpoint change: the delta the agent computes and applies, next to <c>nft -f</c> of the
///   same delta text.
/// Then first-packet latency: TCP connect time to a ClusterIP through the rules at 10 and 10,000
/// services (and to the pod's own address as the floor), from a client namespace to a server
/// namespace over a veth pair.
/// </summary>
internal static class ProxyBench
{
    public static async Task<int> RunAsync(int[] sizes)
    {
        string ns = "na-proxybench";
        await Sh("ip", "netns", "add", ns);
        try
        {
            Console.WriteLine($"service proxy benchmark: sync time for {string.Join(", ", sizes.Select(s => s.ToString("N0", CultureInfo.InvariantCulture)))} services (2 endpoints each), in netns {ns}");
            Console.WriteLine();
            Console.WriteLine("| services | agent: model | agent: text | agent: full sync (model + text + nft -f) | floor: nft -f of the same text | agent overhead (model + text) / floor | agent: one-endpoint change (model + delta + netlink batch) | kernel floor: one-rule netlink batch | nft -f of that delta |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
            // The daemon is native AOT (no JIT): warm this JIT-compiled harness up before timing it.
            for (int i = 0; i < 3; i++) Build(Cluster(2_000), out _, out _);
            await NftAsync(ns, "add table ip node-agent-warm\nadd chain ip node-agent-warm target\n");
            using (var warm = new NftNetlinkBackend(ns))
                for (int i = 0; i < 3; i++)
                {
                    var d = new NftDelta(NftFamily.Ip, "node-agent-warm");
                    d.ChainAdds.Add($"warm{i}");
                    d.Rules.Add(($"warm{i}", NftRule.Dnat(NftFamily.Ip, "tcp", "10.1.1.1", 80)));
                    d.Rules.Add(($"warm{i}", NftRule.GotoRandom(2, "target")));
                    await warm.ApplyAsync(d, CancellationToken.None);
                }
            await NftAsync(ns, "delete table ip node-agent-warm\n");
            foreach (int n in sizes)
            {
                var services = Cluster(n);
                // Model and text: the best of three builds from scratch (the last one's rules are applied).
                double model = double.MaxValue, render = double.MaxValue;
                NftRuleset rules = null!;
                byte[] full = [];
                for (int i = 0; i < 3; i++)
                {
                    rules = Build(services, out double m, out full);
                    model = Math.Min(model, m);
                    render = Math.Min(render, LastTotal);
                }
                double apply = await NftAsync(ns, full);
                rules.Commit();
                double floor = await NftAsync(ns, full); // the same transaction again (it recreates the table): nft alone

                // One endpoint of one service changes address: the floor is nft -f of that delta's text.
                var (k, s0, original) = services[n / 2];
                rules.SetService(k, ServiceModel.Build(s0, [Slice(n / 2, 7)], AddressFamily.InterNetwork, "node-a", []));
                string delta = rules.Delta()!.Text;
                double deltaFloor = await NftAsync(ns, delta);
                rules.Commit();
                // The agent makes the mirror change (the endpoint moves back): model, delta, one netlink batch.
                using var backend = new NftNetlinkBackend(ns);
                var sw = Stopwatch.StartNew();
                rules.SetService(k, ServiceModel.Build(s0, [original], AddressFamily.InterNetwork, "node-a", []));
                var back = rules.Delta()!;
                double deltaBuild = sw.Elapsed.TotalMilliseconds;
                await backend.ApplyAsync(back, CancellationToken.None);
                double agentDelta = sw.Elapsed.TotalMilliseconds;
                rules.Commit();
                if (backend.Batches != 1) throw new InvalidOperationException("the delta did not go as a netlink batch");
                // The kernel's own floor for any rule change: a batch adding one goto rule in a new, unreferenced chain
                // (a jump, goto or nat anywhere makes the kernel validate every path from the table's base chains).
                var probe = new NftDelta(NftFamily.Ip, "node-agent-bench");
                probe.ChainAdds.Add("bench-floor");
                probe.Rules.Add(("bench-floor", NftRule.Goto("reject-chain")));
                sw.Restart();
                await backend.ApplyAsync(probe, CancellationToken.None);
                double kernelFloor = sw.Elapsed.TotalMilliseconds;
                var undo = new NftDelta(NftFamily.Ip, "node-agent-bench");
                undo.Flushes.Add("bench-floor");
                undo.ChainDeletes.Add("bench-floor");
                await backend.ApplyAsync(undo, CancellationToken.None);
                double agentFull = render + apply;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n:N0} | {model:F0} ms | {render - model:F0} ms | {agentFull:F0} ms | {floor:F0} ms | {render / floor * 100:F1}% | {agentDelta:F1} ms (build {deltaBuild:F2} ms, {back.Rules.Count} rules) | {kernelFloor:F1} ms | {deltaFloor:F1} ms ({delta.Length:N0} bytes) |"));
                await Sh("ip", "netns", "exec", ns, "nft", "delete", "table", "ip", "node-agent-bench");
            }
            Console.WriteLine();
            await LatencyAsync();
        }
        finally
        {
            await Sh("ip", "netns", "del", ns);
        }
        return 0;
    }

    private static double LastTotal;

    /// <summary>Model (ServiceModel.Build per service) and full text (NftRuleset.Full) from scratch; <see cref="LastTotal"/> is both together.</summary>
    private static NftRuleset Build(List<(string Key, JsonObject Service, JsonObject Slice)> services, out double model, out byte[] full)
    {
        // The previous builds' garbage (hundreds of MB at 30,000 services) is this harness's, not
        // the daemon's, which holds one model: collect it before timing a build.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var sw = Stopwatch.StartNew();
        var rules = new NftRuleset(AddressFamily.InterNetwork, new NftOptions("node-agent-bench", "10.244.0.0/16"));
        foreach (var (key, svc, slice) in services)
            rules.SetService(key, ServiceModel.Build(svc, [slice], AddressFamily.InterNetwork, "node-a", []));
        model = sw.Elapsed.TotalMilliseconds;
        var text = rules.FullUtf8(); // what the daemon hands to nft -f
        LastTotal = sw.Elapsed.TotalMilliseconds;
        full = text.ToArray();
        return rules;
    }

    private static List<(string Key, JsonObject Service, JsonObject Slice)> Cluster(int n)
    {
        var list = new List<(string, JsonObject, JsonObject)>(n);
        for (int i = 0; i < n; i++)
        {
            var svc = JsonNode.Parse($$$"""
                {"apiVersion":"v1","kind":"Service","metadata":{"name":"s{{{i}}}","namespace":"bench"},
                 "spec":{"type":"ClusterIP","clusterIP":"{{{ClusterIp(i)}}}","ports":[{"name":"http","port":80,"protocol":"TCP"}]}}
                """)!.AsObject();
            list.Add(($"bench/s{i}", svc, Slice(i, 1)));
        }
        return list;
    }

    private static string ClusterIp(int i) => $"10.{96 + i / 65536}.{i / 256 % 256}.{i % 256}";

    private static JsonObject Slice(int i, int first) => JsonNode.Parse($$$"""
        {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","addressType":"IPv4",
         "metadata":{"name":"s{{{i}}}-a","namespace":"bench","labels":{"kubernetes.io/service-name":"s{{{i}}}"}},
         "ports":[{"name":"http","port":8080,"protocol":"TCP"}],
         "endpoints":[{"addresses":["10.{{{128 + i / 65536}}}.{{{i / 256 % 256}}}.{{{first}}}"],"conditions":{"ready":true},"nodeName":"node-a"},
                      {"addresses":["10.{{{128 + i / 65536}}}.{{{i / 256 % 256}}}.{{{first + 1}}}"],"conditions":{"ready":true},"nodeName":"node-b"}]}
        """)!.AsObject();

    /// <summary>Applies a transaction in the namespace; returns the milliseconds nft took (process start to exit).</summary>
    private static Task<double> NftAsync(string ns, string transaction) => NftAsync(ns, System.Text.Encoding.UTF8.GetBytes(transaction));

    private static async Task<double> NftAsync(string ns, byte[] transaction)
    {
        var sw = Stopwatch.StartNew();
        var psi = new ProcessStartInfo("ip", ["netns", "exec", ns, "nft", "-f", "-"]) { RedirectStandardInput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardInput.BaseStream.WriteAsync(transaction);
        p.StandardInput.Close();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException("nft: " + await err);
        return sw.Elapsed.TotalMilliseconds;
    }

    private static async Task Sh(params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(args[0], args[1..]) { RedirectStandardError = true })!;
        await p.WaitForExitAsync();
        if (p.ExitCode != 0 && args[1] != "netns") throw new InvalidOperationException($"{string.Join(' ', args)}: {await p.StandardError.ReadToEndAsync()}");
    }

    /// <summary>
    /// Connect latency through the rules: client namespace → ClusterIP (DNAT in the client's output
    /// hook) → server namespace over a veth pair; the floor is a connect to the server's own address.
    /// </summary>
    private static async Task LatencyAsync()
    {
        const string client = "na-pb-client", server = "na-pb-server";
        try
        {
            foreach (var n in (string[])[client, server]) await Sh("ip", "netns", "add", n);
            await Sh("ip", "link", "add", "pbc0", "netns", client, "type", "veth", "peer", "name", "pbs0", "netns", server);
            await Sh("ip", "-n", client, "addr", "add", "10.250.0.1/24", "dev", "pbc0");
            await Sh("ip", "-n", server, "addr", "add", "10.250.0.2/24", "dev", "pbs0");
            foreach (var (n, dev) in new[] { (client, "pbc0"), (server, "pbs0") })
            {
                await Sh("ip", "-n", n, "link", "set", dev, "up");
                await Sh("ip", "-n", n, "link", "set", "lo", "up");
            }
            await Sh("ip", "-n", client, "route", "add", "10.96.0.0/12", "dev", "pbc0");
            using var listener = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", server, "python3", "-c",
                "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 8080)); s.listen(1024)\nwhile True:\n  c,_=s.accept(); c.close()"]))!;
            await Task.Delay(500);
            Console.WriteLine("| services in the table | connect to the ClusterIP p50 | p99 | floor: connect to the pod address p50 | p99 |");
            Console.WriteLine("|---|---|---|---|---|");
            foreach (int n in (int[])[10, 10_000])
            {
                var rules = new NftRuleset(AddressFamily.InterNetwork, new NftOptions("node-agent-bench"));
                for (int i = 0; i < n; i++)
                {
                    var svc = JsonNode.Parse($$$"""{"apiVersion":"v1","kind":"Service","metadata":{"name":"s{{{i}}}","namespace":"bench"},"spec":{"type":"ClusterIP","clusterIP":"{{{ClusterIp(i)}}}","ports":[{"name":"","port":80,"protocol":"TCP"}]}}""")!.AsObject();
                    // Every service points at the server (one endpoint): the measured one is in the middle of the map.
                    var slice = JsonNode.Parse($$$"""{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","addressType":"IPv4","metadata":{"name":"s{{{i}}}","namespace":"bench","labels":{"kubernetes.io/service-name":"s{{{i}}}"}},"ports":[{"name":"","port":8080,"protocol":"TCP"}],"endpoints":[{"addresses":["10.250.0.2"],"conditions":{"ready":true}}]}""")!.AsObject();
                    rules.SetService($"bench/s{i}", ServiceModel.Build(svc, [slice], AddressFamily.InterNetwork, "node-a", []));
                }
                await NftAsync(client, rules.Full());
                string target = ClusterIp(n / 2);
                var (p50, p99) = await ConnectAsync(client, target, 80);
                var (f50, f99) = await ConnectAsync(client, "10.250.0.2", 8080);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {n:N0} | {p50:F0} µs | {p99:F0} µs | {f50:F0} µs | {f99:F0} µs |"));
            }
            listener.Kill();
        }
        finally
        {
            foreach (var n in (string[])[client, server]) await Sh("ip", "netns", "del", n);
        }
    }

    /// <summary>2,000 sequential connects from inside the client namespace (a python3 helper there), p50/p99 in microseconds.</summary>
    private static async Task<(double, double)> ConnectAsync(string ns, string ip, int port)
    {
        var psi = new ProcessStartInfo("ip", ["netns", "exec", ns, "python3", "-c", $$$"""
            import socket, time
            xs = []
            for i in range(2200):
                s = socket.socket(); t = time.perf_counter_ns(); s.connect(("{{{ip}}}", {{{port}}})); xs.append(time.perf_counter_ns() - t); s.close()
            xs = sorted(xs[200:])
            print(xs[len(xs) // 2] / 1000, xs[len(xs) * 99 // 100] / 1000)
            """]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException("connect: " + await p.StandardError.ReadToEndAsync());
        var parts = output.Trim().Split(' ');
        return (double.Parse(parts[0], CultureInfo.InvariantCulture), double.Parse(parts[1], CultureInfo.InvariantCulture));
    }
}
