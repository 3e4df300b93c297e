using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using NodeAgent.Api.Core;
using NodeAgent.Status;

namespace NodeAgent.Server;

/// <summary>
/// GET /containerLogs/{namespace}/{pod}/{container}: a container's log from its CRI log file, with
/// the kubelet's options (follow, tailLines, sinceSeconds, limitBytes, timestamps, previous).
/// CRI lines ("&lt;time&gt; &lt;stream&gt; &lt;P|F&gt; &lt;text&gt;") are rejoined where the runtime split
/// them (P) and written as plain text, optionally prefixed with their timestamp. follow waits on
/// inotify (FileSystemWatcher) for the file to grow, and ends when the container stops.
/// </summary>
public static class ContainerLogs
{
    public static async Task HandleAsync(HttpContext ctx, string ns, string podName, string container, PodStatusStore store, string podLogsDir)
    {
        // As the kubelet: a parameter that does not parse is a 400, options that do not validate a 422.
        PodLogOptions options;
        try { options = PodLogOptions.FromQuery(name => ctx.Request.Query.TryGetValue(name, out var v) ? v.ToString() : null); }
        catch (QueryParameterException e) { await Fail(ctx, 400, e.Message); return; }
        if (options.Validate() is { Count: > 0 } errs) { await Fail(ctx, 422, $"PodLogOptions \"{podName}\" is invalid: {string.Join(", ", errs)}"); return; }
        Pod? pod = store.Find(ns, podName);
        if (pod is null) { await Fail(ctx, 404, $"pod {ns}/{podName} is not running on this node"); return; }
        var status = pod.Status?.ContainerStatuses?.Concat(pod.Status.InitContainerStatuses ?? []).FirstOrDefault(c => c.Name == container);
        if (status is null) { await Fail(ctx, 404, $"container \"{container}\" in pod \"{podName}\" is not known (yet)"); return; }
        bool previous = options.Previous;
        int restart = status.RestartCount - (previous ? 1 : 0);
        if (previous && status.LastState?.Terminated is null || restart < 0)
        {
            await Fail(ctx, 400, $"previous terminated container \"{container}\" in pod \"{podName}\" not found");
            return;
        }
        string path = Path.Combine(podLogsDir, $"{ns}_{podName}_{pod.Metadata.Uid}", container, restart.ToString(CultureInfo.InvariantCulture) + ".log");
        if (!File.Exists(path)) { await Fail(ctx, 404, $"log of container \"{container}\" in pod \"{podName}\" not found"); return; }

        long? tail = options.TailLines;
        long? limit = options.LimitBytes;
        DateTimeOffset? since = options.SinceSeconds is { } ss ? DateTimeOffset.UtcNow.AddSeconds(-ss) : options.SinceTime;
        bool timestamps = options.Timestamps;
        bool follow = options.Follow && !previous;

        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/plain";
        long written = 0;
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var reader = new StreamReader(f, Encoding.UTF8);
        var pending = new StringBuilder();
        // With tailLines, skip to the last N complete entries first.
        if (tail is { } n)
        {
            var lines = new Queue<long>();
            long pos = 0;
            while (reader.ReadLine() is { } line)
            {
                pos += Encoding.UTF8.GetByteCount(line) + 1;
                if (IsFull(line)) { lines.Enqueue(pos); if (lines.Count > n + 1) lines.Dequeue(); }
            }
            long startAt = lines.Count > n ? lines.Peek() : 0;
            f.Seek(startAt, SeekOrigin.Begin);
            reader.DiscardBufferedData();
        }
        var ct = ctx.RequestAborted;
        // follow: woken by inotify when the file grows (and at most every second to notice the container stopping).
        using var grown = new SemaphoreSlim(0, 1);
        using var watcher = follow ? new FileSystemWatcher(Path.GetDirectoryName(path)!, Path.GetFileName(path)) { NotifyFilter = NotifyFilters.Size | NotifyFilters.LastWrite } : null;
        if (watcher is not null)
        {
            watcher.Changed += (_, _) => { if (grown.CurrentCount == 0) try { grown.Release(); } catch (SemaphoreFullException) { } };
            watcher.EnableRaisingEvents = true;
        }
        while (!ct.IsCancellationRequested)
        {
            string? line = await reader.ReadLineAsync(ct).ConfigureAwait(false);
            if (line is null)
            {
                if (!follow) break;
                await ctx.Response.Body.FlushAsync(ct).ConfigureAwait(false);
                // Follow until the container stops and its log has been read to the end.
                var now = store.Get(pod.Metadata.Uid!)?.Status?.ContainerStatuses?.FirstOrDefault(c => c.Name == container);
                if (now is null || now.RestartCount != status.RestartCount || now.State?.Running is null) break;
                try { await grown.WaitAsync(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false); } catch (OperationCanceledException) { break; }
                continue;
            }
            var parts = line.Split(' ', 4);
            if (parts.Length < 4) continue;
            if (since is { } s && DateTimeOffset.TryParse(parts[0], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var ts) && ts < s) continue;
            if (pending.Length == 0 && timestamps) pending.Append(parts[0]).Append(' ');
            pending.Append(parts[3]);
            if (parts[2] == "P") continue;
            pending.Append('\n');
            var bytes = Encoding.UTF8.GetBytes(pending.ToString());
            pending.Clear();
            if (limit is { } lim && written + bytes.Length > lim)
            {
                await ctx.Response.Body.WriteAsync(bytes.AsMemory(0, (int)(lim - written)), ct).ConfigureAwait(false);
                break;
            }
            await ctx.Response.Body.WriteAsync(bytes, ct).ConfigureAwait(false);
            written += bytes.Length;
        }
    }

    private static bool IsFull(string line)
    {
        var parts = line.Split(' ', 4);
        return parts.Length < 3 || parts[2] != "P";
    }

    private static async Task Fail(HttpContext ctx, int code, string message)
    {
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = "text/plain";
        await ctx.Response.WriteAsync(message, ctx.RequestAborted).ConfigureAwait(false);
    }
}
