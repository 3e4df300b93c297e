using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using Xunit;

namespace NodeAgent.IntegrationTests;

[CollectionDefinition(Name)]
public sealed class NodeCollection : ICollectionFixture<NodeFixture>
{
    public const string Name = "node";
}

/// <summary>
/// One node for the whole suite: a private containerd (own root, socket and CNI bridge), the two
/// local images, and the published AOT node-agent binary run as a child process. Prerequisites
/// that are missing make every test fail with the reason; nothing is skipped.
/// </summary>
public sealed class NodeFixture : IAsyncLifetime
{
    public const string NodeName = "it-node";
    public static readonly string Repo = NodeAgent.Testing.TestHost.Repo;
    public string Work { get; } = Path.Combine(Path.GetTempPath(), "na-it-" + Guid.NewGuid().ToString("N")[..8]);
    public string Manifests => Path.Combine(Work, "manifests");
    public string PodLogs => Path.Combine(Work, "pod-logs");
    public string RootDir => Path.Combine(Work, "root");
    public string ContainerdDir => Path.Combine(Work, "containerd");
    public string Socket => Path.Combine(ContainerdDir, "containerd.sock");
    public int Port { get; } = FreePort();
    public int HealthzPort { get; } = FreePort();
    public int ProxyHealthzPort { get; } = FreePort();
    public int ProxyMetricsPort { get; } = FreePort();
    public string AgentBinary { get; } = Environment.GetEnvironmentVariable("NODE_AGENT_BIN") ?? Path.Combine(Repo, "artifacts", "publish", "node-agent", "node-agent");
    public string ControlPlaneBinary { get; } = Environment.GetEnvironmentVariable("CONTROL_PLANE_BIN") ?? Path.Combine(Repo, "artifacts", "publish", "control-plane", "control-plane");
    public string ControlPlaneDir => Path.Combine(Work, "control-plane");
    /// <summary>The admin kubeconfig for kubectl; the agent joins with a node kubeconfig (system:node:it-node).</summary>
    public string AdminKubeconfig => Path.Combine(ControlPlaneDir, "admin.kubeconfig");
    public string NodeKubeconfig => Path.Combine(Work, "node.kubeconfig");
    public int ApiPort { get; } = FreePort();
    public int KubeletPort { get; } = FreePort();
    public int EtcdPort { get; } = FreePort();
    public RemoteRuntime Cri { get; private set; } = null!;
    public string? SetupError { get; private set; }

    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private readonly StringBuilder _agentLog = new();
    private Process? _agent;
    private Process? _etcd;
    private Process? _controlPlane;
    private readonly StringBuilder _controlPlaneLog = new();

    public async Task InitializeAsync()
    {
        try
        {
            CheckPrerequisites();
            Directory.CreateDirectory(Manifests);
            await Run(Path.Combine(Repo, "hack", "images.sh"), $"build {Work}/images");
            await StartContainerdAsync();
            await Run(Path.Combine(Repo, "hack", "images.sh"), $"import {Work}/images {Socket}");
            Cri = new RemoteRuntime(CriChannel.Create(Socket), TimeSpan.FromSeconds(30));
            await StartControlPlaneAsync();
            StartAgent();
            await WaitForAsync("agent /healthz answers ok", async () => await Healthz() == "ok", TimeSpan.FromSeconds(30));
        }
        catch (Exception e)
        {
            SetupError = e.ToString();
        }
    }

    /// <summary>Call first in every test: fails (never skips) when the node could not be set up.</summary>
    public void RequireReady()
    {
        if (SetupError is not null) Assert.Fail("node fixture could not start: " + SetupError + "\nagent log:\n" + AgentLog);
    }

    private void CheckPrerequisites()
    {
        var missing = new List<string>();
        if (Environment.UserName != "root") missing.Add("tests must run as root (containerd, cgroups, CNI)");
        foreach (var tool in (string[])["containerd", "ctr", "runc", "gcc", "strip", "busybox", "etcd", "kubectl"])
            if (Which(tool) is null) missing.Add($"{tool} not on PATH (apt-get install containerd runc gcc busybox-static)");
        if (!File.Exists("/usr/lib/cni/bridge")) missing.Add("/usr/lib/cni/bridge missing (apt-get install containernetworking-plugins)");
        if (!File.Exists(AgentBinary)) missing.Add($"agent binary {AgentBinary} missing (dotnet publish src/NodeAgent -c Release -r linux-x64 -o artifacts/publish/node-agent, or set NODE_AGENT_BIN)");
        if (!File.Exists(ControlPlaneBinary)) missing.Add($"control-plane binary {ControlPlaneBinary} missing (dotnet publish src/ControlPlane -c Release -r linux-x64 -o artifacts/publish/control-plane, or set CONTROL_PLANE_BIN)");
        if (missing.Count > 0) throw new InvalidOperationException("missing prerequisites:\n  " + string.Join("\n  ", missing));
    }

