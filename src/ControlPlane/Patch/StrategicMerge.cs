using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Patch;

/// <summary>
/// Strategic merge patch (what <c>kubectl apply</c>, <c>edit</c> and <c>patch</c> send by default):
/// like a merge patch, except that lists tagged with a patch strategy merge element by element on
/// their merge key (containers by name, ports by containerPort, ...), with the directives
/// <c>$patch</c> (replace/delete/merge), <c>$retainKeys</c>, <c>$setElementOrder/</c> and
/// <c>$deleteFromPrimitiveList/</c>. The list metadata follows the patchStrategy/patchMergeKey tags of
/// the upstream API types for the kinds served here; untagged lists are replaced.
/// </summary>
public static class StrategicMerge
{
    public sealed record Field(string? Type, string? MergeKey = null, bool MergeList = false, bool RetainKeys = false);

    private static readonly Dictionary<string, Dictionary<string, Field>> Types = new()
    {
        ["ObjectMeta"] = new() { ["finalizers"] = new(null, MergeList: true), ["ownerReferences"] = new(null, "uid", true) },
        ["Pod"] = new() { ["metadata"] = new("ObjectMeta"), ["spec"] = new("PodSpec"), ["status"] = new("PodStatus") },
        ["PodTemplateSpec"] = new() { ["metadata"] = new("ObjectMeta"), ["spec"] = new("PodSpec") },
        ["PodSpec"] = new()
        {
            ["containers"] = new("Container", "name", true), ["initContainers"] = new("Container", "name", true),
            ["ephemeralContainers"] = new("Container", "name", true), ["volumes"] = new("Volume", "name", true, true),
            ["imagePullSecrets"] = new(null, "name", true), ["hostAliases"] = new(null, "ip", true),
            ["topologySpreadConstraints"] = new(null, "topologyKey", true), ["resourceClaims"] = new(null, "name", true, true),
            ["schedulingGates"] = new(null, "name", true),
        },
        ["Volume"] = new(),
        ["Container"] = new()
        {
            ["ports"] = new(null, "containerPort", true), ["env"] = new(null, "name", true),
            ["volumeMounts"] = new(null, "mountPath", true), ["volumeDevices"] = new(null, "devicePath", true),
        },
        ["PodStatus"] = new()
        {
            ["conditions"] = new(null, "type", true), ["podIPs"] = new(null, "ip", true), ["hostIPs"] = new(null, "ip", true),
            ["resourceClaimStatuses"] = new(null, "name", true, true),
        },
        ["Workload"] = new() { ["metadata"] = new("ObjectMeta"), ["spec"] = new("WorkloadSpec"), ["status"] = new("ConditionedStatus") },
        ["WorkloadSpec"] = new() { ["template"] = new("PodTemplateSpec"), ["strategy"] = new("Retain", RetainKeys: true) },
        ["Retain"] = new(),
        ["ConditionedStatus"] = new() { ["conditions"] = new(null, "type", true) },
        ["Service"] = new() { ["metadata"] = new("ObjectMeta"), ["spec"] = new("ServiceSpec"), ["status"] = new("ConditionedStatus") },
        ["ServiceSpec"] = new() { ["ports"] = new(null, "port", true) },
        ["Node"] = new() { ["metadata"] = new("ObjectMeta"), ["spec"] = new("NodeSpec"), ["status"] = new("NodeStatus") },
        ["NodeSpec"] = new() { ["podCIDRs"] = new(null, MergeList: true) },
        ["ServiceAccount"] = new() { ["metadata"] = new("ObjectMeta"), ["secrets"] = new(null, "name", true) },
        ["NodeStatus"] = new() { ["conditions"] = new(null, "type", true), ["addresses"] = new(null, "type", true) },
        ["Namespace"] = new() { ["metadata"] = new("ObjectMeta"), ["status"] = new("ConditionedStatus") },
        ["Object"] = new() { ["metadata"] = new("ObjectMeta") },
    };

