using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Hosting;
using NodeAgent.Pleg;

namespace NodeAgent;

/// <summary>
/// The agent's side of a Type=notify unit. READY=1 once the runtime has answered and, when joined
/// to a cluster, the API server has (the Node is registered): not merely once the process is up.
/// With WatchdogSec set, WATCHDOG=1 every half interval (as the kubelet does) while the sync loop
/// is healthy, i.e. the PLEG completed a relist within the stall threshold; when it stalls the
/// pings stop (and STATUS says why), so systemd restarts the agent, which leaves pods running.
/// STOPPING=1 on shutdown. Without NOTIFY_SOCKET it does nothing.
/// </summary>
public sealed partial class SystemdService(SystemdNotifier? notifier, AgentHealth health, GenericPleg pleg, bool joined, TimeProvider time, ILogger<SystemdService> log)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        if (notifier is null) return;
        try
        {
            notifier.Notify(joined ? "STATUS=Waiting for the container runtime and the API server" : "STATUS=Waiting for the container runtime");
            await health.WhenReady(joined).WaitAsync(ct).ConfigureAwait(false);
            notifier.Notify("READY=1\nSTATUS=Running");
            LogReady(log);
            if (notifier.WatchdogInterval is not { } interval) { await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false); return; }
            // Half the interval, as sd_watchdog_enabled(3) advises; never faster than 500 ms.
            using var timer = new PeriodicTimer(TimeSpan.FromTicks(Math.Max(interval.Ticks / 2, TimeSpan.FromMilliseconds(500).Ticks)), time);
            bool stalled = false;
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                if (pleg.Healthy)
                {
                    if (stalled) { LogRecovered(log); notifier.Notify("STATUS=Running"); stalled = false; }
                    notifier.Notify("WATCHDOG=1");
                }
                else if (!stalled)
                {
                    stalled = true;
                    LogStalled(log, pleg.LastRelist, pleg.RelistThreshold.TotalSeconds);
                    notifier.Notify($"STATUS=Sync loop stalled: last relist {pleg.LastRelist:O}");
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }

    public override async Task StopAsync(CancellationToken ct)
    {
        notifier?.Notify("STOPPING=1");
        await base.StopAsync(ct).ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "ready: told systemd (READY=1)")]
    private static partial void LogReady(ILogger log);

    [LoggerMessage(Level = LogLevel.Error, Message = "sync loop stalled (last relist {LastRelist:O}, threshold {Seconds} s): watchdog pings stop until it recovers")]
    private static partial void LogStalled(ILogger log, DateTimeOffset lastRelist, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "sync loop recovered: watchdog pings resume")]
    private static partial void LogRecovered(ILogger log);
}
