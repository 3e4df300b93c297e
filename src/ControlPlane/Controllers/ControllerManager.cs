using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The kube-controller-manager's part of this process: the enabled controllers, made fresh for
/// each leadership term (no cache outlives the lease it was built under), all on one client and
/// identity, as upstream's share one.
/// </summary>
public static class ControllerManager
{
    public const string LeaseName = "kube-controller-manager";

    public static List<Func<CancellationToken, Task>> Create(IReadOnlySet<string> enabled, ApiClient api, ILoggerFactory loggers, TimeProvider time, string caPem,
        int terminatedPodGcThreshold = PodGcController.DefaultTerminatedThreshold)
    {
        var runs = new List<Func<CancellationToken, Task>>();
        void Add(string name, Func<Func<CancellationToken, Task>> make) { if (enabled.Contains(name)) runs.Add(make()); }
        Add("replicaset", () => new ReplicaSetController(api, time, loggers.CreateLogger<ReplicaSetController>()).RunAsync);
        Add("deployment", () => new DeploymentController(api, time, loggers.CreateLogger<DeploymentController>()).RunAsync);
        Add("daemonset", () => new DaemonSetController(api, time, loggers.CreateLogger<DaemonSetController>()).RunAsync);
        Add("garbagecollector", () => new GarbageCollector(api, time, loggers.CreateLogger<GarbageCollector>()).RunAsync);
        Add("namespace", () => new NamespaceController(api, time, loggers.CreateLogger<NamespaceController>()).RunAsync);
        Add("endpointslice", () => new EndpointSliceController(api, time, loggers.CreateLogger<EndpointSliceController>()).RunAsync);
        Add("nodelifecycle", () => new NodeLifecycleController(api, time, loggers.CreateLogger<NodeLifecycleController>()).RunAsync);
        Add("serviceaccount", () => new ServiceAccountController(api, time, loggers.CreateLogger<ServiceAccountController>()).RunAsync);
        Add("root-ca-cert-publisher", () => new RootCaPublisher(api, time, loggers.CreateLogger<RootCaPublisher>(), caPem).RunAsync);
        Add("podgc", () => new PodGcController(api, time, loggers.CreateLogger<PodGcController>(), terminatedPodGcThreshold).RunAsync);
        return runs;
    }

    /// <summary>Runs every component until <paramref name="ct"/> fires.</summary>
    public static Task RunAllAsync(IEnumerable<Func<CancellationToken, Task>> runs, CancellationToken ct) =>
        Task.WhenAll(runs.Select(run => Task.Run(() => run(ct), CancellationToken.None)));
}
