using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The shape every controller here shares: two informers (the objects it reconciles and the ones
/// they own) feed one loop that alone owns the caches; watch events mark keys dirty; once both
/// informers have listed, dirty keys are synced one at a time, a failed sync is retried after a
/// second, and <see cref="Later"/> schedules a look at a key after a delay. Level-triggered: a sync
/// reads the cache, never the event that woke it.
/// </summary>
public abstract partial class ControllerLoop(ApiClient api, TimeProvider time, ILogger log, string primaryPath, string secondaryPath)
{
    private abstract record Msg;
    private sealed record Changed(bool Secondary, string Type, string Key, JsonObject? Obj) : Msg;
    private sealed record Listed(bool Secondary, List<(string Key, JsonObject Obj)> Items) : Msg;
    private sealed record Resync(string Key) : Msg;

    private readonly Channel<Msg> _inbox = Channel.CreateUnbounded<Msg>(new UnboundedChannelOptions { SingleReader = true });
    private bool _primarySynced, _secondarySynced;
    private CancellationToken _stopping;

    protected ApiClient Api => api;
    protected TimeProvider Time => time;

    /// <summary>Keys to sync (owned by the loop: touch only from the On* callbacks and <see cref="SyncAsync"/>).</summary>
    protected HashSet<string> Dirty { get; } = new(StringComparer.Ordinal);

    /// <summary>A full (re)list of the primary (false) or secondary (true) resource.</summary>
    protected abstract void OnListed(bool secondary, List<(string Key, JsonObject Obj)> items);

    /// <summary>One watch event; <paramref name="obj"/> is the object (for DELETED, its last state).</summary>
    protected abstract void OnChanged(bool secondary, string type, string key, JsonObject? obj);

    /// <summary>Whether the primary object with this key is still there (a delayed look at a deleted one is dropped).</summary>
    protected abstract bool Exists(string key);

    protected abstract Task SyncAsync(string key, CancellationToken ct);

    /// <summary>Look at <paramref name="key"/> again after <paramref name="delay"/> (e.g. when minReadySeconds pass).</summary>
    protected void Later(string key, TimeSpan delay) =>
        _ = Task.Delay(delay, time, _stopping).ContinueWith(t => { if (!t.IsCanceled) _inbox.Writer.TryWrite(new Resync(key)); }, TaskScheduler.Default);

    public async Task RunAsync(CancellationToken ct)
    {
        _stopping = ct;
        Informer? primary = null, secondary = null;
        primary = new Informer(api, primaryPath, null, c => Forward(false, c, primary!), log, time);
        secondary = new Informer(api, secondaryPath, null, c => Forward(true, c, secondary!), log, time);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watches = Task.WhenAll(primary.RunAsync(stop.Token), secondary.RunAsync(stop.Token));
        try
        {
            while (true)
            {
                while (_inbox.Reader.TryRead(out var msg)) Apply(msg);
                if (_primarySynced && _secondarySynced && Dirty.Count > 0)
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
            await stop.CancelAsync().ConfigureAwait(false);
            await watches.ConfigureAwait(false);
        }
    }

    private void Forward(bool secondary, InformerChange c, Informer inf)
    {
        if (c.Type == InformerChange.Synced) _inbox.Writer.TryWrite(new Listed(secondary, [.. inf.Cache.Select(kv => (kv.Key, kv.Value))]));
        else _inbox.Writer.TryWrite(new Changed(secondary, c.Type, c.Key, c.Object));
    }

    private void Apply(Msg msg)
    {
        switch (msg)
        {
            case Listed l:
                OnListed(l.Secondary, l.Items);
                if (l.Secondary) _secondarySynced = true; else _primarySynced = true;
                break;
            case Changed c:
                OnChanged(c.Secondary, c.Type, c.Key, c.Obj);
                break;
            case Resync r:
                if (Exists(r.Key)) Dirty.Add(r.Key);
                break;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Controller}: syncing {Key} failed: {Error}; retrying")]
    private static partial void LogSyncFailed(ILogger log, string controller, string key, string error);
}
