using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// A label selector: the query grammar of apimachinery's labels package (<c>a=b</c>, <c>a==b</c>,
/// <c>a!=b</c>, <c>a in (x,y)</c>, <c>a notin (x)</c>, <c>a</c>, <c>!a</c>, <c>a&gt;1</c>, <c>a&lt;1</c>)
/// or a metav1.LabelSelector object. Requirements are ANDed.
/// </summary>
public sealed class LabelSelector
{
    public enum Op { Equals, NotEquals, In, NotIn, Exists, DoesNotExist, Gt, Lt }

    public readonly record struct Requirement(string Key, Op Op, string[] Values);

    private readonly List<Requirement> _reqs;

    private LabelSelector(List<Requirement> reqs) => _reqs = reqs;

    public static readonly LabelSelector Everything = new([]);

    public bool IsEmpty => _reqs.Count == 0;
    public IReadOnlyList<Requirement> Requirements => _reqs;

    public bool Matches(IReadOnlyDictionary<string, string>? labels)
    {
        foreach (var r in _reqs)
        {
            string? v = null;
            bool has = labels is not null && labels.TryGetValue(r.Key, out v);
            bool ok = r.Op switch
            {
                Op.Equals => has && v == r.Values[0],
                Op.In => has && r.Values.Contains(v),
                Op.NotEquals => !has || v != r.Values[0],
                Op.NotIn => !has || !r.Values.Contains(v),
                Op.Exists => has,
                Op.DoesNotExist => !has,
                Op.Gt => has && long.TryParse(v, out var g) && g > long.Parse(r.Values[0], System.Globalization.CultureInfo.InvariantCulture),
                Op.Lt => has && long.TryParse(v, out var l) && l < long.Parse(r.Values[0], System.Globalization.CultureInfo.InvariantCulture),
                _ => false,
            };
            if (!ok) return false;
        }
        return true;
    }


    public static LabelSelector Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return Everything;
        var reqs = new List<Requirement>();
        int i = 0;
        while (true)
        {
            Skip(text, ref i);
            if (i >= text.Length) throw Bad(text, "expected a requirement");
            bool not = false;
            if (text[i] == '!') { not = true; i++; Skip(text, ref i); }
            string key = Word(text, ref i);
            if (key.Length == 0) throw Bad(text, "a requirement needs a key");
            ValidateKey(key, text);
            Skip(text, ref i);
            if (not)
            {
                reqs.Add(new(key, Op.DoesNotExist, []));
            }
            else if (i >= text.Length || text[i] == ',')
            {
                reqs.Add(new(key, Op.Exists, []));
            }
            else if (text[i] == '=' || text[i] == '!' && i + 1 < text.Length && text[i + 1] == '=')
            {
                var op = text[i] == '!' ? Op.NotEquals : Op.Equals;
                i += text[i] == '!' || i + 1 < text.Length && text[i + 1] == '=' ? 2 : 1;
                Skip(text, ref i);
                string value = Word(text, ref i);
                ValidateValue(value, text);
                reqs.Add(new(key, op, [value]));
            }
            else if (text[i] is '>' or '<')
            {
                var op = text[i] == '>' ? Op.Gt : Op.Lt;
                i++;
                Skip(text, ref i);
                string value = Word(text, ref i);
                if (!long.TryParse(value, out _)) throw Bad(text, $"for 'Gt', 'Lt' operators, the value must be an integer: \"{value}\"");
                reqs.Add(new(key, op, [value]));
            }
            else
            {
                string opWord = Word(text, ref i);
                var op = opWord switch
                {
                    "in" => Op.In,
                    "notin" => Op.NotIn,
                    _ => throw Bad(text, $"found '{opWord}', expected: in, notin, =, ==, !=, gt, lt"),
                };
                Skip(text, ref i);
                if (i >= text.Length || text[i] != '(') throw Bad(text, "found end of string, expected: '('");
                int close = text.IndexOf(')', i);
                if (close < 0) throw Bad(text, "found end of string, expected: ')'");
                var values = text[(i + 1)..close].Split(',', StringSplitOptions.TrimEntries);
                foreach (var v in values) ValidateValue(v, text);
                i = close + 1;
                reqs.Add(new(key, op, values));
            }
            Skip(text, ref i);
            if (i >= text.Length) break;
            if (text[i] != ',') throw Bad(text, $"found '{text[i]}', expected: ',' or 'end of string'");
            i++;
        }
        return new(reqs);
    }

    /// <summary>From a metav1.LabelSelector object (matchLabels + matchExpressions).</summary>
    public static LabelSelector FromObject(JsonObject? sel)
    {
        var reqs = new List<Requirement>();
        if (sel is null) return new(reqs);
        if (sel.StringMap("matchLabels") is { } ml)
            foreach (var (k, v) in ml) reqs.Add(new(k, Op.Equals, [v]));
        var expressions = sel.ArrOrNull("matchExpressions") ?? [];
        for (int index = 0; index < expressions.Count; index++)
        {
            if (expressions[index] is not JsonObject e) throw ApiException.BadRequest($"matchExpressions[{index}]: must be an object");
            string key = e.Str("key") ?? throw ApiException.BadRequest("matchExpressions: key is required");
            var list = e.ArrOrNull("values");
            var values = new string[list?.Count ?? 0];
            for (int i = 0; i < values.Length; i++)
                values[i] = list![i] switch
                {
                    null => "",
                    JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                    _ => throw ApiException.BadRequest($"matchExpressions[{index}].values[{i}]: must be a string"),
                };
            var op = e.Str("operator") switch
            {
                "In" => Op.In,
                "NotIn" => Op.NotIn,
                "Exists" => Op.Exists,
                "DoesNotExist" => Op.DoesNotExist,
                var o => throw ApiException.BadRequest($"\"{o}\" is not a valid label selector operator"),
            };
            if (op is Op.In or Op.NotIn && values.Length == 0) throw ApiException.BadRequest("for 'in', 'notin' operators, values set can't be empty");
            reqs.Add(new(key, op, values));
        }
        return new(reqs);
    }

    public override string ToString() => string.Join(",", _reqs.Select(r => r.Op switch
    {
        Op.Equals => $"{r.Key}={r.Values[0]}",
        Op.NotEquals => $"{r.Key}!={r.Values[0]}",
        Op.In => $"{r.Key} in ({string.Join(",", r.Values)})",
        Op.NotIn => $"{r.Key} notin ({string.Join(",", r.Values)})",
        Op.Exists => r.Key,
        Op.DoesNotExist => "!" + r.Key,
        Op.Gt => $"{r.Key}>{r.Values[0]}",
        _ => $"{r.Key}<{r.Values[0]}",
    }));

    private static void Skip(string s, ref int i) { while (i < s.Length && s[i] == ' ') i++; }

    private static string Word(string s, ref int i)
    {
        int start = i;
        while (i < s.Length && s[i] is not (' ' or ',' or '=' or '!' or '(' or ')' or '<' or '>')) i++;
        return s[start..i];
    }

    private static void ValidateKey(string key, string text)
    {
        if (Names.QualifiedName(key) is { } e) throw Bad(text, $"key: Invalid value: \"{key}\": {e}");
    }

    private static void ValidateValue(string value, string text)
    {
        if (Names.LabelValue(value) is { } e) throw Bad(text, $"values[0][{value}]: Invalid value: \"{value}\": {e}");
    }

    private static ApiException Bad(string text, string why) => ApiException.BadRequest($"unable to parse requirement: {why} (in label selector \"{text}\")");
}

