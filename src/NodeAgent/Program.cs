using System.Net;
using System.Net.Sockets;
using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NodeAgent;
using NodeAgent.Cm;
using NodeAgent.Config;
using NodeAgent.Cri;
using NodeAgent.Logs;
using NodeAgent.Options;
using NodeAgent.Os;
using NodeAgent.Pleg;
using NodeAgent.Pods;
using NodeAgent.Probes;
using NodeAgent.Server;
using NodeAgent.Status;
using NodeAgent.Volumes;

SharedPoolLimit.Apply(); // before anything rents from the shared array pool

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.Write(CommandLine.Usage());
    return 0;
}
if (args.Contains("--version"))
{
    Console.WriteLine($"node-agent {typeof(AgentService).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "dev"}");
    return 0;
}

AgentConfiguration config;
List<string> warnings;
try
{
    config = CommandLine.Parse(args, out warnings);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"node-agent: {e.Message}");
    return 2;
}

NodeAgent.Api.Client.ClientConfig? apiConfig = null;
if (config.Kubeconfig is { } kubeconfig)
{
    try { apiConfig = NodeAgent.Api.Client.ClientConfig.FromKubeconfig(kubeconfig); }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"node-agent: --kubeconfig: {e.Message}");
        return 2;
    }
}

if (apiConfig is not null && config.ProxyMode == "ipvs")
{
    // kube-proxy's IPVS mode needs the kernel's: say so now rather than run without service routing.
    var (available, reason) = NodeAgent.Proxy.Ipvs.IpvsKernel.Probe();
    if (!available)
    {
        Console.Error.WriteLine($"node-agent: proxy mode ipvs refused: {reason}");
        return 1;
    }
}

// The empty builder: no appsettings files, no configuration reload, no host filtering or routing.
// The slim builder's appsettings.json reload watched the content root (the working directory)
// recursively: under systemd that is "/", ~48,000 inotify watches and ~10 MiB of RSS for nothing.
// Kestrel core, one terminal handler: the agent's endpoints are dispatched by port below.
var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [] });
builder.WebHost.UseKestrelCore();
// Under systemd (Type=notify): READY=1 and watchdog pings come from SystemdService, once the
// runtime and the API have answered, not when the host has merely started (which is all that
// UseSystemd() could tell); logs go to journald with their fields when the journal is attached.
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
NodeAgent.Api.Hosting.DaemonLogging.Use(builder.Logging, "node-agent", o =>
{
    o.SingleLine = true;
    o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
    o.UseUtcTimestamp = true;
});

// The node's addresses (--node-ip, else the host's primary IPv4): one per family, primary first.
string[] nodeAddresses = config.NodeIPs is { Length: > 0 } givenIps ? givenIps : HostInfo.PrimaryIPv4() is { } hostIp ? [hostIp] : [];
KubeletServer? kubeletServer = null;
System.Security.Cryptography.X509Certificates.X509Certificate2? servingCert = null;
if (apiConfig?.CaCertificate is { } clientCa && config.Port > 0)
{
    servingCert = KubeletServer.ServingCertificate(config.RootDir, config.NodeName, nodeAddresses);
}
builder.WebHost.ConfigureKestrel(k =>
{
    if (servingCert is not null)
        k.Listen(IPAddress.Parse(config.Address), config.Port, l => l.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions
        {
            ServerCertificate = servingCert,
            ClientCertificateMode = Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.AllowCertificate,
            ClientCertificateValidation = (_, _, _) => true,
        }));
    if (config.ReadOnlyPort > 0) k.Listen(IPAddress.Parse(config.Address), config.ReadOnlyPort);
    if (config.HealthzPort > 0 && config.HealthzPort != config.ReadOnlyPort) k.Listen(IPAddress.Parse(config.HealthzBindAddress), config.HealthzPort);
    if (apiConfig is not null && config.ProxyMode != "none" && config.ProxyHealthzPort > 0) k.Listen(IPAddress.Any, config.ProxyHealthzPort);
    if (apiConfig is not null && config.ProxyMode != "none" && config.ProxyMetricsPort > 0) k.Listen(IPAddress.Loopback, config.ProxyMetricsPort);
    k.AddServerHeader = false;
});

