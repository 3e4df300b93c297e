using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace NodeAgent.Api.Client;

/// <summary>A change the informer applied to its cache; <see cref="Synced"/> marks a full (re)list.</summary>
public readonly record struct InformerChange(string Type, string Key, JsonObject? Object)
{
    public const string Synced = "SYNCED";
}

/// <summary>
/// List + watch with a local cache, as client-go's reflector does: list (in pages), then watch from
/// the list's resourceVersion with bookmarks; a watch that ends is resumed from the last
/// resourceVersion seen (no relist, no event lost or applied twice); 410 Gone relists; errors back
/// off with jitter. Every change is handed to <c>onChange</c> on the informer's own loop (the single
/// owner of the cache), after the cache was updated.
/// </summary>
public sealed partial class Informer(ApiClient client, string path, string? query, Action<InformerChange> onChange, ILogger log, TimeProvider time)
{
    private readonly Dictionary<string, JsonObject> _cache = new(StringComparer.Ordinal);
    private string _rv = "";

    /// <summary>The cache (read it only from <c>onChange</c>, i.e. on the informer's loop).</summary>
    public IReadOnlyDictionary<string, JsonObject> Cache => _cache;
    public string ResourceVersion => _rv;
    public bool HasSynced { get; private set; }
    /// <summary>Number of list calls made (for tests and metrics).</summary>
    public int Lists { get; private set; }

    public static string KeyOf(JsonObject o)
    {
        var m = o["metadata"] as JsonObject;
        string? ns = m?["namespace"]?.GetValue<string>();
        string name = m?["name"]?.GetValue<string>() ?? "";
        return string.IsNullOrEmpty(ns) ? name : ns + "/" + name;
    }

    private static string RvOf(JsonObject o) => (o["metadata"] as JsonObject)?["resourceVersion"]?.GetValue<string>() ?? "";

    public async Task RunAsync(CancellationToken ct)
    {
        int failures = 0;
        bool needList = true;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (needList)
                {
                    await ListAsync(ct).ConfigureAwait(false);
                    needList = false;
                }
                await WatchAsync(ct).ConfigureAwait(false);
                failures = 0;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (ApiError e)
            {
                if (e.IsGone) { needList = true; LogExpired(log, path, _rv); }
                else LogError(log, path, e.Message);
                failures++;
                // Capped low (5 s, jittered): after an API outage the node must catch up quickly.
                var delay = TimeSpan.FromMilliseconds(Math.Min(5_000, 200 * Math.Pow(2, Math.Min(failures, 8))) * (0.5 + Random.Shared.NextDouble()));
                if (e.IsGone && failures == 1) delay = TimeSpan.Zero;
                try { await Task.Delay(delay, time, ct).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
            }
        }
    }

    private async Task ListAsync(CancellationToken ct)
    {
        var fresh = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        string? cont = null;
        string rv;
        do
        {
            string url = $"{path}?limit=500{(query is null ? "" : "&" + query)}{(cont is null ? "" : "&continue=" + Uri.EscapeDataString(cont))}";
            var list = await client.GetAsync(url, ct).ConfigureAwait(false);
            rv = (list["metadata"] as JsonObject)?["resourceVersion"]?.GetValue<string>() ?? "";
            cont = (list["metadata"] as JsonObject)?["continue"]?.GetValue<string>();
            if (string.IsNullOrEmpty(cont)) cont = null;
            if (list["items"] is JsonArray items)
                foreach (var item in items)
                    if (item is JsonObject o) fresh[KeyOf(o)] = (JsonObject)o.DeepClone();
        } while (cont is not null);
        Lists++;
        _cache.Clear();
        foreach (var (k, v) in fresh) _cache[k] = v;
        _rv = rv;
        HasSynced = true;
        onChange(new InformerChange(InformerChange.Synced, "", null));
    }

    private async Task WatchAsync(CancellationToken ct)
    {
        int timeout = 300 + Random.Shared.Next(300);
        string url = $"{path}?watch=true&allowWatchBookmarks=true&timeoutSeconds={timeout}&resourceVersion={Uri.EscapeDataString(_rv)}{(query is null ? "" : "&" + query)}";
        await foreach (var (type, obj) in client.WatchAsync(url, ct).ConfigureAwait(false))
        {
            string rv = RvOf(obj);
            switch (type)
            {
                case "BOOKMARK":
                    _rv = rv;
                    continue;
                case "ADDED" or "MODIFIED":
                    _cache[KeyOf(obj)] = obj;
                    break;
                case "DELETED":
                    _cache.Remove(KeyOf(obj));
                    break;
                default:
                    continue;
            }
            _rv = rv;
            onChange(new InformerChange(type, KeyOf(obj), obj));
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "watch {Path}: resourceVersion {Rv} expired; relisting")]
    private static partial void LogExpired(ILogger log, string path, string rv);

    [LoggerMessage(Level = LogLevel.Warning, Message = "list/watch {Path}: {Error}; retrying")]
    private static partial void LogError(ILogger log, string path, string error);
}