/// <summary>A field selector: <c>field=value</c>, <c>field==value</c>, <c>field!=value</c>, comma-separated, on the resource's field labels.</summary>
public sealed class FieldSelector
{
    public readonly record struct Requirement(string Field, bool Equal, string Value);

    private readonly List<Requirement> _reqs;

    private FieldSelector(List<Requirement> reqs) => _reqs = reqs;

    public static readonly FieldSelector Everything = new([]);
    public bool IsEmpty => _reqs.Count == 0;
    public IReadOnlyList<Requirement> Requirements => _reqs;

    /// <summary>The value a requirement demands for <paramref name="field"/> (e.g. metadata.name=x), if any.</summary>
    public string? Exact(string field)
    {
        foreach (var r in _reqs) if (r.Field == field && r.Equal) return r.Value;
        return null;
    }

    public static FieldSelector Parse(string? text, Registry.ResourceInfo info)
    {
        if (string.IsNullOrWhiteSpace(text)) return Everything;
        var reqs = new List<Requirement>();
        foreach (var part in text.Split(','))
        {
            string p = part.Trim();
            int ne = p.IndexOf("!=", StringComparison.Ordinal);
            int eq = p.IndexOf('=');
            string field, value;
            bool equal;
            if (ne >= 0) { field = p[..ne]; value = p[(ne + 2)..]; equal = false; }
            else if (eq >= 0) { field = p[..eq]; value = p[(eq + (p.Length > eq + 1 && p[eq + 1] == '=' ? 2 : 1))..]; equal = true; }
            else throw ApiException.BadRequest($"invalid selector: '{text}'; can't understand '{p}'");
            field = field.Trim();
            if (field is not ("metadata.name" or "metadata.namespace") && !info.FieldLabels.Contains(field))
                throw ApiException.BadRequest($"field label not supported: {field}");
            reqs.Add(new(field, equal, value.Trim()));
        }
        return new(reqs);
    }

    public bool Matches(ObjectAttrs attrs)
    {
        foreach (var r in _reqs)
        {
            string v = attrs.Field(r.Field) ?? "";
            if ((v == r.Value) != r.Equal) return false;
        }
        return true;
    }
}

