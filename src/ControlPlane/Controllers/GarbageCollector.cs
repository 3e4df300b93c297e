using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The garbage collector (pkg/controller/garbagecollector), as a client of the API: informers on
/// every kind that owns or is owned keep a graph of objects by uid and of owner uid → dependents.
/// A dependent whose owners are all gone (confirmed by a live read, so a slow watch never causes a
/// wrong delete) is deleted in the background; one that still has a live owner only loses its
/// dangling references. An owner deleted with the "orphan" finalizer (<c>--cascade=orphan</c>) has
/// its dependents' references to it removed, then the finalizer; one deleted with
/// "foregroundDeletion" has its dependents deleted (in the foreground themselves) and keeps the
/// finalizer until no dependent with blockOwnerDeletion is left. Keys are uids.
/// Tests: NodeAgent.IntegrationTests ControllerTests (cascading deletes).
/// </summary>
public sealed class GarbageCollector(ApiClient api, TimeProvider time, ILogger<GarbageCollector> log)
    : ControllerLoop(api, time, log, [.. Kinds.Select(k => k.Path)])
{
    private const string OrphanFinalizer = "orphan", ForegroundFinalizer = "foregroundDeletion";

    /// <summary>The kinds the graph covers: (apiVersion, kind, list path for the informer, namespaced).</summary>
    internal static readonly (string ApiVersion, string Kind, string Resource, bool Namespaced, string Path)[] Kinds =
    [
        ("v1", "Pod", "pods", true, "/api/v1/pods"),
        ("v1", "Service", "services", true, "/api/v1/services"),
        ("v1", "Endpoints", "endpoints", true, "/api/v1/endpoints"),
        ("v1", "ConfigMap", "configmaps", true, "/api/v1/configmaps"),
        ("v1", "Secret", "secrets", true, "/api/v1/secrets"),
        ("v1", "ServiceAccount", "serviceaccounts", true, "/api/v1/serviceaccounts"),
        ("v1", "Node", "nodes", false, "/api/v1/nodes"),
        ("apps/v1", "Deployment", "deployments", true, "/apis/apps/v1/deployments"),
        ("apps/v1", "ReplicaSet", "replicasets", true, "/apis/apps/v1/replicasets"),
        ("apps/v1", "DaemonSet", "daemonsets", true, "/apis/apps/v1/daemonsets"),
        ("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", true, "/apis/discovery.k8s.io/v1/endpointslices"),
        ("coordination.k8s.io/v1", "Lease", "leases", true, "/apis/coordination.k8s.io/v1/leases"),
    ];

    private readonly record struct OwnerRef(string ApiVersion, string Kind, string Name, string Uid, bool Block);

    private sealed record Item(int Source, string Namespace, string Name, string Uid, string ResourceVersion, OwnerRef[] Owners,
        bool Deleting, string[] Finalizers)
    {
        public bool Has(string finalizer) => Array.IndexOf(Finalizers, finalizer) >= 0;
    }

    private readonly Dictionary<string, Item> _items = new(StringComparer.Ordinal);
    /// <summary>Owner uid → dependent uids (kept even while the owner is absent: that is how dangling references are found).</summary>
    private readonly Dictionary<string, HashSet<string>> _dependents = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _items.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, o) in items)
        {
            var item = Parse(source, o);
            seen.Add(item.Uid);
            Upsert(item);
        }
        foreach (var gone in _items.Values.Where(i => i.Source == source && !seen.Contains(i.Uid)).ToList()) Remove(gone);
        // Everything with owners or a collector finalizer is worth one look once the graph is complete.
        foreach (var i in _items.Values)
            if (i.Source == source && (i.Owners.Length > 0 || i.Has(OrphanFinalizer) || i.Has(ForegroundFinalizer))) Dirty.Add(i.Uid);
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        if (obj is null) return;
        var item = Parse(source, obj);
        if (type == "DELETED")
        {
            if (_items.TryGetValue(item.Uid, out var last)) Remove(last);
            return;
        }
        Upsert(item);
    }

    private static Item Parse(int source, JsonObject o)
    {
        var m = o["metadata"];
        var owners = (m?["ownerReferences"] as JsonArray)?.OfType<JsonObject>().Select(r => new OwnerRef(
            ControllerKit.Str(r, "apiVersion"), ControllerKit.Str(r, "kind"), ControllerKit.Str(r, "name"), ControllerKit.Str(r, "uid"),
            r["blockOwnerDeletion"]?.GetValueKind() == JsonValueKind.True)).ToArray() ?? [];
        var finalizers = (m?["finalizers"] as JsonArray)?.Select(f => f?.GetValue<string>() ?? "").ToArray() ?? [];
        return new Item(source, ControllerKit.Str(m, "namespace"), ControllerKit.Str(m, "name"), ControllerKit.Str(m, "uid"),
            ControllerKit.Str(m, "resourceVersion"), owners, m?["deletionTimestamp"] is not null, finalizers);
    }

    private void Upsert(Item item)
    {
        _items.TryGetValue(item.Uid, out var before);
        _items[item.Uid] = item;
        if (before is not null)
            foreach (var o in before.Owners)
                if (!item.Owners.Any(n => n.Uid == o.Uid)) Unlink(o.Uid, item.Uid);
        foreach (var o in item.Owners)
        {
            if (!_dependents.TryGetValue(o.Uid, out var deps)) _dependents[o.Uid] = deps = new HashSet<string>(StringComparer.Ordinal);
            deps.Add(item.Uid);
        }
        if (item.Owners.Length > 0 && (before is null || !before.Owners.SequenceEqual(item.Owners) || item.Deleting != before.Deleting)) Dirty.Add(item.Uid);
        if (item.Deleting && (item.Has(OrphanFinalizer) || item.Has(ForegroundFinalizer))) Dirty.Add(item.Uid);
        // A dependent that starts deleting may be what a foreground owner waits for.
        if (item.Deleting) foreach (var o in item.Owners) Wake(o.Uid);
    }

    private void Remove(Item item)
    {
        _items.Remove(item.Uid);
        foreach (var o in item.Owners) { Unlink(o.Uid, item.Uid); Wake(o.Uid); }
        // Its dependents may now be dangling.
        if (_dependents.TryGetValue(item.Uid, out var deps)) foreach (var d in deps) Dirty.Add(d);
    }

    private void Wake(string uid)
    {
        if (_items.ContainsKey(uid)) Dirty.Add(uid);
    }

    private void Unlink(string owner, string dependent)
    {
        if (_dependents.TryGetValue(owner, out var deps) && deps.Remove(dependent) && deps.Count == 0) _dependents.Remove(owner);
    }

    protected override async Task SyncAsync(string uid, CancellationToken ct)
    {
        if (!_items.TryGetValue(uid, out var item)) return;
        if (item.Deleting)
        {
            if (item.Has(OrphanFinalizer)) await OrphanDependentsAsync(item, ct).ConfigureAwait(false);
            else if (item.Has(ForegroundFinalizer)) await DeleteDependentsAsync(item, ct).ConfigureAwait(false);
            return;
        }
        if (item.Owners.Length == 0) return;

        var dangling = new List<OwnerRef>();
        bool solid = false, waiting = false;
        foreach (var o in item.Owners)
        {
            if (_items.TryGetValue(o.Uid, out var owner))
            {
                if (owner.Deleting && owner.Has(ForegroundFinalizer)) waiting = true;
                else solid = true;
            }
            else if (await IsAbsentAsync(o, item.Namespace, ct).ConfigureAwait(false)) dangling.Add(o);
            else solid = true;
        }
        if (solid)
        {
            if (dangling.Count > 0) await PatchOwnersAsync(item, item.Owners.Where(o => !dangling.Contains(o)), ct).ConfigureAwait(false);
            return;
        }
        await DeleteAsync(item, waiting ? "Foreground" : "Background", ct).ConfigureAwait(false);
    }

    /// <summary>A live read of the owner (the graph may lag): absent when not found or a different object of that name.</summary>
    private async Task<bool> IsAbsentAsync(OwnerRef o, string ns, CancellationToken ct)
    {
        var kind = Array.FindIndex(Kinds, k => k.ApiVersion == o.ApiVersion && k.Kind == o.Kind);
        if (kind < 0) return false; // a kind this collector does not know: never collect on its account
        var k = Kinds[kind];
        string prefix = k.ApiVersion.Contains('/') ? "/apis/" + k.ApiVersion : "/api/" + k.ApiVersion;
        string path = k.Namespaced ? $"{prefix}/namespaces/{ns}/{k.Resource}/{o.Name}" : $"{prefix}/{k.Resource}/{o.Name}";
        try
        {
            var live = await Api.GetAsync(path, ct).ConfigureAwait(false);
            return ControllerKit.Str(live["metadata"], "uid") != o.Uid;
        }
        catch (ApiError e) when (e.IsNotFound) { return true; }
    }

    private async Task OrphanDependentsAsync(Item owner, CancellationToken ct)
    {
        if (_dependents.TryGetValue(owner.Uid, out var deps))
            foreach (var d in deps.ToList())
                if (_items.TryGetValue(d, out var dep)) await PatchOwnersAsync(dep, dep.Owners.Where(o => o.Uid != owner.Uid), ct).ConfigureAwait(false);
        await RemoveFinalizerAsync(owner, OrphanFinalizer, ct).ConfigureAwait(false);
    }

    private async Task DeleteDependentsAsync(Item owner, CancellationToken ct)
    {
        bool blocked = false;
        if (_dependents.TryGetValue(owner.Uid, out var deps))
            foreach (var d in deps.ToList())
            {
                if (!_items.TryGetValue(d, out var dep)) continue;
                if (dep.Owners.FirstOrDefault(o => o.Uid == owner.Uid).Block) blocked = true;
                if (!dep.Deleting) await DeleteAsync(dep, "Foreground", ct).ConfigureAwait(false);
            }
        // Each blocking dependent's disappearance wakes the owner again.
        if (!blocked) await RemoveFinalizerAsync(owner, ForegroundFinalizer, ct).ConfigureAwait(false);
    }

    private string PathOf(Item item)
    {
        var k = Kinds[item.Source];
        string prefix = k.ApiVersion.Contains('/') ? "/apis/" + k.ApiVersion : "/api/" + k.ApiVersion;
        return k.Namespaced ? $"{prefix}/namespaces/{item.Namespace}/{k.Resource}/{item.Name}" : $"{prefix}/{k.Resource}/{item.Name}";
    }

    private async Task DeleteAsync(Item item, string policy, CancellationToken ct)
    {
        try
        {
            await Api.DeleteAsync(PathOf(item), new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "DeleteOptions", ["propagationPolicy"] = policy,
                ["preconditions"] = new JsonObject { ["uid"] = item.Uid },
            }, ct).ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsNotFound || e.IsConflict) { }
    }

    private async Task PatchOwnersAsync(Item item, IEnumerable<OwnerRef> keep, CancellationToken ct)
    {
        var refs = new JsonArray();
        foreach (var o in keep)
        {
            var r = new JsonObject { ["apiVersion"] = o.ApiVersion, ["kind"] = o.Kind, ["name"] = o.Name, ["uid"] = o.Uid };
            if (o.Block) r["blockOwnerDeletion"] = true;
            refs.Add((JsonNode)r);
        }
        // The controller flag must survive: take it from the live references by uid.
        await MergePatchAsync(item, m =>
        {
            var live = (m["ownerReferences"] as JsonArray)?.OfType<JsonObject>().ToDictionary(r => ControllerKit.Str(r, "uid"), StringComparer.Ordinal);
            foreach (var r in refs.OfType<JsonObject>())
                if (live?.GetValueOrDefault(ControllerKit.Str(r, "uid")) is { } l && l["controller"] is { } c) r["controller"] = c.DeepClone();
            return new JsonObject { ["ownerReferences"] = refs.Count == 0 ? null : refs };
        }, ct).ConfigureAwait(false);
    }

    private Task RemoveFinalizerAsync(Item item, string finalizer, CancellationToken ct) =>
        MergePatchAsync(item, m =>
        {
            var rest = (m["finalizers"] as JsonArray)?.Select(f => f?.GetValue<string>() ?? "").Where(f => f != finalizer).ToList() ?? [];
            return new JsonObject { ["finalizers"] = rest.Count == 0 ? null : new JsonArray([.. rest.Select(f => (JsonNode)JsonValue.Create(f))]) };
        }, ct);

    /// <summary>A merge patch of metadata computed from the live object, guarded by its resourceVersion and uid; a conflict re-reads.</summary>
    private async Task MergePatchAsync(Item item, Func<JsonObject, JsonObject> patchOf, CancellationToken ct)
    {
        string path = PathOf(item);
        for (int attempt = 0; attempt < 5; attempt++)
        {
            JsonObject live;
            try { live = await Api.GetAsync(path, ct).ConfigureAwait(false); }
            catch (ApiError e) when (e.IsNotFound) { return; }
            var m = live["metadata"]!.AsObject();
            if (ControllerKit.Str(m, "uid") != item.Uid) return;
            var patch = patchOf(m);
            patch["resourceVersion"] = m["resourceVersion"]!.DeepClone();
            patch["uid"] = item.Uid;
            try
            {
                await Api.PatchAsync(path, new JsonObject { ["metadata"] = patch }, ct, "application/merge-patch+json").ConfigureAwait(false);
                return;
            }
            catch (ApiError e) when (e.IsNotFound) { return; }
            catch (ApiError e) when (e.IsConflict) { }
        }
        throw new ApiError(409, "Conflict", $"{path}: the object kept changing");
    }
}