var s = builder.Services;
s.AddSingleton(config);
s.AddSingleton(TimeProvider.System);
s.AddSingleton(p => new NodeAgent.Metrics.KubeletMetrics(p.GetRequiredService<PodStatusStore>(), p.GetRequiredService<TimeProvider>()));
s.AddSingleton(p => new RemoteRuntime(CriChannel.Create(config.RuntimeSocketPath), config.RuntimeRequestTimeoutSpan)
{
    Observe = p.GetRequiredService<NodeAgent.Metrics.KubeletMetrics>().RuntimeOperation,
});
s.AddSingleton<IRuntimeService>(p => p.GetRequiredService<RemoteRuntime>());
s.AddSingleton<IImageService>(p => p.GetRequiredService<RemoteRuntime>());
s.AddSingleton(p => new StreamingServer(p.GetRequiredService<RemoteRuntime>(), p.GetRequiredService<RemoteRuntime>(), p.GetRequiredService<PodStatusStore>(),
    p.GetRequiredService<ILogger<StreamingServer>>()));
s.AddSingleton(new NodeFacts(config.NodeName, nodeAddresses.FirstOrDefault(), Environment.ProcessorCount * 1000L, HostInfo.MemoryBytes()) { HostIPs = nodeAddresses });
s.AddSingleton(new CgroupLayout(config.CgroupDriver, config.CgroupRoot));
s.AddSingleton<ICgroupFs>(_ => new HostCgroupFs());
s.AddSingleton<PodCgroups>();
s.AddSingleton(p => new NodeAgent.Metrics.StatsCollector(new NodeAgent.Metrics.CgroupReader(), p.GetRequiredService<CgroupLayout>(), p.GetRequiredService<PodStatusStore>(),
    p.GetRequiredService<TimeProvider>(), config.HousekeepingIntervalSpan, p.GetRequiredService<ILogger<NodeAgent.Metrics.StatsCollector>>()));
s.AddSingleton<IMounter, LinuxMounter>();
s.AddSingleton(p => new VolumeManager(config.RootDir, p.GetRequiredService<IMounter>(), p.GetRequiredService<ILogger<VolumeManager>>()));
s.AddSingleton(p => new CriConfigBuilder(config.PodLogsDir, p.GetRequiredService<CgroupLayout>()));
s.AddSingleton(p => new Prober(p.GetRequiredService<IRuntimeService>()) { Observe = p.GetRequiredService<NodeAgent.Metrics.KubeletMetrics>().Probed });
s.AddSingleton<PodStatusStore>();
s.AddSingleton<LogEventRecorder>();
if (apiConfig is null) s.AddSingleton<IEventRecorder>(p => p.GetRequiredService<LogEventRecorder>());
else
{
    s.AddSingleton(p => new ApiEventRecorder(p.GetRequiredService<LogEventRecorder>(), p.GetRequiredService<NodeAgent.Api.Client.ApiClient>(), config.NodeName,
        p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILogger<ApiEventRecorder>>()));
    s.AddSingleton<IEventRecorder>(p => p.GetRequiredService<ApiEventRecorder>());
}
s.AddSingleton<AgentHealth>();
s.AddSingleton(p => new MemoryTrimmer(p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILogger<MemoryTrimmer>>()));
var notifier = NodeAgent.Api.Hosting.SystemdNotifier.FromEnvironment();
s.AddHostedService(p => new SystemdService(notifier, p.GetRequiredService<AgentHealth>(), p.GetRequiredService<GenericPleg>(),
    apiConfig is not null, p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILogger<SystemdService>>()));
s.AddSingleton(p => new PodServices(
    p.GetRequiredService<IRuntimeService>(), p.GetRequiredService<IImageService>(), p.GetRequiredService<CriConfigBuilder>(),
    p.GetRequiredService<PodCgroups>(), p.GetRequiredService<VolumeManager>(), p.GetRequiredService<Prober>(),
    p.GetRequiredService<PodStatusStore>(), p.GetRequiredService<IEventRecorder>(), p.GetRequiredService<NodeFacts>(),
    p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILoggerFactory>(), config.SyncFrequencySpan)
{
    Objects = apiConfig is null ? new NoObjectSource() : p.GetRequiredService<ApiObjectSource>(),
    AdmissionNode = apiConfig is null ? null : () => p.GetRequiredService<NodeAgent.Node.NodeStatusController>().AdmissionNode(),
});
if (apiConfig is not null)
    s.AddSingleton(p => new ApiObjectSource(p.GetRequiredService<NodeAgent.Api.Client.ApiClient>(), p.GetRequiredService<TimeProvider>(),
        p.GetRequiredService<ILogger<ApiObjectSource>>()));
