using System.Globalization;
using System.Text;
using NodeAgent.Api.Meta;

namespace NodeAgent.ControlPlane.Options;

/// <summary>The control plane's flags, named after kube-apiserver's where one exists.</summary>
public sealed class ControlPlaneOptions
{
    public string DataDir { get; set; } = "/var/lib/node-agent-control-plane";
    public string EtcdServers { get; set; } = "http://127.0.0.1:2379";
    public int SecurePort { get; set; } = 6443;
    public string BindAddress { get; set; } = "0.0.0.0";
    public string? AdvertiseAddress { get; set; }
    public string ServiceClusterIpRange { get; set; } = "10.96.0.0/12";
    public string ServiceNodePortRange { get; set; } = "30000-32767";
    public string? TokenAuthFile { get; set; }
    public bool AnonymousAuth { get; set; }
    public List<string> TlsSans { get; } = [];
    public int WatchCacheSize { get; set; } = 1024;
    public TimeSpan BookmarkInterval { get; set; } = TimeSpan.FromMinutes(1);
    public int MinRequestTimeout { get; set; } = 1800;
    public int WatcherQueue { get; set; } = 1000;
    /// <summary>Components run beside the API server (kube-controller-manager's --controllers syntax).</summary>
    public HashSet<string> Controllers { get; private set; } = [.. KnownControllers];
    public bool LeaderElect { get; set; } = true;
    /// <summary>kube-controller-manager's --terminated-pod-gc-threshold: terminated pods kept before the oldest are deleted (0: never).</summary>
    public int TerminatedPodGcThreshold { get; set; } = NodeAgent.ControlPlane.Controllers.PodGcController.DefaultTerminatedThreshold;
    public NodeAgent.ControlPlane.Controllers.LeaderElectionConfig LeaderElection { get; set; } = NodeAgent.ControlPlane.Controllers.LeaderElectionConfig.Default;

    public static readonly string[] KnownControllers = ["scheduler", "replicaset", "deployment", "garbagecollector", "namespace", "endpointslice", "nodelifecycle", "daemonset", "serviceaccount", "root-ca-cert-publisher", "podgc"];

    private sealed record Flag(string Name, string Help, Action<ControlPlaneOptions, string> Apply);

    private static readonly Flag[] Flags =
    [
        new("data-dir", "Directory for the cluster CA, serving certificate and admin kubeconfig (default /var/lib/node-agent-control-plane).", (o, v) => o.DataDir = v),
        new("etcd-servers", "etcd v3 endpoint, http://host:port (default http://127.0.0.1:2379).", (o, v) => o.EtcdServers = v.Split(',')[0]),
        new("secure-port", "HTTPS port of the API (default 6443).", (o, v) => o.SecurePort = Int(v, "secure-port")),
        new("bind-address", "Address the API listens on (default 0.0.0.0).", (o, v) => o.BindAddress = v),
        new("advertise-address", "Address published in the kubernetes Service endpoints and kubeconfigs (default: first non-loopback IPv4).", (o, v) => o.AdvertiseAddress = v),
        new("service-cluster-ip-range", "CIDR ClusterIPs are allocated from, or two (IPv4,IPv6 in either order) for dual-stack Services; the first is the primary family (default 10.96.0.0/12).", (o, v) => o.ServiceClusterIpRange = v),
        new("service-node-port-range", "Port range NodePorts are allocated from (default 30000-32767).", (o, v) => o.ServiceNodePortRange = v),
        new("token-auth-file", "CSV of static bearer tokens: token,user,uid,\"group1,group2\".", (o, v) => o.TokenAuthFile = v),
        new("anonymous-auth", "Serve unauthenticated requests as system:anonymous (default false).", (o, v) => o.AnonymousAuth = Bool(v, "anonymous-auth")),
        new("tls-san", "Extra DNS name or IP for the serving certificate (repeatable).", (o, v) => o.TlsSans.Add(v)),
        new("watch-cache-size", "Events kept per resource for watches that resume from a resourceVersion (default 1024).", (o, v) => o.WatchCacheSize = Int(v, "watch-cache-size")),
        new("watch-bookmark-interval", "How often watchers that asked for bookmarks get one (default 1m0s).", (o, v) => o.BookmarkInterval = Duration(v, "watch-bookmark-interval")),
        new("watcher-queue", "Events queued for one watcher before it is cut off as too slow (default 1000).", (o, v) => o.WatcherQueue = Int(v, "watcher-queue")),
        new("controllers", "Components to run beside the API: '*' for all, 'name' to enable, '-name' to disable; known: scheduler, replicaset, deployment, garbagecollector, namespace, endpointslice, nodelifecycle, daemonset, serviceaccount, root-ca-cert-publisher, podgc (default *).",
            (o, v) => o.Controllers = ParseControllers(v)),
        new("terminated-pod-gc-threshold", "Terminated pods (Succeeded or Failed) kept before the pod garbage collector deletes the oldest; 0 keeps them all (default 12500).",
            (o, v) => o.TerminatedPodGcThreshold = Int(v, "terminated-pod-gc-threshold")),
        new("leader-elect", "Run the scheduler and the controllers only while holding their kube-system Lease (default true).", (o, v) => o.LeaderElect = Bool(v, "leader-elect")),
        new("leader-elect-lease-duration", "How long a follower waits, from the last change it saw, before it takes a leader's lease (default 10s).",
            (o, v) => o.LeaderElection = o.LeaderElection with { LeaseDuration = Duration(v, "leader-elect-lease-duration") }),
        new("leader-elect-renew-deadline", "How long a leader keeps trying to renew before it steps down; less than the lease duration (default 7s).",
            (o, v) => o.LeaderElection = o.LeaderElection with { RenewDeadline = Duration(v, "leader-elect-renew-deadline") }),
        new("leader-elect-retry-period", "How often candidates try and leaders renew (default 2s).",
            (o, v) => o.LeaderElection = o.LeaderElection with { RetryPeriod = Duration(v, "leader-elect-retry-period") }),
        new("min-request-timeout", "Seconds a watch lasts at least when the client gives no timeoutSeconds (default 1800).", (o, v) => o.MinRequestTimeout = Int(v, "min-request-timeout")),
    ];

