using System.Runtime.CompilerServices;
using System.Text;
using Google.Protobuf;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;

namespace NodeAgent.Tests.Fakes;

/// <summary>
/// An in-memory CRI runtime with real state transitions (sandbox ready/not ready; container
/// created/running/exited), recorded calls, injectable failures and a readable dump. Thread-safe
/// (one lock). Kept honest by the shared RuntimeContract, which also runs against containerd.
/// </summary>
public sealed class FakeRuntime : IRuntimeService, IImageService
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (PodSandboxConfig Config, PodSandboxState State, long Created, string Ip)> _sandboxes = [];
    private readonly Dictionary<string, FakeContainer> _containers = [];
    private readonly HashSet<string> _images = ["docker.io/library/busybox:1.36", "busybox:1.36"];
    private readonly Dictionary<string, CriErrorKind> _failures = [];
    private int _next;

    public List<string> Calls { get; } = [];

    /// <summary>Exit code a container gets when stopped (its SIGTERM handler).</summary>
    public int StopExitCode { get; set; } = 7;

    public sealed class FakeContainer
    {
        public required string Id, SandboxId;
        public required ContainerConfig Config;
        public ContainerState State = ContainerState.ContainerCreated;
        public long Created, Started, Finished;
        public int ExitCode;
        /// <summary>What the writable layer holds (ListContainerStats' writable_layer.used_bytes).</summary>
        public ulong WritableBytes;
    }

    /// <summary>Makes the next calls of <paramref name="operation"/> (e.g. "start_container") fail with <paramref name="kind"/>.</summary>
    public void FailNext(string operation, CriErrorKind kind) { lock (_lock) _failures[operation] = kind; }

    /// <summary>Simulates a container process ending on its own.</summary>
    public void Exit(string containerId, int exitCode)
    {
        lock (_lock)
        {
            var c = _containers[containerId];
            c.State = ContainerState.ContainerExited;
            c.ExitCode = exitCode;
            c.Finished = Now();
        }
    }

    public IReadOnlyList<FakeContainer> Containers { get { lock (_lock) return [.. _containers.Values.OrderBy(c => c.Created)]; } }

    public string Dump()
    {
        var sb = new StringBuilder();
        lock (_lock)
        {
            foreach (var (id, s) in _sandboxes.OrderBy(kv => kv.Value.Created)) sb.Append($"sandbox {id} {s.Config.Metadata.Name} {s.State}\n");
            foreach (var c in _containers.Values.OrderBy(c => c.Created)) sb.Append($"  container {c.Id} in {c.SandboxId} {c.Config.Metadata.Name}#{c.Config.Metadata.Attempt} {c.State} exit={c.ExitCode}\n");
        }
        return sb.ToString();
    }

    // Nanoseconds like CRI timestamps, strictly increasing (two events in the same millisecond keep their order).
    private static long _lastNow;
    private static long Now()
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        while (true)
        {
            long last = Interlocked.Read(ref _lastNow);
            long next = Math.Max(now, last + 1);
            if (Interlocked.CompareExchange(ref _lastNow, next, last) == last) return next;
        }
    }

    private void Enter(string op)
    {
        lock (_lock)
        {
            Calls.Add(op);
            if (_failures.Remove(op, out var kind)) throw new CriException(kind, op, "injected failure");
        }
    }

    private static bool Matches(IDictionary<string, string> labels, IDictionary<string, string>? selector) =>
        selector is null || selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);

    public Task<VersionResponse> VersionAsync(CancellationToken ct)
    {
        Enter("version");
        return Task.FromResult(new VersionResponse { Version = "0.1.0", RuntimeName = "fake", RuntimeVersion = "1.0.0", RuntimeApiVersion = "v1" });
    }

    public Task<string> RunPodSandboxAsync(PodSandboxConfig config, string runtimeHandler, CancellationToken ct)
    {
        Enter("run_podsandbox");
        lock (_lock)
        {
            string id = $"sb{++_next:D4}";
            _sandboxes[id] = (config.Clone(), PodSandboxState.SandboxReady, Now(), $"10.99.0.{_next % 250 + 2}");
            return Task.FromResult(id);
        }
    }

    public Task StopPodSandboxAsync(string sandboxId, CancellationToken ct)
    {
        Enter("stop_podsandbox");
        lock (_lock)
        {
            if (!_sandboxes.TryGetValue(sandboxId, out var s)) return Task.CompletedTask;
            _sandboxes[sandboxId] = s with { State = PodSandboxState.SandboxNotready };
            foreach (var c in _containers.Values)
                if (c.SandboxId == sandboxId && c.State == ContainerState.ContainerRunning)
                {
                    c.State = ContainerState.ContainerExited;
                    c.ExitCode = 137;
                    c.Finished = Now();
                }
        }
        return Task.CompletedTask;
    }

    public Task RemovePodSandboxAsync(string sandboxId, CancellationToken ct)
    {
        Enter("remove_podsandbox");
        lock (_lock)
        {
            _sandboxes.Remove(sandboxId);
            foreach (var id in _containers.Values.Where(c => c.SandboxId == sandboxId).Select(c => c.Id).ToList()) _containers.Remove(id);
        }
        return Task.CompletedTask;
    }

    public Task<PodSandboxStatus> PodSandboxStatusAsync(string sandboxId, CancellationToken ct)
    {
        Enter("podsandbox_status");
        lock (_lock)
        {
            if (!_sandboxes.TryGetValue(sandboxId, out var s)) throw new CriException(CriErrorKind.NotFound, "podsandbox_status", $"sandbox {sandboxId} not found");
            var st = new PodSandboxStatus
            {
                Id = sandboxId, Metadata = s.Config.Metadata, State = s.State, CreatedAt = s.Created,
                Network = new PodSandboxNetworkStatus { Ip = s.State == PodSandboxState.SandboxReady ? s.Ip : "" },
            };
            st.Labels.Add(s.Config.Labels);
            st.Annotations.Add(s.Config.Annotations);
            return Task.FromResult(st);
        }
    }

    public Task<IReadOnlyList<PodSandbox>> ListPodSandboxAsync(PodSandboxFilter? filter, CancellationToken ct)
    {
        Enter("list_podsandbox");
        lock (_lock)
        {
            var list = new List<PodSandbox>();
            foreach (var (id, s) in _sandboxes)
            {
                if (!Matches(s.Config.Labels, filter?.LabelSelector)) continue;
                var p = new PodSandbox { Id = id, Metadata = s.Config.Metadata, State = s.State, CreatedAt = s.Created };
                p.Labels.Add(s.Config.Labels);
                p.Annotations.Add(s.Config.Annotations);
                list.Add(p);
            }
            return Task.FromResult<IReadOnlyList<PodSandbox>>(list);
        }
    }

    public Task<string> CreateContainerAsync(string sandboxId, ContainerConfig config, PodSandboxConfig sandboxConfig, CancellationToken ct)
    {
        Enter("create_container");
        lock (_lock)
        {
            if (!_sandboxes.ContainsKey(sandboxId)) throw new CriException(CriErrorKind.NotFound, "create_container", $"sandbox {sandboxId} not found");
            string id = $"c{++_next:D4}";
            _containers[id] = new FakeContainer { Id = id, SandboxId = sandboxId, Config = config.Clone(), Created = Now() };
            return Task.FromResult(id);
        }
    }

    public Task StartContainerAsync(string containerId, CancellationToken ct)
    {
        Enter("start_container");
        lock (_lock)
        {
            var c = _containers.GetValueOrDefault(containerId) ?? throw new CriException(CriErrorKind.NotFound, "start_container", $"container {containerId} not found");
            if (c.State != ContainerState.ContainerCreated) throw new CriException(CriErrorKind.Invalid, "start_container", $"container {containerId} is in state {c.State}");
            c.State = ContainerState.ContainerRunning;
            c.Started = Now();
        }
        return Task.CompletedTask;
    }

    public Task StopContainerAsync(string containerId, long timeoutSeconds, CancellationToken ct)
    {
        Enter("stop_container");
        lock (_lock)
        {
            if (_containers.TryGetValue(containerId, out var c) && c.State == ContainerState.ContainerRunning)
            {
                c.State = ContainerState.ContainerExited;
                c.ExitCode = StopExitCode;
                c.Finished = Now();
            }
        }
        return Task.CompletedTask;
    }

    public Task RemoveContainerAsync(string containerId, CancellationToken ct)
    {
        Enter("remove_container");
        lock (_lock) _containers.Remove(containerId);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<Container>> ListContainersAsync(ContainerFilter? filter, CancellationToken ct)
    {
        Enter("list_containers");
        lock (_lock)
        {
            var list = new List<Container>();
            foreach (var c in _containers.Values)
            {
                if (!Matches(c.Config.Labels, filter?.LabelSelector)) continue;
                if (filter?.State is { } st && st.State != c.State) continue;
                if (!string.IsNullOrEmpty(filter?.PodSandboxId) && filter.PodSandboxId != c.SandboxId) continue;
                var x = new Container { Id = c.Id, PodSandboxId = c.SandboxId, Metadata = c.Config.Metadata, Image = c.Config.Image, ImageRef = c.Config.Image.Image, State = c.State, CreatedAt = c.Created };
                x.Labels.Add(c.Config.Labels);
                x.Annotations.Add(c.Config.Annotations);
                list.Add(x);
            }
            return Task.FromResult<IReadOnlyList<Container>>(list);
        }
    }

    public Task<ContainerStatus> ContainerStatusAsync(string containerId, CancellationToken ct)
    {
        Enter("container_status");
        lock (_lock)
        {
            var c = _containers.GetValueOrDefault(containerId) ?? throw new CriException(CriErrorKind.NotFound, "container_status", $"container {containerId} not found");
            var s = new ContainerStatus
            {
                Id = c.Id, Metadata = c.Config.Metadata, State = c.State, CreatedAt = c.Created, StartedAt = c.Started, FinishedAt = c.Finished,
                ExitCode = c.ExitCode, Image = c.Config.Image, ImageRef = c.Config.Image.Image,
                Reason = c.State == ContainerState.ContainerExited ? (c.ExitCode == 0 ? "Completed" : "Error") : "",
                LogPath = c.Config.LogPath,
            };
            s.Labels.Add(c.Config.Labels);
            s.Annotations.Add(c.Config.Annotations);
            s.Mounts.Add(c.Config.Mounts);
            return Task.FromResult(s);
        }
    }

    /// <summary>Runs "sh -c 'exit N'" as exit N; every other command succeeds.</summary>
    public Task<ExecSyncResponse> ExecSyncAsync(string containerId, IReadOnlyList<string> cmd, TimeSpan timeout, CancellationToken ct)
    {
        Enter("exec_sync");
        int code = cmd.Count == 3 && cmd[0] == "sh" && cmd[2].StartsWith("exit ", StringComparison.Ordinal) ? int.Parse(cmd[2][5..]) : 0;
        return Task.FromResult(new ExecSyncResponse { ExitCode = code, Stdout = ByteString.Empty, Stderr = ByteString.Empty });
    }

    public Task ReopenContainerLogAsync(string containerId, CancellationToken ct) { Enter("reopen_container_log"); return Task.CompletedTask; }

    public Task<StatusResponse> StatusAsync(CancellationToken ct) { Enter("status"); return Task.FromResult(new StatusResponse()); }

    public async IAsyncEnumerable<ContainerEventResponse> GetContainerEventsAsync([EnumeratorCancellation] CancellationToken ct)
    {
        await Task.Yield();
        throw new CriException(CriErrorKind.Unimplemented, "get_container_events", "not implemented");
#pragma warning disable CS0162 // an iterator needs a yield
        yield break;
#pragma warning restore CS0162
    }

    public Task<Image?> ImageStatusAsync(string image, CancellationToken ct)
    {
        Enter("image_status");
        lock (_lock) return Task.FromResult(_images.Contains(image) ? new Image { Id = "sha256:fake-" + image.GetHashCode().ToString("x"), RepoTags = { image } } : null);
    }

    public Task<string> PullImageAsync(string image, PodSandboxConfig? sandboxConfig, CancellationToken ct)
    {
        Enter("pull_image");
        lock (_lock) _images.Add(image);
        return Task.FromResult("sha256:fake-" + image.GetHashCode().ToString("x"));
    }

    public Task<IReadOnlyList<Image>> ListImagesAsync(CancellationToken ct)
    {
        Enter("list_images");
        lock (_lock) return Task.FromResult<IReadOnlyList<Image>>(_images.Select(i => new Image { Id = i }).ToList());
    }

    public const string ImageFsMountpoint = "/var/lib/fake/snapshots";

    public Task<ImageFsInfoResponse> ImageFsInfoAsync(CancellationToken ct)
    {
        Enter("image_fs_info");
        var usage = new FilesystemUsage
        {
            Timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000,
            FsId = new FilesystemIdentifier { Mountpoint = ImageFsMountpoint },
            UsedBytes = new UInt64Value { Value = 4096 },
            InodesUsed = new UInt64Value { Value = 3 },
        };
        return Task.FromResult(new ImageFsInfoResponse { ImageFilesystems = { usage } });
    }

    public Task<IReadOnlyList<ContainerStats>> ListContainerStatsAsync(ContainerStatsFilter? filter, CancellationToken ct)
    {
        Enter("list_container_stats");
        lock (_lock)
        {
            var list = new List<ContainerStats>();
            foreach (var c in _containers.Values)
            {
                if (!Matches(c.Config.Labels, filter?.LabelSelector)) continue;
                if (!string.IsNullOrEmpty(filter?.Id) && filter.Id != c.Id) continue;
                if (!string.IsNullOrEmpty(filter?.PodSandboxId) && filter.PodSandboxId != c.SandboxId) continue;
                var x = new ContainerStats
                {
                    Attributes = new ContainerAttributes { Id = c.Id, Metadata = c.Config.Metadata },
                    WritableLayer = new FilesystemUsage
                    {
                        Timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000,
                        FsId = new FilesystemIdentifier { Mountpoint = ImageFsMountpoint },
                        UsedBytes = new UInt64Value { Value = c.WritableBytes },
                        InodesUsed = new UInt64Value { Value = 1 },
                    },
                };
                x.Attributes.Labels.Add(c.Config.Labels);
                list.Add(x);
            }
            return Task.FromResult<IReadOnlyList<ContainerStats>>(list);
        }
    }
}
