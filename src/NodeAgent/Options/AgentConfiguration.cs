using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using NodeAgent.Api.Meta;

namespace NodeAgent.Options;

/// <summary>
/// The agent's configuration file: a subset of kubelet.config.k8s.io/v1beta1 KubeletConfiguration
/// with the same field names, so an operator's existing kubelet config mostly carries over. Fields
/// the agent does not implement are kept in <see cref="Unsupported"/> and reported at start.
/// </summary>
public sealed class AgentConfiguration
{
    public string? ApiVersion { get; set; }
    public string? Kind { get; set; }
    public string StaticPodPath { get; set; } = "/etc/kubernetes/manifests";
    public string ContainerRuntimeEndpoint { get; set; } = "unix:///run/containerd/containerd.sock";
    public string? ImageServiceEndpoint { get; set; }
    public string PodLogsDir { get; set; } = "/var/log/pods";
    /// <summary>Not a KubeletConfiguration field upstream (it is the --root-dir flag); accepted here too.</summary>
    public string RootDir { get; set; } = "/var/lib/node-agent";
    public string Address { get; set; } = "0.0.0.0";
    /// <summary>Unauthenticated read-only kubelet port (/pods, /healthz). 0 disables it.</summary>
    public int ReadOnlyPort { get; set; } = 10255;
    public int HealthzPort { get; set; } = 10248;
    public string HealthzBindAddress { get; set; } = "127.0.0.1";
    public string CgroupDriver { get; set; } = "cgroupfs";
    public string CgroupRoot { get; set; } = "/";
    public bool CgroupsPerQOS { get; set; } = true;
    public string ContainerLogMaxSize { get; set; } = "10Mi";
    public int ContainerLogMaxFiles { get; set; } = 5;
    public string RuntimeRequestTimeout { get; set; } = "2m0s";
    public string SyncFrequency { get; set; } = "1m0s";
    /// <summary>kubelet's --housekeeping-interval: how often container stats are read from the cgroups.</summary>
    public string HousekeepingInterval { get; set; } = "10s";
    public string FileCheckFrequency { get; set; } = "20s";
    /// <summary>
    /// Not a kubelet field (kubelet fixes its PLEG threshold at 3m): longer than this without a
    /// completed relist of the runtime and the agent is unhealthy: /healthz fails and systemd
    /// watchdog pings stop, so systemd restarts it (pods keep running).
    /// </summary>
    public string SyncLoopStallThreshold { get; set; } = "3m0s";
    public int MaxPods { get; set; } = 110;
    /// <summary>kubelet's --kubeconfig flag: when set the agent joins that API server as a node.</summary>
    public string? Kubeconfig { get; set; }
    /// <summary>kubelet's --node-labels: extra labels for the Node, "k=v,k2=v2".</summary>
    public string? NodeLabels { get; set; }
    /// <summary>kubelet's --register-with-taints: "key=value:Effect,key2:Effect".</summary>
    public string? RegisterWithTaints { get; set; }
    /// <summary>kubelet's --node-ip: the InternalIP address to report, or two of different families (dual-stack, primary first); default: the primary IPv4.</summary>
    public string? NodeIP { get; set; }

    /// <summary><see cref="NodeIP"/> as a list (empty when unset).</summary>
    public string[] NodeIPs => SplitList(NodeIP);

    /// <summary><see cref="ClusterCIDR"/> as a list (empty when unset).</summary>
    public string[] ClusterCIDRs => SplitList(ClusterCIDR);

    private static string[] SplitList(string? value) =>
        string.IsNullOrWhiteSpace(value) ? [] : value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
    public bool RegisterNode { get; set; } = true;
    public string NodeStatusUpdateFrequency { get; set; } = "10s";
    public string NodeStatusReportFrequency { get; set; } = "5m0s";
    public int NodeLeaseDurationSeconds { get; set; } = 40;
    /// <summary>The kubelet API port published in the Node's daemonEndpoints.</summary>
    public int Port { get; set; } = 10250;
    /// <summary>The node name; kubelet takes it from --hostname-override, falling back to the host name.</summary>
    public string? HostnameOverride { get; set; }

