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

    private static async Task NftAsync(params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo("nft", args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"nft {string.Join(' ', args)}: {await p.StandardError.ReadToEndAsync()}");
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
                pods = (await node.Kubectl("get", "pods", "-l", "app=cip", "-o", "jsonpath={range .items[*]}{.metadata.name}:{.status.conditions[?(@.type==\"Ready\")].status} {end}"))
                    .Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(p => p.EndsWith(":True", StringComparison.Ordinal)).Select(p => p[..p.IndexOf(':')]).Order().ToArray();
                var eps = await node.Kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=cip", "-o", "jsonpath={.items[*].endpoints[*].conditions.ready}");
                return pods.Length == 3 && eps.Split(' ').Count(r => r == "true") == 3;
            }, TimeSpan.FromSeconds(90));
            string ip = await node.Kubectl("get", "service", "cip", "-o", "jsonpath={.spec.clusterIP}");
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
}
