using System.Globalization;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;

namespace NodeAgent.Pods;

/// <summary>What the runtime has for one pod: every sandbox and container labelled with its UID.</summary>
public sealed record RuntimePod(string Uid, IReadOnlyList<SandboxInfo> Sandboxes, IReadOnlyList<ContainerInfo> Containers)
{
    public static readonly RuntimePod Empty = new("", [], []);

    /// <summary>The newest sandbox; the kubelet only ever runs containers in this one.</summary>
    public SandboxInfo? CurrentSandbox => Sandboxes.Count == 0 ? null : Sandboxes.MaxBy(s => s.CreatedAt);

    /// <summary>The newest container with this name, in any sandbox (carries the restart count).</summary>
    public ContainerInfo? Latest(string name)
    {
        ContainerInfo? best = null;
        foreach (var c in Containers)
            if (c.Name == name && (best is null || c.CreatedAt > best.CreatedAt)) best = c;
        return best;
    }

    /// <summary>The newest container with this name in the given sandbox.</summary>
    public ContainerInfo? LatestIn(string name, string sandboxId)
    {
        ContainerInfo? best = null;
        foreach (var c in Containers)
            if (c.Name == name && c.SandboxId == sandboxId && (best is null || c.CreatedAt > best.CreatedAt)) best = c;
        return best;
    }

    /// <summary>The second-newest container with this name: the source of lastState.</summary>
    public ContainerInfo? Previous(string name, ContainerInfo latest)
    {
        ContainerInfo? best = null;
        foreach (var c in Containers)
            if (c.Name == name && c.Id != latest.Id && c.CreatedAt <= latest.CreatedAt && (best is null || c.CreatedAt > best.CreatedAt)) best = c;
        return best;
    }
}

public sealed record SandboxInfo(string Id, uint Attempt, PodSandboxState State, long CreatedAt, string? Ip, IReadOnlyList<string> AdditionalIps,
    IReadOnlyDictionary<string, string> Annotations);

public sealed record ContainerInfo(
    string Id, string SandboxId, string Name, uint Attempt, ContainerState State,
    long CreatedAt, long StartedAt, long FinishedAt, int ExitCode, string Reason, string Message,
    string Image, string ImageRef, string? Hash, int RestartCount, string? LogPath,
    IReadOnlyDictionary<string, string> Annotations, string? TerminationMessageHostPath = null)
{
    public bool Running => State == ContainerState.ContainerRunning;
    public bool Exited => State == ContainerState.ContainerExited;

    public static DateTimeOffset? Time(long unixNanos) => unixNanos <= 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(unixNanos / 1_000_000);

    public static ContainerInfo From(ContainerStatus s, string sandboxId)
    {
        s.Annotations.TryGetValue(Labels.ContainerHash, out var hash);
        int restarts = s.Annotations.TryGetValue(Labels.ContainerRestartCount, out var rc) && int.TryParse(rc, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) ? n : 0;
        s.Labels.TryGetValue(Labels.ContainerName, out var name);
        string? termHost = null;
        if (s.Annotations.TryGetValue(Labels.TerminationMessagePath, out var termPath) && termPath.Length > 0)
            foreach (var m in s.Mounts)
                if (m.ContainerPath == termPath) { termHost = m.HostPath; break; }
        return new ContainerInfo(s.Id, sandboxId, name ?? s.Metadata?.Name ?? "", s.Metadata?.Attempt ?? 0, s.State, s.CreatedAt, s.StartedAt, s.FinishedAt, s.ExitCode,
            s.Reason, s.Message, s.Image?.UserSpecifiedImage is { Length: > 0 } u ? u : s.Image?.Image ?? "", s.ImageRef, hash, restarts, s.LogPath, s.Annotations, termHost);
    }
}

/// <summary>Reads one pod's runtime state: two list calls filtered by the pod UID label, then one status call per container.</summary>
public sealed class RuntimePodReader(IRuntimeService runtime)
{
    public async Task<RuntimePod> ReadAsync(string uid, CancellationToken ct)
    {
        var selector = new Dictionary<string, string> { [Labels.PodUid] = uid };
        var sandboxFilter = new PodSandboxFilter();
        sandboxFilter.LabelSelector.Add(selector);
        var containerFilter = new ContainerFilter();
        containerFilter.LabelSelector.Add(selector);

        var sandboxesTask = runtime.ListPodSandboxAsync(sandboxFilter, ct);
        var containersTask = runtime.ListContainersAsync(containerFilter, ct);
        var sandboxes = await sandboxesTask.ConfigureAwait(false);
        var containers = await containersTask.ConfigureAwait(false);

        var sbInfos = new List<SandboxInfo>(sandboxes.Count);
        foreach (var sb in sandboxes)
        {
            string? ip = null;
            IReadOnlyList<string> extra = [];
            if (sb.State == PodSandboxState.SandboxReady)
            {
                try
                {
                    var st = await runtime.PodSandboxStatusAsync(sb.Id, ct).ConfigureAwait(false);
                    ip = string.IsNullOrEmpty(st.Network?.Ip) ? null : st.Network.Ip;
                    extra = st.Network?.AdditionalIps.Select(p => p.Ip).ToList() ?? [];
                }
                catch (CriException e) when (e.Kind == CriErrorKind.NotFound) { continue; }
            }
            sbInfos.Add(new SandboxInfo(sb.Id, sb.Metadata?.Attempt ?? 0, sb.State, sb.CreatedAt, ip, extra, sb.Annotations));
        }

        var cInfos = new List<ContainerInfo>(containers.Count);
        foreach (var c in containers)
        {
            try
            {
                var st = await runtime.ContainerStatusAsync(c.Id, ct).ConfigureAwait(false);
                cInfos.Add(ContainerInfo.From(st, c.PodSandboxId));
            }
            catch (CriException e) when (e.Kind == CriErrorKind.NotFound) { }
        }
        return new RuntimePod(uid, sbInfos, cInfos);
    }
}
