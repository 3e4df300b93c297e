using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The kube-controller-manager's part of this process: the enabled controllers, made fresh for
/// each leadership term (no cache outlives the lease it was built under), all on one client and
/// identity, as upstream's share one, and on one set of informers: a resource several controllers
/// read (pods: six of them) is listed, watched, decoded and cached once.
/// </summary>
public static class ControllerManager
{
    public const string LeaseName = "kube-controller-manager";

    public static List<Func<CancellationToken, Task>> Create(IReadOnlySet<string> enabled, ApiClient api, ILoggerFactory loggers, TimeProvider time, string caPem,
        int terminatedPodGcThreshold = PodGcController.DefaultTerminatedThreshold)
    {
        var informers = new SharedInformers(api, loggers.CreateLogger<SharedInformers>(), time);
        var runs = new List<Func<CancellationToken, Task>>();
        void Add(string name, Func<ControllerLoop> make)
        {
            if (!enabled.Contains(name)) return;
            var controller = make();
            controller.UseInformers(informers);
            runs.Add(controller.RunAsync);
        }
        Add("replicaset", () => new ReplicaSetController(api, time, loggers.CreateLogger<ReplicaSetController>()));
        Add("deployment", () => new DeploymentController(api, time, loggers.CreateLogger<DeploymentController>()));
        Add("daemonset", () => new DaemonSetController(api, time, loggers.CreateLogger<DaemonSetController>()));
        Add("garbagecollector", () => new GarbageCollector(api, time, loggers.CreateLogger<GarbageCollector>()));
        Add("namespace", () => new NamespaceController(api, time, loggers.CreateLogger<NamespaceController>()));
        Add("endpointslice", () => new EndpointSliceController(api, time, loggers.CreateLogger<EndpointSliceController>()));
        Add("nodelifecycle", () => new NodeLifecycleController(api, time, loggers.CreateLogger<NodeLifecycleController>()));
        Add("serviceaccount", () => new ServiceAccountController(api, time, loggers.CreateLogger<ServiceAccountController>()));
        Add("root-ca-cert-publisher", () => new RootCaPublisher(api, time, loggers.CreateLogger<RootCaPublisher>(), caPem));
        Add("podgc", () => new PodGcController(api, time, loggers.CreateLogger<PodGcController>(), terminatedPodGcThreshold));
        if (runs.Count > 0) runs.Add(informers.RunAsync);
        return runs;
    }

    /// <summary>Runs every component until <paramref name="ct"/> fires.</summary>
    public static Task RunAllAsync(IEnumerable<Func<CancellationToken, Task>> runs, CancellationToken ct) =>
        Task.WhenAll(runs.Select(run => Task.Run(() => run(ct), CancellationToken.None)));
}
