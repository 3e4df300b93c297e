// Pod start and footprint benchmark (issue: "Benchmark" section). Run as root:
//   dotnet run -c Release --project bench/NodeAgent.Bench -- [--pods 50] [--window 60] [--rounds 3] [--read-ahead-kb N] [--agent-logs DIR]
// --agent-logs DIR keeps each round's agent log as DIR/agent-round-N.log (otherwise discarded).
//   dotnet run -c Release --project bench/NodeAgent.Bench -- --cluster [--pods 100] [--window 120] [--rounds 3]
//   dotnet run -c Release --project bench/NodeAgent.Bench -- --proxy [--services 1000,10000,30000]
// --proxy: the service proxy's rule sync and first-packet latency (see ProxyBench.cs).
//   dotnet run -c Release --project bench/NodeAgent.Bench -- --metrics [--pods 10,50,110]
// --metrics: one stats collection and one /metrics/cadvisor render (see MetricsBench.cs).
//   dotnet run -c Release --project bench/NodeAgent.Bench -- --relist [--pods 10,50,110]
// --relist: decoding one PLEG relist's two list responses (see RelistBench.cs).
// --cluster: the agent joined to etcd + the control plane (see ClusterBench.cs): pod startup
// latency as the SLO defines it, and the steady-state API load the agent puts on the server.
// It starts a private containerd, then for each round:
//   floor: a minimal CRI client issues exactly the calls the agent issues per pod
//          (ImageStatus, RunPodSandbox, PodSandboxStatus, CreateContainer, StartContainer) for N pods at once;
//   agent: N static pod manifests are written at once and the AOT agent starts them;
// and reports per-pod start latency p50/p99 and time-to-all-running for both, the agent's overhead,
// and the agent's RSS and CPU (idle and with N running pods). Both sides are timed alike: a pod's
// latency is its container's started_at in the runtime minus the round's start, read after the
// round, so watching costs the runtime nothing while the pods start.
using System.Diagnostics;
using static NodeAgent.Bench.BenchUtil;
using System.Globalization;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;

if (args.Contains("--metrics"))
    return NodeAgent.Bench.MetricsBench.Run(args.SkipWhile(a => a != "--pods").Skip(1).FirstOrDefault() is { } sizes
        ? [.. sizes.Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture))] : [10, 50, 110]);
if (args.Contains("--relist"))
    return NodeAgent.Bench.RelistBench.Run(args.SkipWhile(a => a != "--pods").Skip(1).FirstOrDefault() is { } relistSizes
        ? [.. relistSizes.Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture))] : [10, 50, 110]);
if (args.Contains("--proxy"))
    return await NodeAgent.Bench.ProxyBench.RunAsync(args.SkipWhile(a => a != "--services").Skip(1).FirstOrDefault() is { } list
        ? [.. list.Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture))] : [1_000, 10_000, 30_000]);