    public static string Usage()
    {
        var sb = new StringBuilder("""
            Usage:
              control-plane [flags]                        serve the Kubernetes API on etcd
              control-plane kubeconfig --user NAME [--group GROUP]... [--server URL] [--out FILE] [--data-dir DIR]
                                                           issue a client-certificate kubeconfig signed by the cluster CA
              control-plane node-kubeconfig --node NAME [--server URL] [--out FILE] [--data-dir DIR]
                                                           the same for a node: user system:node:NAME, group system:nodes

            Flags:

            """);
        foreach (var f in Flags) sb.Append(CultureInfo.InvariantCulture, $"  --{f.Name,-26} {f.Help}\n");
        sb.Append("  --help                     Show this help.\n  --version                  Print the version and exit.\n");
        return sb.ToString();
    }

    private static HashSet<string> ParseControllers(string value)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (item == "*") { set.UnionWith(KnownControllers); continue; }
            string name = item.TrimStart('-');
            if (!KnownControllers.Contains(name)) throw new ArgumentException($"--controllers: unknown component \"{name}\" (known: {string.Join(", ", KnownControllers)})");
            if (item[0] == '-') set.Remove(name); else set.Add(name);
        }
        return set;
    }

    public static ControlPlaneOptions Parse(IReadOnlyList<string> args)
    {
        var o = new ControlPlaneOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unexpected argument \"{a}\"; flags look like --name=value");
            string name = a[2..], value;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (i + 1 < args.Count) value = args[++i];
            else throw new ArgumentException($"flag --{name} needs a value");
            var flag = Array.Find(Flags, f => f.Name == name) ?? throw new ArgumentException($"unknown flag --{name} (see --help)");
            flag.Apply(o, value);
        }
        if (!Uri.TryCreate(o.EtcdServers, UriKind.Absolute, out var u) || u.Scheme != "http")
            throw new ArgumentException($"--etcd-servers {o.EtcdServers}: expected http://host:port");
        return o;
    }

    private static int Int(string v, string flag) =>
        int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= 0 ? i : throw new ArgumentException($"--{flag}: \"{v}\" is not a non-negative integer");

    private static bool Bool(string v, string flag) =>
        bool.TryParse(v, out bool b) ? b : throw new ArgumentException($"--{flag}: \"{v}\" is not true or false");

    private static TimeSpan Duration(string v, string flag) =>
        GoDuration.TryParse(v, out var d) && d > TimeSpan.Zero ? d : throw new ArgumentException($"--{flag}: \"{v}\" is not a duration such as 30s");
}
