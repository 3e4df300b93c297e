using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NodeAgent.Config;
using NodeAgent.Cri;
using NodeAgent.Logs;
using NodeAgent.Options;
using NodeAgent.Os;
using NodeAgent.Pleg;
using NodeAgent.Pods;

namespace NodeAgent;

/// <summary>
/// Starts the agent's loops once the runtime answers: PLEG, the static pod source, garbage
/// collection and log rotation. On shutdown every loop stops (within a second) and pods keep
/// running: the next agent adopts them.
/// </summary>
public sealed partial class AgentService(
    AgentConfiguration config, RemoteRuntime runtime, PodManager manager, GenericPleg pleg, FileSource files,
    GarbageCollector gc, ContainerLogManager logs, NodeFacts node, AgentHealth health, TimeProvider time, ILogger<AgentService> log,
    NodeAgent.Node.ClusterLoops? cluster = null, NodeAgent.Metrics.StatsCollector? stats = null, MemoryTrimmer? trimmer = null) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        if (HostInfo.TrySetOwnOomScoreAdj(-999) is { } err) LogOomWarning(log, err);
        Directory.CreateDirectory(config.RootDir);
        Directory.CreateDirectory(config.PodLogsDir);

        var retry = new RetryBackoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10));
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var v = await runtime.VersionAsync(ct).ConfigureAwait(false);
                node.RuntimeName = v.RuntimeName;
                health.RuntimeVersion = $"{v.RuntimeName}://{v.RuntimeVersion}";
                LogRuntime(log, v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion, config.ContainerRuntimeEndpoint);
                break;
            }
            catch (CriException e)
            {
                LogRuntimeWait(log, config.ContainerRuntimeEndpoint, e.Message);
                try { await Task.Delay(retry.Next(), time, ct).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
            catch (OperationCanceledException) { return; }
        }

        manager.Start(ct);
        LogStarted(log, node.NodeName, config.StaticPodPath);
        health.MarkStarted();
        var loops = new List<Task>
        {
            SuperviseAsync("pleg", pleg.RunAsync, ct),
            SuperviseAsync("static pod source", files.RunAsync, ct),
            SuperviseAsync("garbage collector", gc.RunAsync, ct),
            SuperviseAsync("container log manager", logs.RunAsync, ct),
        };
        if (stats is not null) loops.Add(SuperviseAsync("stats collector", stats.RunAsync, ct));
        if (trimmer is not null) loops.Add(SuperviseAsync("memory trimmer", trimmer.RunAsync, ct));
        if (cluster is not null)
        {
            loops.Add(SuperviseAsync("node status", cluster.Status.RunAsync, ct));
            loops.Add(SuperviseAsync("node lease", cluster.Lease.RunAsync, ct));
            loops.Add(SuperviseAsync("API pod source", cluster.Pods.RunAsync, ct));
            loops.Add(SuperviseAsync("pod status manager", cluster.PodStatus.RunAsync, ct));
            loops.Add(SuperviseAsync("event recorder", cluster.Events.RunAsync, ct));
            loops.Add(SuperviseAsync("mirror pods", cluster.Mirrors.RunAsync, ct));
            if (cluster.Proxy is not null) loops.Add(SuperviseAsync("service proxy", cluster.Proxy.RunAsync, ct));
        }
        await Task.WhenAll(loops).ConfigureAwait(false);
        await manager.DrainAsync().ConfigureAwait(false);
        LogStopped(log);
    }

    /// <summary>Runs a loop; if it crashes, logs why and restarts it after a jittered, capped backoff.</summary>
    private async Task SuperviseAsync(string name, Func<CancellationToken, Task> loop, CancellationToken ct)
    {
        var retry = new RetryBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Run(() => loop(ct), ct).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception e)
            {
                LogLoopCrashed(log, name, e.ToString());
                try { await Task.Delay(retry.Next(), time, ct).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "{Loop} stopped unexpectedly, restarting: {Error}")]
    private static partial void LogLoopCrashed(ILogger logger, string loop, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "cannot set the agent's oom_score_adj to -999 (the host forbids negative values): {Error}; continuing")]
    private static partial void LogOomWarning(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "connected to runtime {Name} {Version} (CRI {ApiVersion}) at {Endpoint}")]
    private static partial void LogRuntime(ILogger logger, string name, string version, string apiVersion, string endpoint);

    [LoggerMessage(Level = LogLevel.Warning, Message = "container runtime at {Endpoint} is not answering yet, retrying: {Error}")]
    private static partial void LogRuntimeWait(ILogger logger, string endpoint, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "node-agent running as node {Node}, static pods from {Path}")]
    private static partial void LogStarted(ILogger logger, string node, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "node-agent stopped; pods keep running")]
    private static partial void LogStopped(ILogger logger);
}

/// <summary>What /healthz reports, and when the agent is ready (what systemd's READY=1 waits for).</summary>
public sealed class AgentHealth
{
    private readonly TaskCompletionSource _runtime = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _api = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The runtime answered the version handshake and the pod loops run.</summary>
    public bool Started => _runtime.Task.IsCompleted;
    public string? RuntimeVersion { get; set; }

    public void MarkStarted() => _runtime.TrySetResult();

    /// <summary>The API server answered and the Node is registered (once is enough).</summary>
    public void MarkApiConnected() => _api.TrySetResult();

    /// <summary>Completes once the runtime, and the API server when <paramref name="api"/>, have answered.</summary>
    public Task WhenReady(bool api) => api ? Task.WhenAll(_runtime.Task, _api.Task) : _runtime.Task;
}
