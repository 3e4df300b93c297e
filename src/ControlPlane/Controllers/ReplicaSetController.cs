using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The ReplicaSet controller (pkg/controller/replicaset), as a client of the API: informers on
/// ReplicaSets and pods feed one loop that owns the cache; each changed ReplicaSet is synced level-
/// triggered: its pods are those it controls (ownerReferences) plus matching orphans it adopts,
/// minus controlled pods that no longer match (released); missing replicas are created from the
/// template in slow-start batches (1, 2, 4, ...), surplus ones deleted in upstream's order
/// (unscheduled, pending, not ready, then newest first); expectations keep a slow watch from
/// causing double creation; status (replicas, fullyLabeledReplicas, readyReplicas,
/// availableReplicas, observedGeneration) is written through the status subresource on change.
/// Tests: NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed class ReplicaSetController(ApiClient api, TimeProvider time, ILogger<ReplicaSetController> log)
    : ControllerLoop(api, time, log, "/apis/apps/v1/replicasets", "/api/v1/pods")
{
    private static readonly TimeSpan ExpectationTimeout = TimeSpan.FromMinutes(5);

    private readonly Dictionary<string, JsonObject> _sets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _pods = new(StringComparer.Ordinal);
    /// <summary>Creates and deletes issued but not yet seen by the pod watch, per ReplicaSet (upstream's expectations).</summary>
    private readonly Dictionary<string, (int Adds, HashSet<string> Deletes, DateTimeOffset Since)> _expect = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _sets.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        if (source == 0)
        {
            _sets.Clear();
            foreach (var (k, o) in items) { _sets[k] = o; Dirty.Add(k); }
            return;
        }
        _pods.Clear();
        foreach (var (k, o) in items) _pods[k] = o;
        foreach (var k in _sets.Keys) Dirty.Add(k);
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        if (source == 0)
        {
            if (type == "DELETED") { _sets.Remove(key); _expect.Remove(key); }
            else { _sets[key] = obj!; Dirty.Add(key); }
            return;
        }
        _pods.TryGetValue(key, out var before);
        if (type == "DELETED") _pods.Remove(key); else _pods[key] = obj!;
        foreach (var owner in AffectedSets(key, before, obj))
        {
            if (_expect.TryGetValue(owner, out var e))
            {
                if (type == "ADDED" && e.Adds > 0) e.Adds--;
                // As upstream: a pod marked for deletion counts as deleted (its grace period may be long).
                if (type == "DELETED" || obj?["metadata"]?["deletionTimestamp"] is not null) e.Deletes.Remove(key);
                _expect[owner] = e;
            }
            Dirty.Add(owner);
        }
    }

    /// <summary>The ReplicaSets a pod change concerns: its controller (before and after), or, for an orphan, every set in its namespace that selects it.</summary>
    private IEnumerable<string> AffectedSets(string podKey, JsonObject? before, JsonObject? after)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in (JsonObject?[])[before, after])
        {
            if (p is null) continue;
            string ns = p["metadata"]?["namespace"]?.GetValue<string>() ?? "";
            if (ControllerOf(p) is { } owner)
            {
                if (owner.Kind == "ReplicaSet") result.Add(ns + "/" + owner.Name);
                continue;
            }
            foreach (var (key, rs) in _sets)
                if (key.StartsWith(ns + "/", StringComparison.Ordinal) && Selects(rs, p)) result.Add(key);
        }
        return result;
    }

    protected override async Task SyncAsync(string key, CancellationToken ct)
    {
        if (!_sets.TryGetValue(key, out var rs)) return;
        var meta = rs["metadata"]!.AsObject();
        string ns = meta["namespace"]!.GetValue<string>(), name = meta["name"]!.GetValue<string>(), uid = meta["uid"]!.GetValue<string>();
        bool deleting = meta["deletionTimestamp"] is not null;

        // Claim: controlled pods that still match, plus matching orphans (adopted); release the rest.
        var mine = new List<JsonObject>();
        foreach (var (pk, pod) in _pods)
        {
            if (!pk.StartsWith(ns + "/", StringComparison.Ordinal)) continue;
            var owner = ControllerOf(pod);
            bool matches = Selects(rs, pod);
            if (owner is { } o && o.Uid == uid)
            {
                if (matches || deleting) mine.Add(pod);
                else await PatchOwnerAsync(pod, null, ct).ConfigureAwait(false);
            }
            else if (owner is null && matches && !deleting && pod["metadata"]?["deletionTimestamp"] is null)
            {
                await PatchOwnerAsync(pod, OwnerRef(rs), ct).ConfigureAwait(false);
                mine.Add(pod);
            }
        }
        var active = mine.Where(p => p["metadata"]?["deletionTimestamp"] is null && Phase(p) is not ("Succeeded" or "Failed")).ToList();

        if (!deleting && Satisfied(key))
        {
            int want = (int)(rs["spec"]?["replicas"]?.GetValue<long>() ?? 1);
            int diff = want - active.Count;
            if (diff > 0) await CreateAsync(key, rs, diff, ct).ConfigureAwait(false);
            else if (diff < 0) await DeleteAsync(key, Rank(active).Take(-diff).ToList(), ct).ConfigureAwait(false);
        }
        await UpdateStatusAsync(rs, active, ct).ConfigureAwait(false);
    }

    private bool Satisfied(string key)
    {
        if (!_expect.TryGetValue(key, out var e)) return true;
        if ((e.Adds <= 0 && e.Deletes.Count == 0) || Time.GetUtcNow() - e.Since > ExpectationTimeout)
        {
            _expect.Remove(key);
            return true;
        }
        return false;
    }

    /// <summary>Creates in slow-start batches (1, 2, 4, ...): a template that cannot be created fails after one call, not hundreds.</summary>
    private async Task CreateAsync(string key, JsonObject rs, int count, CancellationToken ct)
    {
        string ns = rs["metadata"]!["namespace"]!.GetValue<string>();
        var template = rs["spec"]?["template"] as JsonObject ?? new JsonObject();
        _expect[key] = (count, new HashSet<string>(StringComparer.Ordinal), Time.GetUtcNow());
        int created = 0;
        for (int batch = 1; created < count; batch = Math.Min(batch * 2, 500))
        {
            int n = Math.Min(batch, count - created);
            var results = await Task.WhenAll(Enumerable.Range(0, n).Select(async _ =>
            {
                var meta = (template["metadata"] as JsonObject)?.DeepClone().AsObject() ?? new JsonObject();
                meta.Remove("name");
                meta["generateName"] = rs["metadata"]!["name"]!.GetValue<string>() + "-";
                meta["namespace"] = ns;
                meta["ownerReferences"] = new JsonArray((JsonNode)OwnerRef(rs));
                try
                {
                    await Api.CreateAsync($"/api/v1/namespaces/{ns}/pods", new JsonObject
                    {
                        ["apiVersion"] = "v1", ["kind"] = "Pod", ["metadata"] = meta, ["spec"] = template["spec"]?.DeepClone() ?? new JsonObject(),
                    }, ct).ConfigureAwait(false);
                    return null;
                }
                catch (ApiError e) { return e; }
            })).ConfigureAwait(false);
            created += n;
            var failed = results.Where(e => e is not null).ToList();
            if (failed.Count > 0)
            {
                // What was not created will not be observed: lower the expectation by it, and say why.
                var e = _expect[key];
                _expect[key] = (e.Adds - failed.Count - (count - created), e.Deletes, e.Since);
                await EventAsync(rs, "Warning", "FailedCreate", $"Error creating: {failed[0]!.Message}", ct).ConfigureAwait(false);
                return;
            }
        }
        await EventAsync(rs, "Normal", "SuccessfulCreate", $"Created {count} pod(s)", ct).ConfigureAwait(false);
    }

    private async Task DeleteAsync(string key, List<JsonObject> victims, CancellationToken ct)
    {
        var names = victims.Select(p => p["metadata"]!["namespace"]!.GetValue<string>() + "/" + p["metadata"]!["name"]!.GetValue<string>()).ToHashSet(StringComparer.Ordinal);
        _expect[key] = (0, names, Time.GetUtcNow());
        await Task.WhenAll(victims.Select(async p =>
        {
            var m = p["metadata"]!;
            try { await Api.DeleteAsync($"/api/v1/namespaces/{m["namespace"]}/pods/{m["name"]}", null, ct).ConfigureAwait(false); }
            catch (ApiError e) when (e.IsNotFound) { }
        })).ConfigureAwait(false);
    }

    /// <summary>Upstream's deletion order (ActivePods): unscheduled, then pending, not ready, restarted more, newer first.</summary>
    private static IEnumerable<JsonObject> Rank(List<JsonObject> pods) => pods
        .OrderBy(p => string.IsNullOrEmpty(p["spec"]?["nodeName"]?.GetValue<string>()) ? 0 : 1)
        .ThenBy(p => Phase(p) switch { "Pending" => 0, "Unknown" => 1, "Running" => 2, _ => 3 })
        .ThenBy(p => IsReady(p) ? 1 : 0)
        .ThenByDescending(p => (p["status"]?["containerStatuses"] as JsonArray)?.OfType<JsonObject>().Sum(c => c["restartCount"]?.GetValue<int>() ?? 0) ?? 0)
        .ThenByDescending(p => p["metadata"]?["creationTimestamp"]?.GetValue<string>() ?? "", StringComparer.Ordinal);

    private async Task UpdateStatusAsync(JsonObject rs, List<JsonObject> active, CancellationToken ct)
    {
        var template = rs["spec"]?["template"]?["metadata"]?["labels"] as JsonObject;
        int minReady = (int)(rs["spec"]?["minReadySeconds"]?.GetValue<long>() ?? 0);
        var now = Time.GetUtcNow();
        int ready = 0, available = 0, labeled = 0;
        foreach (var p in active)
        {
            if (template is null || template.All(kv => p["metadata"]?["labels"]?[kv.Key]?.GetValue<string>() == kv.Value?.GetValue<string>())) labeled++;
            if (!IsReady(p, out var since)) continue;
            ready++;
            if (minReady == 0 || since is { } s && now - s >= TimeSpan.FromSeconds(minReady)) available++;
        }
        var status = rs["status"] as JsonObject;
        long generation = rs["metadata"]?["generation"]?.GetValue<long>() ?? 0;
        if (status?["replicas"]?.GetValue<long>() == active.Count && status["readyReplicas"]?.GetValue<long>() == ready
            && status["availableReplicas"]?.GetValue<long>() == available && status["fullyLabeledReplicas"]?.GetValue<long>() == labeled
            && status["observedGeneration"]?.GetValue<long>() == generation)
            return;
        var m = rs["metadata"]!;
        try
        {
            await Api.PatchAsync($"/apis/apps/v1/namespaces/{m["namespace"]}/replicasets/{m["name"]}/status", new JsonObject
            {
                ["status"] = new JsonObject
                {
                    ["replicas"] = active.Count, ["fullyLabeledReplicas"] = labeled, ["readyReplicas"] = ready,
                    ["availableReplicas"] = available, ["observedGeneration"] = generation,
                },
            }, ct, "application/merge-patch+json").ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsNotFound) { }
        // Pods that become available only after minReadySeconds: look again then.
        if (minReady > 0 && ready > available)
        {
            Later(m["namespace"] + "/" + m["name"], TimeSpan.FromSeconds(minReady));
        }
    }

    private Task PatchOwnerAsync(JsonObject pod, JsonObject? owner, CancellationToken ct)
    {
        var m = pod["metadata"]!;
        return ControllerKit.SetControllerAsync(Api, $"/api/v1/namespaces/{m["namespace"]}/pods/{m["name"]}", pod, owner, exact: false, ct);
    }

    private Task EventAsync(JsonObject rs, string type, string reason, string message, CancellationToken ct) =>
        ControllerKit.EventAsync(Api, Time, "replicaset-controller", rs, "apps/v1", "ReplicaSet", type, reason, message, ct);

    private static JsonObject OwnerRef(JsonObject rs) => ControllerKit.ControllerRef(rs, "apps/v1", "ReplicaSet");

    private static ControllerKit.Owner? ControllerOf(JsonObject obj) => ControllerKit.ControllerOf(obj);

    private static string Phase(JsonObject pod) => pod["status"]?["phase"]?.GetValue<string>() ?? "Pending";

    private static bool IsReady(JsonObject pod) => IsReady(pod, out _);

    private static bool IsReady(JsonObject pod, out DateTimeOffset? since)
    {
        since = null;
        var ready = (pod["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c["type"]?.GetValue<string>() == "Ready");
        if (ready?["status"]?.GetValue<string>() != "True") return false;
        if (DateTimeOffset.TryParse(ready["lastTransitionTime"]?.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AssumeUniversal, out var t)) since = t;
        return true;
    }

    /// <summary>spec.selector (matchLabels, matchExpressions) against the pod's labels; a missing or empty selector selects nothing.</summary>
    public static bool Selects(JsonObject rs, JsonObject pod) => Selector.OfLabelSelector(rs["spec"]?["selector"]).Matches(pod);
}
