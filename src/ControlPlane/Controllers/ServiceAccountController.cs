using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The ServiceAccount controller (pkg/controller/serviceaccount): every active namespace has a
/// <c>default</c> ServiceAccount; one deleted by hand comes back. Terminating namespaces are left
/// alone (the API refuses new content there anyway).
/// Tests: NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed class ServiceAccountController(ApiClient api, TimeProvider time, ILogger<ServiceAccountController> log)
    : ControllerLoop(api, time, log, "/api/v1/namespaces", "/api/v1/serviceaccounts?fieldSelector=metadata.name%3Ddefault")
{
    public const string Name = "default";
    private readonly Dictionary<string, JsonObject> _namespaces = new(StringComparer.Ordinal);
    private readonly HashSet<string> _have = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _namespaces.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        if (source == 0) _namespaces.Clear(); else _have.Clear();
        foreach (var (k, o) in items) OnChanged(source, "ADDED", k, o);
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        if (source == 0)
        {
            if (type == "DELETED") _namespaces.Remove(key); else _namespaces[key] = obj!;
            Dirty.Add(key);
            return;
        }
        string ns = ControllerKit.Str(obj?["metadata"], "namespace");
        if (type == "DELETED") { _have.Remove(ns); Dirty.Add(ns); } else _have.Add(ns);
    }

    protected override async Task SyncAsync(string ns, CancellationToken ct)
    {
        if (_have.Contains(ns) || !_namespaces.TryGetValue(ns, out var n) || n["metadata"]?["deletionTimestamp"] is not null) return;
        try
        {
            await Api.CreateAsync($"/api/v1/namespaces/{ns}/serviceaccounts", new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "ServiceAccount", ["metadata"] = new JsonObject { ["name"] = Name, ["namespace"] = ns },
            }, ct).ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsConflict || e.Code == 403) { } // already there, or the namespace began terminating
    }
}

/// <summary>
/// The root CA publisher (pkg/controller/certificates/rootcacertpublisher): a ConfigMap
/// <c>kube-root-ca.crt</c> with the cluster CA (key ca.crt) in every active namespace, put back
/// when deleted or edited; pods read it through their kube-api-access projected volume.
/// Tests: NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed class RootCaPublisher(ApiClient api, TimeProvider time, ILogger<RootCaPublisher> log, string caPem)
    : ControllerLoop(api, time, log, "/api/v1/namespaces", "/api/v1/configmaps?fieldSelector=metadata.name%3Dkube-root-ca.crt")
{
    public const string Name = "kube-root-ca.crt", Key = "ca.crt";
    private readonly Dictionary<string, JsonObject> _namespaces = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _maps = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _namespaces.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        if (source == 0) _namespaces.Clear(); else _maps.Clear();
        foreach (var (k, o) in items) OnChanged(source, "ADDED", k, o);
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        if (source == 0)
        {
            if (type == "DELETED") _namespaces.Remove(key); else _namespaces[key] = obj!;
            Dirty.Add(key);
            return;
        }
        string ns = ControllerKit.Str(obj?["metadata"], "namespace");
        if (type == "DELETED") _maps.Remove(ns); else _maps[ns] = obj!;
        Dirty.Add(ns);
    }

    protected override async Task SyncAsync(string ns, CancellationToken ct)
    {
        if (!_namespaces.TryGetValue(ns, out var n) || n["metadata"]?["deletionTimestamp"] is not null) return;
        _maps.TryGetValue(ns, out var current);
        if (current is not null && ControllerKit.Str(current["data"], Key) == caPem) return;
        var body = new JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "ConfigMap",
            ["metadata"] = new JsonObject
            {
                ["name"] = Name, ["namespace"] = ns,
                ["annotations"] = new JsonObject { ["kubernetes.io/description"] = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters." },
            },
            ["data"] = new JsonObject { [Key] = caPem },
        };
        try
        {
            if (current is null) await Api.CreateAsync($"/api/v1/namespaces/{ns}/configmaps", body, ct).ConfigureAwait(false);
            else
            {
                body["metadata"]!["resourceVersion"] = current["metadata"]!["resourceVersion"]!.DeepClone();
                await Api.UpdateAsync($"/api/v1/namespaces/{ns}/configmaps/{Name}", body, ct).ConfigureAwait(false);
            }
        }
        catch (ApiError e) when (e.IsConflict || e.Code == 403) { }
    }
}