    /// <summary>The schema root for a kind.</summary>
    public static string RootOf(string kind) => kind switch
    {
        "Pod" => "Pod",
        "Deployment" or "ReplicaSet" or "DaemonSet" or "StatefulSet" => "Workload",
        "Service" => "Service",
        "Node" => "Node",
        "ServiceAccount" => "ServiceAccount",
        "Namespace" => "Namespace",
        _ => "Object",
    };

    public static JsonObject Apply(JsonObject original, JsonObject patch, string kind) =>
        MergeMap(original, patch, RootOf(kind)) ?? new JsonObject();

    /// <summary>
    /// A field's patch strategy and merge key, for the OpenAPI extensions (so kubectl computes the
    /// patches this server applies), and the type its value has here: a list that is not merged is
    /// replaced, and an object field may retain keys (a Deployment's strategy).
    /// </summary>
    public static (string? Type, string? Strategy, string? MergeKey) Describe(string? type, string field) => FieldOf(type, field) switch
    {
        null => (null, null, null),
        { MergeList: true } f => (f.Type, f.RetainKeys ? "merge,retainKeys" : "merge", f.MergeKey),
        var f => (f.Type, f.RetainKeys ? "retainKeys" : null, null),
    };

    /// <summary>How server-side apply treats a list: atomic (replaced whole), a map keyed by fields, or a set of values.</summary>
    public enum ListKind { Atomic, Map, Set }

    /// <summary>
    /// A field as server-side apply sees it, from the same tags: its schema type (for its members),
    /// how a list in it merges (lists tagged merge with a key are maps on that key, or on upstream's
    /// x-kubernetes-list-map-keys where they differ; tagged merge without a key, sets; untagged lists
    /// are atomic), and whether an object in it is atomic (label selectors, as upstream's structType).
    /// </summary>
    public static (string? Type, ListKind List, string[] Keys, bool AtomicObject) ApplyShape(string? type, string name)
    {
        var f = FieldOf(type, name);
        bool atomic = name == "selector" && type is "WorkloadSpec" or "ServiceSpec";
        if (f is not { MergeList: true }) return (f?.Type, ListKind.Atomic, [], atomic);
        if (f.MergeKey is null) return (f.Type, ListKind.Set, [], atomic);
        string[] keys = (type, name) switch
        {
            ("Container", "ports") => ["containerPort", "protocol"],
            ("ServiceSpec", "ports") => ["port", "protocol"],
            ("PodSpec", "topologySpreadConstraints") => ["topologyKey", "whenUnsatisfiable"],
            _ => [f.MergeKey],
        };
        return (f.Type, ListKind.Map, keys, atomic);
    }

    private static Field? FieldOf(string? type, string name) =>
        type is not null && Types.TryGetValue(type, out var fields) && fields.TryGetValue(name, out var f) ? f : null;

    private static JsonObject? MergeMap(JsonObject original, JsonObject patch, string? type)
    {
        switch (patch.Str("$patch"))
        {
            case "replace":
                var replaced = (JsonObject)patch.DeepClone();
                replaced.Remove("$patch");
                return StripDirectives(replaced);
            case "delete":
                return null;
            case null or "merge":
                break;
            default:
                throw Api.ApiException.BadRequest($"unknown patch type: {patch.Str("$patch")}");
        }
        var result = original;
        List<(string Field, JsonArray Order)>? orders = null;
        foreach (var (k, v) in patch)
        {
            if (k is "$patch" or "$retainKeys") continue;
            if (k.StartsWith("$setElementOrder/", StringComparison.Ordinal))
            {
                if (v is JsonArray order) (orders ??= []).Add((k[17..], order));
                continue;
            }
            if (k.StartsWith("$deleteFromPrimitiveList/", StringComparison.Ordinal))
            {
                string f = k[25..];
                if (result[f] is JsonArray list && v is JsonArray remove)
                    for (int i = list.Count - 1; i >= 0; i--)
                        if (remove.Any(r => JsonNode.DeepEquals(r, list[i]))) list.RemoveAt(i);
                continue;
            }
            if (v is null) { result.Remove(k); continue; }
            var field = FieldOf(type, k);
            if (v is JsonObject vo && result[k] is JsonObject ro)
            {
                var merged = MergeMap(ro, vo, field?.Type);
                if (merged is null) result.Remove(k);
                else if (!ReferenceEquals(merged, ro)) result[k] = merged;
            }
            else if (v is JsonArray va && field is { MergeList: true })
            {
                result[k] = MergeList(result[k] as JsonArray, va, field);
            }
            else
            {
                result[k] = v is JsonObject fresh ? StripDirectives((JsonObject)fresh.DeepClone()) : v.DeepClone();
            }
        }
        if (patch["$retainKeys"] is JsonArray retain)
        {
            var keep = retain.Select(n => n?.GetValue<string>()).ToHashSet();
            foreach (var key in result.Select(p => p.Key).ToList())
                if (!keep.Contains(key)) result.Remove(key);
        }
        if (orders is not null)
            foreach (var (f, order) in orders)
                if (result[f] is JsonArray list) result[f] = Reorder(list, order, FieldOf(type, f)?.MergeKey);
        return result;
    }

