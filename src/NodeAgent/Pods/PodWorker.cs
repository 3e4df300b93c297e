using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Core;
using NodeAgent.Probes;
using NodeAgent.Status;

namespace NodeAgent.Pods;

/// <summary>
/// Owns one pod: its spec, backoff, probe workers, waiting reasons and computed status. Runs a
/// single loop that wakes on a signal (PLEG event, probe result, spec update), on a backoff
/// expiry, or every syncFrequency, and converges the runtime to the spec (kubelet podWorkers +
/// SyncPod). Nothing else touches this pod's state, so there are no locks.
/// Real tests: tests/NodeAgent.IntegrationTests (containerd); logic tests with a fake runtime in
/// tests/NodeAgent.Tests.
/// </summary>
public sealed partial class PodWorker
{
    private readonly PodServices _s;
    private readonly ILogger _log;
    private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly ContainerBackoff _backoff = ContainerBackoff.Kubelet();
    private readonly WorkerView _view;
    private readonly PodProbes _probes;
    private readonly Dictionary<string, string> _hashes = new(StringComparer.Ordinal);
    private volatile Pod _pod;
    private volatile bool _terminate;
    private bool _runtimeEmpty;
    private PodStatus? _lastStatus;
    private string _qos;
    private Dictionary<string, string>? _volumePaths;

    /// <param name="runtimeEmpty">The runtime is known to hold nothing of the pod: the first sync need not read it.</param>
    public PodWorker(Pod pod, PodServices services, Task? predecessor, CancellationToken shutdown, bool runtimeEmpty = false)
    {
        _s = services;
        _runtimeEmpty = runtimeEmpty;
        _pod = pod;
        _qos = PodDefaults.QosClassOf(pod.Spec);
        _log = services.Loggers.CreateLogger("NodeAgent.Pods.PodWorker");
        _probes = new PodProbes(services.Prober, services.Time, services.AgentStart, OnProbeChanged,
            new NodeAgent.Probes.ProbeSubject(pod.Metadata.Namespace ?? "", pod.Metadata.Name ?? "", pod.Metadata.Uid ?? ""));
        _view = new WorkerView
        {
            IsReady = (n, id) => _probes.IsReady(n, id),
            IsStarted = (n, id) => _probes.IsStarted(n, id),
            HostIP = services.Node.HostIP,
            HostIPs = services.Node.HostIPs,
            RuntimeName = services.Node.RuntimeName,
            TerminationMessage = ReadTerminationMessage,
        };
        ComputeHashes(pod);
        Completion = Task.Run(() => RunAsync(predecessor, shutdown));
    }

    public string Uid => _pod.Metadata.Uid!;
    public Pod Pod => _pod;
    public string FullName => $"{_pod.Metadata.Namespace}/{_pod.Metadata.Name}";
    /// <summary>Completes when the pod has been torn down, or when the agent shuts down.</summary>
    public Task Completion { get; }
    public bool Terminating => _terminate;

    /// <summary>New spec for the same UID (for API pods: labels, annotations, deletion).</summary>
    public void Update(Pod pod)
    {
        _pod = pod;
        Signal();
    }

    /// <summary>Wake the worker: something about this pod may have changed.</summary>
    public void Signal() => _signal.Writer.TryWrite(true);

    /// <summary>Kill and remove the pod, then finish.</summary>
    public void Terminate()
    {
        _terminate = true;
        Signal();
    }

    private void OnProbeChanged(ProbeWorker w)
    {
        if (w.Published == ProbeResult.Failure && w.Type != ProbeType.Readiness)
            _s.Events.Warning(_pod, "Unhealthy", $"{w.Type} probe failed: {w.LastOutput}".TrimEnd(' ', ':'));
        else if (w.Published == ProbeResult.Failure)
            _s.Events.Warning(_pod, "Unhealthy", $"Readiness probe failed: {w.LastOutput}".TrimEnd(' ', ':'));
        Signal();
    }

    private void ComputeHashes(Pod pod)
    {
        _hashes.Clear();
        foreach (var c in PodDefaults.AllContainers(pod.Spec)) _hashes[c.Name] = CriConfigBuilder.Hash(c);
    }

    private async Task RunAsync(Task? predecessor, CancellationToken shutdown)
    {
        if (predecessor is not null)
        {
            // A replaced static pod must be gone before its successor starts (ports, names, volumes).
            try { await predecessor.WaitAsync(shutdown).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
        var retry = new RetryBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        _view.StartTime ??= _s.Time.GetUtcNow();
        while (!shutdown.IsCancellationRequested)
        {
            DateTimeOffset? wakeAt;
            if (_terminate)
            {
                try
                {
                    await TerminateAsync(shutdown).ConfigureAwait(false);
                    return;
                }
                catch (OperationCanceledException) when (shutdown.IsCancellationRequested) { break; }
                catch (Exception e)
                {
                    LogTerminateFailed(_log, FullName, e.Message);
                    wakeAt = _s.Time.GetUtcNow() + retry.Next();
                }
            }
            else
            {
                try
                {
                    wakeAt = await SyncAsync(shutdown).ConfigureAwait(false);
                    retry.Reset();
                }
                catch (OperationCanceledException) when (shutdown.IsCancellationRequested) { break; }
                catch (Exception e)
                {
                    LogSyncFailed(_log, FullName, e.Message);
                    wakeAt = _s.Time.GetUtcNow() + retry.Next();
                }
            }
            var now = _s.Time.GetUtcNow();
            var delay = _s.SyncFrequency * (0.9 + Random.Shared.NextDouble() * 0.2);
            if (wakeAt is { } w && w - now < delay) delay = w - now;
            await WaitAsync(delay, shutdown).ConfigureAwait(false);
        }
        _probes.StopAll();
    }

    private async Task WaitAsync(TimeSpan delay, CancellationToken shutdown)
    {
        if (delay <= TimeSpan.Zero) { _signal.Reader.TryRead(out _); return; }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        cts.CancelAfter(delay);
        try { await _signal.Reader.ReadAsync(cts.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        catch (ChannelClosedException) { }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "sync of pod {Pod} failed, will retry: {Error}")]
    private static partial void LogSyncFailed(ILogger logger, string pod, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "teardown of pod {Pod} failed, will retry: {Error}")]
    private static partial void LogTerminateFailed(ILogger logger, string pod, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "pod {Pod} ({Uid}) removed: containers, sandbox, volumes, logs and cgroup are gone")]
    private static partial void LogRemoved(ILogger logger, string pod, string uid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "pod {Pod}: {Message}")]
    private static partial void LogPodWarning(ILogger logger, string pod, string message);
}
