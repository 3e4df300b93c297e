using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NodeAgent.ControlPlane;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Auth;
using NodeAgent.ControlPlane.Etcd;
using NodeAgent.ControlPlane.Options;
using NodeAgent.ControlPlane.Pki;
using NodeAgent.ControlPlane.Registry;
using NodeAgent.ControlPlane.Storage;

if (args is ["--help"] or ["-h"]) { Console.Write(ControlPlaneOptions.Usage()); return 0; }
if (args is ["--version"]) { Console.WriteLine($"control-plane {typeof(ApiServer).Assembly.GetName().Version?.ToString(3)} (Kubernetes API {ApiServer.KubeVersion})"); return 0; }
if (args is ["kubeconfig", ..] or ["node-kubeconfig", ..]) return IssueKubeconfig(args);

ControlPlaneOptions opts;
try
{
    opts = ControlPlaneOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"control-plane: {e.Message}");
    return 2;
}

string advertise = opts.AdvertiseAddress ?? DefaultAddress();
var pki = new ClusterPki(opts.DataDir);
var apiOpts = new ApiServerOptions
{
    ServiceClusterIpRange = opts.ServiceClusterIpRange,
    NodePortRange = opts.ServiceNodePortRange,
    WatchCacheSize = opts.WatchCacheSize,
    WatcherQueue = Math.Max(1, opts.WatcherQueue),
    BookmarkInterval = opts.BookmarkInterval,
    MinRequestTimeout = TimeSpan.FromSeconds(opts.MinRequestTimeout),
    ExternalAddress = $"{advertise}:{opts.SecurePort}",
};
{
    // The identity the server shows kubelets when it proxies logs (kube-apiserver-kubelet-client).
    var (kubeletCert, kubeletKey) = pki.ClientCertificate("kube-apiserver-kubelet-client", ["system:masters"]);
    apiOpts.KubeletClientCertificate = X509Certificate2.CreateFromPem(kubeletCert, kubeletKey);
}
ServiceAllocator allocator;
Authenticator authn;
try
{
    allocator = new ServiceAllocator(apiOpts.ServiceClusterIpRange, apiOpts.NodePortRange);
    apiOpts.ServiceAccountTokens = new ServiceAccountTokens(Path.Combine(opts.DataDir, "pki"), TimeProvider.System);
    authn = new Authenticator(pki, opts.TokenAuthFile, opts.AnonymousAuth, apiOpts.ServiceAccountTokens);
}
catch (Exception e) when (e is ArgumentException or IOException)
{
    Console.Error.WriteLine($"control-plane: {e.Message}");
    return 2;
}
var dns = new List<string> { "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", Dns.GetHostName() };
var ips = new List<IPAddress> { IPAddress.Loopback, IPAddress.IPv6Loopback, IPAddress.Parse(advertise) };
foreach (var range in allocator.Ranges) ips.Add(IPAddress.Parse(range.First));
foreach (var san in opts.TlsSans)
    if (IPAddress.TryParse(san, out var ip)) ips.Add(ip); else dns.Add(san);
var serving = pki.ServingCertificate(dns.Distinct().ToList(), ips.Distinct().ToList());
string adminKubeconfig = Path.Combine(opts.DataDir, "admin.kubeconfig");
if (!File.Exists(adminKubeconfig))
    ClusterPki.WriteSecret(adminKubeconfig, pki.Kubeconfig($"https://{(IPAddress.Parse(advertise).AddressFamily == AddressFamily.InterNetworkV6 ? $"[{advertise}]" : advertise)}:{opts.SecurePort}", "kubernetes-admin", ["system:masters"]));