    private static JsonArray MergeList(JsonArray? original, JsonArray patch, Field field)
    {
        var result = original is null ? new JsonArray() : (JsonArray)original.DeepClone();
        if (field.MergeKey is null)
        {
            // A list of primitives with strategy merge: union, patch values appended.
            foreach (var v in patch)
            {
                if (v is JsonObject d && d.Str("$patch") == "replace") return new JsonArray(patch.Where(x => x is not JsonObject).Select(x => x?.DeepClone()).ToArray());
                if (!result.Any(r => JsonNode.DeepEquals(r, v))) result.Add(v?.DeepClone());
            }
            return result;
        }
        if (patch.Any(p => p is JsonObject o && o.Str("$patch") == "replace"))
            return new JsonArray(patch.OfType<JsonObject>().Where(o => o.Str("$patch") != "replace").Select(o => (JsonNode?)StripDirectives((JsonObject)o.DeepClone())).ToArray());
        foreach (var p in patch)
        {
            if (p is not JsonObject po) { result.Add(p?.DeepClone()); continue; }
            var key = po[field.MergeKey];
            int idx = -1;
            for (int i = 0; i < result.Count; i++)
                if (result[i] is JsonObject ro && JsonNode.DeepEquals(ro[field.MergeKey], key)) { idx = i; break; }
            if (po.Str("$patch") == "delete")
            {
                if (idx >= 0) result.RemoveAt(idx);
                continue;
            }
            if (idx >= 0)
            {
                var merged = MergeMap((JsonObject)result[idx]!, po, field.Type);
                if (merged is null) result.RemoveAt(idx);
                else if (!ReferenceEquals(merged, result[idx])) result[idx] = merged;
            }
            else result.Add((JsonNode)StripDirectives((JsonObject)po.DeepClone()));
        }
        return result;
    }

    private static JsonArray Reorder(JsonArray list, JsonArray order, string? mergeKey)
    {
        int Rank(JsonNode? item)
        {
            for (int i = 0; i < order.Count; i++)
            {
                var o = order[i];
                bool same = mergeKey is not null && item is JsonObject io && o is JsonObject oo
                    ? JsonNode.DeepEquals(io[mergeKey], oo[mergeKey]) : JsonNode.DeepEquals(item, o);
                if (same) return i;
            }
            return int.MaxValue;
        }
        var items = list.Select((n, i) => (Node: n, Rank: Rank(n), Index: i)).OrderBy(x => x.Rank).ThenBy(x => x.Index).Select(x => x.Node?.DeepClone()).ToArray();
        return new JsonArray(items);
    }

    private static JsonObject StripDirectives(JsonObject o)
    {
        foreach (var k in o.Select(p => p.Key).Where(k => k.StartsWith('$')).ToList()) o.Remove(k);
        foreach (var (_, v) in o)
            if (v is JsonObject c) StripDirectives(c);
            else if (v is JsonArray a) foreach (var e in a) if (e is JsonObject ec) StripDirectives(ec);
        return o;
    }
}
