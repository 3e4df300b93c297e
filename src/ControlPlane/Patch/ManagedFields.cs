using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Storage;
using static NodeAgent.ControlPlane.Patch.StrategicMerge;

namespace NodeAgent.ControlPlane.Patch;

/// <summary>
/// A set of field paths in upstream's FieldsV1 form: a trie whose edges are path elements
/// (<c>f:name</c> a field, <c>k:{"name":"app"}</c> the item of a keyed list, <c>v:"x"</c> the item
/// of a set) and whose members are marked <c>.</c> (or are leaves, written <c>{}</c>).
/// </summary>
public sealed class FieldSet
{
    public bool Member { get; set; }
    private SortedDictionary<string, FieldSet>? _children;

    public bool IsEmpty => !Member && (_children is null || _children.Values.All(c => c.IsEmpty));

    public FieldSet Child(string element)
    {
        _children ??= new(StringComparer.Ordinal);
        if (!_children.TryGetValue(element, out var c)) _children[element] = c = new FieldSet();
        return c;
    }

    public static FieldSet FromJson(JsonObject? fields)
    {
        var set = new FieldSet();
        if (fields is null) return set;
        foreach (var (k, v) in fields)
        {
            if (k == ".") { set.Member = true; continue; }
            var child = FromJson(v as JsonObject);
            if (child._children is null) child.Member = true; // a leaf: {}
            (set._children ??= new(StringComparer.Ordinal))[k] = child;
        }
        return set;
    }

    public JsonObject ToJson()
    {
        var o = new JsonObject();
        if (_children is null) return o;
        foreach (var (k, c) in _children)
        {
            if (c.IsEmpty) continue;
            var cj = c.ToJson();
            if (c.Member && c._children?.Values.Any(x => !x.IsEmpty) == true) cj.Insert(0, ".", new JsonObject());
            o[k] = cj;
        }
        return o;
    }

    /// <summary>Every member's path, parents before their children.</summary>
    public IEnumerable<string[]> Members() => Members([]);

    private IEnumerable<string[]> Members(string[] prefix)
    {
        if (Member && prefix.Length > 0) yield return prefix;
        if (_children is null) yield break;
        foreach (var (k, c) in _children)
            foreach (var p in c.Members([.. prefix, k]))
                yield return p;
    }

    public bool Contains(IReadOnlyList<string> path)
    {
        var n = this;
        foreach (var e in path)
            if (n._children is null || !n._children.TryGetValue(e, out n)) return false;
        return n.Member;
    }

    /// <summary>Whether any member lies strictly below <paramref name="path"/>.</summary>
    public bool HasMemberBelow(IReadOnlyList<string> path)
    {
        var n = this;
        foreach (var e in path)
            if (n._children is null || !n._children.TryGetValue(e, out n)) return false;
        return n._children?.Values.Any(c => !c.IsEmpty) == true;
    }

    public void Add(IReadOnlyList<string> path)
    {
        var n = this;
        foreach (var e in path) n = n.Child(e);
        n.Member = true;
    }

    public void Remove(IReadOnlyList<string> path)
    {
        var n = this;
        foreach (var e in path)
            if (n._children is null || !n._children.TryGetValue(e, out n)) return;
        n.Member = false;
    }

    public void UnionWith(FieldSet other)
    {
        foreach (var p in other.Members()) Add(p);
    }

    public void ExceptWith(FieldSet other)
    {
        foreach (var p in other.Members()) Remove(p);
    }

    public FieldSet Except(FieldSet other)
    {
        var r = new FieldSet();
        foreach (var p in Members()) if (!other.Contains(p)) r.Add(p);
        return r;
    }

    public override string ToString() => ToJson().ToJsonString();
}

/// <summary>One entry of metadata.managedFields.</summary>
public sealed class ManagedEntry
{
    public required string Manager { get; init; }
    public required string Operation { get; init; }
    public string? ApiVersion { get; set; }
    public string? Time { get; set; }
    public string? Subresource { get; init; }
    public required FieldSet Fields { get; set; }