/// <summary>
/// What selectors look at, extracted once per object (labels and the resource's field labels),
/// immutable and so shared by every watcher of an event.
/// </summary>
public sealed class ObjectAttrs
{
    private readonly string?[] _fields;
    private readonly Registry.ResourceInfo _info;

    public Dictionary<string, string>? Labels { get; }

    public ObjectAttrs(Registry.ResourceInfo info, JsonObject obj)
    {
        _info = info;
        var meta = obj.ObjOrNull("metadata");
        Labels = meta.StringMap("labels");
        Name = meta.Str("name") ?? "";
        Namespace = meta.Str("namespace") ?? "";
        _fields = new string?[info.FieldLabels.Length];
        for (int i = 0; i < _fields.Length; i++) _fields[i] = Registry.ResourceInfo.FieldValue(obj, info.FieldLabels[i]);
    }

    /// <summary>
    /// The same from the stored bytes, without building the object: one forward pass that reads
    /// metadata.name, .namespace and .labels and the field labels' paths and skips everything else.
    /// The watch cache makes one of these per write, so a create does not pay for a second tree.
    /// </summary>
    public ObjectAttrs(Registry.ResourceInfo info, ReadOnlySpan<byte> json)
    {
        _info = info;
        var paths = info.FieldLabelPaths;
        _fields = new string?[paths.Length];
        var r = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 128 });
        if (!r.Read() || r.TokenType != JsonTokenType.StartObject) throw new JsonException("expected a JSON object");
        Span<int> all = stackalloc int[paths.Length];
        for (int i = 0; i < all.Length; i++) all[i] = i;
        string? name = null, ns = null;
        Dictionary<string, string>? labels = null;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (!r.ValueTextEquals("metadata"u8))
            {
                ScanMember(ref r, paths, all, 0, _fields);
                continue;
            }
            r.Read();
            if (r.TokenType != JsonTokenType.StartObject) { r.Skip(); continue; }
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                if (r.ValueTextEquals("name"u8)) name = StringOrSkip(ref r);
                else if (r.ValueTextEquals("namespace"u8)) ns = StringOrSkip(ref r);
                else if (r.ValueTextEquals("labels"u8)) labels = StringMapOrSkip(ref r);
                else { r.Read(); r.Skip(); }
            }
        }
        Labels = labels;
        Name = name ?? "";
        Namespace = ns ?? "";
    }

    /// <summary>
    /// At a property name under the path prefix of depth <paramref name="depth"/> that every label in
    /// <paramref name="candidates"/> shares: records or descends for the labels that name continues, skips otherwise.
    /// </summary>
    private static void ScanMember(ref Utf8JsonReader r, string[][] paths, scoped ReadOnlySpan<int> candidates, int depth, string?[] fields)
    {
        Span<int> hit = stackalloc int[candidates.Length];
        int ends = 0, deeper = 0;
        foreach (int c in candidates)
        {
            if (!r.ValueTextEquals(paths[c][depth])) continue;
            if (paths[c].Length == depth + 1) hit[ends++] = c;                // ends here: the leaf values
            else hit[hit.Length - ++deeper] = c;                           // goes on: from the back
        }
        r.Read();
        if (ends + deeper == 0) { r.Skip(); return; }
        switch (r.TokenType)
        {
            case JsonTokenType.StartObject:
                var next = hit[(hit.Length - deeper)..];
                while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
                {
                    if (next.Length > 0) ScanMember(ref r, paths, next, depth + 1, fields);
                    else { r.Read(); r.Skip(); }
                }
                break;
            case JsonTokenType.StartArray:
                r.Skip();
                break;
            default:
                string? v = r.TokenType switch
                {
                    JsonTokenType.String => r.GetString(),
                    JsonTokenType.True => "true",
                    JsonTokenType.False => "false",
                    JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(r.ValueSpan),
                    _ => null,
                };
                foreach (int c in hit[..ends]) fields[c] = v;
                break;
        }
    }

    private static string? StringOrSkip(ref Utf8JsonReader r)
    {
        r.Read();
        if (r.TokenType == JsonTokenType.String) return r.GetString();
        r.Skip();
        return null;
    }

    private static Dictionary<string, string>? StringMapOrSkip(ref Utf8JsonReader r)
    {
        r.Read();
        if (r.TokenType != JsonTokenType.StartObject) { r.Skip(); return null; }
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            string key = r.GetString()!;
            r.Read();
            if (r.TokenType == JsonTokenType.String) d[key] = r.GetString()!;
            else r.Skip();
        }
        return d;
    }

    public string Name { get; }
    public string Namespace { get; }

    public string? Field(string label)
    {
        if (label == "metadata.name") return Name;
        if (label == "metadata.namespace") return Namespace;
        int i = Array.IndexOf(_info.FieldLabels, label);
        return i >= 0 ? _fields[i] : null;
    }

    public bool Matches(LabelSelector labels, FieldSelector fields) =>
        (labels.IsEmpty || labels.Matches(Labels)) && (fields.IsEmpty || fields.Matches(this));
}
