using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// A label selector parsed once: a metav1.LabelSelector (matchLabels + matchExpressions) or a plain
/// map (a Service's spec.selector). Matching reads the object's labels in place; nothing is copied.
/// </summary>
public sealed class Selector
{
    private readonly (string Key, string Value)[] _equals;
    private readonly (string Key, string Op, HashSet<string> Values)[] _expressions;

    /// <summary>Selects nothing (a nil selector, or a controller's empty one).</summary>
    public static readonly Selector Nothing = new([], [], matchesNothing: true);

    private readonly bool _nothing;

    private Selector((string, string)[] equals, (string, string, HashSet<string>)[] expressions, bool matchesNothing = false)
    {
        _equals = equals;
        _expressions = expressions;
        _nothing = matchesNothing;
    }

    private static readonly ConditionalWeakTable<JsonObject, Selector> Parsed = new();

    /// <summary>
    /// The metav1.LabelSelector at <paramref name="selector"/>; as workload controllers treat it, a
    /// missing or empty one selects nothing. Cached per JSON node (informer objects are replaced, never mutated).
    /// </summary>
    public static Selector OfLabelSelector(JsonNode? selector)
    {
        if (selector is not JsonObject o) return Nothing;
        return Parsed.GetValue(o, static o =>
        {
            var eq = (o["matchLabels"] as JsonObject)?.Select(kv => (kv.Key, kv.Value?.GetValue<string>() ?? "")).ToArray() ?? [];
            var ex = (o["matchExpressions"] as JsonArray)?.OfType<JsonObject>().Select(e => (
                ControllerKit.Str(e, "key"), ControllerKit.Str(e, "operator"),
                (e["values"] as JsonArray)?.Select(v => v?.GetValue<string>() ?? "").ToHashSet(StringComparer.Ordinal) ?? [])).ToArray() ?? [];
            return eq.Length == 0 && ex.Length == 0 ? Nothing : new Selector(eq, ex);
        });
    }

    /// <summary>A Service-style map selector; a missing or empty one selects nothing (such Services have no managed endpoints).</summary>
    public static Selector OfMap(JsonNode? map)
    {
        if (map is not JsonObject o || o.Count == 0) return Nothing;
        return Parsed.GetValue(o, static o => new Selector(o.Select(kv => (kv.Key, kv.Value?.GetValue<string>() ?? "")).ToArray(), []));
    }

    public bool Matches(JsonObject obj)
    {
        if (_nothing) return false;
        var labels = obj["metadata"]?["labels"] as JsonObject;
        foreach (var (k, v) in _equals)
            if (labels?[k] is not JsonValue have || have.GetValue<string>() != v) return false;
        foreach (var (k, op, values) in _expressions)
        {
            if (!Satisfies(op, labels?[k]?.GetValue<string>(), values)) return false;
        }
        return true;
    }

    /// <summary>One matchExpressions requirement: <paramref name="have"/> is the label's value, null when absent.</summary>
    public static bool Satisfies(string op, string? have, IReadOnlyCollection<string> values) => op switch
    {
        "In" => have is not null && values.Contains(have),
        "NotIn" => have is null || !values.Contains(have),
        "Exists" => have is not null,
        "DoesNotExist" => have is null,
        _ => false,
    };
}