    public bool SameOwner(string manager, string operation, string? subresource) =>
        Manager == manager && Operation == operation && (Subresource ?? "") == (subresource ?? "");

    /// <summary>How a conflict names this owner, as upstream words it.</summary>
    public string Describe() =>
        $"\"{Manager}\"{(string.IsNullOrEmpty(Subresource) ? "" : $" with subresource \"{Subresource}\"")} using {ApiVersion}";
}

/// <summary>
/// Server-side apply and field ownership (metadata.managedFields), as upstream's structured merge:
/// each manager owns the fields it applied (operation Apply) or changed (operation Update). An apply
/// merges the configuration into the object (maps field by field, keyed lists item by item, sets by
/// value, everything else replaced whole), fails on fields another manager owns with a different
/// value unless forced (then takes them), and removes the fields it applied before and no longer
/// applies that nobody else owns. As with upstream's skip-non-applied manager, an object is tracked
/// from its first apply: until then its writes leave no entries, and the first apply files what the
/// object already held under "before-first-apply".
/// </summary>
public static class ManagedFields
{
    public const string BeforeFirstApply = "before-first-apply";

    /// <summary>Metadata the server owns: never part of a field set.</summary>
    private static readonly HashSet<string> ServerMeta =
        ["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
         "deletionTimestamp", "deletionGracePeriodSeconds"];

    /// <summary>Object fields that are maps (string keys) rather than structs: a map a write creates is owned as a whole too.</summary>
    private static readonly HashSet<string> MapFields =
        ["labels", "annotations", "nodeSelector", "data", "binaryData", "stringData", "limits", "requests", "matchLabels"];

    public static List<ManagedEntry> Read(JsonObject obj)
    {
        var list = new List<ManagedEntry>();
        if (obj.ObjOrNull("metadata")?["managedFields"] is not JsonArray arr) return list;
        foreach (var e in arr.OfType<JsonObject>())
        {
            if (e.Str("manager") is not { } m || e.Str("operation") is not { } op) continue;
            list.Add(new ManagedEntry
            {
                Manager = m, Operation = op, ApiVersion = e.Str("apiVersion"), Time = e.Str("time"),
                Subresource = e.Str("subresource"), Fields = FieldSet.FromJson(e["fieldsV1"] as JsonObject),
            });
        }
        return list;
    }

    public static void Write(JsonObject obj, List<ManagedEntry> entries)
    {
        var meta = obj.Meta();
        var arr = new JsonArray();
        foreach (var e in entries)
        {
            if (e.Fields.IsEmpty) continue;
            var j = new JsonObject { ["manager"] = e.Manager, ["operation"] = e.Operation };
            if (e.ApiVersion is not null) j["apiVersion"] = e.ApiVersion;
            if (e.Time is not null) j["time"] = e.Time;
            j["fieldsType"] = "FieldsV1";
            j["fieldsV1"] = e.Fields.ToJson();
            if (!string.IsNullOrEmpty(e.Subresource)) j["subresource"] = e.Subresource;
            arr.Add((JsonNode)j);
        }
        if (arr.Count == 0) meta.Remove("managedFields"); else meta["managedFields"] = arr;
    }

    /// <summary>The fields an object (or an applied configuration) sets: its leaves, and the items of its keyed lists and sets.</summary>
    public static FieldSet Of(JsonObject obj, string kind)
    {
        var set = new FieldSet();
        WalkObject(obj, RootOf(kind), set, top: true);
        return set;
    }

    private static void WalkObject(JsonObject o, string? type, FieldSet set, bool top)
    {
        foreach (var (k, v) in o)
        {
            if (v is null || Skipped(top, k)) continue;
            if (top && k == "metadata" && v is JsonObject meta)
            {
                var mset = set.Child("f:metadata");
                foreach (var (mk, mv) in meta)
                    if (mv is not null && !ServerMeta.Contains(mk)) WalkValue(mv, "ObjectMeta", mk, mset.Child("f:" + mk));
                continue;
            }
            WalkValue(v, type, k, set.Child("f:" + k));
        }
    }

