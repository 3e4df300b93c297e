using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using NodeAgent.Volumes;

namespace NodeAgent.Pods;

public sealed partial class PodWorker
{
    private const long MinimumGracePeriodSeconds = 2; // kubelet minimumGracePeriodInSeconds
    private const int TerminationMessageLimit = 4096;
    private readonly ContainerBackoff _pullBackoff = ContainerBackoff.Kubelet();

    private string PodDir => _s.Volumes.PodDir(Uid);

    private async Task<SandboxInfo?> CreateSandboxAsync(Pod pod, uint attempt, CancellationToken ct)
    {
        _s.Cgroups.EnsurePod(pod, _qos);
        var config = _s.Builder.Sandbox(pod, attempt, _qos);
        Directory.CreateDirectory(config.LogDirectory);
        Directory.CreateDirectory(PodDir);
        _volumePaths = SetUpVolumes(pod);
        if (_volumePaths is null) return null;
        string id;
        try
        {
            id = await _s.Runtime.RunPodSandboxAsync(config, pod.Spec.RuntimeClassName ?? "", ct).ConfigureAwait(false);
        }
        catch (CriException e) when (e.Kind != CriErrorKind.Unavailable)
        {
            _s.Events.Warning(pod, "FailedCreatePodSandBox", $"Failed to create pod sandbox: {e.RuntimeMessage}");
            foreach (var c in PodDefaults.AllContainers(pod.Spec)) _view.Waiting[c.Name] = ("ContainerCreating", "");
            return null;
        }
        var st = await _s.Runtime.PodSandboxStatusAsync(id, ct).ConfigureAwait(false);
        string? ip = string.IsNullOrEmpty(st.Network?.Ip) ? null : st.Network.Ip;
        var extra = st.Network?.AdditionalIps.Select(p => p.Ip).ToList() ?? [];
        if (pod.Spec.HostNetwork != true)
        {
            var ips = new List<string>();
            if (ip is not null) ips.Add(ip);
            ips.AddRange(extra);
            await File.WriteAllTextAsync(Path.Combine(PodDir, "etc-hosts"), CriConfigBuilder.EtcHosts(pod, ips), ct).ConfigureAwait(false);
        }
        return new SandboxInfo(id, attempt, PodSandboxState.SandboxReady, st.CreatedAt, ip, extra, st.Annotations);
    }

    /// <summary>configMap/secret/downwardAPI/projected volumes: (re)written on syncs; false (with a FailedMount event) when one cannot be.</summary>
    private async Task<bool> RefreshApiVolumesAsync(Pod pod, CancellationToken ct)
    {
        // Cheap on every sync: objects come from the watch cache, tokens from the token cache, and
        // nothing is written unless the content changed.
        if (pod.Spec.Volumes?.Any(Volumes.ApiVolumes.IsApiVolume) != true) return true;
        try
        {
            var facts = new EnvResolver.PodFacts(_s.Node.NodeName, _s.Node.HostIP, null, [], _s.Node.CpuMilli, _s.Node.MemoryBytes);
            foreach (var (name, path) in await Volumes.ApiVolumes.SetUpAsync(pod, _s.Volumes.PodDir(pod.Metadata.Uid!), _s.Objects, _s.Volumes.Mounter, facts, ct).ConfigureAwait(false))
                _volumePaths![name] = path;
            return true;
        }
        catch (VolumeException e)
        {
            _s.Events.Warning(pod, "FailedMount", $"MountVolume.SetUp failed for {e.Message}");
            return false;
        }
    }


    private Dictionary<string, string>? SetUpVolumes(Pod pod)
    {
        try { return _s.Volumes.SetUp(pod); }
        catch (VolumeException e)
        {
            _s.Events.Warning(pod, "FailedMount", $"MountVolume.SetUp failed for {e.Message}");
            return null;
        }
    }

    private async Task StartContainerAsync(Pod pod, Api.Core.Container c, RuntimePod rt, SandboxInfo sb, PodSandboxConfig sandboxConfig,
        SyncResult result, CancellationToken ct)
    {
        var now = _s.Time.GetUtcNow();
        var latest = rt.Latest(c.Name);
        int restartCount = latest is null ? 0 : latest.RestartCount + 1;

        string? imageRef = await EnsureImageAsync(pod, c, sandboxConfig, result, now, ct).ConfigureAwait(false);
        if (imageRef is null) return;

        string? termLog = null;
        if (!string.IsNullOrEmpty(c.TerminationMessagePath))
        {
            string dir = Path.Combine(PodDir, "containers", c.Name);
            Directory.CreateDirectory(dir);
            termLog = Path.Combine(dir, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));
            await using (File.Create(termLog).ConfigureAwait(false)) { }
            File.SetUnixFileMode(termLog, (UnixFileMode)0b110_110_110);
        }
        string? etcHosts = pod.Spec.HostNetwork == true ? null : Path.Combine(PodDir, "etc-hosts");
        if (etcHosts is not null && !File.Exists(etcHosts))
            await File.WriteAllTextAsync(etcHosts, CriConfigBuilder.EtcHosts(pod, sb.Ip is null ? [] : [sb.Ip, .. sb.AdditionalIps]), ct).ConfigureAwait(false);

