using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// A controller that keeps one named object in every active namespace: it watches namespaces and
/// (through a field selector) only the objects of that name, and syncs a namespace when either
/// changes. Terminating namespaces are left alone (the API refuses new content there anyway).
/// </summary>
public abstract class PerNamespaceController(ApiClient api, TimeProvider time, ILogger log, string objectsPath, string name)
    : ControllerLoop(api, time, log, "/api/v1/namespaces", $"{objectsPath}?fieldSelector=metadata.name%3D{name}")
{
    private readonly Dictionary<string, JsonObject> _namespaces = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _objects = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _namespaces.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        if (source == 0) _namespaces.Clear(); else _objects.Clear();
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
        if (type == "DELETED") _objects.Remove(ns); else _objects[ns] = obj!;
        Dirty.Add(ns);
    }

    protected override async Task SyncAsync(string ns, CancellationToken ct)
    {
        if (!_namespaces.TryGetValue(ns, out var n) || n["metadata"]?["deletionTimestamp"] is not null) return;
        try { await EnsureAsync(ns, _objects.GetValueOrDefault(ns), ct).ConfigureAwait(false); }
        catch (ApiError e) when (e.IsConflict || e.Code == 403) { } // written meanwhile (the watch brings it), or the namespace began terminating
    }

    /// <summary>Makes the object right in <paramref name="ns"/>; <paramref name="current"/> is what the watch shows (null: none).</summary>
    protected abstract Task EnsureAsync(string ns, JsonObject? current, CancellationToken ct);
}

/// <summary>
/// The ServiceAccount controller (pkg/controller/serviceaccount): every active namespace has a
/// <c>default</c> ServiceAccount; one deleted by hand comes back.
/// Tests: NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed class ServiceAccountController(ApiClient api, TimeProvider time, ILogger<ServiceAccountController> log)
    : PerNamespaceController(api, time, log, "/api/v1/serviceaccounts", Name)
{
    public const string Name = "default";

    protected override async Task EnsureAsync(string ns, JsonObject? current, CancellationToken ct)
    {
        if (current is not null) return;
        await Api.CreateAsync($"/api/v1/namespaces/{ns}/serviceaccounts", new JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "ServiceAccount", ["metadata"] = new JsonObject { ["name"] = Name, ["namespace"] = ns },
        }, ct).ConfigureAwait(false);
    }
}

/// <summary>
/// The root CA publisher (pkg/controller/certificates/rootcacertpublisher): a ConfigMap
/// <c>kube-root-ca.crt</c> with the cluster CA (key ca.crt) in every active namespace, put back
/// when deleted or edited; pods read it through their kube-api-access projected volume.
/// Tests: NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed class RootCaPublisher(ApiClient api, TimeProvider time, ILogger<RootCaPublisher> log, string caPem)
    : PerNamespaceController(api, time, log, "/api/v1/configmaps", Name)
{
    public const string Name = "kube-root-ca.crt", Key = "ca.crt";

    protected override async Task EnsureAsync(string ns, JsonObject? current, CancellationToken ct)
    {
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
        if (current is null) await Api.CreateAsync($"/api/v1/namespaces/{ns}/configmaps", body, ct).ConfigureAwait(false);
        else
        {
            body["metadata"]!["resourceVersion"] = current["metadata"]!["resourceVersion"]!.DeepClone();
            await Api.UpdateAsync($"/api/v1/namespaces/{ns}/configmaps/{Name}", body, ct).ConfigureAwait(false);
        }
    }
}
