using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using Xunit;

namespace NodeAgent.Contracts;

/// <summary>
/// What the agent relies on from a CRI runtime. Runs against the in-repo fake
/// (tests/NodeAgent.Tests) and against real containerd (tests/NodeAgent.IntegrationTests), so
/// the fake cannot drift from the real thing.
/// </summary>
public abstract class RuntimeContract
{
    protected abstract IRuntimeService Runtime { get; }
    protected abstract IImageService Images { get; }
    /// <summary>An image that is present, and a command that runs until stopped.</summary>
    protected virtual string Image => "docker.io/library/busybox:1.36";

    private static PodSandboxConfig Sandbox(string uid) => new()
    {
        Metadata = new PodSandboxMetadata { Name = "contract", Namespace = "contract", Uid = uid },
        Hostname = "contract",
        LogDirectory = Path.Combine(Path.GetTempPath(), "contract-logs-" + uid),
        Labels = { [Labels.PodUid] = uid },
        Linux = new LinuxPodSandboxConfig { CgroupParent = "/kubepods/besteffort/pod" + uid },
    };

    /// <summary>The PLEG's relist sees each sandbox and container of a pod with the states the list calls give.</summary>
    [Fact]
    public async Task RelistReportsEachSandboxAndContainerWithItsPodUidAndState()
    {
        string uid = "relist-" + Guid.NewGuid().ToString("N")[..8];
        var sbc = Sandbox(uid);
        string sb = await Runtime.RunPodSandboxAsync(sbc, "", default);
        var decoder = new RelistDecoder();
        async Task<List<RelistEntry>> RelistAsync()
        {
            var all = new List<RelistEntry>();
            await Runtime.RelistAsync(decoder, all, default);
            decoder.EndRelist();
            return [.. all.Where(e => e.PodUid == uid).OrderBy(e => e.Id, StringComparer.Ordinal)];
        }
        try
        {
            var image = await Images.ImageStatusAsync(Image, default);
            var cc = new ContainerConfig
            {
                Metadata = new ContainerMetadata { Name = "app" },
                Image = new ImageSpec { Image = image!.Id, UserSpecifiedImage = Image },
                Command = { "sleep", "3600" },
                LogPath = "app/0.log",
                Labels = { [Labels.PodUid] = uid, [Labels.ContainerName] = "app" },
                Annotations = { ["a"] = "b" },
                Linux = new LinuxContainerConfig(),
            };
            string id = await Runtime.CreateContainerAsync(sb, cc, sbc, default);
            RelistEntry Sandbox(PodSandboxState s) => new(sb, uid, 100 + (int)s);
            RelistEntry Container(ContainerState s) => new(id, uid, (int)s);
            static List<RelistEntry> Sorted(params RelistEntry[] es) => [.. es.OrderBy(e => e.Id, StringComparer.Ordinal)];

            Assert.Equal(Sorted(Sandbox(PodSandboxState.SandboxReady), Container(ContainerState.ContainerCreated)), await RelistAsync());
            await Runtime.StartContainerAsync(id, default);
            Assert.Equal(Sorted(Sandbox(PodSandboxState.SandboxReady), Container(ContainerState.ContainerRunning)), await RelistAsync());
            await Runtime.StopContainerAsync(id, 0, default);
            await Runtime.StopPodSandboxAsync(sb, default);
            var relisted = await RelistAsync();
            Assert.Equal(Sorted(Sandbox(PodSandboxState.SandboxNotready), Container(ContainerState.ContainerExited)), relisted);

            // The same as the full list calls say.
            var listed = new List<RelistEntry>();
            foreach (var s in await Runtime.ListPodSandboxAsync(null, default))
                if (s.Labels.TryGetValue(Labels.PodUid, out var u) && u == uid) listed.Add(new(s.Id, u, 100 + (int)s.State));
            foreach (var c in await Runtime.ListContainersAsync(null, default))
                if (c.Labels.TryGetValue(Labels.PodUid, out var u) && u == uid) listed.Add(new(c.Id, u, (int)c.State));
            Assert.Equal(Sorted([.. listed]), relisted);

            await Runtime.RemoveContainerAsync(id, default);
            Assert.Equal([Sandbox(PodSandboxState.SandboxNotready)], await RelistAsync());
        }
        finally
        {
            await Runtime.StopPodSandboxAsync(sb, default);
            await Runtime.RemovePodSandboxAsync(sb, default);
        }
        Assert.Empty(await RelistAsync());
    }

