using Microsoft.Extensions.Logging.Abstractions;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Api.Serialization;
using NodeAgent.Cm;
using NodeAgent.Options;
using NodeAgent.Pods;
using Xunit;

namespace NodeAgent.Tests;

public sealed class BackoffTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void FirstRestartIsImmediateThenDelaysDoubleToFiveMinutes()
    {
        var b = ContainerBackoff.Kubelet();
        var t = T0;
        Assert.False(b.InBackoff("c", t, t, out _)); // first crash: restart now
        b.Next("c", t);
        var expected = new[] { 10, 20, 40, 80, 160, 300, 300 };
        foreach (int seconds in expected)
        {
            Assert.True(b.InBackoff("c", t, t + TimeSpan.FromSeconds(1), out var until));
            Assert.Equal(t + TimeSpan.FromSeconds(seconds), until);
            t = until;
            Assert.False(b.InBackoff("c", T0, t, out _) && t < until);
            b.Next("c", t);
        }
    }

    [Fact]
    public void TenMinutesWithoutACrashResetsTheBackoff()
    {
        var b = ContainerBackoff.Kubelet();
        b.Next("c", T0);
        b.Next("c", T0 + TimeSpan.FromSeconds(10));
        Assert.Equal(TimeSpan.FromSeconds(20), b.CurrentDelay("c"));
        var later = T0 + TimeSpan.FromMinutes(11);
        Assert.False(b.InBackoff("c", later, later, out _));
        b.Next("c", later);
        Assert.Equal(TimeSpan.FromSeconds(10), b.CurrentDelay("c"));
    }

    [Fact]
    public void RetryBackoffIsCappedAndJittered()
    {
        var r = new RetryBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(4));
        var delays = Enumerable.Range(0, 6).Select(_ => r.Next().TotalSeconds).ToList();
        Assert.InRange(delays[0], 0.8, 1.2);
        Assert.All(delays.Skip(3), d => Assert.InRange(d, 3.2, 4.8));
    }
}

public sealed class PhaseTests
{
    private static ContainerStatus Running(string n) => new() { Name = n, State = new ContainerState { Running = new ContainerStateRunning() } };
    private static ContainerStatus Exited(string n, int code) => new() { Name = n, State = new ContainerState { Terminated = new ContainerStateTerminated { ExitCode = code } } };
    private static ContainerStatus Waiting(string n, bool ranBefore) => new()
    {
        Name = n, State = new ContainerState { Waiting = new ContainerStateWaiting { Reason = "CrashLoopBackOff" } },
        LastState = ranBefore ? new ContainerState { Terminated = new ContainerStateTerminated { ExitCode = 1 } } : null,
    };

    private static string Phase(string policy, ContainerStatus[] apps, ContainerStatus[]? inits = null)
    {
        var spec = new PodSpec
        {
            RestartPolicy = policy,
            Containers = apps.Select(a => new Container { Name = a.Name }).ToList(),
            InitContainers = inits?.Select(a => new Container { Name = a.Name }).ToList(),
        };
        return NodeAgent.Status.PodStatusComputer.Phase(spec, new PodStatus { ContainerStatuses = [.. apps], InitContainerStatuses = inits?.ToList() });
    }

    [Fact]
    public void PhasesFollowKubeletGetPhase()
    {
        Assert.Equal(PodPhase.Running, Phase("Always", [Running("a"), Exited("b", 0)]));
        Assert.Equal(PodPhase.Running, Phase("Always", [Exited("a", 0)]));
        Assert.Equal(PodPhase.Succeeded, Phase("OnFailure", [Exited("a", 0), Exited("b", 0)]));
        Assert.Equal(PodPhase.Running, Phase("OnFailure", [Exited("a", 0), Waiting("b", ranBefore: true)]));
        Assert.Equal(PodPhase.Failed, Phase("Never", [Exited("a", 0), Exited("b", 2)]));
        Assert.Equal(PodPhase.Succeeded, Phase("Never", [Exited("a", 0)]));
        Assert.Equal(PodPhase.Pending, Phase("Always", [Waiting("a", ranBefore: false)]));
        Assert.Equal(PodPhase.Pending, Phase("Always", [Waiting("a", false)], [Running("init")]));
        Assert.Equal(PodPhase.Failed, Phase("Never", [Waiting("a", false)], [Exited("init", 1)]));
        Assert.Equal(PodPhase.Pending, Phase("Always", [Waiting("a", false)], [Exited("init", 1)]));
    }
}

