namespace NodeAgent.ControlPlane.Registry;

/// <summary>Every resource the API server serves, with upstream's names, scopes, short names, categories and field labels.</summary>
public sealed class Resources
{
    public IReadOnlyList<ResourceInfo> All { get; }
    private readonly Dictionary<(string Group, string Version, string Resource), ResourceInfo> _byPath = [];

    public Resources()
    {
        All =
        [
            new() { Group = "", Version = "v1", Resource = "namespaces", Kind = "Namespace", Namespaced = false, ShortNames = ["ns"],
                    Subresources = ["status", "finalize"], Strategy = new NamespaceStrategy(), Table = Table.Namespaces, FieldLabels = ["status.phase"] },
            new() { Group = "", Version = "v1", Resource = "pods", Kind = "Pod", Namespaced = true, ShortNames = ["po"], Categories = ["all"],
                    Subresources = ["status", "binding", "eviction", "log", "exec", "attach", "portforward"], Strategy = new PodStrategy(), Table = Table.Pods,
                    FieldLabels = ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork",
                                   "status.phase", "status.podIP", "status.nominatedNodeName"] },
            new() { Group = "", Version = "v1", Resource = "nodes", Kind = "Node", Namespaced = false, ShortNames = ["no"],
                    Subresources = ["status"], Strategy = new NodeStrategy(), Table = Table.Nodes, FieldLabels = ["spec.unschedulable"] },
            new() { Group = "", Version = "v1", Resource = "services", Kind = "Service", Namespaced = true, ShortNames = ["svc"], Categories = ["all"],
                    Subresources = ["status"], Strategy = new ServiceStrategy(), Table = Table.Services, FieldLabels = ["spec.clusterIP", "spec.type"] },
            new() { Group = "", Version = "v1", Resource = "endpoints", Kind = "Endpoints", Namespaced = true, ShortNames = ["ep"],
                    Strategy = new Strategy(), Table = Table.Endpoints },
            new() { Group = "", Version = "v1", Resource = "configmaps", Kind = "ConfigMap", Namespaced = true, ShortNames = ["cm"],
                    Strategy = new DataStrategy(secret: false), Table = Table.ConfigMaps },
            new() { Group = "", Version = "v1", Resource = "secrets", Kind = "Secret", Namespaced = true,
                    Strategy = new DataStrategy(secret: true), Table = Table.Secrets, FieldLabels = ["type"] },
            new() { Group = "", Version = "v1", Resource = "serviceaccounts", Kind = "ServiceAccount", Namespaced = true, ShortNames = ["sa"], Subresources = ["token"],
                    Strategy = new Strategy(), Table = Table.ServiceAccounts },
            new() { Group = "", Version = "v1", Resource = "events", Kind = "Event", Namespaced = true, ShortNames = ["ev"],
                    Strategy = new Strategy(), Table = Table.Events,
                    FieldLabels = ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                                   "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                                   "reason", "reportingComponent", "source", "type"] },
            new() { Group = "apps", Version = "v1", Resource = "deployments", Kind = "Deployment", Namespaced = true, ShortNames = ["deploy"],
                    Categories = ["all"], Subresources = ["status", "scale"], Strategy = new WorkloadStrategy("Deployment"), Table = Table.Deployments },
            new() { Group = "apps", Version = "v1", Resource = "replicasets", Kind = "ReplicaSet", Namespaced = true, ShortNames = ["rs"],
                    Categories = ["all"], Subresources = ["status", "scale"], Strategy = new WorkloadStrategy("ReplicaSet"), Table = Table.ReplicaSets,
                    FieldLabels = ["status.replicas"] },
            new() { Group = "apps", Version = "v1", Resource = "daemonsets", Kind = "DaemonSet", Namespaced = true, ShortNames = ["ds"],
                    Categories = ["all"], Subresources = ["status"], Strategy = new WorkloadStrategy("DaemonSet"), Table = Table.DaemonSets },
            new() { Group = "apps", Version = "v1", Resource = "controllerrevisions", Kind = "ControllerRevision", Namespaced = true,
                    Strategy = new Strategy(), Table = Table.ControllerRevisions },
            new() { Group = "discovery.k8s.io", Version = "v1", Resource = "endpointslices", Kind = "EndpointSlice", Namespaced = true,
                    Strategy = new EndpointSliceStrategy(), Table = Table.EndpointSlices },
            new() { Group = "coordination.k8s.io", Version = "v1", Resource = "leases", Kind = "Lease", Namespaced = true,
                    Strategy = new Strategy(), Table = Table.Leases },
        ];
        foreach (var r in All) _byPath[(r.Group, r.Version, r.Resource)] = r;
    }

    public ResourceInfo? Find(string group, string version, string resource) =>
        _byPath.TryGetValue((group, version, resource), out var r) ? r : null;

    public ResourceInfo Get(string group, string resource) => All.First(r => r.Group == group && r.Resource == resource);

    /// <summary>Served groups in discovery order (core first).</summary>
    public IEnumerable<string> Groups => All.Select(r => r.Group).Distinct();
}
