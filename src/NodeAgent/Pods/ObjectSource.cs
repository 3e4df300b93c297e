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
}

public enum ObjectKind { ConfigMap, Secret }

/// <summary>Static pods only: no API server, nothing can be referenced.</summary>
public sealed class NoObjectSource : IObjectSource
{
    public Task<IReadOnlyDictionary<string, string>?> GetDataAsync(ObjectKind kind, string ns, string name, CancellationToken ct) =>
        Task.FromResult<IReadOnlyDictionary<string, string>?>(null);
}

/// <summary>Reads them from the API server with a GET each time a container is created (the node's own credentials).</summary>
public sealed class ApiObjectSource(ApiClient api) : IObjectSource
{
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
