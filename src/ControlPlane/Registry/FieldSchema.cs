using System.Collections.Frozen;
using System.Text.Json;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>
/// Every field of the served kinds, by name and shape (FieldSchema.Generated.cs, written by
/// tools/SchemaGen), for server-side field validation: the members of a body that its kind does
/// not declare, as upstream's strict decoder names them (<c>spec.containers[0].imagee</c>).
/// Unlike the protobuf tables (a subset, for decoding), these are complete, so a field they do
/// not know is one upstream would not know either.
/// </summary>
public static partial class FieldSchema
{
    /// <summary>type → field → its name and shape ("" a string, "=" + a letter another scalar, "*" anything, a type, "[" + shape a list, "{" + shape a map).</summary>
    private static readonly FrozenDictionary<string, FrozenDictionary<string, (string Name, string Shape)>> Types;

    private static readonly FrozenDictionary<(string Kind, string Group), string> RootTypes;

    /// <summary>type → its OpenAPI definition name, as upstream names it.</summary>
    private static readonly FrozenDictionary<string, string> DefinitionNames;

    // In the constructor, not in initializers: Roots is declared in the generated half of this
    // class, and initializers of the two files run in no set order.
    static FieldSchema()
    {
        Types = Parse();
        RootTypes = Roots.ToFrozenDictionary(r => (r.Kind, r.Group), r => r.Type);
        DefinitionNames = OpenApiNames.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')).ToFrozenDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
    }

    /// <summary>The served kinds of an API group, each with its type.</summary>
    public static IEnumerable<(string Kind, string Type)> KindsOf(string group)
    {
        foreach (var r in Roots)
            if (r.Group == group) yield return (r.Kind, r.Type);
    }

    /// <summary>The fields of a type by name, with their shapes (see <see cref="Types"/>).</summary>
    public static IEnumerable<(string Name, string Shape)> FieldsOf(string type) =>
        Types.TryGetValue(type, out var fields) ? fields.Values.OrderBy(f => f.Name, StringComparer.Ordinal) : [];

    /// <summary>The OpenAPI definition name of a type (io.k8s.api.core.v1.PodSpec).</summary>
    public static string DefinitionName(string type) => DefinitionNames[type];