s.AddSingleton(p =>
{
    var manager = new PodManager(p.GetRequiredService<PodServices>(), p.GetRequiredService<ILogger<PodManager>>());
    // A changed ConfigMap or Secret wakes the pods that use it (volumes are rewritten on their sync).
    if (apiConfig is not null)
        p.GetRequiredService<ApiObjectSource>().Changed += (kind, ns, name) =>
            manager.NotifyWhere(pod => pod.Metadata.Namespace == ns && PodReferences.Uses(pod, kind, name));
    return manager;
});
s.AddSingleton(p => new GenericPleg(p.GetRequiredService<IRuntimeService>(), p.GetRequiredService<PodManager>().Notify,
    p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILogger<GenericPleg>>())
{
    ObserveRelist = p.GetRequiredService<NodeAgent.Metrics.KubeletMetrics>().Relisted,
    RelistThreshold = config.SyncLoopStallThresholdSpan,
});
s.AddSingleton(p => new FileSource(config.StaticPodPath, config.NodeName, p.GetRequiredService<PodManager>(), p.GetRequiredService<TimeProvider>(),
    config.FileCheckFrequencySpan, p.GetRequiredService<ILogger<FileSource>>()));
s.AddSingleton(p => new GarbageCollector(p.GetRequiredService<IRuntimeService>(), p.GetRequiredService<PodManager>(), p.GetRequiredService<VolumeManager>(),
    p.GetRequiredService<PodCgroups>(), config.PodLogsDir,
    // Orphans are collected only once every source delivered its first full set (after an agent
    // restart, API pods must not look like orphans before the first list arrives).
    () => apiConfig is null ? p.GetRequiredService<PodManager>().SourcesReady(StaticPods.Source) : p.GetRequiredService<PodManager>().SourcesReady(StaticPods.Source, ApiSource.Source),
    p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILogger<GarbageCollector>>()));
s.AddSingleton(p => new ContainerLogManager(p.GetRequiredService<IRuntimeService>(), config.PodLogsDir, config.ContainerLogMaxSizeBytes,
    config.ContainerLogMaxFiles, p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILogger<ContainerLogManager>>()));
if (apiConfig is not null)
{
    s.AddSingleton(_ => new NodeAgent.Api.Client.ApiClient(apiConfig, $"node-agent/{typeof(AgentService).Assembly.GetName().Version?.ToString(3)} (linux/{NodeAgent.Node.NodeInfoSource.Arch})"));
    s.AddSingleton(p => new NodeAgent.Node.NodeInfoSource(config, p.GetRequiredService<AgentHealth>(), nodeAddresses));
    s.AddSingleton<NodeAgent.Node.NodeStatusController>();
    s.AddSingleton(p => new NodeAgent.Node.NodeLeaseController(p.GetRequiredService<NodeAgent.Api.Client.ApiClient>(), config,
        () => p.GetRequiredService<NodeAgent.Node.NodeStatusController>().NodeUid, p.GetRequiredService<TimeProvider>(),
        p.GetRequiredService<ILogger<NodeAgent.Node.NodeLeaseController>>()));
    s.AddSingleton(p => new ApiSource(p.GetRequiredService<NodeAgent.Api.Client.ApiClient>(), config.NodeName, p.GetRequiredService<PodManager>(),
        p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILogger<ApiSource>>()));
    s.AddSingleton(p => new ApiStatusManager(p.GetRequiredService<NodeAgent.Api.Client.ApiClient>(), p.GetRequiredService<PodStatusStore>(),
        p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILogger<ApiStatusManager>>()));
    // Where NodePorts are served (--nodeport-addresses; the node's own IPs by default, as kube-proxy's nftables mode).
    var nodePorts = NodeAgent.Proxy.NodePortAddresses.Parse(config.NodePortAddresses);
    IPAddress[] nodeIps = [.. nodeAddresses.Select(IPAddress.Parse)];
    IEnumerable<IPAddress> IpvsNodePortIps(AddressFamily family) => nodePorts.Addresses(family, nodeIps, NodeAgent.Proxy.NodePortAddresses.HostAddresses());

    s.AddSingleton(p => new NodeAgent.Node.ClusterLoops(p.GetRequiredService<NodeAgent.Node.NodeStatusController>(), p.GetRequiredService<NodeAgent.Node.NodeLeaseController>(),
        p.GetRequiredService<ApiSource>(), p.GetRequiredService<ApiStatusManager>(), p.GetRequiredService<ApiEventRecorder>(),
        new MirrorPods(p.GetRequiredService<NodeAgent.Api.Client.ApiClient>(), p.GetRequiredService<PodManager>(), p.GetRequiredService<ApiStatusManager>(),
            p.GetRequiredService<ApiSource>(), () => p.GetRequiredService<NodeAgent.Node.NodeStatusController>().NodeUid, config.NodeName,
            p.GetRequiredService<ILogger<MirrorPods>>()),
        ProxyRules(p) is { } rules
            ? new NodeAgent.Proxy.ServiceProxy(new NodeAgent.Proxy.ApiObjectFeeds(p.GetRequiredService<NodeAgent.Api.Client.ApiClient>(),
                    p.GetRequiredService<ILogger<NodeAgent.Proxy.ServiceProxy>>(), p.GetRequiredService<TimeProvider>()), rules, new NodeAgent.Proxy.ConntrackCli(),
                new NodeAgent.Proxy.ServiceProxyOptions(config.NodeName, new NodeAgent.Proxy.NftOptions("node-agent", config.ClusterCIDR),
                    NodeAgent.Api.Meta.GoDuration.Parse(config.ProxyMinSyncPeriod), TimeSpan.FromSeconds(30), NodeAgent.Api.Meta.GoDuration.Parse(config.ProxyFullSyncPeriod)),
                p.GetRequiredService<TimeProvider>(), p.GetRequiredService<ILogger<NodeAgent.Proxy.ServiceProxy>>(), p.GetRequiredService<IEventRecorder>())
            : null));

    // The proxy mode's way of programming the kernel (none: another proxy does it).
    NodeAgent.Proxy.IProxyRules? ProxyRules(IServiceProvider p) => config.ProxyMode switch
    {
        "nftables" => new NodeAgent.Proxy.NftablesRules(new NodeAgent.Proxy.NftNetlinkBackend(), new NodeAgent.Proxy.NftOptions("node-agent", config.ClusterCIDR),
            p.GetRequiredService<ILoggerFactory>().CreateLogger<NodeAgent.Proxy.NftablesRules>(),
            family => nodePorts.Resolve(family, nodeIps, NodeAgent.Proxy.NodePortAddresses.HostAddresses())),
        // IPVS needs a virtual server per address: every local address when a /0 is given.
        "ipvs" => new NodeAgent.Proxy.Ipvs.IpvsRules(NodeAgent.Proxy.Ipvs.IpvsKernel.Open(),
            new NodeAgent.Proxy.Ipvs.IpvsHost(config.ClusterCIDR, p.GetRequiredService<ILoggerFactory>().CreateLogger<NodeAgent.Proxy.Ipvs.IpvsHost>()),
            [.. IpvsNodePortIps(AddressFamily.InterNetwork), .. IpvsNodePortIps(AddressFamily.InterNetworkV6)], config.IpvsScheduler),
        _ => null,
    };
}
s.AddHostedService<AgentService>();