    private static bool Skipped(bool top, string k) => top && k is "apiVersion" or "kind";

    private static void WalkValue(JsonNode v, string? parentType, string field, FieldSet child)
    {
        var shape = ApplyShape(parentType, field);
        switch (v)
        {
            case JsonObject vo when !shape.AtomicObject && vo.Count > 0:
                WalkObject(vo, shape.Type, child, top: false);
                break;
            case JsonArray va when shape.List == ListKind.Map && va.Count > 0 && va.All(i => i is JsonObject):
                foreach (var item in va.Cast<JsonObject>())
                {
                    var kc = child.Child(KeyElement(item, shape.Keys));
                    kc.Member = true;
                    WalkObject(item, shape.Type, kc, top: false);
                }
                break;
            case JsonArray va when shape.List == ListKind.Set && va.Count > 0:
                foreach (var item in va) if (item is not null) child.Child("v:" + item.ToJsonString()).Member = true;
                break;
            default:
                child.Member = true;
                break;
        }
    }

    /// <summary>The k: element of a keyed list's item: its key fields, by name, as JSON (a missing protocol is TCP, its default).</summary>
    public static string KeyElement(JsonObject item, string[] keys)
    {
        var k = new JsonObject();
        foreach (var name in keys.Order(StringComparer.Ordinal))
        {
            var v = item[name] ?? (name == "protocol" ? JsonValue.Create("TCP") : null);
            if (v is not null) k[name] = v.DeepClone();
        }
        return "k:" + k.ToJsonString();
    }

    // ---- paths over objects -------------------------------------------------------------------

    /// <summary>The value at a path of field-set elements, or false when it is not there.</summary>
    public static bool TryGet(JsonNode? root, IReadOnlyList<string> path, out JsonNode? value)
    {
        value = root;
        foreach (var e in path)
        {
            if (!TryStep(value, e, out value, out _, out _)) return false;
        }
        return true;
    }

    private static bool TryStep(JsonNode? node, string element, out JsonNode? value, out JsonNode? container, out int index)
    {
        value = null; container = node; index = -1;
        if (element.StartsWith("f:", StringComparison.Ordinal))
            return node is JsonObject o && o.TryGetPropertyValue(element[2..], out value);
        if (node is not JsonArray a) return false;
        if (element.StartsWith("k:", StringComparison.Ordinal))
        {
            var key = JsonNode.Parse(element[2..]) as JsonObject;
            if (key is null) return false;
            string[] names = key.Select(p => p.Key).ToArray();
            for (int i = 0; i < a.Count; i++)
                if (a[i] is JsonObject io && KeyElement(io, names) == element) { value = io; index = i; return true; }
            return false;
        }
        if (element.StartsWith("v:", StringComparison.Ordinal))
        {
            var want = JsonNode.Parse(element[2..]);
            for (int i = 0; i < a.Count; i++)
                if (JsonNode.DeepEquals(a[i], want)) { value = a[i]; index = i; return true; }
            return false;
        }
        if (element.StartsWith("i:", StringComparison.Ordinal) && int.TryParse(element[2..], out int n) && n >= 0 && n < a.Count)
        {
            value = a[n]; index = n; return true;
        }
        return false;
    }

    /// <summary>Removes the field or list item at <paramref name="path"/>; nothing when it is not there.</summary>
    public static void RemoveAt(JsonNode root, IReadOnlyList<string> path)
    {
        if (path.Count == 0) return;
        if (!TryGet(root, path.Take(path.Count - 1).ToList(), out var parent)) return;
        string last = path[^1];
        if (!TryStep(parent, last, out _, out var container, out int index)) return;
        if (container is JsonObject o) o.Remove(last[2..]);
        else if (container is JsonArray a && index >= 0) a.RemoveAt(index);
    }