    private static FrozenDictionary<string, FrozenDictionary<string, (string Name, string Shape)>> Parse()
    {
        var types = new Dictionary<string, FrozenDictionary<string, (string Name, string Shape)>>(StringComparer.Ordinal);
        foreach (var line in Table.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            var fields = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
            for (int i = 1; i < parts.Length; i++)
            {
                int colon = parts[i].IndexOf(':');
                string name = colon < 0 ? parts[i] : parts[i][..colon];
                fields[name] = (name, colon < 0 ? "" : parts[i][(colon + 1)..]);
            }
            types[parts[0]] = fields.ToFrozenDictionary(StringComparer.Ordinal);
        }
        return types.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>Whether the kind has a schema here (the served kinds do).</summary>
    public static bool Knows(string kind, string group) => RootTypes.ContainsKey((kind, group));

    /// <summary>
    /// What a walk of an object against its kind's fields found: the paths of the members the kind
    /// does not declare, in document order, and the first member whose value has a type the
    /// field cannot hold (a string for an int32, 2^31 for an int32, a date that is not RFC 3339),
    /// which upstream's decoder refuses outright, and which, stored, no Go client could read back.
    /// </summary>
    public sealed record Findings(List<string> Unknown, (string Path, string Expected)? Mismatch);

    /// <summary>Walks <paramref name="obj"/> against its kind's fields; nothing is found for a kind without a schema.</summary>
    public static Findings Check(string kind, string group, JsonElement obj)
    {
        var walker = new Walker();
        if (RootTypes.TryGetValue((kind, group), out var type)) walker.Walk(obj, type);
        return new(walker.Unknown, walker.Mismatch);
    }

    /// <summary>The same for an object tree (the general write path; it is encoded and read back, so there is one walk to keep right).</summary>
    public static Findings Check(string kind, string group, JsonNode obj)
    {
        if (!RootTypes.ContainsKey((kind, group))) return new([], null);
        using var doc = JsonDocument.Parse(ObjectCodec.Encode(obj.AsObject()));
        return Check(kind, group, doc.RootElement);
    }

    /// <summary>The paths of the members of <paramref name="obj"/> its kind does not declare (see <see cref="Check(string, string, JsonElement)"/>).</summary>
    public static List<string> UnknownFields(string kind, string group, JsonElement obj) => Check(kind, group, obj).Unknown;

    /// <inheritdoc cref="UnknownFields(string, string, JsonElement)"/>
    public static List<string> UnknownFields(string kind, string group, JsonNode obj) => Check(kind, group, obj).Unknown;

    /// <summary>
    /// The path down to the node being walked, as a stack of segments: a member name, a list index
    /// or a map key. It is written out only for an unknown field, so a body without one (every
    /// create kubectl sends from a valid manifest) allocates no path strings.
    /// </summary>
    private sealed class PathStack
    {
        private readonly List<(string? Name, int Index)> _segments = [];
        public void Push(string name) => _segments.Add((name, -1));
        public void PushIndex(int index) => _segments.Add((null, index));
        public void PushKey(string key) => _segments.Add(("[" + key + "]", -1));
        public void Pop() => _segments.RemoveAt(_segments.Count - 1);

        /// <summary>The path, with <paramref name="last"/> (a member name) after it unless null.</summary>
        public string With(string? last)
        {
            var sb = new System.Text.StringBuilder();
            foreach (var (name, index) in _segments)
            {
                if (name is null) sb.Append('[').Append(index).Append(']');
                else if (name[0] == '[') sb.Append(name);
                else { if (sb.Length > 0) sb.Append('.'); sb.Append(name); }
            }
            if (last is null) return sb.ToString();
            if (sb.Length > 0) sb.Append('.');
            return sb.Append(last).ToString();
        }
    }

    /// <summary>The shape of a list's or map's elements (the shape without its first character), without a new string each time.</summary>
    private static string Element(string shape) => ElementShapes.TryGetValue(shape, out var e) ? e : shape[1..];

    /// <summary>Every list and map shape of the table, with its element shape.</summary>
    private static readonly FrozenDictionary<string, string> ElementShapes = BuildElementShapes();

    private static FrozenDictionary<string, string> BuildElementShapes()
    {
        var shapes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Table.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            foreach (var member in line.Split(' ').AsSpan(1))
            {
                int colon = member.IndexOf(':');
                for (string shape = colon < 0 ? "" : member[(colon + 1)..]; shape is ['[' or '{', ..]; shape = shapes[shape])
                    shapes.TryAdd(shape, shape[1..]);
            }
        return shapes.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>A shape with no fields under it: a scalar ("" or "=" and its type) or anything ("*").</summary>
    private static bool IsLeaf(ReadOnlySpan<char> shape) => shape.IsEmpty || shape[0] is '=' or '*';

    /// <summary>
    /// The walk itself: the path down to the node being visited, the unknown members found, and
    /// the first mismatch (after which the rest is not looked at). Scalars are checked where their
    /// member is read, without entering the path, so a body that passes builds no path strings.
    /// </summary>
    private sealed class Walker
    {
        private readonly PathStack _path = new();
        public List<string> Unknown { get; } = [];
        public (string Path, string Expected)? Mismatch { get; private set; }

        public void Walk(JsonElement node, string shape)
        {
            if (Mismatch is not null || node.ValueKind == JsonValueKind.Null) return;
            switch (shape)
            {
                case "*":
                    return;
                case "" or ['=', ..]:
                    if (Scalar(node, shape) is { } expected) Mismatch = (_path.With(null), expected);
                    return;
                case ['[', ..]:
                {
                    if (node.ValueKind != JsonValueKind.Array) { Mismatch = (_path.With(null), "a list"); return; }
                    string element = Element(shape);
                    int i = 0;
                    foreach (var item in node.EnumerateArray())
                    {
                        // A list of scalars is checked in place: its path is written only for a mismatch.
                        if (IsLeaf(element))
                        {
                            if (item.ValueKind != JsonValueKind.Null && Scalar(item, element) is { } bad) { Mismatch = ($"{_path.With(null)}[{i}]", bad); return; }
                        }
                        else
                        {
                            _path.PushIndex(i);
                            Walk(item, element);
                            _path.Pop();
                        }
                        i++;
                    }
                    return;
                }
                case ['{', ..]:
                {
                    if (node.ValueKind != JsonValueKind.Object) { Mismatch = (_path.With(null), "a map"); return; }
                    string element = Element(shape);
                    foreach (var p in node.EnumerateObject())
                    {
                        if (IsLeaf(element))
                        {
                            if (p.Value.ValueKind != JsonValueKind.Null && Scalar(p.Value, element) is { } bad) { Mismatch = ($"{_path.With(null)}[{p.Name}]", bad); return; }
                        }
                        else
                        {
                            _path.PushKey(p.Name);
                            Walk(p.Value, element);
                            _path.Pop();
                        }
                    }
                    return;
                }
            }
            if (!Types.TryGetValue(shape, out var fields)) return;
            if (node.ValueKind != JsonValueKind.Object) { Mismatch = (_path.With(null), "an object"); return; }
            var byChars = fields.GetAlternateLookup<ReadOnlySpan<char>>();
            Span<char> buffer = stackalloc char[64];
            foreach (var p in node.EnumerateObject())
            {
                // The member's name looked up without making a string of it (field names are short ASCII).
                var raw = JsonMarshal.GetRawUtf8PropertyName(p);
                bool known = raw.Length <= buffer.Length && raw.IndexOf((byte)'\\') < 0
                    ? byChars.TryGetValue(buffer[..Encoding.UTF8.GetChars(raw, buffer)], out var field)
                    : fields.TryGetValue(p.Name, out field);
                if (!known) Unknown.Add(_path.With(p.Name));
                else if (IsLeaf(field.Shape))
                {
                    if (p.Value.ValueKind != JsonValueKind.Null && Scalar(p.Value, field.Shape) is { } expected)
                        Mismatch = (_path.With(field.Name), expected);
                }
                else
                {
                    _path.Push(field.Name);
                    Walk(p.Value, field.Shape);
                    _path.Pop();
                }
                if (Mismatch is not null) return;
            }
        }
    }

    /// <summary>What a scalar of <paramref name="shape"/> must be, when <paramref name="v"/> is not that; null when it is.</summary>
    private static string? Scalar(JsonElement v, string shape)
    {
        var kind = v.ValueKind;
        switch (shape)
        {
            case "*": return null;
            case "" or "=y": return kind == JsonValueKind.String ? null : "a string";
            case "=b": return kind is JsonValueKind.True or JsonValueKind.False ? null : "a boolean";
            case "=d": return kind == JsonValueKind.Number ? null : "a number";
            case "=q": return kind is JsonValueKind.String or JsonValueKind.Number ? (IsQuantity(v) ? null : BadQuantity) : "a quantity";
            case "=i": return kind != JsonValueKind.Number || !IsIntegral(v) ? "an integer" : v.TryGetInt32(out _) ? null : "an integer of at most 32 bits";
            case "=l": return kind != JsonValueKind.Number || !IsIntegral(v) ? "an integer" : v.TryGetInt64(out _) ? null : "an integer of at most 64 bits";
            case "=o":
                if (kind == JsonValueKind.String) return null;
                return kind != JsonValueKind.Number || !IsIntegral(v) ? "an integer or a string" : v.TryGetInt32(out _) ? null : "an integer of at most 32 bits or a string";
            case "=t":
                if (kind != JsonValueKind.String) return "a string";
                var s = v.GetString()!;
                return s.Length == 0 || IsRfc3339(s) ? null : "an RFC 3339 date and time";
            default: return null;
        }
    }

    private const string BadQuantity = "a quantity (quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$')";

    /// <summary>Whether a string or number parses as a resource quantity (as upstream's decoder parses it), read from its bytes without a string.</summary>
    private static bool IsQuantity(JsonElement v)
    {
        var raw = JsonMarshal.GetRawUtf8Value(v);
        if (v.ValueKind == JsonValueKind.String) raw = raw[1..^1];
        if (raw.Length > 64 || raw.IndexOf((byte)'\\') >= 0) return NodeAgent.Api.Meta.Quantity.TryParse(v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText(), out _);
        Span<char> chars = stackalloc char[64];
        int n = Encoding.UTF8.GetChars(raw, chars);
        return NodeAgent.Api.Meta.Quantity.TryParse(chars[..n].Trim(), out _);
    }

    /// <summary>Whether a JSON number is written as an integer (digits, with an optional minus), as Go's decoder wants one for an int field.</summary>
    private static bool IsIntegral(JsonElement number)
    {
        var raw = JsonMarshal.GetRawUtf8Value(number);
        return raw.IndexOfAny(".eE"u8) < 0;
    }

    /// <summary>
    /// Go's time.RFC3339 as metav1.Time and MicroTime parse it: a valid date and time with an
    /// uppercase T, optional fractional seconds of any length, and Z or an offset ±hh:mm.
    /// </summary>
    internal static bool IsRfc3339(ReadOnlySpan<char> s)
    {
        if (s.Length < 20 || s[10] != 'T'
            || !DateTime.TryParseExact(s[..19], "yyyy-MM-dd'T'HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out _))
            return false;
        var rest = s[19..];
        if (rest[0] == '.')
        {
            int n = 1;
            while (n < rest.Length && char.IsAsciiDigit(rest[n])) n++;
            if (n == 1) return false;
            rest = rest[n..];
        }
        if (rest is "Z") return true;
        return rest.Length == 6 && rest[0] is '+' or '-' && rest[3] == ':'
            && char.IsAsciiDigit(rest[1]) && char.IsAsciiDigit(rest[2]) && char.IsAsciiDigit(rest[4]) && char.IsAsciiDigit(rest[5])
            && (rest[1] - '0') * 10 + (rest[2] - '0') < 24 && (rest[4] - '0') * 10 + (rest[5] - '0') < 60;
    }
}