// The empty builder: no appsettings files and no reload watch on the working directory (the slim
// builder's reload watched it recursively: "/" under systemd), no host filtering or routing.
var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [] });
builder.WebHost.UseKestrelCore();
builder.Host.UseSystemd(); // READY=1 once serving; the unit orders it after etcd
// Requests are not logged one by one (DaemonLogging): that was ~7% of the server's CPU in the
// create benchmark, and two journal lines per lease renewal.
NodeAgent.Api.Hosting.DaemonLogging.Use(builder.Logging, "node-agent-control-plane", o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
builder.WebHost.ConfigureKestrel(k =>
{
    k.Limits.MaxRequestBodySize = null;
    k.AddServerHeader = false;
    k.Listen(IPAddress.Parse(opts.BindAddress), opts.SecurePort, l => l.UseHttps(new HttpsConnectionAdapterOptions
    {
        ServerCertificate = serving,
        ClientCertificateMode = ClientCertificateMode.AllowCertificate,
        ClientCertificateValidation = (_, _, _) => true,
    }));
});
var etcd = new EtcdClient(new Uri(opts.EtcdServers));
builder.Services.AddSingleton(etcd);
var resources = new Resources();
builder.Services.AddSingleton(new Store(etcd, new StorageMetrics(resources.All.Select(r => (r.Group, r.Resource)))));
builder.Services.AddSingleton(resources);
builder.Services.AddSingleton(apiOpts);
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton<ApiServer>();
builder.Services.AddSingleton<IAuthorizer, AllowAllAuthorizer>();
var app = builder.Build();
var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("control-plane");
var api = app.Services.GetRequiredService<ApiServer>();
var authz = app.Services.GetRequiredService<IAuthorizer>();

// etcd first: wait (bounded backoff with jitter) until it answers, then start the watch caches.
using (var cts = CancellationTokenSource.CreateLinkedTokenSource(app.Lifetime.ApplicationStopping))
{
    cts.CancelAfter(TimeSpan.FromMinutes(2));
    for (int attempt = 0; ; attempt++)
    {
        try
        {
            await etcd.CurrentRevisionAsync(cts.Token);
            break;
        }
        catch (EtcdUnavailableException e) when (!cts.IsCancellationRequested)
        {
            log.LogWarning("etcd {Endpoint} not ready: {Error}", opts.EtcdServers, e.Message);
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 100 << Math.Min(attempt, 6)) * (0.5 + Random.Shared.NextDouble())), cts.Token);
        }
        catch (OperationCanceledException)
        {
            log.LogError("etcd {Endpoint} did not answer in 2 minutes", opts.EtcdServers);
            return 1;
        }
    }
}
await api.StartAsync();
authn.ObjectExists = api.ExistsAsync;
// metrics.k8s.io (kubectl top): every control-plane process scrapes the nodes itself, as metrics-server would.
var metricsScraper = api.ScrapeNodeMetricsAsync(app.Lifetime.ApplicationStopping);
await Bootstrap.RunAsync(api, advertise, opts.SecurePort, app.Lifetime.ApplicationStopping);

app.Run(async ctx =>
{
    long received = System.Diagnostics.Stopwatch.GetTimestamp();
    var user = await authn.AuthenticateAsync(ctx);
    if (user is null)
    {
        await ApiServer.WriteErrorAsync(ctx, ApiException.Unauthorized());
        return;
    }
    try
    {
        user = Impersonation.Apply(user, ctx.Request.Headers, authz);
    }
    catch (ApiException e)
    {
        await ApiServer.WriteErrorAsync(ctx, e);
        return;
    }
    ctx.Items["user"] = user;
    var attributes = AuthorizationAttributes.From(user, ctx.Request);
    var (decision, reason) = authz.Authorize(attributes);
    if (decision != Decision.Allow)
    {
        await ApiServer.WriteErrorAsync(ctx, ApiException.Forbidden(attributes, reason));
        return;
    }
    try
    {
        await api.HandleAsync(ctx);
    }
    finally
    {
        api.Metrics.RecordRequest(ctx, received);
    }
});
log.LogInformation("serving the Kubernetes API on https://{Bind}:{Port} (etcd {Etcd}); admin kubeconfig {Kubeconfig}", opts.BindAddress, opts.SecurePort, opts.EtcdServers, adminKubeconfig);