    /// <summary>A path as upstream prints it in a conflict: .spec.containers[name="app"].image.</summary>
    public static string Display(IReadOnlyList<string> path)
    {
        var sb = new StringBuilder();
        foreach (var e in path)
        {
            if (e.StartsWith("f:", StringComparison.Ordinal)) sb.Append('.').Append(e, 2, e.Length - 2);
            else if (e.StartsWith("k:", StringComparison.Ordinal) && JsonNode.Parse(e[2..]) is JsonObject k)
                sb.Append('[').Append(string.Join(",", k.Select(p => $"{p.Key}={p.Value?.ToJsonString()}"))).Append(']');
            else if (e.StartsWith("v:", StringComparison.Ordinal)) sb.Append("[=").Append(e, 2, e.Length - 2).Append(']');
            else sb.Append('[').Append(e, 2, e.Length - 2).Append(']');
        }
        return sb.ToString();
    }

    // ---- update: who changed what -------------------------------------------------------------

    /// <summary>
    /// Files a non-apply write (operation Update) of <paramref name="next"/> over <paramref name="old"/>
    /// by <paramref name="manager"/>: the fields it added or changed become its own and nobody
    /// else's; fields that are gone leave every set. Untracked objects (no managedFields) stay so.
    /// The entries are those <paramref name="next"/> carries (a client may send them), else old's.
    /// </summary>
    public static void TrackUpdate(JsonObject old, JsonObject next, string kind, string manager, string apiVersion, string? subresource, string now)
    {
        var entries = next.ObjOrNull("metadata")?["managedFields"] is JsonArray ? Read(next) : Read(old);
        if (entries.Count == 0) { next.Meta().Remove("managedFields"); return; }
        var changed = new FieldSet();
        DiffObject(old, next, RootOf(kind), changed, top: true);
        var gone = Of(old, kind).Except(Of(next, kind));
        foreach (var e in entries)
        {
            e.Fields.ExceptWith(gone);
            if (!e.SameOwner(manager, "Update", subresource)) e.Fields.ExceptWith(changed);
        }
        if (!changed.IsEmpty)
        {
            var mine = entries.FirstOrDefault(e => e.SameOwner(manager, "Update", subresource));
            if (mine is null) entries.Add(mine = new ManagedEntry { Manager = manager, Operation = "Update", Subresource = subresource, Fields = new FieldSet() });
            mine.Fields.UnionWith(changed);
            mine.ApiVersion = apiVersion;
            mine.Time = now;
        }
        Write(next, entries);
    }

    private static void DiffObject(JsonObject? o, JsonObject n, string? type, FieldSet set, bool top)
    {
        foreach (var (k, nv) in n)
        {
            if (nv is null || Skipped(top, k)) continue;
            JsonNode? ov = null;
            bool had = o is not null && o.TryGetPropertyValue(k, out ov) && ov is not null;
            if (top && k == "metadata" && nv is JsonObject nm)
            {
                var om = ov as JsonObject;
                var mset = set.Child("f:metadata");
                foreach (var (mk, mv) in nm)
                {
                    if (mv is null || ServerMeta.Contains(mk)) continue;
                    JsonNode? omv = null;
                    bool mhad = om is not null && om.TryGetPropertyValue(mk, out omv) && omv is not null;
                    DiffValue(mhad, omv, mv, "ObjectMeta", mk, mset.Child("f:" + mk));
                }
                continue;
            }
            DiffValue(had, ov, nv, type, k, set.Child("f:" + k));
        }
    }