public sealed class CgroupTests
{
    [Fact]
    public void CgroupfsAndSystemdNamesFollowTheKubeletLayout()
    {
        const string uid = "1234-abcd";
        var fs = new CgroupLayout("cgroupfs");
        Assert.Equal("/kubepods/pod1234-abcd", fs.PodCgroupParent(QosClass.Guaranteed, uid));
        Assert.Equal("/kubepods/burstable/pod1234-abcd", fs.PodCgroupParent(QosClass.Burstable, uid));
        Assert.Equal("/kubepods/besteffort/pod1234-abcd", fs.PodCgroupParent(QosClass.BestEffort, uid));
        var sd = new CgroupLayout("systemd");
        Assert.Equal("kubepods-burstable-pod1234_abcd.slice", sd.PodCgroupParent(QosClass.Burstable, uid));
        Assert.Equal("kubepods-pod1234_abcd.slice", sd.PodCgroupParent(QosClass.Guaranteed, uid));
        Assert.Equal("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_abcd.slice", sd.PodRelativePath(QosClass.BestEffort, uid));
        Assert.Equal("/custom/kubepods/pod1", new CgroupLayout("cgroupfs", "/custom").PodCgroupParent(QosClass.Guaranteed, "1"));
    }

    [Fact]
    public void ResourceMathMatchesTheKubelet()
    {
        Assert.Equal(2, ResourceMath.MilliCpuToShares(0));
        Assert.Equal(2, ResourceMath.MilliCpuToShares(1));
        Assert.Equal(102, ResourceMath.MilliCpuToShares(100));
        Assert.Equal(1024, ResourceMath.MilliCpuToShares(1000));
        Assert.Equal(0, ResourceMath.MilliCpuToQuota(0));
        Assert.Equal(1000, ResourceMath.MilliCpuToQuota(5)); // minimum 1 ms
        Assert.Equal(50_000, ResourceMath.MilliCpuToQuota(500));
        Assert.Equal(1, ResourceMath.SharesToWeight(2));
        Assert.Equal(10000, ResourceMath.SharesToWeight(262144));
        Assert.Equal(-997, ResourceMath.OomScoreAdj(QosClass.Guaranteed, 0, 1 << 30));
        Assert.Equal(1000, ResourceMath.OomScoreAdj(QosClass.BestEffort, 0, 1 << 30));
        Assert.Equal(500, ResourceMath.OomScoreAdj(QosClass.Burstable, 1 << 29, 1 << 30));
        Assert.Equal(2, ResourceMath.OomScoreAdj(QosClass.Burstable, 1 << 30, 1 << 30));
    }

    private sealed class TreeFs(string root, bool unified) : ICgroupFs
    {
        public bool Unified => unified;
        public IReadOnlyList<string> Mounts => unified ? [root] : [Path.Combine(root, "cpu,cpuacct"), Path.Combine(root, "memory"), Path.Combine(root, "pids")];
        public IReadOnlyList<string> AllMounts => unified ? [root] : [.. Mounts, Path.Combine(root, "systemd")];
    }

    private static Pod Burstable() => new()
    {
        Metadata = new() { Uid = "u1" },
        Spec = new PodSpec
        {
            Containers =
            [
                new Container { Name = "a", Resources = new ResourceRequirements { Requests = new() { ["cpu"] = new("250m") }, Limits = new() { ["cpu"] = new("500m"), ["memory"] = new("128Mi") } } },
                new Container { Name = "b", Resources = new ResourceRequirements { Requests = new() { ["cpu"] = new("250m") }, Limits = new() { ["cpu"] = new("500m"), ["memory"] = new("64Mi") } } },
            ],
        },
    };

