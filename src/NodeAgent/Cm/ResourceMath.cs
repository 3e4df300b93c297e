using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Cri.V1;
using Container = NodeAgent.Api.Core.Container;

namespace NodeAgent.Cm;

/// <summary>
/// Requests and limits to Linux cgroup values, with the kubelet's constants
/// (pkg/kubelet/cm/helpers_linux.go): 1024 shares per CPU, minimum 2 shares, a 100 ms CFS period
/// and a 1 ms minimum quota.
/// </summary>
public static class ResourceMath
{
    public const long SharesPerCpu = 1024, MinShares = 2, MaxShares = 262144;
    public const long CfsPeriodUs = 100_000, MinQuotaUs = 1000;

    public static long MilliCpuToShares(long milliCpu)
    {
        if (milliCpu == 0) return MinShares;
        long shares = milliCpu * SharesPerCpu / 1000;
        return Math.Clamp(shares, MinShares, MaxShares);
    }

    public static long MilliCpuToQuota(long milliCpu, long period = CfsPeriodUs)
    {
        if (milliCpu == 0) return 0;
        long quota = milliCpu * period / 1000;
        return Math.Max(quota, MinQuotaUs);
    }

    /// <summary>cgroup v2 cpu.weight from v1 shares, the conversion runc and the kubelet use.</summary>
    public static long SharesToWeight(long shares) => shares == 0 ? 0 : 1 + ((shares - 2) * 9999) / 262142;

    public static long Milli(Dictionary<string, Quantity>? list, string name) =>
        list is not null && list.TryGetValue(name, out var q) && q.IsValid ? q.ToMilli() : 0;

    public static long Bytes(Dictionary<string, Quantity>? list, string name) =>
        list is not null && list.TryGetValue(name, out var q) && q.IsValid ? q.ToLong() : 0;

    public static LinuxContainerResources ForContainer(Container c, string qosClass, long nodeMemoryBytes)
    {
        var req = c.Resources?.Requests;
        var lim = c.Resources?.Limits;
        long cpuReq = Milli(req, "cpu"), cpuLim = Milli(lim, "cpu");
        // A container with only a limit gets the limit as its request (apiserver defaulting).
        if (cpuReq == 0 && cpuLim > 0) cpuReq = cpuLim;
        var r = new LinuxContainerResources
        {
            CpuShares = MilliCpuToShares(cpuReq),
            CpuPeriod = CfsPeriodUs,
            CpuQuota = MilliCpuToQuota(cpuLim),
            MemoryLimitInBytes = Bytes(lim, "memory"),
            OomScoreAdj = OomScoreAdj(qosClass, Bytes(req, "memory"), nodeMemoryBytes),
        };
        if (r.CpuQuota == 0) r.CpuPeriod = 0;
        return r;
    }

    /// <summary>
    /// The kubelet's OOM score policy (pkg/kubelet/qos/policy.go): Guaranteed -997, BestEffort 1000,
    /// Burstable 1000 - 1000*request/capacity clamped to [2, 999]. Hosts that forbid negative
    /// values (restrict_oom_score_adj) have the runtime clamp it.
    /// </summary>
    public static long OomScoreAdj(string qosClass, long memoryRequest, long nodeMemoryBytes)
    {
        switch (qosClass)
        {
            case QosClass.Guaranteed: return -997;
            case QosClass.BestEffort: return 1000;
        }
        if (nodeMemoryBytes <= 0) return 999;
        long adj = 1000 - (1000 * memoryRequest) / nodeMemoryBytes;
        return Math.Clamp(adj, 2, 999);
    }

    /// <summary>Pod-level cgroup values: summed shares; quota and memory only when every container sets a limit.</summary>
    public static (long Shares, long QuotaUs, long MemoryBytes) PodLimits(PodSpec spec, string qosClass)
    {
        long cpuReq = 0, cpuLim = 0, memLim = 0;
        bool allCpuLimited = true, allMemLimited = true;
        foreach (var c in spec.Containers)
        {
            long cl = Milli(c.Resources?.Limits, "cpu"), cr = Milli(c.Resources?.Requests, "cpu");
            cpuReq += cr == 0 ? cl : cr;
            if (cl == 0) allCpuLimited = false; else cpuLim += cl;
            long ml = Bytes(c.Resources?.Limits, "memory");
            if (ml == 0) allMemLimited = false; else memLim += ml;
        }
        // Init containers run one at a time: the pod needs the largest of them, or the app sum.
        if (spec.InitContainers is { } inits)
            foreach (var c in inits)
            {
                cpuReq = Math.Max(cpuReq, Milli(c.Resources?.Requests, "cpu"));
                memLim = Math.Max(memLim, Bytes(c.Resources?.Limits, "memory"));
            }
        if (qosClass == QosClass.BestEffort) return (MinShares, 0, 0);
        return (MilliCpuToShares(cpuReq), allCpuLimited ? MilliCpuToQuota(cpuLim) : 0, allMemLimited ? memLim : 0);
    }
}