    private static void DiffValue(bool had, JsonNode? ov, JsonNode nv, string? parentType, string field, FieldSet child)
    {
        var shape = ApplyShape(parentType, field);
        switch (nv)
        {
            case JsonObject no when !shape.AtomicObject && no.Count > 0:
                if (!had && MapFields.Contains(field)) child.Member = true;
                DiffObject(ov as JsonObject, no, shape.Type, child, top: false);
                break;
            case JsonArray na when shape.List == ListKind.Map && na.Count > 0 && na.All(i => i is JsonObject):
                foreach (var item in na.Cast<JsonObject>())
                {
                    string key = KeyElement(item, shape.Keys);
                    var kc = child.Child(key);
                    JsonNode? oi = null;
                    bool found = ov is JsonArray && TryStep(ov, key, out oi, out _, out _);
                    if (!found) kc.Member = true;
                    DiffObject(oi as JsonObject, item, shape.Type, kc, top: false);
                }
                break;
            case JsonArray na when shape.List == ListKind.Set && na.Count > 0:
                foreach (var item in na)
                    if (item is not null && !(ov is JsonArray oa && oa.Any(x => JsonNode.DeepEquals(x, item))))
                        child.Child("v:" + item.ToJsonString()).Member = true;
                break;
            default:
                if (!had || !JsonNode.DeepEquals(ov, nv)) child.Member = true;
                break;
        }
    }

    // ---- apply ------------------------------------------------------------------------------

    /// <summary>A conflict: the path, and the owner that holds it.</summary>
    public readonly record struct Conflict(string[] Path, ManagedEntry Owner);

    /// <summary>
    /// Applies <paramref name="config"/> (already checked: kind, apiVersion, name; no managedFields)
    /// for <paramref name="manager"/> to <paramref name="live"/> (null: the object does not exist
    /// yet). Returns the object to write, with its managedFields, or throws 409 on conflicts
    /// unless <paramref name="force"/>. <paramref name="subresource"/> "status" applies to status
    /// alone; otherwise status is not applied.
    /// </summary>
    public static JsonObject Apply(JsonObject? live, JsonObject config, string kind, string manager, string apiVersion,
        bool force, string? subresource, string now)
    {
        config = (JsonObject)config.DeepClone();
        Json.DropNulls(config);
        if (subresource == "status")
        {
            foreach (var k in config.Select(p => p.Key).Where(k => k is not ("apiVersion" or "kind" or "metadata" or "status")).ToList()) config.Remove(k);
            config["metadata"] = new JsonObject { ["name"] = config.ObjOrNull("metadata")?.Str("name") };
        }
        else config.Remove("status");
        var applied = Of(config, kind);
        if (live is null)
        {
            var created = (JsonObject)config.DeepClone();
            Write(created, [new ManagedEntry { Manager = manager, Operation = "Apply", ApiVersion = apiVersion, Time = now, Subresource = subresource, Fields = applied }]);
            return created;
        }
        var entries = Read(live);
        if (entries.Count == 0)
            entries.Add(new ManagedEntry { Manager = BeforeFirstApply, Operation = "Update", ApiVersion = apiVersion, Time = now, Fields = Of(Untracked(live), kind) });
        var merged = Merge((JsonObject)live.DeepClone(), config, RootOf(kind));

        var conflicts = new List<Conflict>();
        foreach (var e in entries)
        {
            if (e.SameOwner(manager, "Apply", subresource)) continue;
            foreach (var p in applied.Members())
            {
                if (!e.Fields.Contains(p) || p[^1][0] is 'k' or 'v') continue;
                bool was = TryGet(live, p, out var lv), now2 = TryGet(merged, p, out var mv);
                if (was != now2 || !JsonNode.DeepEquals(lv, mv)) conflicts.Add(new Conflict(p, e));
            }
        }
        if (conflicts.Count > 0 && !force) throw ConflictError(conflicts, kind);
        foreach (var c in conflicts) c.Owner.Fields.Remove(c.Path);

        var mine = entries.FirstOrDefault(e => e.SameOwner(manager, "Apply", subresource));
        if (mine is not null)
        {
            // What this manager applied before and applies no more goes, unless someone else holds it.
            var dropped = mine.Fields.Except(applied);
            var others = new FieldSet();
            foreach (var e in entries) if (!ReferenceEquals(e, mine)) others.UnionWith(e.Fields);
            // Items before their fields (a removed item takes its fields along), and never the key
            // field of an item that stays.
            foreach (var p in dropped.Members().OrderBy(p => p.Length))
                if (!others.Contains(p) && !others.HasMemberBelow(p) && !IsKeyField(p)) RemoveAt(merged, p);
            // The entry's time moves only when what it holds does: an apply that changes nothing writes nothing.
            if (mine.Fields.ToString() != applied.ToString() || mine.ApiVersion != apiVersion) mine.Time = now;
            mine.Fields = applied;
            mine.ApiVersion = apiVersion;
        }
        else entries.Add(new ManagedEntry { Manager = manager, Operation = "Apply", ApiVersion = apiVersion, Time = now, Subresource = subresource, Fields = applied });
        Write(merged, entries);
        return merged;
    }