    [Fact]
    public void V2PodCgroupGetsWeightMaxAndMemoryAndIsRemovedAgain()
    {
        var root = Directory.CreateTempSubdirectory().FullName;
        var cg = new PodCgroups(new TreeFs(root, unified: true), new CgroupLayout("cgroupfs"), NullLogger<PodCgroups>.Instance);
        cg.EnsurePod(Burstable(), QosClass.Burstable);
        string dir = Path.Combine(root, "kubepods", "burstable", "podu1");
        Assert.Equal("20", File.ReadAllText(Path.Combine(dir, "cpu.weight"))); // 512 shares, runc's conversion
        Assert.Equal("100000 100000", File.ReadAllText(Path.Combine(dir, "cpu.max")));
        Assert.Equal((192L << 20).ToString(), File.ReadAllText(Path.Combine(dir, "memory.max")));
        Assert.Equal("+cpu +memory +pids", File.ReadAllText(Path.Combine(root, "kubepods", "cgroup.subtree_control")));
        Assert.Equal(["u1"], cg.ListPodUids());
        Directory.CreateDirectory(Path.Combine(dir, "container1"));
        foreach (var f in Directory.GetFiles(dir)) File.Delete(f); // cgroupfs files vanish with the directory
        Assert.True(cg.RemovePod("u1"));
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void V1PodCgroupGetsSharesQuotaAndLimit()
    {
        var root = Directory.CreateTempSubdirectory().FullName;
        var cg = new PodCgroups(new TreeFs(root, unified: false), new CgroupLayout("cgroupfs"), NullLogger<PodCgroups>.Instance);
        cg.EnsurePod(Burstable(), QosClass.Burstable);
        string rel = Path.Combine("kubepods", "burstable", "podu1");
        Assert.Equal("512", File.ReadAllText(Path.Combine(root, "cpu,cpuacct", rel, "cpu.shares")));
        Assert.Equal("100000", File.ReadAllText(Path.Combine(root, "cpu,cpuacct", rel, "cpu.cfs_quota_us")));
        Assert.Equal((192L << 20).ToString(), File.ReadAllText(Path.Combine(root, "memory", rel, "memory.limit_in_bytes")));
        Directory.CreateDirectory(Path.Combine(root, "systemd", rel)); // the runtime made one here too
        foreach (var m in (string[])["cpu,cpuacct", "memory", "pids"])
            foreach (var f in Directory.GetFiles(Path.Combine(root, m, rel))) File.Delete(f);
        Assert.True(cg.RemovePod("u1"));
        Assert.False(Directory.Exists(Path.Combine(root, "systemd", rel)));
    }
}

public sealed class EnvAndConfigTests
{
    [Fact]
    public void EnvResolvesFieldRefsAndExpandsEarlierVariables()
    {
        var pod = Assert.Single(ManifestDecoder.DecodePods("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p, namespace: ns, uid: u-1, labels: {app: web}}
            spec:
              containers:
              - name: c
                image: i
                resources: {limits: {memory: 64Mi}}
                env:
                - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
                - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
                - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
                - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
                - {name: URL, value: "http://$(IP):80/$(NAME)/$(MISSING)/$$(NAME)"}
            """));
        var facts = new EnvResolver.PodFacts("node1", "192.0.2.1", "10.1.0.5", ["10.1.0.5"], 2000, 1L << 32);
        var env = EnvResolver.Resolve(pod, pod.Spec.Containers[0], facts).ToDictionary();
        Assert.Equal("p", env["NAME"]);
        Assert.Equal("10.1.0.5", env["IP"]);
        Assert.Equal("web", env["APP"]);
        Assert.Equal("64", env["MEM"]);
        Assert.Equal("http://10.1.0.5:80/p/$(MISSING)/$(NAME)", env["URL"]);
    }

    [Fact]
    public void MissingConfigMapIsAConfigErrorUnlessOptional()
    {
        var pod = Assert.Single(ManifestDecoder.DecodePods("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i, env: [{name: A, valueFrom: {configMapKeyRef: {name: cm, key: k}}}, {name: B, valueFrom: {secretKeyRef: {name: s, key: k, optional: true}}}]}]}"));
        var facts = new EnvResolver.PodFacts("n", null, null, [], 1000, 1);
        var e = Assert.Throws<ContainerConfigException>(() => EnvResolver.Resolve(pod, pod.Spec.Containers[0], facts));
        Assert.Contains("configmap \"cm\" not found", e.Message);
        pod.Spec.Containers[0].Env!.RemoveAt(0);
        Assert.Empty(EnvResolver.Resolve(pod, pod.Spec.Containers[0], facts));
    }

    [Theory]
    [InlineData("1m0s", 60)]
    [InlineData("90s", 90)]
    [InlineData("1h30m", 5400)]
    [InlineData("500ms", 0.5)]
    [InlineData("0", 0)]
    public void GoDurationsParse(string text, double seconds)
    {
        Assert.True(GoDuration.TryParse(text, out var d));
        Assert.Equal(seconds, d.TotalSeconds, 3);
    }

    [Fact]
    public void ConfigFileFlagsAndErrors()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var file = Path.Combine(dir, "config.yaml");
        File.WriteAllText(file, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: /m\nreadOnlyPort: 0\nevictionHard: {memory.available: 100Mi}\n");
        var cfg = CommandLine.Parse(["--config", file, "--read-only-port=1234", "--hostname-override", "Node-A"], out var warnings);
        Assert.Equal("/m", cfg.StaticPodPath);
        Assert.Equal(1234, cfg.ReadOnlyPort);
        Assert.Equal("node-a", cfg.NodeName);
        Assert.Contains(warnings, w => w.Contains("evictionHard"));

        Assert.Contains("unknown flag --bogus", Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--bogus", "1"], out _)).Message);
        Assert.Contains("cgroupDriver", Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--cgroup-driver", "magic"], out _)).Message);
        File.WriteAllText(file, "readOnlyPort: many\n");
        Assert.Contains("readOnlyPort", Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--config", file], out _)).Message);
        File.WriteAllText(file, "kind: Pod\n");
        Assert.Contains("kind must be KubeletConfiguration", Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--config", file], out _)).Message);
    }

    [Fact]
    public void NodeIpAndClusterCidrTakeOneValueOrOnePerFamily()
    {
        var cfg = CommandLine.Parse(["--node-ip", "10.0.0.5, fd00::5", "--cluster-cidr", "10.244.0.0/16,fd00:244::/56"], out _);
        Assert.Equal(["10.0.0.5", "fd00::5"], cfg.NodeIPs);
        Assert.Equal(["10.244.0.0/16", "fd00:244::/56"], cfg.ClusterCIDRs);
        Assert.Equal(["10.0.0.5"], CommandLine.Parse(["--node-ip", "10.0.0.5"], out _).NodeIPs);
        Assert.Empty(CommandLine.Parse([], out _).NodeIPs);
        Assert.Contains("nodeIP: \"10.0.0.5,10.0.0.6\" must be one IP address, or two of different families",
            Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--node-ip", "10.0.0.5,10.0.0.6"], out _)).Message);
        Assert.Contains("nodeIP: \"node-a\" is not an IP address", Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--node-ip", "node-a"], out _)).Message);
        Assert.Contains("clusterCIDR: \"fd00::/56,fd01::/56\" must be one CIDR, or two of different families",
            Assert.Throws<ArgumentException>(() => CommandLine.Parse(["--cluster-cidr", "fd00::/56,fd01::/56"], out _)).Message);
    }
}

public sealed class PackagingConfigTests
{
    [Fact]
    public void TheShippedDefaultConfigParsesWithoutWarnings()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(dir!.FullName, "NodeAgent.sln"))) dir = dir.Parent;
        var cfg = CommandLine.Parse(["--config", Path.Combine(dir.FullName, "packaging", "etc", "config.yaml")], out var warnings);
        Assert.Empty(warnings);
        Assert.Equal("/etc/kubernetes/manifests", cfg.StaticPodPath);
    }
}

public sealed class LogRotationTests
{
    [Fact]
    public void RotatedFilesNeverIncludeTheLiveLog()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        foreach (var f in (string[])["0.log", "0.log.20260101-000010", "0.log.20260101-000000", "1.log", "1.log.20260101-000000"])
            File.WriteAllText(Path.Combine(dir, f), "x");
        var rotated = NodeAgent.Logs.ContainerLogManager.RotatedFiles(Path.Combine(dir, "0.log")).Select(Path.GetFileName);
        Assert.Equal(["0.log.20260101-000000", "0.log.20260101-000010"], rotated);
    }
}
