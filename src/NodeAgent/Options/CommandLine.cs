using System.Globalization;
using System.Text;
using System.Text.Json;
using NodeAgent.Api.Serialization;

namespace NodeAgent.Options;

/// <summary>
/// Flags, named as the kubelet names them. A flag given on the command line wins over the same
/// field in the --config file.
/// </summary>
public static class CommandLine
{
    private sealed record Flag(string Name, string Help, Action<AgentConfiguration, string>? Apply);

    private static readonly Flag[] Flags =
    [
        new("config", "Path to a KubeletConfiguration-style YAML or JSON file (see docs/configuration.md).", null),
        new("root-dir", "Directory for pod volumes and agent state (default /var/lib/node-agent).", (c, v) => c.RootDir = v),
        new("kubeconfig", "kubeconfig of the API server to join as a node; without it the agent runs static pods only.", (c, v) => c.Kubeconfig = v),
        new("node-labels", "Labels added to the Node on registration, key=value,key2=value2.", (c, v) => c.NodeLabels = v),
        new("register-with-taints", "Taints the Node registers with, key=value:Effect,key2:Effect.", (c, v) => c.RegisterWithTaints = v),
        new("node-ip", "IP address reported as the Node's InternalIP, or two of different families for a dual-stack node, primary first (default: the primary IPv4).", (c, v) => c.NodeIP = v),
        new("node-status-update-frequency", "How often node status is computed and posted when it changed (default 10s).", (c, v) => c.NodeStatusUpdateFrequency = v),
        new("hostname-override", "Node name to use instead of the host name.", (c, v) => c.HostnameOverride = v),
        new("pod-manifest-path", "Directory of static pod manifests (staticPodPath).", (c, v) => c.StaticPodPath = v),
        new("container-runtime-endpoint", "CRI endpoint, unix:///path (default unix:///run/containerd/containerd.sock).", (c, v) => c.ContainerRuntimeEndpoint = v),
        new("pod-logs-dir", "Where container logs are written (default /var/log/pods).", (c, v) => c.PodLogsDir = v),
        new("address", "IP address the read-only port listens on (default 0.0.0.0).", (c, v) => c.Address = v),
        new("port", "Port of the authenticated kubelet API over TLS (logs), when joined to an API server (default 10250).", (c, v) => c.Port = Int(v, "port")),
        new("read-only-port", "Read-only HTTP port serving /pods and /healthz; 0 disables (default 10255).", (c, v) => c.ReadOnlyPort = Int(v, "read-only-port")),
        new("healthz-port", "Port of the /healthz endpoint; 0 disables (default 10248).", (c, v) => c.HealthzPort = Int(v, "healthz-port")),
        new("healthz-bind-address", "Address of the /healthz endpoint (default 127.0.0.1).", (c, v) => c.HealthzBindAddress = v),
        new("cgroup-driver", "cgroupfs or systemd; must match the runtime's (default cgroupfs).", (c, v) => c.CgroupDriver = v),
        new("cgroup-root", "Root cgroup for pods (default /).", (c, v) => c.CgroupRoot = v),
        new("runtime-request-timeout", "Deadline of every CRI call except long pulls (default 2m0s).", (c, v) => c.RuntimeRequestTimeout = v),
        new("sync-frequency", "Longest time between two syncs of a running pod (default 1m0s).", (c, v) => c.SyncFrequency = v),
        new("sync-loop-stall-threshold", "Unhealthy (/healthz fails, systemd watchdog pings stop) after this long without a completed relist of the runtime (default 3m0s).", (c, v) => c.SyncLoopStallThreshold = v),
        new("housekeeping-interval", "How often container stats are read from the cgroups (default 10s).", (c, v) => c.HousekeepingInterval = v),
        new("container-log-max-size", "Rotate a container log when it reaches this size (default 10Mi).", (c, v) => c.ContainerLogMaxSize = v),
        new("container-log-max-files", "Log files kept per container, the live one included (default 5).", (c, v) => c.ContainerLogMaxFiles = Int(v, "container-log-max-files")),
        new("proxy-mode", "Service proxy (kube-proxy) when joined to an API server: nftables, ipvs or none (default nftables).", (c, v) => c.ProxyMode = v),
        new("ipvs-scheduler", "IPVS scheduler in proxy mode ipvs: rr, wrr, lc, wlc, sh, dh, ... (default rr).", (c, v) => c.IpvsScheduler = v),
        new("cluster-cidr", "The pods' address range, or two (IPv4,IPv6) for a dual-stack cluster; traffic to services from outside it is masqueraded (kube-proxy's --cluster-cidr).", (c, v) => c.ClusterCIDR = v),
        new("nodeport-addresses", "Addresses NodePorts are served on: primary (the node's IPs) or CIDRs such as 10.0.0.0/8,0.0.0.0/0 (kube-proxy's; default primary).", (c, v) => c.NodePortAddresses = v),
        new("proxy-min-sync-period", "Longest wait that coalesces service changes into one rules update (default 100ms).", (c, v) => c.ProxyMinSyncPeriod = v),
        new("proxy-healthz-port", "Port of the service proxy's /healthz (kube-proxy's 10256); 0 disables (default 10256).", (c, v) => c.ProxyHealthzPort = Int(v, "proxy-healthz-port")),
        new("proxy-metrics-port", "Port of the service proxy's /metrics on 127.0.0.1 (kube-proxy's 10249); 0 disables (default 10249).", (c, v) => c.ProxyMetricsPort = Int(v, "proxy-metrics-port")),
        new("proxy-full-sync-period", "How often the whole service table is rewritten even if nothing seems changed (default 1h0m0s).", (c, v) => c.ProxyFullSyncPeriod = v),
    ];

