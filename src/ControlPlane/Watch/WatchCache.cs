using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Etcd;
using NodeAgent.ControlPlane.Etcd.V3;
using NodeAgent.ControlPlane.Registry;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Watch;

/// <summary>One change from etcd, decoded once and shared (read-only) by every watcher.</summary>
public sealed class WatchEvent
{
    public required long Revision { get; init; }
    public required string Key { get; init; }
    public required bool Deleted { get; init; }
    public required bool Created { get; init; }
    /// <summary>The object after the change (for a delete: its last state), resourceVersion = <see cref="Revision"/>.</summary>
    public required byte[] Object { get; init; }
    public required ObjectAttrs Attrs { get; init; }
    public byte[]? Prev { get; init; }
    public ObjectAttrs? PrevAttrs { get; init; }
}

/// <summary>An item on a watcher's queue: an event, or a bookmark at a revision.</summary>
public readonly record struct WatchItem(WatchEvent? Event, long Bookmark);

/// <summary>
/// One client watch: a bounded queue filled by the <see cref="WatchCache"/> loop. A watcher that
/// falls <see cref="WatchCache.WatcherQueue"/> items behind is cut off (its queue completes with
/// <see cref="SlowWatcherException"/>), so it can neither stall the others nor grow memory.
/// </summary>
public sealed class Watcher
{
    private readonly Channel<WatchItem> _queue;

    internal Watcher(int capacity, long fromRevision, string keyPrefix, LabelSelector labels, FieldSelector fields, bool bookmarks)
    {
        _queue = Channel.CreateBounded<WatchItem>(new BoundedChannelOptions(capacity) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        MinRevision = fromRevision;
        KeyPrefix = keyPrefix;
        Labels = labels;
        Fields = fields;
        WantsBookmarks = bookmarks;
    }

    public long MinRevision { get; private set; }
    public string KeyPrefix { get; }
    public LabelSelector Labels { get; }
    public FieldSelector Fields { get; }
    public bool WantsBookmarks { get; }
    public ChannelReader<WatchItem> Reader => _queue.Reader;

    /// <summary>Called only by the cache loop (single writer).</summary>
    internal bool Offer(WatchEvent e)
    {
        if (e.Revision <= MinRevision || !e.Key.StartsWith(KeyPrefix, StringComparison.Ordinal)) return true;
        bool now = e.Attrs.Matches(Labels, Fields);
        bool before = e.PrevAttrs?.Matches(Labels, Fields) ?? false;
        if (!now && !before) return true;
        if (_queue.Writer.TryWrite(new WatchItem(e, 0))) return true;
        _queue.Writer.TryComplete(new SlowWatcherException());
        return false;
    }

    internal void OfferBookmark(long revision)
    {
        if (!WantsBookmarks || revision < MinRevision) return;
        MinRevision = revision;
        _queue.Writer.TryWrite(new WatchItem(null, revision));
    }

    internal void Close(Exception? error) => _queue.Writer.TryComplete(error);
}

public sealed class SlowWatcherException() : Exception("watcher fell too far behind and was closed");

/// <summary>
/// The watch fan-out for one resource: a single etcd watch on its key prefix feeds a ring of the
/// most recent events and every client watcher. A watch from resourceVersion R is served from the
/// ring when it still holds every event after R; older than that is 410 Expired, as upstream's
/// watch cache answers, and clients relist. Bookmarks come from etcd progress notifications.
/// </summary>
public sealed partial class WatchCache : IAsyncDisposable
{
    private readonly ResourceInfo _info;
    private readonly EtcdClient _etcd;
    private readonly ILogger _log;
    private readonly WatchEvent?[] _ring;
    private readonly TimeSpan _bookmarkInterval;
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Watcher[] _watchers = [];
    private int _head, _count;
    private long _floor;     // every event with a revision above this is in the ring
    private long _progress;  // every event up to this revision has been delivered
    private Task? _loop;

