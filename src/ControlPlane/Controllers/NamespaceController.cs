using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The namespace controller (pkg/controller/namespace), as a client of the API: a namespace being
/// deleted that still carries the "kubernetes" spec finalizer has every namespaced resource the
/// API discovery lists (with deletecollection) deleted in it; while anything is left (pods ending
/// gracefully, objects with finalizers) it looks again with a growing delay; when nothing is left
/// it removes its finalizer through namespaces/{name}/finalize, and the API server deletes the
/// namespace. Tests: NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed partial class NamespaceController(ApiClient api, TimeProvider time, ILogger<NamespaceController> log)
    : ControllerLoop(api, time, log, "/api/v1/namespaces")
{
    private const string Finalizer = "kubernetes";

    private readonly Dictionary<string, JsonObject> _namespaces = new(StringComparer.Ordinal);
    /// <summary>Consecutive looks at a namespace that still had content (for the delay before the next one).</summary>
    private readonly Dictionary<string, int> _attempts = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _namespaces.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        _namespaces.Clear();
        foreach (var (k, o) in items)
        {
            _namespaces[k] = o;
            if (IsTerminating(o)) Dirty.Add(k);
        }
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        if (type == "DELETED") { _namespaces.Remove(key); _attempts.Remove(key); return; }
        _namespaces[key] = obj!;
        if (IsTerminating(obj!)) Dirty.Add(key);
    }

    private static bool IsTerminating(JsonObject ns) =>
        ns["metadata"]?["deletionTimestamp"] is not null
        && (ns["spec"]?["finalizers"] as JsonArray)?.Any(f => f?.GetValue<string>() == Finalizer) == true;

    protected override async Task SyncAsync(string name, CancellationToken ct)
    {
        if (!_namespaces.TryGetValue(name, out var ns) || !IsTerminating(ns)) return;
        int left = 0;
        foreach (var path in await NamespacedResourcesAsync(ct).ConfigureAwait(false))
        {
            string collection = $"{path.Prefix}/namespaces/{name}/{path.Resource}";
            try
            {
                await Api.DeleteAsync(collection, new JsonObject
                {
                    ["apiVersion"] = "v1", ["kind"] = "DeleteOptions", ["propagationPolicy"] = "Background",
                }, ct).ConfigureAwait(false);
                var list = await Api.GetAsync(collection, ct).ConfigureAwait(false);
                int n = (list["items"] as JsonArray)?.Count ?? 0;
                if (n > 0) LogContentLeft(Log, name, n, path.Resource);
                left += n;
            }
            catch (ApiError e) when (e.Code is 404 or 405) { }
        }
        if (left > 0)
        {
            int attempt = _attempts[name] = _attempts.GetValueOrDefault(name) + 1;
            Later(name, TimeSpan.FromMilliseconds(Math.Min(500 << Math.Min(attempt, 5), 15_000) * (0.8 + 0.4 * Random.Shared.NextDouble())));
            return;
        }
        _attempts.Remove(name);
        var rest = new JsonArray([.. ((JsonArray)ns["spec"]!["finalizers"]!).Select(f => f?.GetValue<string>()).Where(f => f != Finalizer)
            .Select(f => (JsonNode?)JsonValue.Create(f))]);
        try
        {
            await Api.UpdateAsync($"/api/v1/namespaces/{name}/finalize", new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "Namespace",
                ["metadata"] = new JsonObject { ["name"] = name, ["uid"] = ns["metadata"]!["uid"]!.DeepClone() },
                ["spec"] = new JsonObject { ["finalizers"] = rest },
            }, ct).ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsNotFound) { }
    }

    private List<(string Prefix, string Resource)>? _resources;
    private DateTimeOffset _discovered;

    /// <summary>Namespaced resources that can be listed and deleted as a collection, from discovery (cached for a minute).</summary>
    private async Task<List<(string Prefix, string Resource)>> NamespacedResourcesAsync(CancellationToken ct)
    {
        if (_resources is not null && Time.GetUtcNow() - _discovered < TimeSpan.FromMinutes(1)) return _resources;
        var result = new List<(string, string)>();
        async Task Add(string prefix)
        {
            var list = await Api.GetAsync(prefix, ct).ConfigureAwait(false);
            foreach (var r in (list["resources"] as JsonArray)?.OfType<JsonObject>() ?? [])
            {
                string res = ControllerKit.Str(r, "name");
                if (res.Contains('/') || r["namespaced"]?.GetValue<bool>() != true) continue;
                var verbs = (r["verbs"] as JsonArray)?.Select(v => v?.GetValue<string>()).ToHashSet() ?? [];
                if (verbs.Contains("deletecollection") && verbs.Contains("list")) result.Add((prefix, res));
            }
        }
        await Add("/api/v1").ConfigureAwait(false);
        var groups = await Api.GetAsync("/apis", ct).ConfigureAwait(false);
        foreach (var g in (groups["groups"] as JsonArray)?.OfType<JsonObject>() ?? [])
            if (g["preferredVersion"]?["groupVersion"]?.GetValue<string>() is { } gv) await Add("/apis/" + gv).ConfigureAwait(false);
        _discovered = Time.GetUtcNow();
        return _resources = result;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "namespace {Namespace}: {Count} {Resource} left")]
    private static partial void LogContentLeft(ILogger log, string @namespace, int count, string resource);
}