    public static string Usage()
    {
        var sb = new StringBuilder("Usage: node-agent [flags]\n\nRuns pods on this node through a CRI runtime (kubelet semantics).\n\nFlags:\n");
        foreach (var f in Flags) sb.Append(CultureInfo.InvariantCulture, $"  --{f.Name,-28} {f.Help}\n");
        sb.Append("  --help                         Show this help.\n  --version                      Print the version and exit.\n");
        return sb.ToString();
    }

    /// <summary>Parses flags and the config file. Throws <see cref="ArgumentException"/> naming the flag or field.</summary>
    public static AgentConfiguration Parse(string[] args, out List<string> warnings)
    {
        warnings = [];
        var given = new List<(Flag Flag, string Value)>();
        string? configPath = null;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unexpected argument \"{a}\"; flags look like --name=value");
            string name = a[2..], value;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (i + 1 < args.Length) value = args[++i];
            else throw new ArgumentException($"flag --{name} needs a value");
            var flag = Array.Find(Flags, f => f.Name == name) ?? throw new ArgumentException($"unknown flag --{name} (see --help)");
            if (flag.Apply is null) configPath = value;
            else given.Add((flag, value));
        }
        var config = configPath is null ? new AgentConfiguration() : Load(configPath, warnings);
        foreach (var (flag, value) in given) flag.Apply!(config, value);
        var errs = config.Validate();
        if (errs.Count > 0) throw new ArgumentException("invalid configuration" + (configPath is null ? "" : $" in {configPath}") + ":\n  " + string.Join("\n  ", errs));
        return config;
    }

    public static AgentConfiguration Load(string path, List<string> warnings)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (IOException e) { throw new ArgumentException($"cannot read config file {path}: {e.Message}"); }
        catch (UnauthorizedAccessException e) { throw new ArgumentException($"cannot read config file {path}: {e.Message}"); }
        List<byte[]> docs;
        try { docs = text.TrimStart().StartsWith('{') ? [Encoding.UTF8.GetBytes(text)] : YamlToJson.Convert(text); }
        catch (ManifestException e) { throw new ArgumentException($"config file {path}: {e.Message}"); }
        if (docs.Count != 1) throw new ArgumentException($"config file {path}: expected one document, found {docs.Count}");
        AgentConfiguration config;
        try { config = JsonSerializer.Deserialize(docs[0], OptionsJsonContext.Default.AgentConfiguration) ?? new(); }
        catch (JsonException e) { throw new ArgumentException($"config file {path}: field {e.Path?.TrimStart('$', '.')}: {e.Message}"); }
        if (config.Kind is { } kind && kind != "KubeletConfiguration") throw new ArgumentException($"config file {path}: kind must be KubeletConfiguration, got \"{kind}\"");
        if (config.Unsupported is { Count: > 0 } extra)
            warnings.Add($"config file {path}: fields not supported by node-agent are ignored: {string.Join(", ", extra.Keys.Order(StringComparer.Ordinal))}");
        return config;
    }

    private static int Int(string v, string flag) =>
        int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) ? n : throw new ArgumentException($"flag --{flag}: \"{v}\" is not an integer");
}