    /// <summary>kube-proxy's mode: "nftables" (default), "ipvs" (refused at start when the kernel has no IPVS) or "none" (another proxy programs services).</summary>
    public string ProxyMode { get; set; } = "nftables";
    /// <summary>kube-proxy's ipvs.scheduler: the IPVS scheduler of every virtual server (rr, lc, sh, ...).</summary>
    public string IpvsScheduler { get; set; } = "rr";
    /// <summary>kube-proxy's clusterCIDR: sources outside it are masqueraded on their way to a service.</summary>
    public string? ClusterCIDR { get; set; }
    /// <summary>kube-proxy's nodePortAddresses: "primary" (the node's IPs; kube-proxy's default in nftables mode) or CIDRs, comma-separated.</summary>
    public string NodePortAddresses { get; set; } = "primary";
    public string ProxyMinSyncPeriod { get; set; } = "100ms";
    public string ProxyFullSyncPeriod { get; set; } = "1h0m0s";
    /// <summary>kube-proxy's healthz port (healthzBindAddress 0.0.0.0:10256); 0 disables it.</summary>
    public int ProxyHealthzPort { get; set; } = 10256;
    /// <summary>kube-proxy's metrics port (metricsBindAddress 127.0.0.1:10249); 0 disables it.</summary>
    public int ProxyMetricsPort { get; set; } = 10249;

    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Unsupported { get; set; }

    public string NodeName => (string.IsNullOrWhiteSpace(HostnameOverride) ? Environment.MachineName : HostnameOverride).Trim().ToLowerInvariant();