    public WatchCache(ResourceInfo info, EtcdClient etcd, ILogger log, int capacity, TimeSpan bookmarkInterval, int watcherQueue)
    {
        _info = info;
        _etcd = etcd;
        _log = log;
        _ring = new WatchEvent?[capacity];
        _bookmarkInterval = bookmarkInterval;
        WatcherQueue = watcherQueue;
    }

    public int WatcherQueue { get; }
    public long Progress { get { lock (_lock) return _progress; } }
    public int WatcherCount => Volatile.Read(ref _watchers).Length;

    /// <summary>Called on the cache loop for every event, before the watchers (an index kept beside the cache).</summary>
    public Action<WatchEvent>? Observer { get; set; }

    /// <summary>Starts the etcd watch after <paramref name="fromRevision"/> (0: the current revision).</summary>
    public Task StartAsync(long fromRevision = 0)
    {
        if (fromRevision > 0) lock (_lock) { _floor = fromRevision; _progress = fromRevision; }
        _loop = Task.Run(() => RunAsync(_stop.Token));
        return _started.Task;
    }

    /// <summary>Registers a watcher for events after <paramref name="fromRevision"/>; null when the ring no longer reaches back that far.</summary>
    public Watcher? Subscribe(long fromRevision, string keyPrefix, LabelSelector labels, FieldSelector fields, bool bookmarks)
    {
        var w = new Watcher(WatcherQueue, fromRevision, keyPrefix, labels, fields, bookmarks);
        lock (_lock)
        {
            if (fromRevision < _floor) return null;
            for (int i = 0; i < _count; i++)
            {
                var e = _ring[(_head + i) % _ring.Length]!;
                if (e.Revision > fromRevision && !w.Offer(e)) return null;
            }
            _watchers = [.. _watchers, w];
        }
        return w;
    }

    public void Unsubscribe(Watcher w)
    {
        lock (_lock) _watchers = _watchers.Where(x => x != w).ToArray();
        w.Close(null);
    }

    public long Floor { get { lock (_lock) return _floor; } }

