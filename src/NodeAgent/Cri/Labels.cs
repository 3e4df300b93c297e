namespace NodeAgent.Cri;

/// <summary>
/// The labels and annotations the kubelet puts on CRI objects (pkg/kubelet/types/labels.go and
/// kuberuntime/labels.go). Using the same keys lets crictl users and existing tooling read our
/// containers, and is how the agent re-adopts its containers after a restart.
/// </summary>
public static class Labels
{
    public const string PodName = "io.kubernetes.pod.name";
    public const string PodNamespace = "io.kubernetes.pod.namespace";
    public const string PodUid = "io.kubernetes.pod.uid";
    public const string ContainerName = "io.kubernetes.container.name";
    public const string ContainerType = "io.kubernetes.container.type";
    /// <summary>Sandboxes carry ContainerName = "POD" in the kubelet.</summary>
    public const string SandboxContainerName = "POD";

    public const string ContainerHash = "io.kubernetes.container.hash";
    public const string ContainerRestartCount = "io.kubernetes.container.restartCount";
    public const string TerminationMessagePath = "io.kubernetes.container.terminationMessagePath";
    public const string TerminationMessagePolicy = "io.kubernetes.container.terminationMessagePolicy";
    public const string PreStopHandler = "io.kubernetes.container.preStopHandler";
    public const string PodTerminationGracePeriod = "io.kubernetes.pod.terminationGracePeriod";
    public const string PodDeletionGracePeriod = "io.kubernetes.pod.deletionGracePeriod";

    public const string ConfigSource = "kubernetes.io/config.source";
    public const string ConfigHash = "kubernetes.io/config.hash";
    public const string ConfigSeen = "kubernetes.io/config.seen";
    public const string ConfigMirror = "kubernetes.io/config.mirror";
}
