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

    /// <summary>The paths of the members of <paramref name="obj"/> its kind does not declare, in document order; empty for a kind without a schema.</summary>
    public static List<string> UnknownFields(string kind, string group, JsonElement obj)
    {
        var found = new List<string>();
        if (RootTypes.TryGetValue((kind, group), out var type)) Walk(obj, type, new PathStack(), found);
        return found;
    }

    /// <summary>The same for an object tree (the general write path; it is encoded and read back, so there is one walk to keep right).</summary>
    public static List<string> UnknownFields(string kind, string group, JsonNode obj)
    {
        if (!RootTypes.ContainsKey((kind, group))) return [];
        using var doc = JsonDocument.Parse(ObjectCodec.Encode(obj.AsObject()));
        return UnknownFields(kind, group, doc.RootElement);
    }

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

        public string With(string last)
        {
            var sb = new System.Text.StringBuilder();
            foreach (var (name, index) in _segments)
            {
                if (name is null) sb.Append('[').Append(index).Append(']');
                else if (name[0] == '[') sb.Append(name);
                else { if (sb.Length > 0) sb.Append('.'); sb.Append(name); }
            }
            if (sb.Length > 0) sb.Append('.');
            return sb.Append(last).ToString();
        }
    }

    /// <summary>A shape with no fields under it: a scalar ("" or "=" and its type) or anything ("*").</summary>
    private static bool IsLeaf(ReadOnlySpan<char> shape) => shape.IsEmpty || shape[0] is '=' or '*';

    private static void Walk(JsonElement node, string shape, PathStack path, List<string> found)
    {
        switch (shape)
        {
            case "" or "*" or ['=', ..]:
                return;
            case ['[', ..]:
                if (node.ValueKind != JsonValueKind.Array || IsLeaf(shape.AsSpan(1))) return;
                int i = 0;
                foreach (var item in node.EnumerateArray())
                {
                    path.PushIndex(i++);
                    Walk(item, shape[1..], path, found);
                    path.Pop();
                }
                return;
            case ['{', ..]:
                if (node.ValueKind != JsonValueKind.Object || IsLeaf(shape.AsSpan(1))) return;
                foreach (var p in node.EnumerateObject())
                {
                    path.PushKey(p.Name);
                    Walk(p.Value, shape[1..], path, found);
                    path.Pop();
                }
                return;
        }
        if (node.ValueKind != JsonValueKind.Object || !Types.TryGetValue(shape, out var fields)) return;
        var byChars = fields.GetAlternateLookup<ReadOnlySpan<char>>();
        Span<char> buffer = stackalloc char[64];
        foreach (var p in node.EnumerateObject())
        {
            // The member's name looked up without making a string of it (field names are short ASCII).
            var raw = JsonMarshal.GetRawUtf8PropertyName(p);
            bool known = raw.Length <= buffer.Length && raw.IndexOf((byte)'\\') < 0
                ? byChars.TryGetValue(buffer[..Encoding.UTF8.GetChars(raw, buffer)], out var field)
                : fields.TryGetValue(p.Name, out field);
            if (!known) found.Add(path.With(p.Name));
            else if (!IsLeaf(field.Shape))
            {
                path.Push(field.Name);
                Walk(p.Value, field.Shape, path, found);
                path.Pop();
            }
        }
    }
}