    /// <summary>etcd and the control plane on loopback ports, and a node kubeconfig for the agent.</summary>
    private async Task StartControlPlaneAsync()
    {
        _etcd = Spawn("etcd", ["--name", "it", "--data-dir", Path.Combine(Work, "etcd"), "--listen-client-urls", $"http://127.0.0.1:{EtcdPort}",
            "--advertise-client-urls", $"http://127.0.0.1:{EtcdPort}", "--listen-peer-urls", $"http://127.0.0.1:{FreePort()}",
            "--heartbeat-interval=10", "--election-timeout=100"], _controlPlaneLog);
        await WaitForAsync("etcd /health", async () => (await _http.GetStringAsync($"http://127.0.0.1:{EtcdPort}/health")).Contains("true"), TimeSpan.FromSeconds(20));
        await StartApiServerAsync();
        using var p = Process.Start(new ProcessStartInfo(ControlPlaneBinary, ["node-kubeconfig", "--node", NodeName, "--data-dir", ControlPlaneDir,
            "--server", $"https://127.0.0.1:{ApiPort}", "--out", NodeKubeconfig]) { RedirectStandardError = true })!;
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException("node-kubeconfig failed: " + await p.StandardError.ReadToEndAsync());
    }

    /// <summary>Starts the control-plane process (again) on the fixture's etcd and waits until it is ready.</summary>
    public async Task StartApiServerAsync()
    {
        _controlPlane = Spawn(ControlPlaneBinary, ["--data-dir", ControlPlaneDir, "--etcd-servers", $"http://127.0.0.1:{EtcdPort}",
            "--secure-port", ApiPort.ToString(), "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--service-cluster-ip-range", $"10.96.0.0/12,{ServiceCidr6}"], _controlPlaneLog);
        await WaitForAsync("control plane ready", async () => File.Exists(AdminKubeconfig) && (await KubectlAsync("get", "--raw", "/readyz")).Code == 0, TimeSpan.FromSeconds(30));
    }

    public async Task StopApiServerAsync()
    {
        if (_controlPlane is not { HasExited: false } p) return;
        p.Kill(true);
        await p.WaitForExitAsync();
    }

    public string ControlPlaneLog { get { lock (_controlPlaneLog) return _controlPlaneLog.ToString(); } }

    /// <summary>Runs the installed kubectl with the admin kubeconfig.</summary>
    public Task<(int Code, string Out, string Err)> KubectlAsync(params string[] args) => KubectlAsync(null, [], args);

