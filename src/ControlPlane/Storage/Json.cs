using System.Text.Json;
using System.Text.Json.Nodes;

namespace NodeAgent.ControlPlane.Storage;

/// <summary>Small accessors for API objects held as <see cref="JsonObject"/>.</summary>
public static class Json
{
    public static readonly JsonNodeOptions NodeOptions = new() { PropertyNameCaseInsensitive = false };
    public static readonly JsonDocumentOptions DocOptions = new() { MaxDepth = 128 };

    /// <summary>
    /// How the server writes JSON, stored or served: a quote in a string as <c>\"</c> and text outside
    /// ASCII as UTF-8, as Go's encoder writes them. The default encoder writes <c>\u0022</c> and
    /// <c>\u00E9</c>, which made every kubectl last-applied-configuration annotation nearly twice
    /// its size in etcd and on the wire. (HTML-sensitive characters are not escaped: these bodies
    /// are application/json, never HTML.)
    /// </summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static JsonObject Meta(this JsonObject o) => o.Obj("metadata");

    /// <summary>The child object under <paramref name="name"/>, created if missing or not an object.</summary>
    public static JsonObject Obj(this JsonObject o, string name)
    {
        if (o[name] is JsonObject c) return c;
        c = new JsonObject();
        o[name] = c;
        return c;
    }

    public static JsonObject? ObjOrNull(this JsonObject? o, string name) => o?[name] as JsonObject;

    /// <summary>
    /// Removes properties whose value is JSON null, at every depth: what decoding into the typed
    /// API objects does upstream (a null field is the zero value and is not written back), so an
    /// object a client sent with explicit nulls is stored, compared and served without them.
    /// </summary>
    public static void DropNulls(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                List<string>? nulls = null;
                foreach (var (k, v) in o)
                {
                    if (v is null) (nulls ??= []).Add(k);
                    else DropNulls(v);
                }
                foreach (var k in nulls ?? []) o.Remove(k);
                break;
            case JsonArray a:
                foreach (var item in a) DropNulls(item);
                break;
        }
    }
    public static JsonArray? ArrOrNull(this JsonObject? o, string name) => o?[name] as JsonArray;

    public static string? Str(this JsonObject? o, string name) =>
        o?[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    public static long? Long(this JsonObject? o, string name)
    {
        if (o?[name] is not JsonValue v || v.GetValueKind() != JsonValueKind.Number) return null;
        if (v.TryGetValue<long>(out var l)) return l;
        if (v.TryGetValue<int>(out var i)) return i;
        if (v.TryGetValue<double>(out var d)) return (long)d;
        return null;
    }

    public static bool? Bool(this JsonObject? o, string name) =>
        o?[name] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>() : null;

    public static IEnumerable<JsonObject> Objects(this JsonArray? a)
    {
        if (a is null) yield break;
        foreach (var n in a) if (n is JsonObject o) yield return o;
    }

    public static Dictionary<string, string>? StringMap(this JsonObject? o, string name)
    {
        if (o?[name] is not JsonObject m) return null;
        var d = new Dictionary<string, string>(m.Count, StringComparer.Ordinal);
        foreach (var (k, v) in m) if (v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String) d[k] = jv.GetValue<string>();
        return d;
    }

    /// <summary>
    /// Parses a request body or stored object. A member given twice in one object is a
    /// <see cref="JsonException"/> here (a 400 for a request, as upstream's strict decoding makes it),
    /// not an exception later from inside the lazily built tree.
    /// </summary>
    public static JsonObject ParseObject(ReadOnlySpan<byte> utf8) =>
        JsonNode.Parse(utf8, NodeOptions, DocumentOptions) as JsonObject ?? throw new JsonException("expected a JSON object");

    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 128, AllowDuplicateProperties = false };

    public static string Rfc3339(DateTimeOffset t) => NodeAgent.Api.Meta.ApiTime.Format(t);

    public static DateTimeOffset? Time(this JsonObject? o, string name) =>
        o.Str(name) is { } s && DateTimeOffset.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var t) ? t : null;

    public static byte[] ToUtf8(JsonNode node)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions)) node.WriteTo(w);
        return buffer.WrittenSpan.ToArray();
    }
}
