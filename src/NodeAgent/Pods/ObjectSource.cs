using System.Text;
using System.Text.Json.Nodes;
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

/// <summary>Reads them from the API server with a GET each time a container is created (the node's own credentials).</summary>
public sealed class ApiObjectSource(ApiClient api, TimeProvider time) : IObjectSource
{
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

    public async Task<IReadOnlyDictionary<string, string>?> GetDataAsync(ObjectKind kind, string ns, string name, CancellationToken ct)
    {
        JsonObject obj;
        try
        {
            obj = await api.GetAsync($"/api/v1/namespaces/{ns}/{(kind == ObjectKind.ConfigMap ? "configmaps" : "secrets")}/{name}", ct).ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsNotFound)
        {
            return null;
        }
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
}