        var objects = new Dictionary<(ObjectKind, string), IReadOnlyDictionary<string, string>?>();
        try
        {
            foreach (var r in EnvResolver.References(c))
                if (!objects.ContainsKey(r)) objects[r] = await _s.Objects.GetDataAsync(r.Kind, pod.Metadata.Namespace ?? "default", r.Name, ct).ConfigureAwait(false);
        }
        catch (NodeAgent.Api.Client.ApiError e)
        {
            Fail(pod, c, "CreateContainerConfigError", e.Message, "Failed", $"Error: {e.Message}", result, now);
            return;
        }
        var facts = new EnvResolver.PodFacts(_s.Node.NodeName, _s.Node.HostIP, pod.Spec.HostNetwork == true ? _s.Node.HostIP : sb.Ip,
            sb.Ip is null ? [] : [sb.Ip, .. sb.AdditionalIps], _s.Node.CpuMilli, _s.Node.MemoryBytes) { Objects = objects };
        Cri.V1.ContainerConfig config;
        try
        {
            config = _s.Builder.Container(pod, c, new ContainerContext(restartCount, imageRef, _qos, facts, _volumePaths ?? [], etcHosts, termLog));
        }
        catch (Exception e) when (e is ContainerConfigException or VolumeException)
        {
            Fail(pod, c, "CreateContainerConfigError", e.Message, "Failed", $"Error: {e.Message}", result, now);
            return;
        }

        string id;
        try
        {
            id = await _s.Runtime.CreateContainerAsync(sb.Id, config, sandboxConfig, ct).ConfigureAwait(false);
        }
        catch (CriException e) when (e.Kind != CriErrorKind.Unavailable)
        {
            Fail(pod, c, "CreateContainerError", e.RuntimeMessage, "Failed", $"Error: {e.RuntimeMessage}", result, now);
            return;
        }
        _s.Events.Normal(pod, "Created", $"Created container {c.Name}");
        result.Changed = true;
        try
        {
            await _s.Runtime.StartContainerAsync(id, ct).ConfigureAwait(false);
        }
        catch (CriException e) when (e.Kind != CriErrorKind.Unavailable)
        {
            // The container exists in Exited/Created state; the next sync applies restart policy and backoff.
            _s.Events.Warning(pod, "Failed", $"Error: {e.RuntimeMessage}");
            _view.Waiting[c.Name] = ("RunContainerError", e.RuntimeMessage);
            return;
        }
        _view.Waiting.Remove(c.Name);
        _s.Events.Normal(pod, "Started", $"Started container {c.Name}");