bool cluster = args.Contains("--cluster");
int pods = Arg("--pods", cluster ? 100 : 50), window = Arg("--window", cluster ? 120 : 60), rounds = Arg("--rounds", 3);
string repo = FindRepo();
string agentBin = Environment.GetEnvironmentVariable("NODE_AGENT_BIN") ?? Path.Combine(repo, "artifacts/publish/node-agent/node-agent");
string controlPlaneBin = Environment.GetEnvironmentVariable("CONTROL_PLANE_BIN") ?? Path.Combine(repo, "artifacts/publish/control-plane/control-plane");
if (!File.Exists(agentBin)) { Console.Error.WriteLine($"publish the agent first: {agentBin} missing"); return 2; }
if (cluster && !File.Exists(controlPlaneBin)) { Console.Error.WriteLine($"publish the control plane first: {controlPlaneBin} missing"); return 2; }
string? agentLogs = args.SkipWhile(a => a != "--agent-logs").Skip(1).FirstOrDefault();
if (agentLogs is not null) Directory.CreateDirectory(agentLogs);
string work = Path.Combine(Path.GetTempPath(), "na-bench-" + Guid.NewGuid().ToString("N")[..6]);
string ctd = Path.Combine(work, "containerd"), sock = Path.Combine(ctd, "containerd.sock");
Directory.CreateDirectory(work);
Sh($"{repo}/hack/images.sh build {work}/images");
Sh($"{repo}/hack/containerd.sh start {ctd} 10.246.0.0/23 nabench0");
Sh($"{repo}/hack/images.sh import {work}/images {sock}");
var cri = new RemoteRuntime(CriChannel.Create(sock), TimeSpan.FromMinutes(2));
Process? agent = null;
var floorCpu = new List<double>(); var agentCpu = new List<double>(); // client CPU-s per start round
// The read-ahead of the disk that holds the agent's binary decides how much of its code a page
// fault brings back after the agent gave its start-up pages back (see docs/benchmarks.md):
// reported with the RSS, and settable for the run (--read-ahead-kb N; restored afterwards).
string readAheadFile = ReadAheadFile(agentBin);
string readAheadBefore = File.ReadAllText(readAheadFile).Trim();
if (Arg("--read-ahead-kb", 0) is > 0 and var raKb) File.WriteAllText(readAheadFile, raKb.ToString(CultureInfo.InvariantCulture));
string readAhead = File.ReadAllText(readAheadFile).Trim();
try
{
    await cri.VersionAsync(default);
    // The floor client is this JIT-compiled process: one unrecorded round first, so that no
    // measured floor round pays for compiling its gRPC path (the agent is compiled ahead of time).
    await FloorAsync(0);
    await CleanAsync();
    floorCpu.Clear();
    if (cluster)
    {
        var floors = new List<(List<double>, double)>();
        for (int round = 1; round <= rounds; round++)
        {
            floors.Add(await FloorAsync(round));
            await CleanAsync();
        }
        await using var bench = new NodeAgent.Bench.ClusterBench(work, sock, agentBin, controlPlaneBin, pods, window, Console.Error,
            async () => (await cri.ListPodSandboxAsync(null, default)).Count);
        return await bench.RunAsync(floors, CleanAsync);
    }
    var floorAll = new List<double>(); var agentAll = new List<double>();
    var floorTotals = new List<double>(); var agentTotals = new List<double>();
    // Per round, the agent's figure over the floor's of the same round: the VM's slow and fast
    // minutes move both sides of a round alike, so the median of these pairs is what the noise moves least.
    var pairP50 = new List<double>(); var pairP99 = new List<double>(); var pairAll = new List<double>();
    long rssIdle = 0, rssPods = 0, rssSteady = 0; double cpuIdle = 0, cpuPods = 0;
    (long Anon, long File) partsIdle = default, partsPods = default, partsSteady = default;
    for (int round = 1; round <= rounds; round++)
    {
        var (fl, ft) = await FloorAsync(round);
        floorAll.AddRange(fl); floorTotals.Add(ft);
        await CleanAsync();

        string manifests = Path.Combine(work, $"manifests-{round}");
        Directory.CreateDirectory(manifests);
        agent = StartAgent(manifests, round);
        await Task.Delay(3000); // connected, first relist done
        if (round == rounds)
        {
            rssIdle = Rss(agent.Id);
            partsIdle = RssParts(agent.Id);
            cpuIdle = await CpuPerMinuteAsync(agent.Id, window);
        }
        var (al, at) = await AgentRoundAsync(manifests, round, agent.Id);
        agentAll.AddRange(al); agentTotals.Add(at);
        if (round == rounds)
        {
            await Task.Delay(10_000); // settle: probes, status, GC first pass
            rssPods = Rss(agent.Id);
            partsPods = RssParts(agent.Id);
            cpuPods = await CpuPerMinuteAsync(agent.Id, window);
            rssSteady = Rss(agent.Id); // steady state: after the CPU window, past the agent's memory trim period
            partsSteady = RssParts(agent.Id);
        }
        foreach (var f in Directory.GetFiles(manifests)) File.Delete(f);
        await WaitAsync(async () => (await cri.ListPodSandboxAsync(null, default)).Count == 0, TimeSpan.FromMinutes(3));
        agent.Kill(); await agent.WaitForExitAsync(); agent = null;
        await CleanAsync();
        pairP50.Add(P(al, 50) / P(fl, 50)); pairP99.Add(P(al, 99) / P(fl, 99)); pairAll.Add(at / ft);
        Console.Error.WriteLine($"round {round}: floor p50/p99/all-running {P(fl, 50):F0}/{P(fl, 99):F0}/{ft:F0} ms, agent {P(al, 50):F0}/{P(al, 99):F0}/{at:F0} ms");
    }

    double fp50 = P(floorAll, 50), fp99 = P(floorAll, 99), ap50 = P(agentAll, 50), ap99 = P(agentAll, 99);
    double ft50 = P(floorTotals, 50), at50 = P(agentTotals, 50);
    Console.WriteLine($"""
        | {pods} pods at once, {rounds} rounds | floor: raw CRI calls | node-agent | overhead |
        |---|---|---|---|
        | per-pod start p50 | {fp50:F0} ms | {ap50:F0} ms | {Pct(ap50, fp50)} |
        | per-pod start p99 | {fp99:F0} ms | {ap99:F0} ms | {Pct(ap99, fp99)} |
        | all {pods} running (median of rounds) | {ft50:F0} ms | {at50:F0} ms | {Pct(at50, ft50)} |
        | client CPU to start them (median of rounds) | {P(floorCpu, 50):F2} s | {P(agentCpu, 50):F2} s | |
        | overhead within a round (median of {rounds} rounds): p50 / p99 / all running | | | {Pct(P(pairP50, 50), 1)} / {Pct(P(pairP99, 50), 1)} / {Pct(P(pairAll, 50), 1)} |

        | node-agent footprint | measured | goal |
        |---|---|---|
        | RSS idle (no pods) | {rssIdle / 1048576.0:F1} MiB (anon {partsIdle.Anon / 1048576.0:F1}, file {partsIdle.File / 1048576.0:F1}) | |
        | RSS with {pods} running pods, 10 s after all started | {rssPods / 1048576.0:F1} MiB (anon {partsPods.Anon / 1048576.0:F1}, file {partsPods.File / 1048576.0:F1}) | |
        | RSS with {pods} running pods, steady ({window + 10} s after) | {rssSteady / 1048576.0:F1} MiB (anon {partsSteady.Anon / 1048576.0:F1}, file {partsSteady.File / 1048576.0:F1}) | < 30 MiB |
        | CPU idle | {cpuIdle:F2} CPU-s/min | < 0.5 CPU-s/min |
        | CPU with {pods} running pods (steady) | {cpuPods:F2} CPU-s/min | |
        | read-ahead of the binary's disk ({readAheadFile}) | {readAhead} KiB (machine setting: {readAheadBefore} KiB) | |
        """);
    return 0;
}
finally
{
    agent?.Kill();
    File.WriteAllText(readAheadFile, readAheadBefore);
    try { await CleanAsync(); } catch (Exception) { }
    Sh($"{repo}/hack/containerd.sh stop {ctd}", check: false);
    foreach (var m in File.ReadAllLines("/proc/self/mounts").Select(l => l.Split(' ')[1]).Where(m => m.StartsWith(work, StringComparison.Ordinal)).OrderByDescending(m => m.Length))
        Sh($"umount -l {m}", check: false);
    try { Directory.Delete(work, true); } catch (Exception) { }
    Sh("ip link delete nabench0", check: false);
}

