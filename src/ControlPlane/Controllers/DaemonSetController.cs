using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Api.Scheduling;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The DaemonSet controller (pkg/controller/daemon), as a client of the API: one pod per eligible
/// node. A node is eligible when the template's nodeSelector and required node affinity match it
/// and it has no NoSchedule/NoExecute taint the pod does not tolerate; the pods get upstream's
/// daemon tolerations (not-ready and unreachable NoExecute; disk/memory/pid pressure and
/// unschedulable NoSchedule; network-unavailable for hostNetwork) and are pinned to their node
/// with required node affinity on metadata.name, so the scheduler binds them. A pod stays on a
/// node that became ineligible only through a NoSchedule taint (as upstream: only NoExecute
/// evicts). Failed pods and extra pods are deleted. RollingUpdate replaces pods of an older
/// template (controller-revision-hash label) at most maxUnavailable at a time, deleting first;
/// OnDelete waits for the user. Expectations keep a slow watch from causing double creation.
/// Each template is kept as a ControllerRevision (kubectl rollout history ds / rollout undo ds).
/// Tests: NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed class DaemonSetController(ApiClient api, TimeProvider time, ILogger<DaemonSetController> log)
    : ControllerLoop(api, time, log, "/apis/apps/v1/daemonsets", "/api/v1/nodes", "/api/v1/pods", "/apis/apps/v1/controllerrevisions")
{
    public const string HashLabel = "controller-revision-hash";
    private const int Sets = 0, Nodes = 1, Pods = 2, Revisions = 3;
    private readonly Dictionary<string, JsonObject> _revisions = new(StringComparer.Ordinal);
    private static readonly TimeSpan ExpectationTimeout = TimeSpan.FromMinutes(5);

    private readonly Dictionary<string, JsonObject> _sets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _pods = new(StringComparer.Ordinal);
    /// <summary>Creates and deletes issued but not yet seen, per DaemonSet.</summary>
    private readonly Dictionary<string, (int Adds, HashSet<string> Deletes, DateTimeOffset Since)> _expect = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _sets.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        var target = source switch { Sets => _sets, Nodes => _nodes, Pods => _pods, _ => _revisions };
        target.Clear();
        foreach (var (k, o) in items) target[k] = o;
        foreach (var k in _sets.Keys) Dirty.Add(k);
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        bool deleted = type == "DELETED";
        switch (source)
        {
            case Sets:
                if (deleted) { _sets.Remove(key); _expect.Remove(key); }
                else { _sets[key] = obj!; Dirty.Add(key); }
                break;
            case Nodes:
                if (deleted) _nodes.Remove(key); else _nodes[key] = obj!;
                foreach (var k in _sets.Keys) Dirty.Add(k); // labels, taints or readiness may have changed eligibility
                break;
            case Revisions:
                if (deleted) _revisions.Remove(key); else _revisions[key] = obj!;
                if (obj is not null && ControllerKit.ControllerOf(obj) is { Kind: "DaemonSet" } dsOwner)
                    Dirty.Add(ControllerKit.Str(obj["metadata"], "namespace") + "/" + dsOwner.Name);
                break;
            default:
                if (deleted) _pods.Remove(key); else _pods[key] = obj!;
                if (obj is null || ControllerKit.ControllerOf(obj) is not { Kind: "DaemonSet" } owner) return;
                string setKey = ControllerKit.Str(obj["metadata"], "namespace") + "/" + owner.Name;
                if (_expect.TryGetValue(setKey, out var e))
                {
                    if (type == "ADDED" && e.Adds > 0) e.Adds--;
                    if (deleted || obj["metadata"]?["deletionTimestamp"] is not null) e.Deletes.Remove(key);
                    _expect[setKey] = e;
                }
                Dirty.Add(setKey);
                break;
        }
    }

    private bool Satisfied(string key)
    {
        if (!_expect.TryGetValue(key, out var e)) return true;
        if ((e.Adds <= 0 && e.Deletes.Count == 0) || Time.GetUtcNow() - e.Since > ExpectationTimeout) { _expect.Remove(key); return true; }
        return false;
    }

    /// <summary>The tolerations upstream's DaemonSet controller adds to its pods.</summary>
    private static void AddDaemonTolerations(JsonObject spec)
    {
        var list = spec["tolerations"] as JsonArray ?? [];
        spec["tolerations"] = list;
        void Add(string key, string effect)
        {
            if (list.OfType<JsonObject>().Any(t => ControllerKit.Str(t, "key") == key && ControllerKit.Str(t, "effect") == effect)) return;
            list.Add((JsonNode)new JsonObject { ["key"] = key, ["operator"] = "Exists", ["effect"] = effect });
        }
        Add("node.kubernetes.io/not-ready", "NoExecute");
        Add("node.kubernetes.io/unreachable", "NoExecute");
        Add("node.kubernetes.io/disk-pressure", "NoSchedule");
        Add("node.kubernetes.io/memory-pressure", "NoSchedule");
        Add("node.kubernetes.io/pid-pressure", "NoSchedule");
        Add("node.kubernetes.io/unschedulable", "NoSchedule");
        if (spec["hostNetwork"]?.GetValueKind() == JsonValueKind.True) Add("node.kubernetes.io/network-unavailable", "NoSchedule");
    }

    /// <summary>The node a daemon pod is for: its nodeName, or the metadata.name its required affinity pins.</summary>
    private static string TargetNode(JsonObject pod)
    {
        if (ControllerKit.Str(pod["spec"], "nodeName") is { Length: > 0 } n) return n;
        var terms = pod["spec"]?["affinity"]?["nodeAffinity"]?["requiredDuringSchedulingIgnoredDuringExecution"]?["nodeSelectorTerms"] as JsonArray;
        foreach (var term in terms?.OfType<JsonObject>() ?? [])
            foreach (var f in (term["matchFields"] as JsonArray)?.OfType<JsonObject>() ?? [])
                if (ControllerKit.Str(f, "key") == "metadata.name" && f["values"] is JsonArray { Count: 1 } v) return v[0]?.GetValue<string>() ?? "";
        return "";
    }

    protected override async Task SyncAsync(string key, CancellationToken ct)
    {
        if (!_sets.TryGetValue(key, out var ds) || ds["metadata"]?["deletionTimestamp"] is not null) return;
        var meta = ds["metadata"]!;
        string ns = ControllerKit.Str(meta, "namespace"), uid = ControllerKit.Str(meta, "uid");
        var template = ds["spec"]?["template"] as JsonObject ?? new JsonObject();
        string hash = DeploymentController.TemplateHash(template, 0);
        var podSpec = (JsonObject)(template["spec"]?.DeepClone() ?? new JsonObject());
        AddDaemonTolerations(podSpec);
        Pod typed;
        try { typed = new JsonObject { ["metadata"] = template["metadata"]?.DeepClone(), ["spec"] = podSpec.DeepClone() }.Deserialize(ApiJsonContext.Default.Pod)!; }
        catch (JsonException e)
        {
            await EventAsync(ds, "Warning", "FailedCreate", $"invalid pod template: {e.Message}", ct).ConfigureAwait(false);
            return;
        }

        // This set's pods by node (live ones; failed ones are deleted and replaced).
        var byNode = new Dictionary<string, List<JsonObject>>(StringComparer.Ordinal);
        var failed = new List<JsonObject>();
        foreach (var (pk, pod) in _pods)
        {
            if (!pk.StartsWith(ns + "/", StringComparison.Ordinal) || ControllerKit.ControllerOf(pod)?.Uid != uid) continue;
            if (ControllerKit.Str(pod["status"], "phase") == "Failed") { failed.Add(pod); continue; }
            string node = TargetNode(pod);
            if (!byNode.TryGetValue(node, out var list)) byNode[node] = list = [];
            list.Add(pod);
        }

        // Its history, keeping the revisions its pods (these, failed ones included) still run.
        var inUse = byNode.Values.SelectMany(l => l).Concat(failed).Select(p => ControllerKit.Str(p["metadata"]?["labels"], HashLabel)).ToHashSet(StringComparer.Ordinal);
        await HistoryAsync(ds, template, hash, inUse, ct).ConfigureAwait(false);

        var create = new List<string>();
        var delete = new List<JsonObject>(failed.Where(p => p["metadata"]?["deletionTimestamp"] is null));
        var old = new List<JsonObject>();
        int desired = 0, scheduled = 0, misscheduled = 0, ready = 0, available = 0, updated = 0, unavailable = 0;
        int minReady = (int)ControllerKit.Long(ds["spec"], "minReadySeconds");
        var now = Time.GetUtcNow();
        foreach (var (name, node) in _nodes)
        {
            var labels = PodPredicates.LabelsOf(node);
            var taints = Taint.Of(node);
            bool fits = PodPredicates.MatchesNodeSelectorAndAffinity(typed, name, labels);
            bool shouldRun = fits && taints.All(t => t.Effect is not ("NoSchedule" or "NoExecute") || PodPredicates.Tolerates(typed.Spec.Tolerations, t));
            bool mayContinue = fits && taints.All(t => t.Effect != "NoExecute" || PodPredicates.Tolerates(typed.Spec.Tolerations, t));
            var pods = byNode.GetValueOrDefault(name)?.Where(p => p["metadata"]?["deletionTimestamp"] is null)
                .OrderBy(p => ControllerKit.Str(p["metadata"], "creationTimestamp"), StringComparer.Ordinal).ToList() ?? [];
            bool terminating = byNode.GetValueOrDefault(name)?.Any(p => p["metadata"]?["deletionTimestamp"] is not null) == true;
            if (shouldRun) desired++;
            if (pods.Count > 0 && (shouldRun || mayContinue))
            {
                if (shouldRun) scheduled++; else misscheduled++;
                delete.AddRange(pods.Skip(1)); // one per node: the oldest stays
                var pod = pods[0];
                bool isReady = IsReady(pod, out var since);
                bool isAvailable = isReady && (minReady == 0 || since is { } s && now - s >= TimeSpan.FromSeconds(minReady));
                if (isReady) ready++;
                if (isAvailable) available++; else if (shouldRun) unavailable++;
                if (ControllerKit.Str(pod["metadata"]?["labels"], HashLabel) == hash) updated++; else old.Add(pod);
                if (minReady > 0 && isReady && !isAvailable) Later(key, TimeSpan.FromSeconds(minReady));
            }
            else if (pods.Count > 0) { misscheduled++; delete.AddRange(pods); }
            else if (shouldRun)
            {
                unavailable++;
                if (!terminating) create.Add(name); // a pod still ending on that node is waited for
            }
        }

        if (Satisfied(key))
        {
            // RollingUpdate: old pods go while the unavailable count allows (the replacement follows their deletion).
            var strategy = ds["spec"]?["updateStrategy"];
            if ((ControllerKit.Str(strategy, "type") is "" or "RollingUpdate") && old.Count > 0)
            {
                int maxUnavailable = MaxUnavailable(strategy?["rollingUpdate"]?["maxUnavailable"], desired);
                // Unavailable old pods first: replacing them costs nothing.
                foreach (var pod in old.OrderBy(p => IsReady(p, out _) ? 1 : 0))
                {
                    bool podAvailable = IsReady(pod, out _);
                    if (podAvailable && unavailable >= maxUnavailable) break;
                    delete.Add(pod);
                    if (podAvailable) unavailable++;
                }
            }
            if (create.Count > 0 || delete.Count > 0)
            {
                _expect[key] = (create.Count, delete.Select(p => ControllerKit.Str(p["metadata"], "namespace") + "/" + ControllerKit.Str(p["metadata"], "name")).ToHashSet(StringComparer.Ordinal), now);
                await CreateAsync(key, ds, podSpec, hash, create, ct).ConfigureAwait(false);
                await Task.WhenAll(delete.Select(p => DeleteAsync(p, ct))).ConfigureAwait(false);
            }
        }
        await UpdateStatusAsync(ds, desired, scheduled, misscheduled, ready, available, updated, unavailable, ct).ConfigureAwait(false);
    }

    private static int MaxUnavailable(JsonNode? value, int desired)
    {
        if (value is null) return 1;
        if (value.GetValueKind() == JsonValueKind.Number) return Math.Max(0, value.GetValue<int>());
        string s = value.GetValue<string>();
        if (s.EndsWith('%') && int.TryParse(s[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out int pct))
            return Math.Max(1, desired * pct / 100); // rounded down, but at least one so an update can progress
        return int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : 1;
    }

    private async Task CreateAsync(string key, JsonObject ds, JsonObject podSpec, string hash, List<string> nodes, CancellationToken ct)
    {
        if (nodes.Count == 0) return;
        string ns = ControllerKit.Str(ds["metadata"], "namespace"), name = ControllerKit.Str(ds["metadata"], "name");
        var template = ds["spec"]?["template"] as JsonObject ?? new JsonObject();
        int done = 0;
        ApiError? error = null;
        // Slow start (1, 2, 4, ...): a template the API rejects fails once, not once per node.
        for (int batch = 1; done < nodes.Count && error is null; batch = Math.Min(batch * 2, 500))
        {
            var slice = nodes.Skip(done).Take(batch).ToList();
            done += slice.Count;
            var errors = await Task.WhenAll(slice.Select(async node =>
            {
                var meta = (template["metadata"] as JsonObject)?.DeepClone().AsObject() ?? new JsonObject();
                meta.Remove("name");
                meta["generateName"] = name + "-";
                meta["namespace"] = ns;
                var labels = meta["labels"] as JsonObject ?? new JsonObject();
                labels[HashLabel] = hash;
                meta["labels"] = labels;
                meta["ownerReferences"] = new JsonArray((JsonNode)ControllerKit.ControllerRef(ds, "apps/v1", "DaemonSet"));
                var spec = (JsonObject)podSpec.DeepClone();
                PinToNode(spec, node);
                try
                {
                    await Api.CreateAsync($"/api/v1/namespaces/{ns}/pods", new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Pod", ["metadata"] = meta, ["spec"] = spec }, ct)
                        .ConfigureAwait(false);
                    return null;
                }
                catch (ApiError e) { return e; }
            })).ConfigureAwait(false);
            error = errors.FirstOrDefault(e => e is not null);
            if (error is not null)
            {
                var e = _expect[key];
                _expect[key] = (e.Adds - errors.Count(x => x is not null) - (nodes.Count - done), e.Deletes, e.Since);
            }
        }
        if (error is not null) await EventAsync(ds, "Warning", "FailedCreate", $"Error creating: {error.Message}", ct).ConfigureAwait(false);
        else await EventAsync(ds, "Normal", "SuccessfulCreate", $"Created {nodes.Count} pod(s)", ct).ConfigureAwait(false);
    }

    /// <summary>Required node affinity on metadata.name replaces the template's own (already checked against the node), as upstream does.</summary>
    private static void PinToNode(JsonObject spec, string node)
    {
        var affinity = spec["affinity"] as JsonObject ?? new JsonObject();
        spec["affinity"] = affinity;
        var nodeAffinity = affinity["nodeAffinity"] as JsonObject ?? new JsonObject();
        affinity["nodeAffinity"] = nodeAffinity;
        nodeAffinity["requiredDuringSchedulingIgnoredDuringExecution"] = new JsonObject
        {
            ["nodeSelectorTerms"] = new JsonArray((JsonNode)new JsonObject
            {
                ["matchFields"] = new JsonArray((JsonNode)new JsonObject { ["key"] = "metadata.name", ["operator"] = "In", ["values"] = new JsonArray(node) }),
            }),
        };
    }

    private async Task DeleteAsync(JsonObject pod, CancellationToken ct)
    {
        var m = pod["metadata"]!;
        try { await Api.DeleteAsync($"/api/v1/namespaces/{m["namespace"]}/pods/{m["name"]}", null, ct).ConfigureAwait(false); }
        catch (ApiError e) when (e.IsNotFound) { }
    }

    private async Task UpdateStatusAsync(JsonObject ds, int desired, int scheduled, int misscheduled, int ready, int available, int updated, int unavailable, CancellationToken ct)
    {
        (string Field, long Value)[] fields =
        [
            ("currentNumberScheduled", scheduled), ("numberMisscheduled", misscheduled), ("desiredNumberScheduled", desired),
            ("numberReady", ready), ("observedGeneration", ControllerKit.Long(ds["metadata"], "generation")), ("updatedNumberScheduled", updated),
            ("numberAvailable", available), ("numberUnavailable", unavailable),
        ];
        if (fields.All(f => ControllerKit.Long(ds["status"], f.Field) == f.Value)) return;
        var status = new JsonObject();
        foreach (var (field, value) in fields) status[field] = value;
        var m = ds["metadata"]!;
        try
        {
            await Api.PatchAsync($"/apis/apps/v1/namespaces/{m["namespace"]}/daemonsets/{m["name"]}/status", new JsonObject { ["status"] = status }, ct,
                "application/merge-patch+json").ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsNotFound) { }
    }

    private static bool IsReady(JsonObject pod, out DateTimeOffset? since)
    {
        since = null;
        var c = (pod["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => ControllerKit.Str(c, "type") == "Ready");
        if (ControllerKit.Str(c, "status") != "True") return false;
        since = NodeAgent.Api.Meta.ApiTime.TryParse(ControllerKit.Str(c, "lastTransitionTime"));
        return true;
    }

    /// <summary>
    /// The set's history, as upstream keeps it (what kubectl rollout history/undo ds read): one
    /// ControllerRevision per template, named &lt;set&gt;-&lt;hash&gt;, labelled with the template's
    /// labels and the hash, controlled by the set, holding the template as a strategic-merge patch
    /// (<c>{"spec":{"template":{..., "$patch":"replace"}}}</c>) and a revision number. The current
    /// template's revision is the highest (an older one becoming current again, as after
    /// kubectl rollout undo, gets the next number); beyond spec.revisionHistoryLimit (10) the oldest
    /// others are deleted.
    /// </summary>
    private async Task HistoryAsync(JsonObject ds, JsonObject template, string hash, HashSet<string> inUse, CancellationToken ct)
    {
        var meta = ds["metadata"]!;
        string ns = ControllerKit.Str(meta, "namespace"), name = ControllerKit.Str(meta, "name"), uid = ControllerKit.Str(meta, "uid");
        var mine = _revisions.Values.Where(r => ControllerKit.Str(r["metadata"], "namespace") == ns && ControllerKit.ControllerOf(r)?.Uid == uid).ToList();
        long max = mine.Count == 0 ? 0 : mine.Max(r => ControllerKit.Long(r, "revision"));
        string revName = $"{name}-{hash}";
        var current = mine.FirstOrDefault(r => ControllerKit.Str(r["metadata"], "name") == revName);
        try
        {
            if (current is null)
            {
                var labels = (template["metadata"]?["labels"] as JsonObject)?.DeepClone() as JsonObject ?? new JsonObject();
                labels[HashLabel] = hash;
                var data = (JsonObject)template.DeepClone();
                data["$patch"] = "replace";
                await Api.CreateAsync($"/apis/apps/v1/namespaces/{ns}/controllerrevisions", new JsonObject
                {
                    ["apiVersion"] = "apps/v1", ["kind"] = "ControllerRevision",
                    ["metadata"] = new JsonObject
                    {
                        ["name"] = revName, ["namespace"] = ns, ["labels"] = labels,
                        ["ownerReferences"] = new JsonArray((JsonNode)ControllerKit.ControllerRef(ds, "apps/v1", "DaemonSet")),
                    },
                    ["data"] = new JsonObject { ["spec"] = new JsonObject { ["template"] = data } },
                    ["revision"] = max + 1,
                }, ct).ConfigureAwait(false);
                return; // its watch event brings the next sync, which trims the history
            }
            if (ControllerKit.Long(current, "revision") < max)
            {
                await Api.PatchAsync($"/apis/apps/v1/namespaces/{ns}/controllerrevisions/{revName}", new JsonObject { ["revision"] = max + 1 }, ct,
                    "application/merge-patch+json").ConfigureAwait(false);
                return;
            }
            int limit = (int)ControllerKit.Long(ds["spec"], "revisionHistoryLimit", 10);
            var others = mine.Where(r => !ReferenceEquals(r, current) && !inUse.Contains(ControllerKit.Str(r["metadata"]?["labels"], HashLabel)))
                .OrderBy(r => ControllerKit.Long(r, "revision")).ToList();
            foreach (var r in others.Take(Math.Max(0, others.Count - limit)))
                await Api.DeleteAsync($"/apis/apps/v1/namespaces/{ns}/controllerrevisions/{ControllerKit.Str(r["metadata"], "name")}", null, ct).ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsConflict || e.IsNotFound) { } // written or removed meanwhile: the watch tells
    }

    private Task EventAsync(JsonObject ds, string type, string reason, string message, CancellationToken ct) =>
        ControllerKit.EventAsync(Api, Time, "daemonset-controller", ds, "apps/v1", "DaemonSet", type, reason, message, ct);
}
