using System.Globalization;
using Microsoft.Extensions.Logging;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;

namespace NodeAgent.Logs;

/// <summary>
/// Size-based rotation of container logs, as the kubelet's container log manager does: every 10 s
/// each running container's current log (&lt;podLogsDir&gt;/&lt;ns&gt;_&lt;pod&gt;_&lt;uid&gt;/&lt;name&gt;/&lt;restarts&gt;.log)
/// is checked; one over containerLogMaxSize is renamed with a timestamp suffix and the runtime is
/// asked to reopen it (CRI ReopenContainerLog); only containerLogMaxFiles files are kept,
/// the live one included. The path comes from CRI labels, so no per-container status call is made.
/// </summary>
public sealed partial class ContainerLogManager(IRuntimeService runtime, string podLogsDir, long maxSize, int maxFiles, TimeProvider time, ILogger<ContainerLogManager> log)
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(10);

    public async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(Period, time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                try { await RotateOnceAsync(ct).ConfigureAwait(false); }
                catch (CriException e) { LogFailed(log, "", e.Message); }
            }
        }
        catch (OperationCanceledException) { }
    }

    public async Task RotateOnceAsync(CancellationToken ct)
    {
        var filter = new ContainerFilter { State = new ContainerStateValue { State = ContainerState.ContainerRunning } };
        foreach (var c in await runtime.ListContainersAsync(filter, ct).ConfigureAwait(false))
        {
            string? path = LogPathOf(c);
            if (path is null) continue;
            try
            {
                var info = new FileInfo(path);
                if (!info.Exists || info.Length < maxSize) continue;
                string rotated = $"{path}.{time.GetUtcNow().UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}";
                File.Move(path, rotated, overwrite: true);
                try { await runtime.ReopenContainerLogAsync(c.Id, ct).ConfigureAwait(false); }
                catch (CriException)
                {
                    // The runtime could not reopen: put the file back so nothing is lost.
                    File.Move(rotated, path, overwrite: true);
                    throw;
                }
                var old = RotatedFiles(path);
                for (int i = 0; i < old.Count - (maxFiles - 1); i++) File.Delete(old[i]);
                LogRotated(log, path);
            }
            catch (IOException e) { LogFailed(log, path, e.Message); }
        }
    }

    /// <summary>
    /// Rotated copies of <paramref name="path"/>, oldest first. Filtered by hand: the runtime's
    /// "name.*" pattern also matches "name" itself (Win32 wildcard rules), i.e. the live log.
    /// </summary>
    public static List<string> RotatedFiles(string path)
    {
        string dir = Path.GetDirectoryName(path)!, prefix = Path.GetFileName(path) + ".";
        var list = new List<string>();
        if (!Directory.Exists(dir)) return list;
        foreach (var f in Directory.EnumerateFiles(dir))
            if (Path.GetFileName(f.AsSpan()).StartsWith(prefix, StringComparison.Ordinal)) list.Add(f);
        list.Sort(StringComparer.Ordinal);
        return list;
    }

    private string? LogPathOf(Container c)
    {
        if (!c.Labels.TryGetValue(Labels.PodNamespace, out var ns) || !c.Labels.TryGetValue(Labels.PodName, out var pod) ||
            !c.Labels.TryGetValue(Labels.PodUid, out var uid) || !c.Labels.TryGetValue(Labels.ContainerName, out var name))
            return null;
        string restarts = c.Annotations.TryGetValue(Labels.ContainerRestartCount, out var rc) ? rc : "0";
        return Path.Combine(podLogsDir, $"{ns}_{pod}_{uid}", name, restarts + ".log");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "rotated container log {Path}")]
    private static partial void LogRotated(ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "container log rotation {Path} failed: {Error}")]
    private static partial void LogFailed(ILogger logger, string path, string error);
}