var app = builder.Build();
var startupLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("NodeAgent");
foreach (var w in warnings) startupLog.LogWarning("{Warning}", w);
var store = app.Services.GetRequiredService<PodStatusStore>();
var pleg = app.Services.GetRequiredService<GenericPleg>();
app.Services.GetRequiredService<PodManager>().Listing = pleg;
var health = app.Services.GetRequiredService<AgentHealth>();
var stats = app.Services.GetRequiredService<NodeAgent.Metrics.StatsCollector>();
stats.Kubelet = app.Services.GetRequiredService<NodeAgent.Metrics.KubeletMetrics>();
stats.Kubelet.Reader = stats.Reader;
stats.Summary = new NodeAgent.Metrics.SummaryNode(config.NodeName, HostInfo.BootTime(), HostInfo.MemoryBytes());
stats.Filesystems = new NodeAgent.Metrics.FsStatsSource(app.Services.GetRequiredService<RemoteRuntime>(), app.Services.GetRequiredService<RemoteRuntime>(),
    config.RootDir, config.PodLogsDir, TimeProvider.System, app.Services.GetRequiredService<ILogger<NodeAgent.Metrics.FsStatsSource>>());
if (servingCert is not null)
    kubeletServer = new KubeletServer(apiConfig!.CaCertificate!, store, pleg, health, config.PodLogsDir, app.Services.GetRequiredService<StreamingServer>(), stats);
var proxy = app.Services.GetService<NodeAgent.Node.ClusterLoops>()?.Proxy;
app.Run(ctx => kubeletServer is not null && ctx.Connection.LocalPort == config.Port
    ? kubeletServer.HandleAsync(ctx)
    : proxy is not null && ctx.Connection.LocalPort == config.ProxyHealthzPort
        ? NodeAgent.Proxy.ProxyHealthz.HandleAsync(ctx, proxy, TimeProvider.System)
        : proxy is not null && ctx.Connection.LocalPort == config.ProxyMetricsPort
            ? NodeAgent.Proxy.ProxyHealthz.MetricsAsync(ctx, proxy)
            : ReadOnlyServer.HandleAsync(ctx, store, pleg, health, stats));
try
{
    await app.RunAsync();
}
catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException or null)
{
    Console.Error.WriteLine($"node-agent: cannot listen: {e.Message}");
    return 1;
}
return 0;