// The other components are clients of this API, each with its own identity, as upstream's are.
var components = new List<Task>();
NodeAgent.Api.Client.ApiClient ComponentClient(string user, string userAgent)
{
    var (cert, key) = pki.ClientCertificate(user, []);
    string host = opts.BindAddress is "0.0.0.0" or "::" ? "127.0.0.1" : opts.BindAddress;
    if (IPAddress.TryParse(host, out var hostIp) && hostIp.AddressFamily == AddressFamily.InterNetworkV6) host = $"[{host}]";
    return new NodeAgent.Api.Client.ApiClient(new NodeAgent.Api.Client.ClientConfig
    {
        Server = new Uri($"https://{host}:{opts.SecurePort}"),
        CaCertificate = pki.Ca,
        ClientCertificate = X509Certificate2.CreateFromPem(cert, key),
        User = user,
    }, userAgent, writeQps: 500, writeBurst: 1000);
}
app.Lifetime.ApplicationStarted.Register(() =>
{
    var loggers = app.Services.GetRequiredService<ILoggerFactory>();
    string version = NodeAgent.ControlPlane.Api.ApiServer.KubeVersion;
    var stopping = app.Lifetime.ApplicationStopping;
    // One identity per process for both leases, as hostname_uuid (upstream's form).
    string identity = Dns.GetHostName() + "_" + Guid.NewGuid().ToString();
    var electionLog = loggers.CreateLogger("NodeAgent.ControlPlane.LeaderElection");
    Task Elected(NodeAgent.Api.Client.ApiClient client, string lease, Func<CancellationToken, Task> run) => opts.LeaderElect
        ? new NodeAgent.ControlPlane.Controllers.LeaderElector(client, TimeProvider.System, electionLog, "kube-system", lease, identity, opts.LeaderElection).RunAsync(run, stopping)
        : run(stopping);

    if (opts.Controllers.Contains("scheduler"))
    {
        var client = ComponentClient("system:kube-scheduler", "kube-scheduler/" + version);
        components.Add(Task.Run(() => Elected(client, "kube-scheduler", ct =>
            new NodeAgent.ControlPlane.Scheduler.Scheduler(client, TimeProvider.System, loggers.CreateLogger<NodeAgent.ControlPlane.Scheduler.Scheduler>()).RunAsync(ct))));
    }
    var enabled = opts.Controllers.Where(c => c != "scheduler").ToHashSet();
    if (enabled.Count > 0)
    {
        var client = ComponentClient("system:kube-controller-manager", "kube-controller-manager/" + version);
        string caPem = File.ReadAllText(pki.CaCertPath);
        components.Add(Task.Run(() => Elected(client, NodeAgent.ControlPlane.Controllers.ControllerManager.LeaseName, ct =>
            NodeAgent.ControlPlane.Controllers.ControllerManager.RunAllAsync(
                NodeAgent.ControlPlane.Controllers.ControllerManager.Create(enabled, client, loggers, TimeProvider.System, caPem, opts.TerminatedPodGcThreshold), ct))));
    }
});
// Components stop (and leaders release their leases) while the API still serves: stopping
// callbacks run before the server shuts down.
app.Lifetime.ApplicationStopping.Register(() =>
{
    try { Task.WhenAll(components).Wait(TimeSpan.FromSeconds(3)); }
    catch (AggregateException e) { log.LogError(e, "a component failed"); }
});
await app.RunAsync();
await api.DisposeAsync();
return 0;

static string DefaultAddress()
{
    foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
    {
        if (nic.OperationalStatus != OperationalStatus.Up || nic.NetworkInterfaceType == NetworkInterfaceType.Loopback) continue;
        foreach (var a in nic.GetIPProperties().UnicastAddresses)
            if (a.Address.AddressFamily == AddressFamily.InterNetwork) return a.Address.ToString();
    }
    return "127.0.0.1";
}

static int IssueKubeconfig(string[] args)
{
    string dataDir = "/var/lib/node-agent-control-plane", server = "https://127.0.0.1:6443";
    string? user = null, output = null;
    var groups = new List<string>();
    for (int i = 1; i < args.Length; i++)
    {
        string a = args[i];
        string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
        try
        {
            switch (a)
            {
                case "--data-dir": dataDir = Next(); break;
                case "--server": server = Next(); break;
                case "--user": user = Next(); break;
                case "--group": groups.Add(Next()); break;
                case "--node": user = "system:node:" + Next(); groups.Add("system:nodes"); break;
                case "--out": output = Next(); break;
                default: throw new ArgumentException($"unknown flag {a} (see --help)");
            }
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"control-plane: {e.Message}");
            return 2;
        }
    }
    if (user is null)
    {
        Console.Error.WriteLine($"control-plane {args[0]}: {(args[0] == "kubeconfig" ? "--user" : "--node")} is required");
        return 2;
    }
    var text = new ClusterPki(dataDir).Kubeconfig(server, user, groups);
    if (output is null) Console.Write(text); else ClusterPki.WriteSecret(output, text);
    return 0;
}
