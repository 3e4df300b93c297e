using NodeAgent.Metrics;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>The cgroup reader against recorded v1 and v2 trees (Fixtures/cgroup, see its README): exact values.</summary>
public sealed class CgroupReaderTests
{
    private static string Fixture(string version) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "cgroup", version);

    [Fact]
    public void CgroupV1GivesCadvisorsFigures()
    {
        var reader = new CgroupReader(Fixture("v1"));
        Assert.Equal(CgroupVersion.V1, reader.Version);
        var s = new CgroupStats();
        Assert.True(reader.Read(reader.Open("kubepods/besteffort/pod0d5c2a1e-fixture/3f1c9a"), s));
        Assert.Equal(StatParts.Cpu | StatParts.Memory | StatParts.Pids | StatParts.Io, s.Parts);
        Assert.Equal((384741623UL, 304000000UL, 103962494UL), (s.CpuUsageNs, s.CpuUserNs, s.CpuSystemNs));
        Assert.Equal((10UL, 7UL, 261238733UL), (s.CfsPeriods, s.CfsThrottledPeriods, s.CfsThrottledNs));
        Assert.Equal((50000UL, 100000UL, 1024UL), (s.CpuQuotaUs, s.CpuPeriodUs, s.CpuShares));
        Assert.Equal(18231296UL, s.MemoryUsage);
        Assert.Equal(18231296UL - 16904192UL, s.MemoryWorkingSet); // usage - total_inactive_file
        Assert.Equal((114688UL, 17166336UL, 0UL, 0UL), (s.MemoryRss, s.MemoryCache, s.MemorySwap, s.MemoryMappedFile));
        Assert.Equal((0UL, 0UL, 268435456UL), (s.MemoryFailCount, s.OomKills, s.MemoryLimit));
        Assert.Equal(2UL, s.Pids);
        Assert.Equal(2, s.Io.Count);
        Assert.Equal((8u, 0u, 16777216UL, 8192UL, 130UL, 2UL), (s.Io[0].Major, s.Io[0].Minor, s.Io[0].ReadBytes, s.Io[0].WriteBytes, s.Io[0].ReadOps, s.Io[0].WriteOps));
        Assert.Equal((253u, 1u, 4096UL, 1UL), (s.Io[1].Major, s.Io[1].Minor, s.Io[1].ReadBytes, s.Io[1].ReadOps));
        Assert.Equal(0, reader.Malformed);
    }

    [Fact]
    public void CgroupV2GivesTheSameFiguresFromTheUnifiedFiles()
    {
        var reader = new CgroupReader(Fixture("v2"));
        Assert.Equal(CgroupVersion.V2, reader.Version);
        var s = new CgroupStats();
        Assert.True(reader.Read(reader.Open("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7e2b.slice/cri-containerd-9a1f.scope"), s));
        Assert.Equal(StatParts.Cpu | StatParts.Memory | StatParts.Pids | StatParts.Io, s.Parts);
        Assert.Equal((7412345000UL, 5200000000UL, 2212345000UL), (s.CpuUsageNs, s.CpuUserNs, s.CpuSystemNs));
        Assert.Equal((420UL, 37UL, 1850000000UL), (s.CfsPeriods, s.CfsThrottledPeriods, s.CfsThrottledNs));
        Assert.Equal((50000UL, 100000UL), (s.CpuQuotaUs, s.CpuPeriodUs));
        Assert.Equal(2UL + 38UL * 262142UL / 9999UL, s.CpuShares); // weight 39 back to shares (~1024)
        Assert.Equal(104857600UL, s.MemoryUsage);
        Assert.Equal(104857600UL - 20971520UL, s.MemoryWorkingSet); // current - inactive_file
        Assert.Equal((73400320UL, 29360128UL, 1048576UL, 4194304UL), (s.MemoryRss, s.MemoryCache, s.MemorySwap, s.MemoryMappedFile));
        Assert.Equal((5UL, 2UL, 2UL, 0UL), (s.MemoryFailCount, s.OomEvents, s.OomKills, s.MemoryLimit)); // memory.max "max": no limit
        Assert.Equal(7UL, s.Pids);
        Assert.Equal(2, s.Io.Count);
        Assert.Equal((8u, 0u, 1048576UL, 524288UL, 32UL, 16UL), (s.Io[0].Major, s.Io[0].Minor, s.Io[0].ReadBytes, s.Io[0].WriteBytes, s.Io[0].ReadOps, s.Io[0].WriteOps));
        Assert.Equal(0, reader.Malformed);
    }

    [Fact]
    public void AVanishedCgroupIsNotAnErrorAndAMalformedFileSkipsOnlyItsFields()
    {
        var reader = new CgroupReader(Fixture("v1"));
        var s = new CgroupStats();
        Assert.False(reader.Read(reader.Open("kubepods/besteffort/pod-gone/0000"), s));
        Assert.Equal(StatParts.None, s.Parts);
        Assert.True(reader.Vanished > 0);

        string dir = Path.Combine(Path.GetTempPath(), "na-cg-" + Guid.NewGuid().ToString("N")[..6]);
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "memory", "c"));
            Directory.CreateDirectory(Path.Combine(dir, "pids", "c"));
            File.WriteAllText(Path.Combine(dir, "memory", "c", "memory.usage_in_bytes"), "not a number\n");
            File.WriteAllText(Path.Combine(dir, "pids", "c", "pids.current"), "3\n");
            var broken = new CgroupReader(dir, CgroupVersion.V1);
            Assert.True(broken.Read(broken.Open("c"), s));
            Assert.Equal(StatParts.Pids, s.Parts);
            Assert.Equal(3UL, s.Pids);
            Assert.Equal(1, broken.Malformed);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ReadingAgainAllocatesNothing()
    {
        var reader = new CgroupReader(Fixture("v2"));
        var h = reader.Open("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7e2b.slice/cri-containerd-9a1f.scope");
        var s = new CgroupStats();
        for (int i = 0; i < 3; i++) reader.Read(h, s); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) reader.Read(h, s);
        long per = (GC.GetAllocatedBytesForCurrentThread() - before) / 100;
        // open/read/close on pre-encoded paths into one buffer: nothing per read.
        Assert.True(per < 64, $"{per} bytes per read");
    }

    [Fact]
    public void APodsInterfacesComeFromProcNetDevWithoutLoopback()
    {
        var reader = new CgroupReader(Fixture("v1"));
        var net = new List<NetInterface>();
        Assert.True(reader.ReadNetDev(NodeAgent.Os.RawFile.Path(Path.Combine(AppContext.BaseDirectory, "Fixtures", "proc", "net-dev")), net));
        var eth0 = Assert.Single(net);
        Assert.Equal("eth0", eth0.Name);
        Assert.Equal((2839571UL, 2044UL, 1UL, 3UL), (eth0.RxBytes, eth0.RxPackets, eth0.RxErrors, eth0.RxDropped));
        Assert.Equal((184830UL, 1733UL, 2UL, 4UL), (eth0.TxBytes, eth0.TxPackets, eth0.TxErrors, eth0.TxDropped));
        Assert.False(reader.ReadNetDev(NodeAgent.Os.RawFile.Path("/proc/999999999/net/dev"), net));
    }
}
