using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Pods;

namespace NodeAgent.Config;

/// <summary>
/// Watches the static pod directory (staticPodPath) with inotify and hands the full set of pods
/// to the <see cref="PodManager"/> after every change, at once: events that arrive while a scan
/// runs make one more scan, and only files whose mtime or size changed are read again. A file
/// caught mid-write (empty, or not parseable, and modified less than <see cref="Settle"/> ago)
/// is not judged yet: whatever it held before stays, and it is read again once it has settled.
/// A full re-read every fileCheckFrequency covers lost inotify events (queue overflow), as the
/// kubelet also relists. Hidden files (leading '.') are ignored, as editors' swap files are. A
/// file that cannot be read, parsed or validated contributes no pods and is reported once per
/// change with the file, the pod and the field; other files are unaffected.
/// </summary>
public sealed partial class FileSource(string directory, string nodeName, PodManager manager, TimeProvider time, TimeSpan resync, ILogger<FileSource> log)
{
    private readonly Channel<bool> _changed = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Dictionary<string, (DateTime Mtime, long Length, string? Error, List<Pod> Pods)> _files = new(StringComparer.Ordinal);

    /// <summary>How long after its last write an empty or broken file may still be being written.</summary>
    public static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(100);

    /// <summary>True when the last <see cref="Scan"/> left a file to be read again once it has settled.</summary>
    public bool Unsettled { get; private set; }

    public async Task RunAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(directory);
        using var watcher = new FileSystemWatcher(directory)
        {
            IncludeSubdirectories = false,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            InternalBufferSize = 64 * 1024,
        };
        FileSystemEventHandler onChange = (_, _) => _changed.Writer.TryWrite(true);
        watcher.Created += onChange;
        watcher.Changed += onChange;
        watcher.Deleted += onChange;
        watcher.Renamed += (_, _) => _changed.Writer.TryWrite(true);
        watcher.Error += (_, e) => { LogWatchError(log, e.GetException().Message); _changed.Writer.TryWrite(true); };
        watcher.EnableRaisingEvents = true;

        Scan();
        while (!ct.IsCancellationRequested)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(Unsettled ? Settle : resync);
            try { await _changed.Reader.ReadAsync(cts.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
            catch (OperationCanceledException) { break; }
            Scan();
        }
    }

    /// <summary>Reads changed files and publishes the whole set. Public for tests.</summary>
    public void Scan()
    {
        Unsettled = false;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        IEnumerable<string> entries;
        try { entries = Directory.EnumerateFiles(directory).Order(StringComparer.Ordinal).ToList(); }
        catch (IOException e) { LogWatchError(log, e.Message); return; }
        foreach (var path in entries)
        {
            if (Path.GetFileName(path).StartsWith('.')) continue;
            // A file removed since the listing (rm of many manifests at once), or a symlink to
            // nothing, is gone: its pods go with it, and the scan goes on.
            DateTime mtime; long length;
            try
            {
                var info = new FileInfo(path);
                if (!info.Exists) continue;
                (mtime, length) = (info.LastWriteTimeUtc, info.Length);
            }
            catch (IOException) { continue; }
            seen.Add(path);
            if (_files.TryGetValue(path, out var known) && known.Mtime == mtime && known.Length == length) continue;
            // mtime is the file system's wall clock, so "how long ago" is measured on it too.
            bool fresh = DateTime.UtcNow - mtime < Settle;
            try
            {
                string text = File.ReadAllText(path);
                if (fresh && string.IsNullOrWhiteSpace(text)) { Unsettled = true; continue; } // truncated, not yet written
                var pods = StaticPods.Load(path, text, nodeName, time.GetUtcNow());
                _files[path] = (mtime, length, null, pods);
                LogLoaded(log, path, pods.Count);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                seen.Remove(path); // removed between the stat and the read
            }
            catch (Exception) when (fresh)
            {
                // Probably half written: keep what it held, judge it once it has settled.
                Unsettled = true;
            }
            catch (Exception e)
            {
                // Whatever a file holds, it may only ever cost its own pods.
                string msg = e is ManifestException ? e.Message : $"{path}: {e.Message}";
                _files[path] = (mtime, length, msg, []);
                LogRejected(log, msg);
            }
        }
        foreach (var gone in _files.Keys.Where(k => !seen.Contains(k)).ToList()) _files.Remove(gone);

        var all = new List<Pod>();
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (path, f) in _files.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (f.Error is not null) continue;
            foreach (var p in f.Pods)
            {
                string full = $"{p.Metadata.Namespace}/{p.Metadata.Name}";
                if (names.TryGetValue(full, out var other))
                {
                    string msg = $"{path}: pod \"{full}\" is already defined in {other}; ignored";
                    LogRejected(log, msg);
                    continue;
                }
                names[full] = path;
                all.Add(p);
            }
        }
        manager.SetDesired(StaticPods.Source, all);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "static pod manifest {File}: {Count} pod(s)")]
    private static partial void LogLoaded(ILogger logger, string file, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "static pod manifest rejected: {Reason}")]
    private static partial void LogRejected(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "static pod directory watch: {Error}; rescanning")]
    private static partial void LogWatchError(ILogger logger, string error);
}
