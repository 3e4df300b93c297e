using System.Diagnostics;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>
/// kubectl exec, attach and port-forward through the control plane to the agent's kubelet port and
/// on to containerd's streaming server: WebSocket first (v5.channel.k8s.io, and the SPDY-over-WebSocket
/// tunnel for port-forward, as kubectl 1.30+ does), SPDY/3.1 when the client is told to fall back.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class StreamingTests(NodeFixture node)
{
    private static readonly (string, string)[] Spdy = [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false"), ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")];

    private static readonly string Manifest = """
        apiVersion: v1
        kind: Pod
        metadata: {name: streams, namespace: default}
        spec:
          nodeName: NODE
          terminationGracePeriodSeconds: 1
          containers:
          - name: web
            image: busybox:1.36
            command: [sh, -c, "mkdir -p /www && echo port-forwarded > /www/index.html && exec httpd -f -p 8080 -h /www"]
          - name: ticker
            image: busybox:1.36
            command: [sh, -c, "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done"]
        """.Replace("NODE", NodeFixture.NodeName, StringComparison.Ordinal);

    private async Task StartPodAsync()
    {
        string file = Path.Combine(node.Work, "streams.yaml");
        await File.WriteAllTextAsync(file, Manifest);
        await node.Kubectl("apply", "-f", file);
        await node.WaitForAsync("pod streams running", async () =>
        {
            var (code, o, _) = await node.KubectlAsync("get", "pod", "streams", "-o", "jsonpath={.status.containerStatuses[*].state.running.startedAt}");
            return code == 0 && o.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 2;
        }, TimeSpan.FromSeconds(60));
    }

    private async Task DeletePodAsync() => await node.KubectlAsync("delete", "pod", "streams", "--wait=true", "--timeout=30s");

    [Fact]
    public async Task KubectlExecRunsCommandsPassesStdinAndReturnsTheExitCode()
    {
        node.RequireReady();
        await StartPodAsync();
        try
        {
            foreach (var (name, env) in new[] { ("websocket", Array.Empty<(string, string)>()), ("spdy", Spdy) })
            {
                var (code, o, e) = await node.KubectlAsync(null, env, "exec", "streams", "-c", "web", "--", "cat", "/etc/hostname");
                Assert.True(code == 0, $"{name}: {o}{e}\n{NodeFixture.Tail(node.AgentLog, 20)}");
                Assert.Equal("streams", o.Trim());

                // stdin reaches the command and its end closes it (v5 CLOSE / SPDY half-close): cat returns.
                string input = string.Concat(Enumerable.Range(0, 2000).Select(i => $"line {i}\n"));
                (code, o, e) = await node.KubectlAsync(input, env, "exec", "-i", "streams", "-c", "web", "--", "sh", "-c", "cat; echo stderr-line >&2; exit 3");
                Assert.True(code == 3, $"{name}: exit {code}: {e}");
                Assert.Equal(input, o);
                Assert.Contains("stderr-line", e);
            }
            // Bad requests get clear errors and disturb nothing.
            var bad = await node.KubectlAsync("exec", "streams", "-c", "nope", "--", "true");
            Assert.NotEqual(0, bad.Code);
            Assert.Contains("container nope is not valid for pod streams", bad.Err);
            bad = await node.KubectlAsync("exec", "streams", "-c", "web", "--", "/no/such/binary");
            Assert.NotEqual(0, bad.Code);
            Assert.Contains("no such file or directory", bad.Err);
            Assert.Equal("ok", await node.Healthz());
        }
        finally
        {
            await DeletePodAsync();
        }
    }

    [Fact]
    public async Task KubectlExecWithATerminalSeesItsSize()
    {
        node.RequireReady();
        await StartPodAsync();
        try
        {
            // script(1) gives kubectl a terminal of a known size; kubectl sends it on the resize channel.
            var psi = new ProcessStartInfo("script") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "-qec", "stty cols 123 rows 45; kubectl exec -it streams -c web -- sh", "/dev/null" }) psi.ArgumentList.Add(a);
            psi.Environment["KUBECONFIG"] = node.AdminKubeconfig;
            psi.Environment["HOME"] = node.Work;
            using var p = Process.Start(psi)!;
            var o = p.StandardOutput.ReadToEndAsync();
            await Task.Delay(2000);
            await p.StandardInput.WriteAsync("echo tty-$((40+2)); stty size; exit 5\n");
            await p.StandardInput.FlushAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await p.WaitForExitAsync(cts.Token);
            string output = (await o).Replace("\r", "");
            Assert.Contains("tty-42", output);
            Assert.Contains("45 123", output);
            Assert.Equal(5, p.ExitCode);
        }
        finally
        {
            await DeletePodAsync();
        }
    }

    [Fact]
    public async Task KubectlAttachStreamsTheRunningContainersOutput()
    {
        node.RequireReady();
        await StartPodAsync();
        try
        {
            foreach (var env in new[] { Array.Empty<(string, string)>(), Spdy })
            {
                using var p = node.StartKubectl(false, env, "attach", "streams", "-c", "ticker");
                try
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                    var ticks = 0;
                    while (ticks < 2 && await p.StandardOutput.ReadLineAsync(cts.Token) is { } line)
                        if (line.StartsWith("tick-", StringComparison.Ordinal)) ticks++;
                    Assert.Equal(2, ticks);
                }
                finally
                {
                    p.Kill(true);
                }
            }
        }
        finally
        {
            await DeletePodAsync();
        }
    }

    [Fact]
    public async Task KubectlPortForwardReachesThePodOverWebSocketsAndSpdy()
    {
        node.RequireReady();
        await StartPodAsync();
        try
        {
            foreach (var env in new[] { Array.Empty<(string, string)>(), Spdy })
            {
                int local = NodeFixture.FreePort();
                using var p = node.StartKubectl(false, env, "port-forward", "pod/streams", $"{local}:8080");
                try
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                    while (await p.StandardOutput.ReadLineAsync(cts.Token) is { } line && !line.Contains("Forwarding from 127.0.0.1")) { }
                    using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
                    // Several connections over the one forward: each gets its own stream pair.
                    for (int i = 0; i < 3; i++)
                        Assert.Equal("port-forwarded\n", await http.GetStringAsync($"http://127.0.0.1:{local}/index.html"));
                }
                finally
                {
                    p.Kill(true);
                }
            }
        }
        finally
        {
            await DeletePodAsync();
        }
    }
}
