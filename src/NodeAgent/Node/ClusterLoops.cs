namespace NodeAgent.Node;

/// <summary>The loops that exist only when the agent joins an API server (--kubeconfig).</summary>
public sealed record ClusterLoops(NodeStatusController Status, NodeLeaseController Lease, Config.ApiSource Pods, Status.ApiStatusManager PodStatus, Pods.ApiEventRecorder Events, Config.MirrorPods Mirrors,
    Proxy.ServiceProxy? Proxy = null);