    /// <summary>Checks every field and returns one message per problem, naming the field.</summary>
    public List<string> Validate()
    {
        var errs = new List<string>();
        if (!StaticPodPath.StartsWith('/')) errs.Add($"staticPodPath: must be an absolute path, got \"{StaticPodPath}\"");
        if (!PodLogsDir.StartsWith('/')) errs.Add($"podLogsDir: must be an absolute path, got \"{PodLogsDir}\"");
        if (!RootDir.StartsWith('/')) errs.Add($"rootDir: must be an absolute path, got \"{RootDir}\"");
        if (!ContainerRuntimeEndpoint.StartsWith("unix://", StringComparison.Ordinal) && !ContainerRuntimeEndpoint.StartsWith('/'))
            errs.Add($"containerRuntimeEndpoint: must be a unix socket (unix:///path), got \"{ContainerRuntimeEndpoint}\"");
        if (ReadOnlyPort is < 0 or > 65535) errs.Add($"readOnlyPort: must be between 0 and 65535, got {ReadOnlyPort}");
        if (HealthzPort is < 0 or > 65535) errs.Add($"healthzPort: must be between 0 and 65535, got {HealthzPort}");
        if (CgroupDriver is not ("cgroupfs" or "systemd")) errs.Add($"cgroupDriver: must be \"cgroupfs\" or \"systemd\", got \"{CgroupDriver}\"");
        if (!NodeAgent.Api.Meta.Quantity.TryParse(ContainerLogMaxSize, out var size) || size <= 0) errs.Add($"containerLogMaxSize: invalid quantity \"{ContainerLogMaxSize}\"");
        if (ContainerLogMaxFiles < 2) errs.Add($"containerLogMaxFiles: must be at least 2, got {ContainerLogMaxFiles}");
        if (NodeLeaseDurationSeconds < 1) errs.Add($"nodeLeaseDurationSeconds: must be at least 1, got {NodeLeaseDurationSeconds}");
        if (NodeLabels is { Length: > 0 } nl)
            foreach (var pair in nl.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                if (!pair.Contains('=')) errs.Add($"nodeLabels: \"{pair}\" is not key=value");
        if (RegisterWithTaints is { Length: > 0 } rt)
            foreach (var t in rt.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                if (t.LastIndexOf(':') is var c && (c < 1 || t[(c + 1)..] is not ("NoSchedule" or "PreferNoSchedule" or "NoExecute")))
                    errs.Add($"registerWithTaints: \"{t}\" is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute");
        // One address or CIDR, or two of different families (kubelet's and kube-proxy's dual-stack forms).
        var nodeIps = new List<System.Net.IPAddress>();
        foreach (var ip in NodeIPs)
            if (System.Net.IPAddress.TryParse(ip, out var a)) nodeIps.Add(a);
            else errs.Add($"nodeIP: \"{ip}\" is not an IP address");
        if (NodeIPs.Length > 2 || nodeIps.Count == 2 && nodeIps[0].AddressFamily == nodeIps[1].AddressFamily)
            errs.Add($"nodeIP: \"{NodeIP}\" must be one IP address, or two of different families (IPv4,IPv6)");
        foreach (var (name, value) in (ReadOnlySpan<(string, string)>)[("runtimeRequestTimeout", RuntimeRequestTimeout), ("syncFrequency", SyncFrequency), ("housekeepingInterval", HousekeepingInterval), ("fileCheckFrequency", FileCheckFrequency), ("syncLoopStallThreshold", SyncLoopStallThreshold),
                     ("nodeStatusUpdateFrequency", NodeStatusUpdateFrequency), ("nodeStatusReportFrequency", NodeStatusReportFrequency)])
            if (!GoDuration.TryParse(value, out _)) errs.Add($"{name}: invalid duration \"{value}\" (use Go syntax such as 30s or 1m0s)");
        if (MaxPods < 1) errs.Add($"maxPods: must be at least 1, got {MaxPods}");
        if (ProxyHealthzPort is < 0 or > 65535) errs.Add($"proxyHealthzPort: must be between 0 and 65535, got {ProxyHealthzPort}");
        if (ProxyMetricsPort is < 0 or > 65535) errs.Add($"proxyMetricsPort: must be between 0 and 65535, got {ProxyMetricsPort}");
        if (ProxyMode is not ("nftables" or "ipvs" or "none")) errs.Add($"proxyMode: must be \"nftables\", \"ipvs\" or \"none\", got \"{ProxyMode}\"");
        if (Array.IndexOf(NodeAgent.Proxy.Ipvs.IpvsNetlink.Schedulers, IpvsScheduler) < 0)
            errs.Add($"ipvsScheduler: \"{IpvsScheduler}\" is not an IPVS scheduler ({string.Join(", ", NodeAgent.Proxy.Ipvs.IpvsNetlink.Schedulers)})");
        var cidrs = new List<System.Net.IPNetwork>();
        foreach (var cidr in ClusterCIDRs)
            if (System.Net.IPNetwork.TryParse(cidr, out var n)) cidrs.Add(n);
            else errs.Add($"clusterCIDR: \"{cidr}\" is not a CIDR such as 10.244.0.0/16");
        if (ClusterCIDRs.Length > 2 || cidrs.Count == 2 && cidrs[0].BaseAddress.AddressFamily == cidrs[1].BaseAddress.AddressFamily)
            errs.Add($"clusterCIDR: \"{ClusterCIDR}\" must be one CIDR, or two of different families (IPv4,IPv6)");
        try { NodeAgent.Proxy.NodePortAddresses.Parse(NodePortAddresses); }
        catch (ArgumentException e) { errs.Add(e.Message); }
        foreach (var (name, value) in (ReadOnlySpan<(string, string)>)[("proxyMinSyncPeriod", ProxyMinSyncPeriod), ("proxyFullSyncPeriod", ProxyFullSyncPeriod)])
            if (!GoDuration.TryParse(value, out _)) errs.Add($"{name}: invalid duration \"{value}\" (use Go syntax such as 100ms or 1h0m0s)");
        return errs;
    }

    public string RuntimeSocketPath => ContainerRuntimeEndpoint.StartsWith("unix://", StringComparison.Ordinal) ? ContainerRuntimeEndpoint["unix://".Length..] : ContainerRuntimeEndpoint;
    public TimeSpan RuntimeRequestTimeoutSpan => GoDuration.Parse(RuntimeRequestTimeout);
    public TimeSpan SyncFrequencySpan => GoDuration.Parse(SyncFrequency);
    public TimeSpan HousekeepingIntervalSpan => GoDuration.Parse(HousekeepingInterval);
    public TimeSpan FileCheckFrequencySpan => GoDuration.Parse(FileCheckFrequency);
    public TimeSpan SyncLoopStallThresholdSpan => GoDuration.Parse(SyncLoopStallThreshold);
    public TimeSpan NodeStatusUpdateFrequencySpan => GoDuration.Parse(NodeStatusUpdateFrequency);
    public TimeSpan NodeStatusReportFrequencySpan => GoDuration.Parse(NodeStatusReportFrequency);
    public long ContainerLogMaxSizeBytes => new NodeAgent.Api.Meta.Quantity(ContainerLogMaxSize).ToLong();
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AgentConfiguration))]
public sealed partial class OptionsJsonContext : JsonSerializerContext;
