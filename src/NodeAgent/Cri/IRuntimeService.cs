using NodeAgent.Cri.V1;

namespace NodeAgent.Cri;

// CRI roles, split as the upstream cri-api splits them, so each consumer depends on what it calls.
// Every method is safe to call concurrently; implementations own no pod state. "Not found" is a
// CriException with Kind NotFound, except where a method's comment says otherwise. Every call
// carries a deadline; a runtime that is down surfaces as CriErrorKind.Unavailable.

public interface IRuntimeVersioner
{
    Task<VersionResponse> VersionAsync(CancellationToken ct);
}

public interface IPodSandboxManager
{
    Task<string> RunPodSandboxAsync(PodSandboxConfig config, string runtimeHandler, CancellationToken ct);
    /// <summary>Idempotent: stopping a stopped or missing sandbox succeeds.</summary>
    Task StopPodSandboxAsync(string sandboxId, CancellationToken ct);
    /// <summary>Idempotent: removing a missing sandbox succeeds.</summary>
    Task RemovePodSandboxAsync(string sandboxId, CancellationToken ct);
    Task<PodSandboxStatus> PodSandboxStatusAsync(string sandboxId, CancellationToken ct);
    Task<IReadOnlyList<PodSandbox>> ListPodSandboxAsync(PodSandboxFilter? filter, CancellationToken ct);
}

public interface IContainerManager
{
    Task<string> CreateContainerAsync(string sandboxId, ContainerConfig config, PodSandboxConfig sandboxConfig, CancellationToken ct);
    Task StartContainerAsync(string containerId, CancellationToken ct);
    /// <summary>Idempotent. The runtime sends SIGKILL after <paramref name="timeoutSeconds"/>.</summary>
    Task StopContainerAsync(string containerId, long timeoutSeconds, CancellationToken ct);
    /// <summary>Idempotent: removing a missing container succeeds.</summary>
    Task RemoveContainerAsync(string containerId, CancellationToken ct);
    Task<IReadOnlyList<Container>> ListContainersAsync(ContainerFilter? filter, CancellationToken ct);
    Task<ContainerStatus> ContainerStatusAsync(string containerId, CancellationToken ct);
    Task<ExecSyncResponse> ExecSyncAsync(string containerId, IReadOnlyList<string> cmd, TimeSpan timeout, CancellationToken ct);
    Task ReopenContainerLogAsync(string containerId, CancellationToken ct);
}

/// <summary>
/// Interactive sessions, which the runtime serves itself: each call returns a one-time URL on the
/// runtime's streaming server (WebSocket or SPDY), valid for a short while. NotFound: no such
/// container or sandbox.
/// </summary>
public interface IStreamingRuntime
{
    Task<Uri> ExecAsync(ExecRequest request, CancellationToken ct);
    Task<Uri> AttachAsync(AttachRequest request, CancellationToken ct);
    Task<Uri> PortForwardAsync(string sandboxId, IReadOnlyList<int> ports, CancellationToken ct);
}

/// <summary>Resource usage the runtime measures itself: here, each container's writable layer.</summary>
public interface IContainerStatsManager
{
    /// <summary>Stats of the containers matching <paramref name="filter"/> (all when null).</summary>
    Task<IReadOnlyList<ContainerStats>> ListContainerStatsAsync(ContainerStatsFilter? filter, CancellationToken ct);
}

public interface IRuntimeService : IRuntimeVersioner, IPodSandboxManager, IContainerManager, IContainerStatsManager
{
    Task<StatusResponse> StatusAsync(CancellationToken ct);
    /// <summary>Container lifecycle events, if the runtime streams them; Unimplemented otherwise.</summary>
    IAsyncEnumerable<ContainerEventResponse> GetContainerEventsAsync(CancellationToken ct);

    /// <summary>
    /// The PLEG's relist: every sandbox (state + 100) and container that carries the pod UID
    /// label, appended to <paramref name="into"/>. The remote runtime decodes only these fields
    /// with <paramref name="decoder"/>; this default goes through the full list calls.
    /// </summary>
    async Task RelistAsync(RelistDecoder decoder, List<RelistEntry> into, CancellationToken ct)
    {
        var sandboxesTask = ListPodSandboxAsync(null, ct);
        var containersTask = ListContainersAsync(null, ct);
        foreach (var sb in await sandboxesTask.ConfigureAwait(false))
            if (sb.Labels.TryGetValue(Labels.PodUid, out var uid)) into.Add(new RelistEntry(sb.Id, uid, 100 + (int)sb.State));
        foreach (var c in await containersTask.ConfigureAwait(false))
            if (c.Labels.TryGetValue(Labels.PodUid, out var uid)) into.Add(new RelistEntry(c.Id, uid, (int)c.State));
    }
}

public interface IImageService
{
    /// <summary>Returns null when the image is not present (not an error in CRI).</summary>
    Task<Image?> ImageStatusAsync(string image, CancellationToken ct);
    Task<string> PullImageAsync(string image, PodSandboxConfig? sandboxConfig, CancellationToken ct);
    Task<IReadOnlyList<Image>> ListImagesAsync(CancellationToken ct);
    /// <summary>The filesystems holding images (and, where the runtime splits them, container writable layers).</summary>
    Task<ImageFsInfoResponse> ImageFsInfoAsync(CancellationToken ct);
}