// The floor: the agent's per-pod CRI calls, nothing else, all pods concurrently.
async Task<(List<double> Latencies, double Total)> FloorAsync(int round)
{
    var t0 = DateTime.UtcNow;
    double cpu0 = CpuSeconds(Environment.ProcessId);
    var tasks = Enumerable.Range(0, pods).Select(async i =>
    {
        string uid = $"floor-{round}-{i}";
        var sbc = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = $"floor-{i}", Namespace = "bench", Uid = uid },
            Hostname = $"floor-{i}",
            LogDirectory = Path.Combine(work, "floor-logs", uid),
            Linux = new LinuxPodSandboxConfig { CgroupParent = $"/kubepods/besteffort/pod{uid}" },
        };
        sbc.Labels[Labels.PodUid] = uid;
        var image = await cri.ImageStatusAsync("busybox:1.36", default);
        string sb = await cri.RunPodSandboxAsync(sbc, "", default);
        await cri.PodSandboxStatusAsync(sb, default);
        var cc = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = "app" },
            Image = new ImageSpec { Image = image!.Id },
            LogPath = "app/0.log",
            Linux = new LinuxContainerConfig(),
        };
        cc.Command.AddRange(["sleep", "3600"]);
        cc.Labels[Labels.PodUid] = uid;
        string id = await cri.CreateContainerAsync(sb, cc, sbc, default);
        await cri.StartContainerAsync(id, default);
        return id;
    }).ToList();
    var ids = await Task.WhenAll(tasks);
    floorCpu.Add(CpuSeconds(Environment.ProcessId) - cpu0);
    return await StartedSinceAsync(ids, t0);
}

// Per-pod start latency the same way for both sides: the runtime's own start time of each
// container (ContainerStatus.started_at, set when its task started) minus the moment the round
// began. Read after the round, so observing costs the runtime nothing while pods start.
async Task<(List<double> Latencies, double Total)> StartedSinceAsync(IEnumerable<string> ids, DateTime t0)
{
    var lat = new List<double>();
    foreach (var id in ids)
    {
        var st = await cri.ContainerStatusAsync(id, default);
        lat.Add((DateTime.UnixEpoch.AddTicks(st.StartedAt / 100) - t0).TotalMilliseconds);
    }
    return (lat, lat.Max());
}