    private async Task RunAsync(CancellationToken ct)
    {
        long attempt = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                long start;
                lock (_lock) start = _progress;
                if (start == 0)
                {
                    start = await _etcd.CurrentRevisionAsync(ct).ConfigureAwait(false);
                    lock (_lock) { _floor = start; _progress = start; }
                }
                await WatchFromAsync(start + 1, ct).ConfigureAwait(false);
                attempt = 0;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (EtcdCompactedException)
            {
                // We fell behind compaction: nobody can be served a gapless stream any more.
                LogRestart(_log, _info.Resource, "compacted");
                ResetAll();
            }
            catch (Exception e) when (e is RpcException or EtcdUnavailableException or HttpRequestException or IOException)
            {
                LogWatchError(_log, _info.Resource, e.Message);
                attempt++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(5000, 100 * Math.Pow(2, Math.Min(attempt, 6))) * (0.5 + Random.Shared.NextDouble()));
                try { await Task.Delay(delay, ct).ConfigureAwait(false); } catch (OperationCanceledException) { break; }
            }
        }
        lock (_lock) foreach (var w in _watchers) w.Close(null);
    }

    private async Task WatchFromAsync(long startRevision, CancellationToken ct)
    {
        using var call = _etcd.OpenWatch(ct);
        var prefix = System.Text.Encoding.UTF8.GetBytes(_info.KeyPrefix);
        await call.RequestStream.WriteAsync(new WatchRequest
        {
            CreateRequest = new WatchCreateRequest
            {
                Key = ByteString.CopyFrom(prefix),
                RangeEnd = EtcdClient.PrefixEnd(prefix),
                StartRevision = startRevision,
                PrevKv = true,
                ProgressNotify = true,
            },
        }, ct).ConfigureAwait(false);
        using var ticker = new CancellationTokenSource();
        using var link = CancellationTokenSource.CreateLinkedTokenSource(ct, ticker.Token);
        var progressLoop = RequestProgressAsync(call, link.Token);
        try
        {
            while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
            {
                var resp = call.ResponseStream.Current;
                if (resp.Created) { _started.TrySetResult(); continue; }
                if (resp.CompactRevision != 0) throw new EtcdCompactedException(startRevision, resp.CompactRevision);
                if (resp.Canceled) throw new EtcdUnavailableException("etcd canceled the watch: " + resp.CancelReason);
                if (resp.Events.Count == 0)
                {
                    Bookmark(resp.Header.Revision);
                    continue;
                }
                foreach (var ev in resp.Events) Publish(Decode(ev));
            }
        }
        finally
        {
            await ticker.CancelAsync().ConfigureAwait(false);
            try { await progressLoop.ConfigureAwait(false); } catch (OperationCanceledException) { }
        }
        throw new EtcdUnavailableException("etcd closed the watch stream");
    }

    private async Task RequestProgressAsync(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(_bookmarkInterval);
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            await call.RequestStream.WriteAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() }, ct).ConfigureAwait(false);
    }

    private WatchEvent Decode(Etcd.Mvcc.Event ev)
    {
        var kv = ev.Kv;
        long rev = kv.ModRevision;
        string key = kv.Key.ToStringUtf8();
        bool deleted = ev.Type == Etcd.Mvcc.Event.Types.EventType.Delete;
        byte[]? prev = null;
        ObjectAttrs? prevAttrs = null;
        if (ev.PrevKv is { Value.Length: > 0 } p)
        {
            var pb = p.Value.Span;
            prev = ObjectCodec.WithResourceVersion(pb, deleted ? rev : p.ModRevision);
            prevAttrs = new ObjectAttrs(_info, pb);
        }
        if (deleted)
            return new WatchEvent { Revision = rev, Key = key, Deleted = true, Created = false, Object = prev ?? "{}"u8.ToArray(),
                                    Attrs = prevAttrs ?? new ObjectAttrs(_info, "{}"u8), Prev = null, PrevAttrs = null };
        var span = kv.Value.Span;
        return new WatchEvent
        {
            Revision = rev, Key = key, Deleted = false, Created = kv.CreateRevision == kv.ModRevision,
            Object = ObjectCodec.WithResourceVersion(span, rev), Attrs = new ObjectAttrs(_info, span),
            Prev = prev, PrevAttrs = prevAttrs,
        };
    }

    private void Publish(WatchEvent e)
    {
        lock (_lock)
        {
            if (_count == _ring.Length)
            {
                _floor = _ring[_head]!.Revision;
                _ring[_head] = null;
                _head = (_head + 1) % _ring.Length;
                _count--;
            }
            _ring[(_head + _count) % _ring.Length] = e;
            _count++;
            _progress = e.Revision;
            Observer?.Invoke(e);
            List<Watcher>? slow = null;
            foreach (var w in _watchers)
                if (!w.Offer(e)) (slow ??= []).Add(w);
            if (slow is not null)
            {
                _watchers = _watchers.Except(slow).ToArray();
                LogSlow(_log, _info.Resource, slow.Count);
            }
        }
    }

    private void Bookmark(long revision)
    {
        lock (_lock)
        {
            if (revision > _progress) _progress = revision;
            foreach (var w in _watchers) w.OfferBookmark(_progress);
        }
    }

    private void ResetAll()
    {
        lock (_lock)
        {
            foreach (var w in _watchers) w.Close(new EtcdCompactedException(_progress, 0));
            _watchers = [];
            Array.Clear(_ring);
            _head = _count = 0;
            _progress = 0;
            _floor = long.MaxValue;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null) try { await _loop.ConfigureAwait(false); } catch (OperationCanceledException) { }
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "watch cache {Resource}: etcd watch failed: {Error}; reconnecting")]
    private static partial void LogWatchError(ILogger log, string resource, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "watch cache {Resource}: restarting ({Why}); open watches are closed with 410")]
    private static partial void LogRestart(ILogger log, string resource, string why);

    [LoggerMessage(Level = LogLevel.Warning, Message = "watch cache {Resource}: closed {Count} slow watcher(s)")]
    private static partial void LogSlow(ILogger log, string resource, int count);
}