    private static bool IsKeyField(string[] p) =>
        p.Length >= 2 && p[^2].StartsWith("k:", StringComparison.Ordinal) && p[^1].StartsWith("f:", StringComparison.Ordinal)
        && JsonNode.Parse(p[^2][2..]) is JsonObject key && key.ContainsKey(p[^1][2..]);

    /// <summary>An object's fields without status (what "before-first-apply" takes over on the main resource).</summary>
    private static JsonObject Untracked(JsonObject live)
    {
        var copy = (JsonObject)live.DeepClone();
        copy.Remove("status");
        return copy;
    }

    private static ApiException ConflictError(List<Conflict> conflicts, string kind)
    {
        conflicts = conflicts.OrderBy(c => c.Owner.Manager, StringComparer.Ordinal).ThenBy(c => c.Owner.Subresource, StringComparer.Ordinal)
            .ThenBy(c => Display(c.Path), StringComparer.Ordinal).ToList();
        var byOwner = conflicts.GroupBy(c => c.Owner.Describe()).ToList();
        string message;
        if (conflicts.Count == 1)
            message = $"Apply failed with 1 conflict: conflict with {byOwner[0].Key}: {Display(conflicts[0].Path)}";
        else
        {
            var sb = new StringBuilder($"Apply failed with {conflicts.Count} conflicts: ");
            sb.Append(string.Join("\n", byOwner.Select(g => $"conflicts with {g.Key}:\n" + string.Join("\n", g.Select(c => "- " + Display(c.Path))))));
            message = sb.ToString();
        }
        return new ApiException(409, "Conflict", message)
        {
            Causes = conflicts.Select(c => new FieldError(Display(c.Path), ApiException.ConflictKind, null, $"conflict with {c.Owner.Describe()}")).ToList(),
        };
    }

    /// <summary>The structured merge of an applied configuration into the live object.</summary>
    private static JsonObject Merge(JsonObject live, JsonObject config, string? type)
    {
        foreach (var (k, cv) in config)
        {
            if (cv is null) continue;
            var shape = ApplyShape(type, k);
            var lv = live[k];
            if (cv is JsonObject co && lv is JsonObject lo && !shape.AtomicObject)
                live[k] = Merge(lo, co, shape.Type);
            else if (cv is JsonArray ca && lv is JsonArray la && shape.List == ListKind.Map && ca.All(i => i is JsonObject) && la.All(i => i is JsonObject))
            {
                var result = (JsonArray)la.DeepClone();
                foreach (var item in ca.Cast<JsonObject>())
                {
                    string key = KeyElement(item, shape.Keys);
                    if (TryStep(result, key, out var existing, out _, out int idx) && existing is JsonObject eo)
                        result[idx] = Merge((JsonObject)eo.DeepClone(), item, shape.Type);
                    else result.Add(item.DeepClone());
                }
                live[k] = result;
            }
            else if (cv is JsonArray cs && lv is JsonArray ls && shape.List == ListKind.Set)
            {
                var result = (JsonArray)ls.DeepClone();
                foreach (var item in cs) if (!result.Any(x => JsonNode.DeepEquals(x, item))) result.Add(item?.DeepClone());
                live[k] = result;
            }
            else live[k] = cv.DeepClone();
        }
        return live;
    }
}