async Task<(List<double> Latencies, double Total)> AgentRoundAsync(string manifests, int round, int agentPid)
{
    // Write every manifest to a staging directory, then move them in: "appear at once".
    string staging = Path.Combine(work, $"staging-{round}");
    Directory.CreateDirectory(staging);
    for (int i = 0; i < pods; i++)
        File.WriteAllText(Path.Combine(staging, $"pod-{i}.yaml"), $$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: bench-{{i}}}
            spec:
              terminationGracePeriodSeconds: 0
              containers: [{name: app, image: "busybox:1.36", command: ["sleep", "3600"]}]
            """);
    var seen = new Dictionary<string, string>();
    var sw = Stopwatch.StartNew();
    var t0 = DateTime.UtcNow;
    double cpu0 = CpuSeconds(agentPid);
    foreach (var f in Directory.GetFiles(staging)) File.Move(f, Path.Combine(manifests, Path.GetFileName(f)));
    var running = new ContainerFilter { State = new ContainerStateValue { State = ContainerState.ContainerRunning } };
    // Only to learn when all are running: the latencies come from the runtime's start times.
    while (seen.Count < pods && sw.Elapsed < TimeSpan.FromMinutes(3))
    {
        await Task.Delay(250);
        foreach (var c in await cri.ListContainersAsync(running, default))
            if (c.Labels.TryGetValue(Labels.PodName, out var name)) seen.TryAdd(name, c.Id);
    }
    if (seen.Count < pods) throw new TimeoutException($"only {seen.Count}/{pods} pods running after 3 min");
    agentCpu.Add(CpuSeconds(agentPid) - cpu0);
    return await StartedSinceAsync(seen.Values, t0);
}

// /sys/dev/block/MAJ:MIN/queue/read_ahead_kb of the file's device (a partition's queue is its disk's).
static string ReadAheadFile(string path)
{
    var psi = new ProcessStartInfo("stat", ["-L", "-c", "%Hd:%Ld", path]) { RedirectStandardOutput = true };
    using var p = Process.Start(psi)!;
    string dev = p.StandardOutput.ReadToEnd().Trim();
    p.WaitForExit();
    string sys = $"/sys/dev/block/{dev}";
    string own = Path.Combine(sys, "queue/read_ahead_kb");
    if (File.Exists(own)) return own;
    string real = new DirectoryInfo(sys).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? sys;
    return Path.Combine(Path.GetDirectoryName(real)!, "queue/read_ahead_kb");
}

Process StartAgent(string manifests, int round)
{
    var psi = new ProcessStartInfo(agentBin) { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in (string[])["--container-runtime-endpoint", "unix://" + sock, "--pod-manifest-path", manifests,
                 "--root-dir", Path.Combine(work, $"root-{round}"), "--pod-logs-dir", Path.Combine(work, $"logs-{round}"),
                 "--read-only-port", "0", "--healthz-port", "0", "--hostname-override", "bench"])
        psi.ArgumentList.Add(a);
    var p = Process.Start(psi)!;
    var log = agentLogs is null ? null : TextWriter.Synchronized(new StreamWriter(Path.Combine(agentLogs, $"agent-round-{round}.log")) { AutoFlush = true });
    p.OutputDataReceived += (_, e) => { if (e.Data is not null) log?.WriteLine(e.Data); };
    p.ErrorDataReceived += (_, e) => { if (e.Data is not null) log?.WriteLine(e.Data); };
    p.BeginOutputReadLine();
    p.BeginErrorReadLine();
    return p;
}

async Task CleanAsync()
{
    foreach (var sb in await cri.ListPodSandboxAsync(null, default))
    {
        await cri.StopPodSandboxAsync(sb.Id, default);
        await cri.RemovePodSandboxAsync(sb.Id, default);
    }
    foreach (var d in Directory.EnumerateDirectories("/sys/fs/cgroup"))
        foreach (var q in (string[])["kubepods/besteffort"])
            if (Directory.Exists(Path.Combine(d, q)))
                foreach (var pod in Directory.EnumerateDirectories(Path.Combine(d, q), "podfloor-*"))
                    try { foreach (var c in Directory.EnumerateDirectories(pod)) Directory.Delete(c); Directory.Delete(pod); } catch (IOException) { }
}

int Arg(string name, int dflt)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : dflt;
}

