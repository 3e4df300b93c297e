using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.Pods;

/// <summary>
/// Where the agent reads ConfigMaps and Secrets that pods reference (env today, volumes next).
/// Returns the object's data as strings (secret values decoded), or null when it does not exist.
/// Thread-safe.
/// </summary>
public interface IObjectSource
{
    Task<IReadOnlyDictionary<string, string>?> GetDataAsync(ObjectKind kind, string ns, string name, CancellationToken ct);

    /// <summary>
    /// A token for the service account, bound to the pod (TokenRequest), reused until 80% of its
    /// lifetime or 24 h have passed, as the kubelet's token manager does.
    /// </summary>
    Task<string> GetServiceAccountTokenAsync(string ns, string serviceAccount, string? audience, long expirationSeconds,
        string podName, string podUid, CancellationToken ct);
}

public enum ObjectKind { ConfigMap, Secret }

/// <summary>Static pods only: no API server, nothing can be referenced.</summary>
public sealed class NoObjectSource : IObjectSource
{
    public Task<IReadOnlyDictionary<string, string>?> GetDataAsync(ObjectKind kind, string ns, string name, CancellationToken ct) =>
        Task.FromResult<IReadOnlyDictionary<string, string>?>(null);

    public Task<string> GetServiceAccountTokenAsync(string ns, string serviceAccount, string? audience, long expirationSeconds,
        string podName, string podUid, CancellationToken ct) =>
        throw new ContainerConfigException("service account tokens need an API server (static pods cannot have them)");
}

