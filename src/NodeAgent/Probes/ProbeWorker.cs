using NodeAgent.Api.Core;

namespace NodeAgent.Probes;

/// <summary>
/// Probes one container with one probe, as the kubelet's prober worker does: first attempt right
/// away (after a random part of the period if the agent has just started, so a restarted agent
/// does not probe every pod at once), then every periodSeconds; nothing before
/// initialDelaySeconds; liveness and readiness wait for the startup probe; a result is published
/// only after failureThreshold/successThreshold consecutive equal results; after a published
/// liveness/startup failure the worker holds until its container is replaced.
/// Owned by the pod's <see cref="PodProbes"/>; publishes through <see cref="Published"/>.
/// </summary>
public sealed class ProbeWorker
{
    private readonly Prober _prober;
    private readonly Probe _probe;
    private readonly Container _container;
    private readonly Func<string?> _podIp;
    private readonly Func<bool> _startupDone;
    private readonly Action<ProbeWorker> _changed;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _cts = new();
    private ProbeResult _last = ProbeResult.Unknown;
    private int _run;
    private volatile bool _onHold;

    private readonly ProbeSubject? _subject;

    public ProbeWorker(ProbeType type, Probe probe, Container container, string containerId, DateTimeOffset startedAt,
        Prober prober, Func<string?> podIp, Func<bool> startupDone, Action<ProbeWorker> changed, TimeProvider time, bool jitterFirst, ProbeSubject? subject = null)
    {
        _subject = subject;
        Type = type;
        _probe = probe;
        _container = container;
        ContainerId = containerId;
        StartedAt = startedAt;
        _prober = prober;
        _podIp = podIp;
        _startupDone = startupDone;
        _changed = changed;
        _time = time;
        // Readiness starts as failure (not ready), liveness as success; startup is unknown until it passes.
        Published = type switch { ProbeType.Readiness => ProbeResult.Failure, ProbeType.Liveness => ProbeResult.Success, _ => ProbeResult.Unknown };
        Task = RunAsync(jitterFirst, _cts.Token);
    }

    public ProbeType Type { get; }
    public string ContainerId { get; }
    public DateTimeOffset StartedAt { get; }
    private volatile ProbeResult _published;
    /// <summary>The last published result; read by the pod worker from another thread.</summary>
    public ProbeResult Published { get => _published; private set => _published = value; }
    public string LastOutput { get; private set; } = "";
    public Task Task { get; }

    public void Stop() => _cts.Cancel();

    private async Task RunAsync(bool jitterFirst, CancellationToken ct)
    {
        var period = TimeSpan.FromSeconds(Math.Max(1, _probe.PeriodSeconds ?? 10));
        try
        {
            if (jitterFirst) await Task.Delay(period * Random.Shared.NextDouble(), _time, ct).ConfigureAwait(false);
            while (!ct.IsCancellationRequested)
            {
                var next = await ProbeOnceAsync(ct).ConfigureAwait(false);
                if (next is null) return;
                await Task.Delay(next.Value, _time, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>One tick. Returns the delay to the next tick, or null when the worker is done.</summary>
    internal async Task<TimeSpan?> ProbeOnceAsync(CancellationToken ct)
    {
        var period = TimeSpan.FromSeconds(Math.Max(1, _probe.PeriodSeconds ?? 10));
        if (_onHold) return period;
        if (Type == ProbeType.Startup && Published == ProbeResult.Success) return null;
        if (Type != ProbeType.Startup && !_startupDone()) return period;
        var sinceStart = _time.GetUtcNow() - StartedAt;
        var initialDelay = TimeSpan.FromSeconds(_probe.InitialDelaySeconds ?? 0);
        if (sinceStart < initialDelay)
        {
            var rest = initialDelay - sinceStart;
            return rest < period ? rest : period;
        }

        long began = _time.GetTimestamp();
        var outcome = await _prober.ProbeAsync(_probe, _container, ContainerId, _podIp(), ct).ConfigureAwait(false);
        if (_subject is not null) _prober.Observe?.Invoke(Type, outcome, _subject, _container.Name, _time.GetElapsedTime(began));
        if (outcome.Error) return period; // could not probe: throw the result away
        LastOutput = outcome.Output;
        if (outcome.Result == _last) _run++;
        else { _last = outcome.Result; _run = 1; }

        int failureThreshold = _probe.FailureThreshold ?? 3, successThreshold = _probe.SuccessThreshold ?? 1;
        if ((outcome.Result == ProbeResult.Failure && _run < failureThreshold) ||
            (outcome.Result == ProbeResult.Success && _run < successThreshold))
            return period;

        if (Published != outcome.Result)
        {
            Published = outcome.Result;
            _changed(this);
        }
        if (outcome.Result == ProbeResult.Failure && Type is ProbeType.Liveness or ProbeType.Startup)
        {
            // The container will be restarted; stop probing this instance of it.
            _run = 0;
            _onHold = true;
        }
        return Type == ProbeType.Startup && outcome.Result == ProbeResult.Success ? null : period;
    }
}
