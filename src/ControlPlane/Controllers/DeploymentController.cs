using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Meta;
using static NodeAgent.ControlPlane.Controllers.ControllerKit;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The Deployment controller (pkg/controller/deployment), as a client of the API: one loop owns
/// the Deployments and ReplicaSets its informers deliver. Per Deployment, level-triggered: the
/// ReplicaSet whose pod-template-hash matches the template (FNV-32a of the template, safe-encoded,
/// as upstream) is the new one, created if missing with the next revision annotation; an existing
/// one becoming new again (a rollback, kubectl rollout undo) gets the next revision. RollingUpdate
/// scales the new set up within replicas+maxSurge and old sets down while at least
/// replicas-maxUnavailable stay available (25 % each by default); Recreate empties the old sets
/// first. Paused Deployments are only scaled. Old sets beyond revisionHistoryLimit (10) with no
/// replicas are deleted. Status carries replicas, updated/ready/available/unavailable counts,
/// observedGeneration and the Available and Progressing conditions (NewReplicaSetAvailable when
/// done, ProgressDeadlineExceeded after progressDeadlineSeconds), which kubectl rollout status reads.
/// Its ReplicaSets are claimed as upstream claims them: orphans it selects are adopted, sets it
/// controls but no longer selects are released.
/// Tests: NodeAgent.IntegrationTests ControllerTests; ControlPlane.IntegrationTests AdoptionTests.
/// </summary>
public sealed partial class DeploymentController(ApiClient api, TimeProvider time, ILogger<DeploymentController> log)
    : ControllerLoop(api, time, log, "/apis/apps/v1/deployments", "/apis/apps/v1/replicasets")
{
    private const string HashLabel = "pod-template-hash";
    private const string RevisionAnnotation = "deployment.kubernetes.io/revision";

    private readonly Dictionary<string, JsonObject> _deployments = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _sets = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _deployments.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        if (source == 0)
        {
            _deployments.Clear();
            foreach (var (k, o) in items) { _deployments[k] = o; Dirty.Add(k); }
            return;
        }
        _sets.Clear();
        foreach (var (k, o) in items) _sets[k] = o;
        foreach (var k in _deployments.Keys) Dirty.Add(k);
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        if (source == 0)
        {
            if (type == "DELETED") _deployments.Remove(key);
            else { _deployments[key] = obj!; Dirty.Add(key); }
            return;
        }
        _sets.TryGetValue(key, out var before);
        if (type == "DELETED") _sets.Remove(key); else _sets[key] = obj!;
        foreach (var rs in (JsonObject?[])[before, obj])
        {
            if (rs is null) continue;
            if (ControllerOf(rs) is { } owner)
            {
                if (owner.Kind == "Deployment") Dirty.Add(Str(rs["metadata"], "namespace") + "/" + owner.Name);
            }
            else if (type != "DELETED")
            {
                // An orphan: the Deployments of its namespace that select it may adopt it.
                string prefix = Str(rs["metadata"], "namespace") + "/";
                foreach (var (dk, d) in _deployments)
                    if (dk.StartsWith(prefix, StringComparison.Ordinal) && Selector.OfLabelSelector(d["spec"]?["selector"]).Matches(rs)) Dirty.Add(dk);
            }
        }
    }

    /// <summary>
    /// upstream's ClaimReplicaSets: the sets this Deployment controls and still selects, plus the
    /// orphans it selects (adopted: it becomes their controller); a controlled set it no longer
    /// selects is released. A Deployment being deleted adopts nothing.
    /// </summary>
    private async Task<List<JsonObject>> ClaimAsync(JsonObject d, string ns, string uid, CancellationToken ct)
    {
        var selector = Selector.OfLabelSelector(d["spec"]?["selector"]);
        bool deleting = d["metadata"]?["deletionTimestamp"] is not null;
        var owned = new List<JsonObject>();
        foreach (var rs in _sets.Values.Where(rs => Str(rs["metadata"], "namespace") == ns).ToList())
        {
            var owner = ControllerOf(rs);
            bool matches = selector.Matches(rs);
            if (owner?.Uid == uid)
            {
                if (matches) owned.Add(rs);
                else if (await PatchControllerAsync(rs, null, ct).ConfigureAwait(false) is { } released) _sets[Key(released)] = released;
            }
            else if (owner is null && matches && !deleting && rs["metadata"]?["deletionTimestamp"] is null)
            {
                LogAdopting(Log, Key(rs), Str(d["metadata"], "name"));
                if (await PatchControllerAsync(rs, ControllerRef(d, "apps/v1", "Deployment"), ct).ConfigureAwait(false) is { } adopted)
                {
                    _sets[Key(adopted)] = adopted;
                    owned.Add(adopted);
                }
            }
        }
        return owned;
    }

    /// <summary>Sets (or, with null, removes) the set's controller reference, only if the set is unchanged since the cache saw it.</summary>
    private Task<JsonObject?> PatchControllerAsync(JsonObject rs, JsonObject? controller, CancellationToken ct) =>
        SetControllerAsync(Api, $"/apis/apps/v1/namespaces/{Str(rs["metadata"], "namespace")}/replicasets/{Str(rs["metadata"], "name")}", rs, controller, exact: true, ct);

    protected override async Task SyncAsync(string key, CancellationToken ct)
    {
        if (!_deployments.TryGetValue(key, out var d) || d["metadata"]?["deletionTimestamp"] is not null) return;
        var meta = d["metadata"]!;
        string ns = Str(meta, "namespace"), uid = Str(meta, "uid");
        var spec = d["spec"] as JsonObject ?? new JsonObject();
        int replicas = (int)Long(spec, "replicas", 1);
        var template = spec["template"] as JsonObject ?? new JsonObject();
        var owned = await ClaimAsync(d, ns, uid, ct).ConfigureAwait(false);
        // The new set is the one whose template, but for its hash label, is the Deployment's (upstream's
        // EqualIgnoreHash): after a rollback the template's JSON may be ordered differently.
        var newRs = owned.FirstOrDefault(rs => SameTemplate(rs, template));
        string hash = newRs is not null ? Str(newRs["metadata"]?["labels"], HashLabel) : TemplateHash(template, (int)Long(d["status"], "collisionCount"));
        var old = owned.Where(rs => !ReferenceEquals(rs, newRs)).OrderBy(rs => Str(rs["metadata"], "creationTimestamp"), StringComparer.Ordinal).ToList();
        long maxRevision = owned.Select(Revision).DefaultIfEmpty(0).Max();
        bool paused = spec["paused"]?.GetValueKind() == JsonValueKind.True;

        if (!paused)
        {
            if (newRs is null)
            {
                newRs = await CreateNewSetAsync(d, template, hash, maxRevision + 1, InitialReplicas(spec, replicas, owned), ct).ConfigureAwait(false);
                if (newRs is null) return; // the watch brings it; the next sync continues
            }
            else if (Revision(newRs) < maxRevision || Revision(newRs) == 0)
            {
                // An older template is current again (rollback): it becomes the newest revision.
                await PatchSetAsync(newRs, new JsonObject { ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { [RevisionAnnotation] = (maxRevision + 1).ToString(CultureInfo.InvariantCulture) } } }, ct).ConfigureAwait(false);
            }
            if (Str(meta["annotations"], RevisionAnnotation) != Revision(newRs).ToString(CultureInfo.InvariantCulture) && Revision(newRs) > 0)
                await Api.PatchAsync($"/apis/apps/v1/namespaces/{ns}/deployments/{Str(meta, "name")}", new JsonObject
                {
                    ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { [RevisionAnnotation] = Revision(newRs).ToString(CultureInfo.InvariantCulture) } },
                }, ct, "application/merge-patch+json").ConfigureAwait(false);

            if (Str(spec["strategy"], "type") == "Recreate") await RecreateAsync(d, newRs, old, replicas, ct).ConfigureAwait(false);
            else await RollAsync(d, newRs, old, replicas, ct).ConfigureAwait(false);
            await CleanupAsync(spec, old, ct).ConfigureAwait(false);
        }
        else if (newRs is not null && old.All(rs => Long(rs["spec"], "replicas") == 0) && Long(newRs["spec"], "replicas") != replicas)
        {
            await ScaleAsync(newRs, replicas, ct).ConfigureAwait(false); // paused: scaling still applies
        }
        await UpdateStatusAsync(d, newRs, owned, replicas, paused, ct).ConfigureAwait(false);
    }

    private static bool SameTemplate(JsonObject rs, JsonObject template)
    {
        if (rs["spec"]?["template"]?.DeepClone() is not JsonObject t) return false;
        if (t["metadata"]?["labels"] is JsonObject labels)
        {
            labels.Remove(HashLabel);
            if (labels.Count == 0 && template["metadata"]?["labels"] is null) t["metadata"]!.AsObject().Remove("labels");
        }
        return JsonNode.DeepEquals(Normalize(t), Normalize(template.DeepClone()));
    }

    /// <summary>
    /// Drops nulls, empty objects and empty arrays, recursively: a typed client's template
    /// ("creationTimestamp": null, "resources": {}) and the same template written without them are
    /// the same template, as Go's typed comparison sees it.
    /// </summary>
    private static JsonNode? Normalize(JsonNode? n)
    {
        switch (n)
        {
            case JsonObject o:
                foreach (var (k, v) in o.ToList())
                {
                    var nv = Normalize(v);
                    if (nv is null) o.Remove(k);
                }
                return o.Count == 0 ? null : o;
            case JsonArray a:
                for (int i = a.Count - 1; i >= 0; i--)
                    if (Normalize(a[i]) is null && a[i] is not JsonValue) a.RemoveAt(i);
                return a.Count == 0 ? null : a;
            default:
                return n;
        }
    }

    private static long Revision(JsonObject rs) =>
        long.TryParse(Str(rs["metadata"]?["annotations"], RevisionAnnotation), NumberStyles.None, CultureInfo.InvariantCulture, out var r) ? r : 0;

    private static int InitialReplicas(JsonObject spec, int replicas, List<JsonObject> owned)
    {
        if (owned.Count == 0 || Str(spec["strategy"], "type") == "Recreate") return owned.Count == 0 ? replicas : 0;
        var (surge, _) = Limits(spec, replicas);
        long total = owned.Sum(rs => Long(rs["spec"], "replicas"));
        return (int)Math.Clamp(replicas + surge - total, 0, replicas);
    }

    /// <summary>maxSurge and maxUnavailable as counts: percentages of replicas, surge rounded up and unavailability down; both 0 means 1 unavailable.</summary>
    public static (int Surge, int Unavailable) Limits(JsonObject spec, int replicas)
    {
        var ru = spec["strategy"]?["rollingUpdate"];
        int Resolve(JsonNode? v, bool roundUp)
        {
            if (v is null) return (int)(roundUp ? Math.Ceiling(replicas * 0.25) : Math.Floor(replicas * 0.25));
            if (v.GetValueKind() == JsonValueKind.Number) return v.GetValue<int>();
            string s = v.GetValue<string>();
            if (s.EndsWith('%') && double.TryParse(s[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out double pct))
                return (int)(roundUp ? Math.Ceiling(replicas * pct / 100) : Math.Floor(replicas * pct / 100));
            return int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) ? n : 0;
        }
        int surge = Resolve(ru?["maxSurge"], true), unavailable = Resolve(ru?["maxUnavailable"], false);
        if (surge == 0 && unavailable == 0) unavailable = 1;
        return (surge, unavailable);
    }

    private async Task RollAsync(JsonObject d, JsonObject newRs, List<JsonObject> old, int replicas, CancellationToken ct)
    {
        var spec = d["spec"]!.AsObject();
        var (surge, unavailable) = Limits(spec, replicas);
        long newSpec = Long(newRs["spec"], "replicas");
        if (old.Count == 0 || old.All(rs => Long(rs["spec"], "replicas") == 0))
        {
            if (newSpec != replicas) await ScaleAsync(newRs, replicas, ct).ConfigureAwait(false);
            return;
        }
        // Up: the new set grows while the total stays within replicas + maxSurge.
        long total = newSpec + old.Sum(rs => Long(rs["spec"], "replicas"));
        if (newSpec < replicas && total < replicas + surge)
        {
            long target = Math.Min(replicas, newSpec + (replicas + surge - total));
            await ScaleAsync(newRs, (int)target, ct).ConfigureAwait(false);
            newSpec = target;
        }
        // Down: old sets shrink while replicas - maxUnavailable stay available; unavailable old pods go first.
        // A set's availability counts at most its spec: right after a scale-down its status still
        // shows the pods being removed, and counting them would let the next sync cut again.
        static long Available(JsonObject rs) => Math.Min(Long(rs["status"], "availableReplicas"), Long(rs["spec"], "replicas"));
        long minAvailable = replicas - unavailable;
        long available = Available(newRs) + old.Sum(Available);
        // Upstream's budget, from specs: what may go without the new set's not-yet-available pods counting as up.
        long budget = newSpec + old.Sum(rs => Long(rs["spec"], "replicas")) - minAvailable - Math.Max(0, newSpec - Available(newRs));
        long canRemove = Math.Min(available - minAvailable, budget);
        foreach (var rs in old)
        {
            long want = Long(rs["spec"], "replicas");
            if (want == 0) continue;
            long unhealthy = Math.Min(Math.Max(0, want - Available(rs)), Math.Max(0, budget));
            budget -= unhealthy;
            long cut = Math.Min(want, unhealthy + Math.Max(0, canRemove));
            // Never below what keeps the total at least replicas - maxUnavailable counting the new set's available pods.
            if (cut <= 0) continue;
            canRemove -= Math.Max(0, cut - unhealthy);
            await ScaleAsync(rs, (int)(want - cut), ct).ConfigureAwait(false);
        }
        // Progress depends on pods becoming available: look again shortly (status events also wake us).
        Later(Key(d), TimeSpan.FromSeconds(5));
    }

    private async Task RecreateAsync(JsonObject d, JsonObject newRs, List<JsonObject> old, int replicas, CancellationToken ct)
    {
        foreach (var rs in old)
            if (Long(rs["spec"], "replicas") != 0) await ScaleAsync(rs, 0, ct).ConfigureAwait(false);
        // The new pods start only when no old pod is left.
        if (old.All(rs => Long(rs["status"], "replicas") == 0) && Long(newRs["spec"], "replicas") != replicas)
            await ScaleAsync(newRs, replicas, ct).ConfigureAwait(false);
    }

    private async Task CleanupAsync(JsonObject spec, List<JsonObject> old, CancellationToken ct)
    {
        int limit = (int)Long(spec, "revisionHistoryLimit", 10);
        var idle = old.Where(rs => Long(rs["spec"], "replicas") == 0 && Long(rs["status"], "replicas") == 0).OrderBy(Revision).ToList();
        foreach (var rs in idle.Take(Math.Max(0, idle.Count - limit)))
        {
            try { await Api.DeleteAsync($"/apis/apps/v1/namespaces/{Str(rs["metadata"], "namespace")}/replicasets/{Str(rs["metadata"], "name")}", null, ct).ConfigureAwait(false); }
            catch (ApiError e) when (e.IsNotFound) { }
        }
    }

    private async Task<JsonObject?> CreateNewSetAsync(JsonObject d, JsonObject template, string hash, long revision, int replicas, CancellationToken ct)
    {
        var meta = d["metadata"]!;
        string ns = Str(meta, "namespace"), name = Str(meta, "name") + "-" + hash;
        var podTemplate = template.DeepClone().AsObject();
        var podMeta = podTemplate["metadata"] as JsonObject ?? new JsonObject();
        podTemplate["metadata"] = podMeta;
        var labels = podMeta["labels"] as JsonObject ?? new JsonObject();
        podMeta["labels"] = labels;
        labels[HashLabel] = hash;
        var selector = d["spec"]?["selector"]?.DeepClone().AsObject() ?? new JsonObject();
        var matchLabels = selector["matchLabels"] as JsonObject ?? new JsonObject();
        selector["matchLabels"] = matchLabels;
        matchLabels[HashLabel] = hash;
        var rs = new JsonObject
        {
            ["apiVersion"] = "apps/v1", ["kind"] = "ReplicaSet",
            ["metadata"] = new JsonObject
            {
                ["name"] = name, ["namespace"] = ns, ["labels"] = labels.DeepClone(),
                ["annotations"] = new JsonObject { [RevisionAnnotation] = revision.ToString(CultureInfo.InvariantCulture) },
                ["ownerReferences"] = new JsonArray((JsonNode)ControllerRef(d, "apps/v1", "Deployment")),
            },
            ["spec"] = new JsonObject
            {
                ["replicas"] = replicas, ["minReadySeconds"] = Long(d["spec"], "minReadySeconds"), ["selector"] = selector, ["template"] = podTemplate,
            },
        };
        try
        {
            var created = await Api.CreateAsync($"/apis/apps/v1/namespaces/{ns}/replicasets", rs, ct).ConfigureAwait(false);
            await ControllerKit.EventAsync(Api, Time, "deployment-controller", d, "apps/v1", "Deployment", "Normal", "ScalingReplicaSet",
                $"Scaled up replica set {name} to {replicas}", ct).ConfigureAwait(false);
            return created;
        }
        catch (ApiError e) when (e.IsConflict)
        {
            return null; // already there (our cache is behind) or a hash collision; the watch settles it
        }
    }

    private async Task ScaleAsync(JsonObject rs, int replicas, CancellationToken ct)
    {
        await PatchSetAsync(rs, new JsonObject { ["spec"] = new JsonObject { ["replicas"] = replicas } }, ct).ConfigureAwait(false);
        // Our copy follows at once, so the rest of this sync (and the next) sees the new size.
        (rs["spec"] as JsonObject ?? (JsonObject)(rs["spec"] = new JsonObject()))["replicas"] = replicas;
    }

    private async Task PatchSetAsync(JsonObject rs, JsonObject patch, CancellationToken ct)
    {
        try
        {
            await Api.PatchAsync($"/apis/apps/v1/namespaces/{Str(rs["metadata"], "namespace")}/replicasets/{Str(rs["metadata"], "name")}", patch, ct,
                "application/merge-patch+json").ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsNotFound) { }
    }

    private async Task UpdateStatusAsync(JsonObject d, JsonObject? newRs, List<JsonObject> owned, int replicas, bool paused, CancellationToken ct)
    {
        long total = owned.Sum(rs => Long(rs["status"], "replicas"));
        long ready = owned.Sum(rs => Long(rs["status"], "readyReplicas"));
        long available = owned.Sum(rs => Long(rs["status"], "availableReplicas"));
        long updated = newRs is null ? 0 : Long(newRs["status"], "replicas");
        var (_, unavailable) = Limits(d["spec"] as JsonObject ?? new JsonObject(), replicas);
        long generation = Long(d["metadata"], "generation");
        var status = d["status"] as JsonObject;
        var now = ApiTime.Format(Time.GetUtcNow());
        var conditions = (status?["conditions"] as JsonArray)?.OfType<JsonObject>().ToDictionary(c => Str(c, "type"), c => c) ?? [];

        bool complete = newRs is not null && updated == replicas && total == replicas && available >= replicas
            && owned.All(rs => ReferenceEquals(rs, newRs) || Long(rs["status"], "replicas") == 0);
        var (progStatus, progReason, progMessage) = paused
            ? ("Unknown", "DeploymentPaused", "Deployment is paused")
            : complete
                ? ("True", "NewReplicaSetAvailable", $"ReplicaSet \"{Str(newRs!["metadata"], "name")}\" has successfully progressed.")
                : ("True", "ReplicaSetUpdated", $"ReplicaSet \"{(newRs is null ? "" : Str(newRs["metadata"], "name"))}\" is progressing.");
        // No progress for progressDeadlineSeconds: the rollout is reported as stuck.
        long deadline = Long(d["spec"], "progressDeadlineSeconds", 600);
        if (!paused && !complete && conditions.TryGetValue("Progressing", out var prev) && Str(prev, "reason") is "ReplicaSetUpdated" or "ProgressDeadlineExceeded"
            && DateTimeOffset.TryParse(Str(prev, "lastUpdateTime"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var since)
            && Time.GetUtcNow() - since > TimeSpan.FromSeconds(deadline) && Long(status, "updatedReplicas") == updated && Long(status, "availableReplicas") == available)
            (progStatus, progReason, progMessage) = ("False", "ProgressDeadlineExceeded", $"ReplicaSet \"{Str(newRs?["metadata"], "name")}\" has timed out progressing.");
        bool minAvailable = available >= replicas - unavailable;
        var desired = new[]
        {
            ("Available", minAvailable ? "True" : "False", minAvailable ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
                minAvailable ? "Deployment has minimum availability." : "Deployment does not have minimum availability."),
            ("Progressing", progStatus, progReason, progMessage),
        };
        var conds = new JsonArray();
        bool changed = false;
        foreach (var (type, st, reason, message) in desired)
        {
            conditions.TryGetValue(type, out var c);
            bool same = c is not null && Str(c, "status") == st && Str(c, "reason") == reason && Str(c, "message") == message;
            // Progress keeps lastUpdateTime moving while counts change, so the deadline measures a stall.
            bool progressed = type == "Progressing" && (Long(status, "updatedReplicas") != updated || Long(status, "availableReplicas") != available);
            changed |= !same || progressed;
            conds.Add((JsonNode)new JsonObject
            {
                ["type"] = type, ["status"] = st, ["reason"] = reason, ["message"] = message,
                ["lastUpdateTime"] = same && !progressed ? Str(c, "lastUpdateTime") : now,
                ["lastTransitionTime"] = c is not null && Str(c, "status") == st ? Str(c, "lastTransitionTime") : now,
            });
        }
        if (!changed && Long(status, "replicas") == total && Long(status, "updatedReplicas") == updated && Long(status, "readyReplicas") == ready
            && Long(status, "availableReplicas") == available && Long(status, "observedGeneration") == generation)
            return;
        var m = d["metadata"]!;
        try
        {
            await Api.PatchAsync($"/apis/apps/v1/namespaces/{m["namespace"]}/deployments/{m["name"]}/status", new JsonObject
            {
                ["status"] = new JsonObject
                {
                    ["observedGeneration"] = generation, ["replicas"] = total, ["updatedReplicas"] = updated, ["readyReplicas"] = ready,
                    ["availableReplicas"] = available, ["unavailableReplicas"] = Math.Max(0, replicas - available), ["conditions"] = conds,
                },
            }, ct, "application/merge-patch+json").ConfigureAwait(false);
        }
        catch (ApiError e) when (e.IsNotFound) { }
        if (!complete && !paused) Later(Key(d), TimeSpan.FromSeconds(Math.Min(deadline + 1, 30)));
    }

    private static string Key(JsonObject o) => Str(o["metadata"], "namespace") + "/" + Str(o["metadata"], "name");

    /// <summary>
    /// Upstream's ComputeHash: FNV-32a over the template (here its JSON, keys as stored) and the
    /// collision count, written in decimal and mapped onto the alphabet rand.SafeEncodeString uses.
    /// </summary>
    public static string TemplateHash(JsonObject template, int collisionCount)
    {
        uint h = 2166136261;
        void Add(ReadOnlySpan<byte> bytes) { foreach (byte b in bytes) { h ^= b; h *= 16777619; } }
        // The default encoder's form (not Json.WriterOptions'): the hash of a template must not change
        // across versions of this server, or every Deployment would roll out again on an upgrade.
        Add(Encoding.UTF8.GetBytes(template.ToJsonString()));
        if (collisionCount > 0) Add(BitConverter.GetBytes(collisionCount));
        const string alphabet = "bcdfghjklmnpqrstvwxz2456789";
        var s = h.ToString(CultureInfo.InvariantCulture);
        var sb = new StringBuilder(s.Length);
        foreach (char c in s) sb.Append(alphabet[c % alphabet.Length]);
        return sb.ToString();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "deployment {Deployment} adopts the orphan replica set {ReplicaSet}")]
    private static partial void LogAdopting(ILogger log, string replicaSet, string deployment);
}
