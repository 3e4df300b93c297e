using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>
/// The agent under a Type=notify unit, without systemd: NOTIFY_SOCKET points at a datagram socket
/// the test reads, and the runtime and the API server are reached through gates the test opens,
/// pauses and resumes.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class SystemdTests(NodeFixture node)
{
    /// <summary>
    /// Run from "/" as systemd runs it, the agent watches only what it needs with inotify (the
    /// manifest directory, followed logs): the web host's configuration reload once watched the
    /// working directory recursively, ~48,000 watches on "/".
    /// </summary>
    [Fact]
    public async Task FromTheRootDirectoryTheAgentHoldsOnlyAFewInotifyWatches()
    {
        await node.WaitForAsync("agent healthy", async () => await node.Healthz() == "ok", TimeSpan.FromSeconds(30));
        int pid = node.AgentPid ?? throw new InvalidOperationException("the fixture's agent is not running:\n" + node.AgentLog);
        Assert.Equal("/", new DirectoryInfo($"/proc/{pid}/cwd").ResolveLinkTarget(false)?.FullName);
        int watches = 0;
        foreach (var fd in Directory.GetFiles($"/proc/{pid}/fd"))
        {
            if (new FileInfo(fd).ResolveLinkTarget(false)?.Name != "anon_inode:inotify") continue;
            watches += File.ReadLines($"/proc/{pid}/fdinfo/{Path.GetFileName(fd)}").Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal));
        }
        Assert.InRange(watches, 1, 20);
    }

    /// <summary>What the agent told "systemd", in order, with when.</summary>
    private sealed class NotifySocket : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        private readonly List<(DateTime At, string Message)> _received = [];
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        public string Path { get; }

        public NotifySocket(string path)
        {
            Path = path;
            _socket.Bind(new UnixDomainSocketEndPoint(path));
            _ = Task.Run(async () =>
            {
                var buffer = new byte[4096];
                try
                {
                    while (true)
                    {
                        int n = await _socket.ReceiveAsync(buffer, SocketFlags.None);
                        lock (_received) _received.Add((DateTime.UtcNow, Encoding.UTF8.GetString(buffer, 0, n)));
                    }
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            });
        }

        public List<(DateTime At, string Message)> Received { get { lock (_received) return [.. _received]; } }
        public bool Has(string assignment) => Received.Any(r => r.Message.Split('\n').Contains(assignment));
        public List<DateTime> Pings(DateTime from, DateTime to) => [.. Received.Where(r => r.Message == "WATCHDOG=1" && r.At >= from && r.At < to).Select(r => r.At)];
        public string Dump() => string.Join("\n", Received.Select(r => $"{r.At:HH:mm:ss.fff} {r.Message.Replace('\n', '|')}"));

        public void Dispose()
        {
            _socket.Dispose();
            File.Delete(Path);
        }
    }

    [Fact]
    public async Task ReadyComesAfterTheRuntimeAndTheApiAnswerAndWatchdogPingsStopWhileTheSyncLoopStalls()
    {
        node.RequireReady();
        string id = Guid.NewGuid().ToString("N")[..6];
        using var notify = new NotifySocket(Path.Combine(node.Work, $"notify-{id}.sock"));
        await using var runtime = Gate.Unix(Path.Combine(node.Work, $"cri-gate-{id}.sock"), node.Socket);
        int apiGatePort = NodeFixture.FreePort();
        await using var api = Gate.Tcp(apiGatePort, node.ApiPort);
        string kubeconfig = Path.Combine(node.Work, $"gated-{id}.kubeconfig");
        File.WriteAllText(kubeconfig, File.ReadAllText(node.NodeKubeconfig).Replace($"https://127.0.0.1:{node.ApiPort}", $"https://127.0.0.1:{apiGatePort}"));
        var env = new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path, ["WATCHDOG_USEC"] = "2000000" };
        string[] flags = ["--sync-loop-stall-threshold", "4s", "--runtime-request-timeout", "60s"];

        await node.StopAgentAsync(15);
        try
        {
            // 1. The API answers (the Node gets registered) but the runtime does not: no READY=1.
            api.Listen();
            node.StartAgent(Path.Combine(node.Work, $"cri-gate-{id}.sock"), kubeconfig, env, flags);
            await node.WaitForAsync("STATUS while waiting", () => Task.FromResult(notify.Has("STATUS=Waiting for the container runtime and the API server")), TimeSpan.FromSeconds(15));
            await Task.Delay(TimeSpan.FromSeconds(6));
            Assert.False(notify.Has("READY=1"), "READY=1 before the runtime answered:\n" + notify.Dump());
            Assert.Empty(notify.Pings(DateTime.MinValue, DateTime.MaxValue));

            // The runtime comes: READY=1, then WATCHDOG=1 about every second (WatchdogSec=2s).
            runtime.Listen();
            await node.WaitForAsync("READY=1", () => Task.FromResult(notify.Has("READY=1")), TimeSpan.FromSeconds(30));
            await Task.Delay(TimeSpan.FromSeconds(4));
            var now = DateTime.UtcNow;
            Assert.InRange(notify.Pings(now.AddSeconds(-3.5), now).Count, 2, 5);

            // 2. The runtime hangs (every CRI byte held): the PLEG's relist cannot complete, and once
            // the 4 s threshold has passed the pings stop and STATUS says why.
            runtime.Pause();
            var paused = DateTime.UtcNow;
            await Task.Delay(TimeSpan.FromSeconds(10));
            var silent = notify.Pings(paused.AddSeconds(6), DateTime.UtcNow);
            Assert.True(silent.Count == 0, $"watchdog pings went on while the sync loop stalled:\n{notify.Dump()}");
            Assert.Contains(notify.Received, r => r.Message.StartsWith("STATUS=Sync loop stalled", StringComparison.Ordinal));

            // It recovers: the pings resume.
            runtime.Resume();
            var resumed = DateTime.UtcNow;
            await node.WaitForAsync("watchdog pings again", () => Task.FromResult(notify.Pings(resumed, DateTime.MaxValue).Count >= 2), TimeSpan.FromSeconds(20));

            // Stopping says so.
            await node.StopAgentAsync(15);
            Assert.True(notify.Has("STOPPING=1"), notify.Dump());

            // 3. The runtime answers but the API server does not: no READY=1 until it does.
            await api.DisposeAsync();
            await using var api2 = Gate.Tcp(apiGatePort, node.ApiPort);
            using var notify2 = new NotifySocket(Path.Combine(node.Work, $"notify2-{id}.sock"));
            env["NOTIFY_SOCKET"] = notify2.Path;
            node.StartAgent(null, kubeconfig, env, flags);
            await node.WaitForAsync("agent healthy (runtime connected)", async () => await node.Healthz() == "ok", TimeSpan.FromSeconds(30));
            await Task.Delay(TimeSpan.FromSeconds(4));
            Assert.False(notify2.Has("READY=1"), "READY=1 before the API server answered:\n" + notify2.Dump());
            api2.Listen();
            await node.WaitForAsync("READY=1 once the API answers", () => Task.FromResult(notify2.Has("READY=1")), TimeSpan.FromSeconds(45));
        }
        finally
        {
            await node.StopAgentAsync(15);
            node.StartAgent();
            await node.WaitForAsync("the fixture's agent healthy again", async () => await node.Healthz() == "ok", TimeSpan.FromSeconds(30));
        }
    }
}