    [Fact]
    public async Task SandboxAndContainerLifecycle()
    {
        string uid = "contract-" + Guid.NewGuid().ToString("N")[..8];
        var sbc = Sandbox(uid);
        string sb = await Runtime.RunPodSandboxAsync(sbc, "", default);
        try
        {
            var filter = new PodSandboxFilter { LabelSelector = { [Labels.PodUid] = uid } };
            var listed = Assert.Single(await Runtime.ListPodSandboxAsync(filter, default));
            Assert.Equal(PodSandboxState.SandboxReady, listed.State);
            Assert.Equal(uid, listed.Metadata.Uid);
            var st = await Runtime.PodSandboxStatusAsync(sb, default);
            Assert.False(string.IsNullOrEmpty(st.Network?.Ip));

            var image = await Images.ImageStatusAsync(Image, default);
            Assert.NotNull(image);
            var cc = new ContainerConfig
            {
                Metadata = new ContainerMetadata { Name = "app", Attempt = 0 },
                Image = new ImageSpec { Image = image.Id, UserSpecifiedImage = Image },
                Command = { "sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.2; done" },
                LogPath = "app/0.log",
                Labels = { [Labels.PodUid] = uid, [Labels.ContainerName] = "app" },
                Annotations = { [Labels.ContainerRestartCount] = "0" },
                Linux = new LinuxContainerConfig(),
            };
            string id = await Runtime.CreateContainerAsync(sb, cc, sbc, default);
            Assert.Equal(ContainerState.ContainerCreated, (await Runtime.ContainerStatusAsync(id, default)).State);
            await Runtime.StartContainerAsync(id, default);
            var running = await Runtime.ContainerStatusAsync(id, default);
            Assert.Equal(ContainerState.ContainerRunning, running.State);
            Assert.True(running.StartedAt > 0);
            Assert.Equal("0", running.Annotations[Labels.ContainerRestartCount]);
            Assert.Equal("app", running.Labels[Labels.ContainerName]);

            // The writable layer's usage, which the stats collector reports as container_fs_usage_bytes.
            var stats = Assert.Single(await Runtime.ListContainerStatsAsync(new ContainerStatsFilter { Id = id }, default));
            Assert.Equal(id, stats.Attributes.Id);
            Assert.Equal("app", stats.Attributes.Metadata.Name);
            Assert.False(string.IsNullOrEmpty(stats.WritableLayer?.FsId?.Mountpoint));
            Assert.NotNull(stats.WritableLayer.UsedBytes);

            var exec = await Runtime.ExecSyncAsync(id, ["sh", "-c", "exit 3"], TimeSpan.FromSeconds(5), default);
            Assert.Equal(3, exec.ExitCode);

            await Runtime.StopContainerAsync(id, 10, default);
            var exited = await Runtime.ContainerStatusAsync(id, default);
            Assert.Equal(ContainerState.ContainerExited, exited.State);
            Assert.Equal(7, exited.ExitCode);
            Assert.True(exited.FinishedAt >= exited.StartedAt);
            await Runtime.StopContainerAsync(id, 0, default); // idempotent

            var byUid = new ContainerFilter { LabelSelector = { [Labels.PodUid] = uid } };
            Assert.Equal(id, Assert.Single(await Runtime.ListContainersAsync(byUid, default)).Id);
            await Runtime.RemoveContainerAsync(id, default);
            await Runtime.RemoveContainerAsync(id, default); // idempotent
            Assert.Empty(await Runtime.ListContainersAsync(byUid, default));
            var e = await Assert.ThrowsAsync<CriException>(() => Runtime.ContainerStatusAsync(id, default));
            Assert.Equal(CriErrorKind.NotFound, e.Kind);
        }
        finally
        {
            await Runtime.StopPodSandboxAsync(sb, default);
            await Runtime.StopPodSandboxAsync(sb, default); // idempotent
            await Runtime.RemovePodSandboxAsync(sb, default);
        }
        Assert.Empty(await Runtime.ListPodSandboxAsync(new PodSandboxFilter { LabelSelector = { [Labels.PodUid] = uid } }, default));
    }

    [Fact]
    public async Task TheImageFilesystemHasAMountpointAndUsage()
    {
        // containerd computes the usage in the background (every 10 s): a runtime that has just
        // started may report 0 for a while.
        var info = await Images.ImageFsInfoAsync(default);
        for (var until = DateTime.UtcNow.AddSeconds(30); info.ImageFilesystems.Count == 1 && info.ImageFilesystems[0].UsedBytes.Value == 0 && DateTime.UtcNow < until;)
        {
            await Task.Delay(500);
            info = await Images.ImageFsInfoAsync(default);
        }
        var fs = Assert.Single(info.ImageFilesystems);
        Assert.StartsWith("/", fs.FsId.Mountpoint, StringComparison.Ordinal);
        Assert.True(fs.UsedBytes.Value > 0);
        Assert.True(fs.Timestamp > 0);
    }

    [Fact]
    public async Task AMissingImageIsNullNotAnError() =>
        Assert.Null(await Images.ImageStatusAsync("example.invalid/absent:0.1", default));
}
