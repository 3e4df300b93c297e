using System.Diagnostics;
using System.Net.Sockets;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>The agent's service proxy in the host's real nftables, with real pods behind it.</summary>
[Collection(NodeCollection.Name)]
public sealed class ServiceProxyTests(NodeFixture node)
{
    private static async Task<string?> GetAsync(HttpClient http, string url)
    {
        try { return (await http.GetStringAsync(url)).Trim(); }
        catch (HttpRequestException) { return null; }
        catch (TaskCanceledException) { return null; }
    }

    /// <summary>Runs a tool: its exit code, output and error output.</summary>
    private static async Task<(int Code, string Out, string Err)> RunAsync(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await o, await e);
    }

    private static async Task NftAsync(params string[] args)
    {
        var (code, _, err) = await RunAsync("nft", args);
        Assert.True(code == 0, $"nft {string.Join(' ', args)}: {err}");
    }

    [Fact]
    public async Task IpvsModeIsRefusedAtStartWithTheReasonWhenTheKernelHasNoIpvs()
    {
        var psi = new ProcessStartInfo(node.AgentBinary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["--kubeconfig", node.NodeKubeconfig, "--hostname-override", "ipvs-refused", "--proxy-mode", "ipvs",
                     "--root-dir", Path.Combine(Path.GetTempPath(), "na-ipvs-" + Guid.NewGuid().ToString("N")[..6]), "--port", "0", "--read-only-port", "0", "--healthz-port", "0"])
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        if (File.Exists("/proc/net/ip_vs"))
        {
            // A kernel with IPVS: the mode runs (this test is about the refusal; the IPVS sync itself is IpvsRulesTests).
            await Task.Delay(TimeSpan.FromSeconds(3));
            Assert.False(p.HasExited, await stderr);
            p.Kill();
            return;
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await p.WaitForExitAsync(cts.Token);
        string said = await stderr;
        // These machines' kernels have no IPVS (ENVIRONMENT.md): exit 1, and the reason names it and the way out.
        Assert.Equal(1, p.ExitCode);
        Assert.Contains("proxy mode ipvs refused", said);
        Assert.Contains("this kernel has no IPVS", said);
        Assert.Contains("use proxy mode nftables", said);
    }

    [Fact]
    public async Task AnInvalidFieldIsSkippedWithAnEventAndTheRestOfTheServiceIsProgrammed()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "bad-ext.yaml");
        // The API server takes this externalIP as a string; the proxy cannot use it.
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Service
            metadata: {name: bad-ext, namespace: default}
            spec:
              selector: {app: bad-ext-nobody}
              externalIPs: ["10.1.2.300"]
              ports: [{port: 80, targetPort: 8080}]
            """);
        try
        {
            await node.Kubectl("apply", "-f", file);
            string ip = await node.Kubectl("get", "service", "bad-ext", "-o", "jsonpath={.spec.clusterIP}");
            await node.WaitForAsync("a SkippedInvalid event on the Service", async () =>
            {
                var reasons = await node.Kubectl("get", "events", "-n", "default", "-o",
                    "jsonpath={range .items[?(@.involvedObject.name==\"bad-ext\")]}{.involvedObject.kind} {.reason} {.source.component} {.message}{\"\\n\"}{end}");
                return reasons.Contains("Service SkippedInvalid kube-proxy", StringComparison.Ordinal) && reasons.Contains("10.1.2.300", StringComparison.Ordinal);
            }, TimeSpan.FromSeconds(20));
            // The valid part is in the kernel: the ClusterIP, with no endpoints, is rejected.
            string map = (await RunAsync("nft", "list", "map", "ip", "node-agent", "no-endpoint-services")).Out;
            Assert.Contains($"{ip} . tcp . 80 : goto reject-chain", map);

            using var http = new HttpClient();
            var metrics = await http.GetStringAsync($"http://127.0.0.1:{node.ProxyMetricsPort}/metrics");
            Assert.Matches(@"(?m)^nodeagent_proxy_nftables_objects\{ip_family=""IPv4"",kind=""chains""\} [1-9]\d*$", metrics);
            Assert.Matches(@"(?m)^nodeagent_proxy_nftables_objects\{ip_family=""IPv4"",kind=""elements""\} [1-9]\d*$", metrics);
            Assert.Matches(@"(?m)^kubeproxy_sync_proxy_rules_no_local_endpoints_total\{traffic_policy=""external""\} \d+$", metrics);
        }
        finally
        {
            await node.Kubectl("delete", "-f", file, "--ignore-not-found", "--wait=false");
        }
    }

    [Fact]
    public async Task AClusterIpSpreadsOverReadyPodsFromTheHostAndFromPodsAndRejectsWhenEmpty()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "cip.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Service
            metadata: {name: cip, namespace: default}
            spec:
              selector: {app: cip}
              ports: [{port: 80, targetPort: 8080}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: nobody, namespace: default}
            spec:
              selector: {app: nobody}
              ports: [{port: 80, targetPort: 8080}]
            ---
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata: {name: cip, namespace: default}
            spec:
              replicas: 3
              selector: {matchLabels: {app: cip}}
              template:
                metadata: {labels: {app: cip}}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: httpd
                    image: busybox:1.36
                    command: [sh, -c, "mkdir -p /tmp/www; hostname > /tmp/www/index.html; touch /tmp/ready; trap 'exit 0' TERM; httpd -f -p 8080 -h /tmp/www & wait"]
                    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1}
            """);
        // A connection per request: each one is a new flow through the rules (no pooled connection outlives a rule change).
        using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            await node.Kubectl("apply", "-f", file);
            string[] pods = [];
            await node.WaitForAsync("3 ready pods in the slice", async () =>
            {
                pods = await node.ReadyPodsAsync("app=cip");
                var eps = await node.Kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=cip", "-o", "jsonpath={.items[*].endpoints[*].conditions.ready}");
                return pods.Length == 3 && eps.Split(' ').Count(r => r == "true") == 3;
            }, TimeSpan.FromSeconds(90));
            string ip = await node.Kubectl("get", "service", "cip", "-o", "jsonpath={.spec.clusterIP}");

            // kube-proxy's healthz on its own port: 200 and when the rules were last written.
            using (var health = await http.GetAsync($"http://127.0.0.1:{node.ProxyHealthzPort}/healthz"))
            {
                Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
                var body = System.Text.Json.Nodes.JsonNode.Parse(await health.Content.ReadAsStringAsync())!;
                Assert.True(DateTimeOffset.UtcNow - DateTimeOffset.Parse(body["lastUpdated"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture) < TimeSpan.FromMinutes(1));
                Assert.NotNull(body["currentTime"]);
            }
            string url = $"http://{ip}/";

            // From the host: every pod answers in turn.
            var seen = new HashSet<string>();
            var clock = Stopwatch.StartNew();
            while (seen.Count < 3 && clock.Elapsed < TimeSpan.FromSeconds(30))
                if (await GetAsync(http, url) is { } who) seen.Add(who);
            Assert.True(seen.SetEquals(pods), $"answers from [{string.Join(", ", seen)}], pods [{string.Join(", ", pods)}]\n{NodeFixture.Tail(node.AgentLog, 20)}");

            // From inside a pod (one of the endpoints itself: hairpin included).
            // (busybox-static's wget crashes in getaddrinfo, so plain HTTP/1.0 through nc.)
            var fromPod = await node.Kubectl("exec", pods[0], "--", "sh", "-c", $"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80");
            Assert.Contains(pods, p => fromPod.Contains(p, StringComparison.Ordinal));

            // Readiness lost: out of rotation within a second of the pod's Ready=False.
            await node.Kubectl("exec", pods[1], "--", "rm", "/tmp/ready");
            await node.WaitForAsync("the pod not ready", async () =>
                (await node.Kubectl("get", "pod", pods[1], "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")) == "False", TimeSpan.FromSeconds(30));
            await Task.Delay(TimeSpan.FromSeconds(1));
            var after = new List<string>();
            for (int i = 0; i < 30; i++) if (await GetAsync(http, url) is { } who) after.Add(who);
            Assert.Equal(30, after.Count);
            Assert.DoesNotContain(pods[1], after);

            // kube-proxy's metrics: syncs timed, and the readiness change programmed (from the slice's trigger time).
            var metrics = await http.GetStringAsync($"http://127.0.0.1:{node.ProxyMetricsPort}/metrics");
            Assert.Matches(@"(?m)^kubeproxy_sync_proxy_rules_duration_seconds_count [1-9]", metrics);
            Assert.Matches(@"(?m)^kubeproxy_network_programming_duration_seconds_count [1-9]", metrics);
            Assert.Matches(@"(?m)^kubeproxy_sync_proxy_rules_endpoint_changes_total [1-9]", metrics);
            Assert.Matches(@"(?m)^kubeproxy_sync_proxy_rules_last_timestamp_seconds 1\d{9}", metrics);

            // A Service without endpoints refuses at once (a reject, not a timeout).
            string empty = await node.Kubectl("get", "service", "nobody", "-o", "jsonpath={.spec.clusterIP}");
            using (var tcp = new TcpClient())
            {
                clock.Restart();
                var e = await Assert.ThrowsAsync<SocketException>(async () => await tcp.ConnectAsync(empty, 80).WaitAsync(TimeSpan.FromSeconds(5)));
                Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2));
            }

            // Someone empties the dispatch chain: the next full resync (3 s here) puts it back.
            await NftAsync("flush", "chain", "ip", "node-agent", "services");
            Assert.DoesNotContain(await GetAsync(http, url) ?? "", pods);
            await node.WaitForAsync("the service answering again", async () => await GetAsync(http, url) is { } who && pods.Contains(who), TimeSpan.FromSeconds(15));
        }
        finally
        {
            await node.KubectlAsync("delete", "-f", file, "--wait=true", "--timeout=30s");
            await node.KubectlAsync("delete", "pods", "-l", "app=cip", "--wait=true", "--timeout=30s");
        }
    }

    [Fact]
    public async Task ADualStackServiceAnswersOnBothClusterIpsAndDowngradesAndUpgradesInPlace()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "ds.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Service
            metadata: {name: ds, namespace: default}
            spec:
              ipFamilyPolicy: RequireDualStack
              selector: {app: ds}
              ports: [{port: 80, targetPort: 8080}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: ds6, namespace: default}
            spec:
              ipFamilies: [IPv6]
              selector: {app: ds}
              ports: [{port: 81, targetPort: 8080}]
            ---
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata: {name: ds, namespace: default}
            spec:
              replicas: 2
              selector: {matchLabels: {app: ds}}
              template:
                metadata: {labels: {app: ds}}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: httpd
                    image: busybox:1.36
                    command: [sh, -c, "mkdir -p /tmp/www; hostname > /tmp/www/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /tmp/www & wait"]
                    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
            """);
        using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = TimeSpan.FromSeconds(2) };
        // The host reaches service addresses through its default route (as kube-proxy assumes); a
        // host without an IPv6 one gets a route for the IPv6 service range for the test.
        bool addedRoute = false;
        if ((await RunAsync("ip", "-6", "route", "show", "default")).Out.Trim().Length == 0)
        {
            await RunAsync("ip", "-6", "route", "replace", NodeFixture.ServiceCidr6, "dev", "nait0");
            addedRoute = true;
        }
        try
        {
            await node.Kubectl("apply", "-f", file);
            string[] pods = [];
            await node.WaitForAsync("2 ready pods in both families' slices", async () =>
            {
                pods = await node.ReadyPodsAsync("app=ds");
                var slices = await node.Kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=ds", "-o",
                    "jsonpath={range .items[*]}{.addressType}={.endpoints[*].conditions.ready};{end}");
                return pods.Length == 2 && slices.Split(';', StringSplitOptions.RemoveEmptyEntries).Order().SequenceEqual(["IPv4=true true", "IPv6=true true"]);
            }, TimeSpan.FromSeconds(90));

            // The API: both families' addresses, primary (IPv4) first; the IPv6 slice holds the pods' IPv6 addresses.
            var spec = (await node.Kubectl("get", "service", "ds", "-o", "jsonpath={.spec.ipFamilyPolicy} {.spec.ipFamilies[*]} {.spec.clusterIPs[*]}")).Split(' ');
            Assert.Equal(["RequireDualStack", "IPv4", "IPv6"], spec[..3]);
            string ip4 = spec[3], ip6 = spec[4];
            Assert.Equal(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.IPAddress.Parse(ip4).AddressFamily);
            Assert.StartsWith("fd00:96::", ip6);
            var v6Endpoints = (await node.Kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=ds", "-o",
                "jsonpath={.items[?(@.addressType==\"IPv6\")].endpoints[*].addresses[0]}")).Split(' ');
            Assert.All(v6Endpoints, a => Assert.StartsWith("fd00:245::", a));
            string only6 = await node.Kubectl("get", "service", "ds6", "-o", "jsonpath={.spec.clusterIPs[*]}");
            Assert.StartsWith("fd00:96::", only6);

            // The data path in both families, from the host: each ClusterIP reaches both pods.
            foreach (var url in (string[])[$"http://{ip4}/", $"http://[{ip6}]/", $"http://[{only6}]:81/"])
            {
                var seen = new HashSet<string>();
                var clock = Stopwatch.StartNew();
                while (seen.Count < 2 && clock.Elapsed < TimeSpan.FromSeconds(30))
                    if (await GetAsync(http, url) is { } who) seen.Add(who);
                Assert.True(seen.SetEquals(pods), $"{url}: answers from [{string.Join(", ", seen)}], pods [{string.Join(", ", pods)}]\n{NodeFixture.Tail(node.AgentLog, 20)}");
            }
            // And from inside a pod, over IPv6 (hairpin to itself included).
            var fromPod = await node.Kubectl("exec", pods[0], "--", "sh", "-c", $"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip6} 80");
            Assert.Contains(pods, p => fromPod.Contains(p, StringComparison.Ordinal));

            // Downgrade to SingleStack: the IPv6 address and slice go, the IPv4 one keeps answering.
            await node.Kubectl("patch", "service", "ds", "--type=merge", "-p", "{\"spec\":{\"ipFamilyPolicy\":\"SingleStack\"}}");
            Assert.Equal($"{ip4} IPv4", await node.Kubectl("get", "service", "ds", "-o", "jsonpath={.spec.clusterIPs[*]} {.spec.ipFamilies[*]}"));
            await node.WaitForAsync("only the IPv4 slice left", async () =>
                (await node.Kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=ds", "-o", "jsonpath={.items[*].addressType}")) == "IPv4", TimeSpan.FromSeconds(30));
            Assert.Contains(await GetAsync(http, $"http://{ip4}/"), pods);
            // Upgrade again: a new IPv6 address, served.
            await node.Kubectl("patch", "service", "ds", "--type=merge", "-p", "{\"spec\":{\"ipFamilyPolicy\":\"PreferDualStack\"}}");
            var again = (await node.Kubectl("get", "service", "ds", "-o", "jsonpath={.spec.clusterIPs[*]}")).Split(' ');
            Assert.Equal(ip4, again[0]);
            Assert.StartsWith("fd00:96::", again[1]);
            await node.WaitForAsync("the new IPv6 ClusterIP answering", async () => await GetAsync(http, $"http://[{again[1]}]/") is { } who && pods.Contains(who), TimeSpan.FromSeconds(30));

            // The primary address is immutable; the refusal names the field.
            var (code, _, err) = await node.KubectlAsync("patch", "service", "ds6", "--type=merge", "-p", "{\"spec\":{\"clusterIP\":\"fd00:96::1:1\",\"clusterIPs\":[\"fd00:96::1:1\"]}}");
            Assert.NotEqual(0, code);
            Assert.Contains("spec.clusterIPs[0]", err);
        }
        finally
        {
            await node.KubectlAsync("delete", "-f", file, "--wait=true", "--timeout=30s");
            await node.KubectlAsync("delete", "pods", "-l", "app=ds", "--wait=true", "--timeout=30s");
            if (addedRoute) await RunAsync("ip", "-6", "route", "del", NodeFixture.ServiceCidr6, "dev", "nait0");
        }
    }

    /// <summary>One UDP question from the host to IP:PORT from a fixed source port (so every ask is the same conntrack entry): the answering pod's name, or null.</summary>
    private static async Task<string?> AskUdpAsync(string ip, int port, int sourcePort)
    {
        var psi = new ProcessStartInfo("python3", ["-c",
            "import socket,sys\n" +
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n" +
            "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n" +
            $"s.bind(('0.0.0.0',{sourcePort}))\n" +
            "s.settimeout(1.0)\n" +
            $"s.sendto(b'who',('{ip}',{port}))\n" +
            "print(s.recvfrom(256)[0].decode().strip())\n"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string o = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        return p.ExitCode == 0 && o.Trim().Length > 0 ? o.Trim() : null;
    }

    [Fact]
    public async Task AUdpClientPinnedToAnEndpointThatGoesAwayReachesAnotherAtOnce()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "udp-who.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: udp-who, namespace: default}
            spec:
              replicas: 2
              selector: {matchLabels: {app: udp-who}}
              template:
                metadata: {labels: {app: udp-who}}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers: [{name: who, image: busybox:1.36, command: [udp-who, "5353"], ports: [{containerPort: 5353, protocol: UDP}]}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: udp-who, namespace: default}
            spec:
              selector: {app: udp-who}
              ports: [{name: dns, port: 53, targetPort: 5353, protocol: UDP}]
            """);
        try
        {
            await node.Kubectl("apply", "-f", file);
            string[] pods = [];
            await node.WaitForAsync("2 ready udp-who pods", async () => (pods = await node.ReadyPodsAsync("app=udp-who")).Length == 2, TimeSpan.FromSeconds(90));
            string ip = await node.Kubectl("get", "service", "udp-who", "-o", "jsonpath={.spec.clusterIP}");
            int source = 40000 + Random.Shared.Next(10000);

            // The same source port: one conntrack entry, one pod, every time.
            string? first = null;
            await node.WaitForAsync("the UDP service answering", async () => (first = await AskUdpAsync(ip, 53, source)) is not null, TimeSpan.FromSeconds(20));
            Assert.Contains(first, pods);
            for (int i = 0; i < 5; i++) Assert.Equal(first, await AskUdpAsync(ip, 53, source));

            // That pod goes. UDP has no end of connection: the entry (kept warm by the asking, for up
            // to nf_conntrack_udp_timeout_stream) would keep sending this client to the dead address;
            // the proxy deletes it when the endpoint leaves, so the next ask reaches another pod.
            int streamTimeout = int.Parse(File.ReadAllText("/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream").Trim(), System.Globalization.CultureInfo.InvariantCulture);
            await node.Kubectl("delete", "pod", first!, "--wait=false");
            var gone = Stopwatch.StartNew();
            string? next = null;
            await node.WaitForAsync("an answer from another pod, same source port", async () =>
            {
                next = await AskUdpAsync(ip, 53, source);
                return next is not null && next != first;
            }, TimeSpan.FromSeconds(20));
            Assert.True(gone.Elapsed.TotalSeconds < Math.Min(20, streamTimeout), $"took {gone.Elapsed.TotalSeconds:F1} s (UDP stream timeout {streamTimeout} s)");
        }
        finally
        {
            await node.KubectlAsync("delete", "-f", file, "--wait=true", "--timeout=30s");
            await node.WaitForAsync("udp-who pods gone", async () => (await node.GetPodsAsync()).Items.All(p => !p.Metadata.Name!.StartsWith("udp-who", StringComparison.Ordinal)), TimeSpan.FromSeconds(60));
        }
    }

    /// <summary>A client host of its own: a network namespace behind a veth pair, routed through this node.</summary>
    private sealed class ClientHost : IAsyncDisposable
    {
        public string Name { get; } = "na-cl-" + Guid.NewGuid().ToString("N")[..6];
        public const string Address = "10.251.0.2";
        private readonly string _veth = "nacl" + Guid.NewGuid().ToString("N")[..6];

        public async Task StartAsync()
        {
            await Ip("netns", "add", Name);
            await Ip("link", "add", _veth, "type", "veth", "peer", "name", "eth0", "netns", Name);
            await Ip("addr", "add", "10.251.0.1/24", "dev", _veth);
            await Ip("link", "set", _veth, "up");
            await Ip("-n", Name, "addr", "add", Address + "/24", "dev", "eth0");
            await Ip("-n", Name, "link", "set", "eth0", "up");
            await Ip("-n", Name, "link", "set", "lo", "up");
            await Ip("-n", Name, "route", "add", "default", "via", "10.251.0.1");
        }

        /// <summary>GET from the client host; the body, or null when the request failed.</summary>
        public async Task<string?> GetAsync(string url)
        {
            var psi = new ProcessStartInfo("ip", ["netns", "exec", Name, "python3", "-c",
                $"import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read().decode().strip())"]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            var o = await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            return p.ExitCode == 0 ? o.Trim() : null;
        }

        private static async Task Ip(params string[] args)
        {
            using var p = Process.Start(new ProcessStartInfo("ip", args) { RedirectStandardError = true })!;
            await p.WaitForExitAsync();
            Assert.True(p.ExitCode == 0, $"ip {string.Join(' ', args)}: {await p.StandardError.ReadToEndAsync()}");
        }

        public async ValueTask DisposeAsync()
        {
            using var a = Process.Start(new ProcessStartInfo("ip", ["link", "del", _veth]) { RedirectStandardError = true })!;
            await a.WaitForExitAsync();
            using var b = Process.Start(new ProcessStartInfo("ip", ["netns", "del", Name]) { RedirectStandardError = true })!;
            await b.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task NodePortLoadBalancerAndExternalIpsAnswerFromAnotherHostWithTrafficPolicyAndAffinity()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "np.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata: {name: who, namespace: default}
            spec:
              replicas: 2
              selector: {matchLabels: {app: who}}
              template:
                metadata: {labels: {app: who}}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: httpd
                    image: busybox:1.36
                    command: [sh, -c, "mkdir -p /tmp/www/cgi-bin; printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $(hostname) $REMOTE_ADDR\n' > /tmp/www/cgi-bin/who; chmod +x /tmp/www/cgi-bin/who; trap 'exit 0' TERM; httpd -f -p 8080 -h /tmp/www & wait"]
                    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: np-cluster, namespace: default}
            spec:
              type: NodePort
              selector: {app: who}
              ports: [{port: 80, targetPort: 8080}]
              externalIPs: [10.252.0.11]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: np-local, namespace: default}
            spec:
              type: LoadBalancer
              externalTrafficPolicy: Local
              selector: {app: who}
              ports: [{port: 80, targetPort: 8080}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: sticky, namespace: default}
            spec:
              type: NodePort
              selector: {app: who}
              sessionAffinity: ClientIP
              ports: [{port: 80, targetPort: 8080}]
            """);
        await using var client = new ClientHost();
        try
        {
            await client.StartAsync();
            await node.Kubectl("apply", "-f", file);
            await node.Kubectl("patch", "service", "np-local", "--subresource=status", "--type=merge", "-p", """{"status":{"loadBalancer":{"ingress":[{"ip":"10.252.0.10"}]}}}""");
            string[] pods = [];
            await node.WaitForAsync("2 ready pods", async () =>
            {
                pods = await node.ReadyPodsAsync("app=who");
                return pods.Length == 2;
            }, TimeSpan.FromSeconds(90));
            string nodeIp = await node.Kubectl("get", "node", NodeFixture.NodeName, "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}");
            async Task<string> Port(string svc) => await node.Kubectl("get", "service", svc, "-o", "jsonpath={.spec.ports[0].nodePort}");

            async Task<List<(string Pod, string Source)>> Ask(string url, int times)
            {
                var answers = new List<(string, string)>();
                await node.WaitForAsync($"{url} answering", async () => await client.GetAsync(url) is not null, TimeSpan.FromSeconds(15));
                for (int i = 0; i < times; i++)
                {
                    var body = await client.GetAsync(url);
                    Assert.True(body is not null, $"{url} failed on request {i}");
                    var parts = body!.Split(' ');
                    // httpd listens on IPv6 too and reports IPv4 clients as [::ffff:a.b.c.d].
                    answers.Add((parts[0], parts[1].Replace("[::ffff:", "").TrimEnd(']')));
                }
                return answers;
            }

            // NodePort on the node's address (Cluster policy): both pods answer; the client is masqueraded.
            var viaNodePort = await Ask($"http://{nodeIp}:{await Port("np-cluster")}/cgi-bin/who", 20);
            Assert.True(viaNodePort.Select(a => a.Pod).ToHashSet().SetEquals(pods), string.Join(", ", viaNodePort));
            Assert.DoesNotContain(viaNodePort, a => a.Source == ClientHost.Address);
            // Only there (--nodeport-addresses primary, kube-proxy's nftables default): the node's
            // other address, on the client's link, does not serve it.
            Assert.Null(await client.GetAsync($"http://10.251.0.1:{await Port("np-cluster")}/cgi-bin/who"));
            // externalIPs route to the same pods.
            Assert.Contains((await Ask("http://10.252.0.11/cgi-bin/who", 3))[0].Pod, pods);

            // LoadBalancer ingress IP and its NodePort, policy Local: the client's own address arrives.
            var viaLb = await Ask("http://10.252.0.10/cgi-bin/who", 5);
            Assert.All(viaLb, a => Assert.Equal(ClientHost.Address, a.Source));
            var viaLocalNodePort = await Ask($"http://{nodeIp}:{await Port("np-local")}/cgi-bin/who", 5);
            Assert.All(viaLocalNodePort, a => Assert.Equal(ClientHost.Address, a.Source));

            // sessionAffinity ClientIP: one client, one pod.
            var sticky = await Ask($"http://{nodeIp}:{await Port("sticky")}/cgi-bin/who", 10);
            Assert.Single(sticky.Select(a => a.Pod).Distinct());

            // The Local LoadBalancer got a healthCheckNodePort: 200 while this node has local endpoints, 503 when it has none.
            string hc = await node.Kubectl("get", "service", "np-local", "-o", "jsonpath={.spec.healthCheckNodePort}");
            Assert.True(int.TryParse(hc, out int hcPort) && hcPort > 0, $"healthCheckNodePort \"{hc}\"");
            using var probe = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = TimeSpan.FromSeconds(3) };
            async Task<(int Code, string Body)> Check()
            {
                try
                {
                    using var r = await probe.GetAsync($"http://{nodeIp}:{hcPort}/healthz");
                    return ((int)r.StatusCode, await r.Content.ReadAsStringAsync());
                }
                catch (HttpRequestException) { return (0, ""); }
            }
            (int, string) last = default;
            await node.WaitForAsync("the health check saying 2 local endpoints", async () => (last = await Check()) is (200, var b) && b.Contains("\"localEndpoints\":2", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
            Assert.Contains("\"service\":{\"namespace\":\"default\",\"name\":\"np-local\"}", last.Item2);
            await node.Kubectl("scale", "replicaset", "who", "--replicas=0");
            await node.WaitForAsync("the health check saying 503", async () => (last = await Check()) is (503, var b) && b.Contains("\"localEndpoints\":0", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        }
        finally
        {
            await node.KubectlAsync("delete", "-f", file, "--wait=true", "--timeout=30s");
            await node.KubectlAsync("delete", "pods", "-l", "app=who", "--wait=true", "--timeout=30s");
        }
    }
}