        if (c.Lifecycle?.PostStart is { } postStart)
        {
            var r = await _s.Prober.RunHandlerAsync(postStart, c, id, sb.Ip, TimeSpan.FromSeconds(pod.Spec.TerminationGracePeriodSeconds ?? 30), ct).ConfigureAwait(false);
            if (r.Result != Probes.ProbeResult.Success)
            {
                _s.Events.Warning(pod, "FailedPostStartHook", r.Output);
                var info = new ContainerInfo(id, sb.Id, c.Name, (uint)restartCount, Cri.V1.ContainerState.ContainerRunning, 0, 0, 0, 0, "", "", c.Image ?? "", imageRef, null, restartCount, null,
                    new Dictionary<string, string>());
                await KillContainerAsync(info, c, "Killing", $"FailedPostStartHook: {r.Output}", null, ct).ConfigureAwait(false);
            }
        }
    }

    private void Fail(Pod pod, Api.Core.Container c, string reason, string message, string eventReason, string eventMessage, SyncResult result, DateTimeOffset now)
    {
        _s.Events.Warning(pod, eventReason, eventMessage);
        _view.Waiting[c.Name] = (reason, message);
        result.WakeNoLaterThan(now + TimeSpan.FromSeconds(10));
    }

    /// <summary>Returns the image reference to run, or null after recording why it cannot be had (ErrImagePull, ImagePullBackOff, ErrImageNeverPull).</summary>
    private async Task<string?> EnsureImageAsync(Pod pod, Api.Core.Container c, PodSandboxConfig sandboxConfig, SyncResult result, DateTimeOffset now, CancellationToken ct)
    {
        string image = c.Image!;
        string policy = c.ImagePullPolicy ?? PodDefaults.DefaultPullPolicy(image);
        Image? present = policy == "Always" ? null : await _s.Images.ImageStatusAsync(image, ct).ConfigureAwait(false);
        if (present is not null) return present.Id;
        if (policy == "Never")
        {
            string msg = $"Container image \"{image}\" is not present with pull policy of Never";
            Fail(pod, c, "ErrImageNeverPull", msg, "ErrImageNeverPull", msg, result, now);
            return null;
        }
        string key = "pull/" + image;
        if (_pullBackoff.InBackoff(key, now, now, out var until))
        {
            _view.Waiting[c.Name] = ("ImagePullBackOff", $"Back-off pulling image \"{image}\"");
            _s.Events.Normal(pod, "BackOff", $"Back-off pulling image \"{image}\"");
            result.WakeNoLaterThan(until);
            return null;
        }
        _s.Events.Normal(pod, "Pulling", $"Pulling image \"{image}\"");
        var started = _s.Time.GetUtcNow();
        try
        {
            string imageRef = await _s.Images.PullImageAsync(image, sandboxConfig, ct).ConfigureAwait(false);
            _pullBackoff.Reset(key);
            _s.Events.Normal(pod, "Pulled", $"Successfully pulled image \"{image}\" in {(_s.Time.GetUtcNow() - started).TotalMilliseconds:0}ms");
            return imageRef;
        }
        catch (CriException e) when (e.Kind != CriErrorKind.Unavailable)
        {
            _pullBackoff.Next(key, now);
            string msg = $"Failed to pull image \"{image}\": {e.RuntimeMessage}";
            Fail(pod, c, "ErrImagePull", msg, "Failed", msg, result, now);
            result.WakeNoLaterThan(now + _pullBackoff.CurrentDelay(key));
            return null;
        }
    }

    /// <summary>
    /// Stops one container the kubelet way: the preStop hook first (within the grace period),
    /// then StopContainer with what is left of it, never less than 2 s.
    /// </summary>
    private async Task KillContainerAsync(ContainerInfo c, Api.Core.Container? spec, string reason, string message, long? graceOverride, CancellationToken ct)
    {
        long grace = graceOverride ?? _pod.Spec.TerminationGracePeriodSeconds ??
            (c.Annotations.TryGetValue(Cri.Labels.PodTerminationGracePeriod, out var g) && long.TryParse(g, NumberStyles.Integer, CultureInfo.InvariantCulture, out long gv) ? gv : 30);
        if (_pod.Metadata.DeletionGracePeriodSeconds is { } dg) grace = Math.Min(grace, dg);
        _s.Events.Normal(_pod, reason, message);
        var preStop = spec?.Lifecycle?.PreStop;
        if (preStop is null && c.Annotations.TryGetValue(Cri.Labels.PreStopHandler, out var json))
        {
            try { preStop = JsonSerializer.Deserialize(json, ApiJsonContext.Default.LifecycleHandler); }
            catch (JsonException) { }
        }
        if (preStop is not null && c.Running && grace > 0)
        {
            var start = _s.Time.GetUtcNow();
            var r = await _s.Prober.RunHandlerAsync(preStop, spec ?? new Api.Core.Container { Name = c.Name }, c.Id, _lastStatus?.PodIP, TimeSpan.FromSeconds(grace), ct).ConfigureAwait(false);
            if (r.Result != Probes.ProbeResult.Success) _s.Events.Warning(_pod, "FailedPreStopHook", r.Output);
            grace -= (long)(_s.Time.GetUtcNow() - start).TotalSeconds;
        }
        if (grace < MinimumGracePeriodSeconds) grace = MinimumGracePeriodSeconds;
        try { await _s.Runtime.StopContainerAsync(c.Id, grace, ct).ConfigureAwait(false); }
        catch (CriException e) when (e.Kind == CriErrorKind.NotFound) { }
    }

    /// <summary>The termination message the container wrote, or (FallbackToLogsOnError) the tail of its log.</summary>
    private string? ReadTerminationMessage(ContainerInfo c)
    {
        string? msg = null;
        if (c.TerminationMessageHostPath is { } path && File.Exists(path))
        {
            try
            {
                using var f = File.OpenRead(path);
                var buf = new byte[TerminationMessageLimit];
                int n = f.ReadAtLeast(buf, buf.Length, throwOnEndOfStream: false);
                msg = n == 0 ? null : Encoding.UTF8.GetString(buf, 0, n);
            }
            catch (IOException) { }
        }
        if (string.IsNullOrEmpty(msg) && c.ExitCode != 0 && c.Annotations.TryGetValue(Cri.Labels.TerminationMessagePolicy, out var policy) &&
            policy == "FallbackToLogsOnError" && c.LogPath is { } log)
            msg = Logs.CriLogTail.Read(log, maxLines: 80, maxBytes: 2048);
        return msg;
    }
}
