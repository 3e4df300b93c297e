namespace NodeAgent.Metrics;

/// <summary>A network interface's counters in a pod's network namespace (cumulative, /proc/PID/net/dev).</summary>
public struct NetInterface
{
    public string Name;
    internal byte[] NameBytes;
    public ulong RxBytes, RxPackets, RxErrors, RxDropped, TxBytes, TxPackets, TxErrors, TxDropped;
}

/// <summary>A block device's I/O in one cgroup (cumulative).</summary>
public struct BlockIo
{
    public uint Major, Minor;
    public ulong ReadBytes, WriteBytes, ReadOps, WriteOps;
}

/// <summary>
/// One cgroup's figures as cAdvisor reports them, filled in place by <see cref="CgroupReader"/>
/// (one instance per container, reused from one collection to the next). CPU times are in
/// nanoseconds, memory in bytes; counters are cumulative since the cgroup was created.
/// </summary>
public sealed class CgroupStats
{
    public ulong CpuUsageNs, CpuUserNs, CpuSystemNs;
    public ulong CfsPeriods, CfsThrottledPeriods, CfsThrottledNs;
    /// <summary>memory.usage_in_bytes (v1) / memory.current (v2).</summary>
    public ulong MemoryUsage;
    /// <summary>Usage minus inactive file pages (what the kubelet evicts on and metrics-server reports).</summary>
    public ulong MemoryWorkingSet;
    public ulong MemoryRss, MemoryCache, MemorySwap, MemoryMappedFile;
    /// <summary>Page faults (memory.stat pgfault / pgmajfault; v1's hierarchical total_ figures).</summary>
    public ulong PageFaults, MajorPageFaults;
    /// <summary>memory.failcnt (v1) / memory.events "max" (v2): times the limit was hit.</summary>
    public ulong MemoryFailCount;
    /// <summary>memory.events "oom" (v2) / the OOM kills (v1 has no separate count).</summary>
    public ulong OomEvents;
    public ulong OomKills;
    /// <summary>memory.limit_in_bytes / memory.max; 0 when unlimited.</summary>
    public ulong MemoryLimit;
    public ulong Pids;
    /// <summary>cpu.cfs_quota_us / cpu.max quota and period in µs; quota 0 when unlimited. cpu.shares / cpu.weight as shares.</summary>
    public ulong CpuQuotaUs, CpuPeriodUs, CpuShares;
    public readonly List<BlockIo> Io = [];
    /// <summary>Which groups of fields could be read (a controller missing or a file unreadable leaves its fields 0 and its bit clear).</summary>
    public StatParts Parts;

    public void Clear()
    {
        CpuUsageNs = CpuUserNs = CpuSystemNs = CfsPeriods = CfsThrottledPeriods = CfsThrottledNs = 0;
        MemoryUsage = MemoryWorkingSet = MemoryRss = MemoryCache = MemorySwap = MemoryMappedFile = MemoryFailCount = OomEvents = OomKills = MemoryLimit = 0;
        PageFaults = MajorPageFaults = 0;
        Pids = CpuQuotaUs = CpuPeriodUs = CpuShares = 0;
        Io.Clear();
        Parts = StatParts.None;
    }
}

[Flags]
public enum StatParts
{
    None = 0,
    Cpu = 1,
    Memory = 2,
    Pids = 4,
    Io = 8,
}
