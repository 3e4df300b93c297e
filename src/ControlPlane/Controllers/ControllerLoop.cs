using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The shape every controller here shares: informers (source 0: the objects it reconciles; the
/// others: what they own or depend on) feed one loop that alone owns the caches; watch events mark
/// keys dirty; once every informer has listed, dirty keys are synced one at a time, a failed sync is retried after a
/// second, and <see cref="Later"/> schedules a look at a key after a delay. Level-triggered: a sync
/// reads the cache, never the event that woke it.
/// </summary>
public abstract partial class ControllerLoop(ApiClient api, TimeProvider time, ILogger log, params string[] paths)
{
    private abstract record Msg;
    private sealed record Changed(int Source, string Type, string Key, JsonObject? Obj) : Msg;
    private sealed record Listed(int Source, List<(string Key, JsonObject Obj)> Items) : Msg;
    private sealed record Resync(string Key) : Msg;

    private readonly Channel<Msg> _inbox = Channel.CreateUnbounded<Msg>(new UnboundedChannelOptions { SingleReader = true });
    private readonly bool[] _synced = new bool[paths.Length];
    private CancellationToken _stopping;

    protected ApiClient Api => api;
    protected TimeProvider Time => time;
    protected ILogger Log => log;

    /// <summary>Keys to sync (owned by the loop: touch only from the On* callbacks and <see cref="SyncAsync"/>).</summary>
    protected HashSet<string> Dirty { get; } = new(StringComparer.Ordinal);

    /// <summary>A full (re)list of source <paramref name="source"/> (an index into the constructor's paths).</summary>
    protected abstract void OnListed(int source, List<(string Key, JsonObject Obj)> items);

    /// <summary>One watch event of source <paramref name="source"/>; <paramref name="obj"/> is the object (for DELETED, its last state).</summary>
    protected abstract void OnChanged(int source, string type, string key, JsonObject? obj);

    /// <summary>Whether every informer has listed (so the caches are complete).</summary>
    protected bool Synced => Array.TrueForAll(_synced, s => s);

    /// <summary>Whether the primary object with this key is still there (a delayed look at a deleted one is dropped).</summary>
    protected abstract bool Exists(string key);

    protected abstract Task SyncAsync(string key, CancellationToken ct);

    /// <summary>Look at <paramref name="key"/> again after <paramref name="delay"/> (e.g. when minReadySeconds pass).</summary>
    protected void Later(string key, TimeSpan delay) =>
        _ = Task.Delay(delay, time, _stopping).ContinueWith(t => { if (!t.IsCanceled) _inbox.Writer.TryWrite(new Resync(key)); }, TaskScheduler.Default);

    private SharedInformers? _informers;

    /// <summary>
    /// Takes this controller's informers from <paramref name="informers"/> (before they start), so
    /// that controllers reading the same resource share one watch and one cache. Without it,
    /// <see cref="RunAsync"/> runs informers of its own.
    /// </summary>
    public void UseInformers(SharedInformers informers)
    {
        if (_informers is not null) throw new InvalidOperationException("the informers are already chosen");
        _informers = informers;
        for (int i = 0; i < paths.Length; i++)
        {
            int source = i;
            // A path may carry a query (a field or label selector) after '?'.
            informers.Subscribe(paths[i], (c, inf) => Forward(source, c, inf));
        }
    }

    public async Task RunAsync(CancellationToken ct)
    {
        _stopping = ct;
        SharedInformers? own = null;
        if (_informers is null) UseInformers(own = new SharedInformers(api, log, time));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watches = own?.RunAsync(stop.Token) ?? Task.CompletedTask;
        try
        {
            while (true)
            {
                while (_inbox.Reader.TryRead(out var msg)) Apply(msg);
                if (Synced && Dirty.Count > 0)
                {
                    var key = Dirty.First();
                    Dirty.Remove(key);
                    try { await SyncAsync(key, ct).ConfigureAwait(false); }
                    catch (ApiError e)
                    {
                        LogSyncFailed(log, GetType().Name, key, e.Message);
                        Later(key, TimeSpan.FromSeconds(1));
                    }
                    catch (HttpRequestException e)
                    {
                        LogSyncFailed(log, GetType().Name, key, e.Message);
                        Later(key, TimeSpan.FromSeconds(1));
                    }
                    continue;
                }
                await _inbox.Reader.WaitToReadAsync(ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        finally
        {
            // Shared informers outlive this loop: what they still hand over is refused, not queued.
            _inbox.Writer.TryComplete();
            await stop.CancelAsync().ConfigureAwait(false);
            await watches.ConfigureAwait(false);
        }
    }

    private void Forward(int source, InformerChange c, Informer inf)
    {
        if (c.Type == InformerChange.Synced) _inbox.Writer.TryWrite(new Listed(source, [.. inf.Cache.Select(kv => (kv.Key, kv.Value))]));
        else _inbox.Writer.TryWrite(new Changed(source, c.Type, c.Key, c.Object));
    }

    private void Apply(Msg msg)
    {
        switch (msg)
        {
            case Listed l:
                OnListed(l.Source, l.Items);
                _synced[l.Source] = true;
                break;
            case Changed c:
                OnChanged(c.Source, c.Type, c.Key, c.Obj);
                break;
            case Resync r:
                if (Exists(r.Key)) Dirty.Add(r.Key);
                break;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Controller}: syncing {Key} failed: {Error}; retrying")]
    private static partial void LogSyncFailed(ILogger log, string controller, string key, string error);
}