    /// <summary>kubectl with <paramref name="stdin"/> piped in (then closed) and extra environment variables.</summary>
    public async Task<(int Code, string Out, string Err)> KubectlAsync(string? stdin, (string Name, string Value)[] env, params string[] args)
    {
        using var p = StartKubectl(stdin is not null, env, args);
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(true);
            throw new TimeoutException($"kubectl {string.Join(' ', args)} did not finish in 60 s");
        }
        return (p.ExitCode, await o, await e);
    }

    /// <summary>A kubectl process left running (port-forward, attach); the caller reads and kills it.</summary>
    public Process StartKubectl(bool redirectStdin, (string Name, string Value)[] env, params string[] args)
    {
        var psi = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = redirectStdin };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["KUBECONFIG"] = AdminKubeconfig;
        psi.Environment["HOME"] = Work;
        foreach (var (k, v) in env) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    /// <summary>Names of the pods with label selector <paramref name="selector"/> whose Ready condition is True, sorted.</summary>
    public async Task<string[]> ReadyPodsAsync(string selector) =>
        (await Kubectl("get", "pods", "-l", selector, "-o", "jsonpath={range .items[*]}{.metadata.name}:{.status.conditions[?(@.type==\"Ready\")].status} {end}"))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(p => p.EndsWith(":True", StringComparison.Ordinal)).Select(p => p[..p.IndexOf(':')]).Order().ToArray();

    public async Task<string> Kubectl(params string[] args)
    {
        var (code, o, e) = await KubectlAsync(args);
        Assert.True(code == 0, $"kubectl {string.Join(' ', args)} exited {code}: {o}{e}\n--- agent log (tail) ---\n{Tail(AgentLog, 40)}");
        return o;
    }

    private static Process Spawn(string file, string[] args, StringBuilder log)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>The cluster is dual-stack: pods get an address from each of these, Services may have ClusterIPs of both families.</summary>
    public const string PodCidr4 = "10.245.0.0/24", PodCidr6 = "fd00:245::/64", ServiceCidr6 = "fd00:96::/112";

    public Task StartContainerdAsync() => Run(Path.Combine(Repo, "hack", "containerd.sh"), $"start {ContainerdDir} {PodCidr4} nait0 {PodCidr6}");

    public Task StopContainerdAsync() => Run(Path.Combine(Repo, "hack", "containerd.sh"), $"stop {ContainerdDir}");

    /// <summary>
    /// Starts the agent as node <see cref="NodeName"/>; <paramref name="runtimeSocket"/> and
    /// <paramref name="kubeconfig"/> replace the fixture's, <paramref name="env"/> is added to its
    /// environment and <paramref name="extra"/> to its flags.
    /// </summary>
    public void StartAgent(string? runtimeSocket = null, string? kubeconfig = null, IReadOnlyDictionary<string, string>? env = null, params string[] extra)
    {
        var psi = new ProcessStartInfo(AgentBinary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = "/", // as under systemd (no WorkingDirectory= in the unit)
        };
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        foreach (var a in (string[])[
            "--container-runtime-endpoint", "unix://" + (runtimeSocket ?? Socket), "--pod-manifest-path", Manifests, "--root-dir", RootDir,
            "--pod-logs-dir", PodLogs, "--read-only-port", Port.ToString(), "--healthz-port", HealthzPort.ToString(),
            "--hostname-override", NodeName, "--sync-frequency", "20s", "--kubeconfig", kubeconfig ?? NodeKubeconfig, "--node-labels", "it=true", "--port", KubeletPort.ToString(),
            "--container-log-max-size", "8Ki", "--container-log-max-files", "3",
            // The service proxy: pods come from containerd.sh's subnets; a rule someone deletes is back within 3 s.
            "--cluster-cidr", $"{PodCidr4},{PodCidr6}", "--proxy-full-sync-period", "3s", "--proxy-healthz-port", ProxyHealthzPort.ToString(),
            "--proxy-metrics-port", ProxyMetricsPort.ToString(), .. extra])
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_agentLog) _agentLog.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_agentLog) _agentLog.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _agent = p;
    }

    /// <summary>Kills the agent with a signal (9 = SIGKILL, 15 = SIGTERM) and waits for it to exit.</summary>
    public async Task StopAgentAsync(int signal)
    {
        if (_agent is null) return;
        Process.Start("kill", $"-{signal} {_agent.Id}")!.WaitForExit();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _agent.WaitForExitAsync(cts.Token);
        _agent = null;
    }

    public int? AgentPid => _agent is { HasExited: false } ? _agent.Id : null;

    /// <summary>
    /// Freezes the running agent (SIGSTOP) until the returned scope is disposed (SIGCONT), for a
    /// test that drives containerd itself: the agent collects sandboxes labelled with a pod UID it
    /// does not know, and its collection pass (once a minute) could otherwise fall in the middle of
    /// the test and remove the test's sandbox.
    /// </summary>
    public IDisposable FreezeAgent()
    {
        if (AgentPid is not { } pid) return new Frozen(null);
        Process.Start("kill", $"-STOP {pid}")!.WaitForExit();
        return new Frozen(pid);
    }

    private sealed class Frozen(int? pid) : IDisposable
    {
        public void Dispose()
        {
            if (pid is { } p) Process.Start("kill", $"-CONT {p}")!.WaitForExit();
        }
    }

    public int? AgentExitCode => _agent is { HasExited: true } ? _agent.ExitCode : null;

    public string AgentLog { get { lock (_agentLog) return _agentLog.ToString(); } }

    public async Task<string> Healthz()
    {
        try { return await _http.GetStringAsync($"http://127.0.0.1:{HealthzPort}/healthz"); }
        catch (HttpRequestException e) { return e.Message; }
        catch (TaskCanceledException) { return "timeout"; }
    }

    public async Task<PodList> GetPodsAsync()
    {
        var json = await _http.GetByteArrayAsync($"http://127.0.0.1:{Port}/pods");
        return JsonSerializer.Deserialize(json, ApiJsonContext.Default.PodList)!;
    }

    public async Task<Pod?> GetPodAsync(string name)
    {
        var list = await GetPodsAsync();
        return list.Items.FirstOrDefault(p => p.Metadata.Name == $"{name}-{NodeName}");
    }

    public void WriteManifest(string file, string yaml) => File.WriteAllText(Path.Combine(Manifests, file), yaml);

    public void DeleteManifest(string file) => File.Delete(Path.Combine(Manifests, file));

    /// <summary>Deletes manifests and waits until no pod is left on the node (every test's cleanup).</summary>
    public async Task RemoveAllAsync(params string[] files)
    {
        foreach (var f in files) DeleteManifest(f);
        await WaitForAsync($"pods of {string.Join(", ", files)} removed", async () => (await GetPodsAsync()).Items.Count == 0, TimeSpan.FromSeconds(30));
    }

    /// <summary>Polls until <paramref name="condition"/> holds; fails with the agent log otherwise.</summary>
    public async Task WaitForAsync(string what, Func<Task<bool>> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        Exception? last = null;
        while (sw.Elapsed < timeout)
        {
            try { if (await condition()) return; }
            catch (Exception e) { last = e; }
            await Task.Delay(200);
        }
        throw new TimeoutException($"timed out after {timeout.TotalSeconds:0}s waiting for: {what}" + (last is null ? "" : $" (last error: {last.Message})") +
            "\n--- agent log (tail) ---\n" + Tail(AgentLog, 60));
    }

    public async Task<Pod> WaitForPodAsync(string name, Func<Pod, bool> condition, string what, TimeSpan timeout)
    {
        Pod? pod = null;
        await WaitForAsync($"pod {name}: {what}", async () => (pod = await GetPodAsync(name)) is not null && condition(pod), timeout);
        return pod!;
    }

    /// <summary>Sandboxes and containers on the runtime that carry this pod UID.</summary>
    public async Task<(int Sandboxes, int Containers)> RuntimeObjectsAsync(string uid)
    {
        var f = new PodSandboxFilter();
        f.LabelSelector.Add(Labels.PodUid, uid);
        var cf = new ContainerFilter();
        cf.LabelSelector.Add(Labels.PodUid, uid);
        return ((await Cri.ListPodSandboxAsync(f, default)).Count, (await Cri.ListContainersAsync(cf, default)).Count);
    }

    public async Task DisposeAsync()
    {
        try
        {
            foreach (var f in Directory.Exists(Manifests) ? Directory.GetFiles(Manifests) : []) File.Delete(f);
            if (_agent is not null && Cri is not null)
                await WaitForAsync("all pods removed", async () => (await GetPodsAsync()).Items.Count == 0, TimeSpan.FromSeconds(60));
        }
        catch (Exception) { }
        try { await StopAgentAsync(15); } catch (Exception) { }
        try
        {
            if (Cri is not null)
                foreach (var sb in await Cri.ListPodSandboxAsync(null, default))
                {
                    await Cri.StopPodSandboxAsync(sb.Id, default);
                    await Cri.RemovePodSandboxAsync(sb.Id, default);
                }
        }
        catch (Exception) { }
        try { await StopContainerdAsync(); } catch (Exception) { }
        foreach (var p in (Process?[])[_controlPlane, _etcd])
            try { if (p is { HasExited: false }) { p.Kill(true); await p.WaitForExitAsync(); } } catch (Exception) { }
        // Unmount whatever containerd left under the work dir, deepest first, then delete it.
        foreach (var line in File.ReadAllLines("/proc/self/mounts").Select(l => l.Split(' ')[1]).Where(m => m.StartsWith(Work, StringComparison.Ordinal)).OrderByDescending(m => m.Length))
            Process.Start("umount", ["-l", line])!.WaitForExit();
        try { Directory.Delete(Work, recursive: true); } catch (Exception) { }
        Process.Start("ip", ["link", "delete", "nait0"])?.WaitForExit();
        // The agent leaves its service rules in place when it stops (as kube-proxy does); the tests' go with them.
        foreach (var family in (string[])["ip", "ip6"])
            Process.Start(new ProcessStartInfo("nft", ["delete", "table", family, "node-agent"]) { RedirectStandardError = true })?.WaitForExit();
    }

    public static async Task Run(string file, string args)
    {
        var psi = new ProcessStartInfo("bash", $"{file} {args}") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {args} failed ({p.ExitCode}): {await stderr}{await stdout}");
    }

    public static string Tail(string text, int lines)
    {
        var all = text.Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }

    private static string? Which(string tool) => NodeAgent.Testing.TestHost.Which(tool);

    public static int FreePort() => NodeAgent.Testing.TestHost.FreePort();
}