/// <summary>Reads them from the API server with the node's own credentials.</summary>
public sealed class ApiObjectSource(ApiClient api, TimeProvider time, ILogger<ApiObjectSource> log) : IObjectSource, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();

    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Uid, string Sa, string? Aud, long Exp), (string Token, DateTimeOffset Issued, DateTimeOffset Expires)> _tokens = new();

    public async Task<string> GetServiceAccountTokenAsync(string ns, string serviceAccount, string? audience, long expirationSeconds,
        string podName, string podUid, CancellationToken ct)
    {
        var key = (podUid, serviceAccount, audience, expirationSeconds);
        var now = time.GetUtcNow();
        if (_tokens.TryGetValue(key, out var t) && now < t.Issued + (t.Expires - t.Issued) * 0.8 && now - t.Issued < TimeSpan.FromHours(24))
            return t.Token;
        var spec = new JsonObject
        {
            ["expirationSeconds"] = expirationSeconds,
            ["boundObjectRef"] = new JsonObject { ["kind"] = "Pod", ["apiVersion"] = "v1", ["name"] = podName, ["uid"] = podUid },
        };
        if (!string.IsNullOrEmpty(audience)) spec["audiences"] = new JsonArray(audience);
        var resp = await api.CreateAsync($"/api/v1/namespaces/{ns}/serviceaccounts/{serviceAccount}/token",
            new JsonObject { ["apiVersion"] = "authentication.k8s.io/v1", ["kind"] = "TokenRequest", ["spec"] = spec }, ct).ConfigureAwait(false);
        var status = resp["status"] as JsonObject;
        string token = status?["token"]?.GetValue<string>() is { Length: > 0 } tk ? tk
            : throw new ContainerConfigException($"TokenRequest for service account {ns}/{serviceAccount} returned no token");
        var expires = DateTimeOffset.TryParse(status["expirationTimestamp"]?.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AssumeUniversal, out var exp) ? exp : now.AddSeconds(expirationSeconds);
        // Tokens of pods that are gone are dropped once they expire (bounded by the pods that ever ran here).
        foreach (var (k, v) in _tokens) if (v.Expires < now) _tokens.TryRemove(k, out _);
        _tokens[key] = (token, now, expires);
        return token;
    }

    // ---- ConfigMaps and Secrets: one watch per referenced object ------------------------------

    /// <summary>A referenced object, kept current by its own list+watch (fieldSelector metadata.name).</summary>
    private sealed class Watched(CancellationTokenSource stop)
    {
        public CancellationTokenSource Stop { get; } = stop;
        public TaskCompletionSource Synced { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile IReadOnlyDictionary<string, string>? Data;
        public long LastUsedTicks;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<(ObjectKind Kind, string Ns, string Name), Lazy<Watched>> _watched = new();
    private long _lastSweepTicks;

    /// <summary>How long a watch outlives the last pod that read its object.</summary>
    public static readonly TimeSpan IdleWatch = TimeSpan.FromMinutes(10);

    /// <summary>Raised (on the watch's loop) when a watched object changed after its first sync.</summary>
    public event Action<ObjectKind, string, string>? Changed;

    /// <summary>
    /// The kubelet's Watch change-detection strategy: the first read of an object starts a watch on
    /// it alone; later reads are answered from what the watch last delivered, so a node with running
    /// pods sends no GETs in steady state, and a change wakes the pods that use the object
    /// (<see cref="Changed"/>). Watches nobody read for <see cref="IdleWatch"/> are stopped.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, string>?> GetDataAsync(ObjectKind kind, string ns, string name, CancellationToken ct)
    {
        var key = (kind, ns, name);
        var w = _watched.GetOrAdd(key, k => new Lazy<Watched>(() => Start(k))).Value;
        long now = time.GetUtcNow().UtcTicks;
        Interlocked.Exchange(ref w.LastUsedTicks, now);
        Sweep(now);
        try
        {
            await w.Synced.Task.WaitAsync(TimeSpan.FromSeconds(10), time, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new ApiError(503, "ServiceUnavailable", $"{(kind == ObjectKind.ConfigMap ? "configmap" : "secret")} \"{name}\": not received from the API server yet");
        }
        return w.Data;
    }

    private Watched Start((ObjectKind Kind, string Ns, string Name) key)
    {
        var w = new Watched(CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token)) { LastUsedTicks = time.GetUtcNow().UtcTicks };
        string path = $"/api/v1/namespaces/{key.Ns}/{(key.Kind == ObjectKind.ConfigMap ? "configmaps" : "secrets")}";
        Informer? informer = null;
        informer = new Informer(api, path, "fieldSelector=" + Uri.EscapeDataString("metadata.name=" + key.Name), change =>
        {
            // Only this object can be in the cache; an empty cache after a (re)list means it does not exist.
            informer!.Cache.TryGetValue(key.Ns + "/" + key.Name, out var obj);
            w.Data = obj is null ? null : Extract(key.Kind, obj);
            if (change.Type == InformerChange.Synced && w.Synced.TrySetResult()) return;
            if (w.Synced.Task.IsCompleted) Changed?.Invoke(key.Kind, key.Ns, key.Name);
        }, log, time);
        _ = Task.Run(() => informer.RunAsync(w.Stop.Token));
        return w;
    }

    private void Sweep(long now)
    {
        long last = Interlocked.Read(ref _lastSweepTicks);
        if (now - last < TimeSpan.TicksPerMinute || Interlocked.CompareExchange(ref _lastSweepTicks, now, last) != last) return;
        foreach (var (k, lazy) in _watched)
            if (lazy.IsValueCreated && now - Interlocked.Read(ref lazy.Value.LastUsedTicks) > IdleWatch.Ticks && _watched.TryRemove(k, out _))
                lazy.Value.Stop.Cancel();
    }

    private static Dictionary<string, string> Extract(ObjectKind kind, JsonObject obj)
    {
        var data = new Dictionary<string, string>(StringComparer.Ordinal);
        if (obj["data"] is JsonObject d)
            foreach (var (k, v) in d)
            {
                string s = v?.GetValue<string>() ?? "";
                data[k] = kind == ObjectKind.Secret ? Encoding.UTF8.GetString(Convert.FromBase64String(s)) : s;
            }
        if (kind == ObjectKind.ConfigMap && obj["binaryData"] is JsonObject b)
            foreach (var (k, v) in b) data[k] = Encoding.UTF8.GetString(Convert.FromBase64String(v?.GetValue<string>() ?? ""));
        return data;
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }
}
