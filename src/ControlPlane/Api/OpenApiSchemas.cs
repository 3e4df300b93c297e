using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using NodeAgent.Api.Meta;
using NodeAgent.Api.Serialization;
using NodeAgent.ControlPlane.Patch;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// OpenAPI v3 component schemas derived from the shared typed API model, walked through its
/// source-generated JSON metadata (no reflection over members): property names as they are on the
/// wire, types, lists and maps, and the strategic-merge-patch extensions of <see cref="StrategicMerge"/>,
/// so <c>kubectl explain</c> can list fields and kubectl computes the same patches the server applies.
/// The typed model covers the fields the node needs; fields beyond it are preserved by the server but
/// are not described here.
/// </summary>
public static class OpenApiSchemas
{
    public const string CorePrefix = "io.k8s.api.core.v1.";
    public const string MetaPrefix = "io.k8s.apimachinery.pkg.apis.meta.v1.";

    public static string SchemaName(Type t) =>
        (t.Namespace?.EndsWith(".Meta", StringComparison.Ordinal) == true ? MetaPrefix : CorePrefix) + t.Name;

    /// <summary>Writes the schemas reachable from Pod into the current "schemas" object.</summary>
    public static void WritePodSchemas(Utf8JsonWriter w)
    {
        var queue = new Queue<JsonTypeInfo>();
        var seen = new HashSet<Type>();
        queue.Enqueue(ApiJsonContext.Default.Pod);
        seen.Add(typeof(NodeAgent.Api.Core.Pod));
        while (queue.Count > 0)
        {
            var info = queue.Dequeue();
            w.WriteStartObject(SchemaName(info.Type));
            w.WriteString("type", "object");
            w.WriteString("description", "");
            w.WriteStartObject("properties");
            foreach (var p in info.Properties)
            {
                if (p.IsExtensionData) continue;
                w.WriteStartObject(p.Name);
                WriteType(w, p.PropertyType, info.Type.Name, p.Name, queue, seen);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            if (info.Type == typeof(NodeAgent.Api.Core.Pod))
            {
                w.WriteStartArray("x-kubernetes-group-version-kind");
                w.WriteStartObject();
                w.WriteString("group", "");
                w.WriteString("kind", "Pod");
                w.WriteString("version", "v1");
                w.WriteEndObject();
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
    }

    private static void WriteType(Utf8JsonWriter w, Type t, string owner, string field, Queue<JsonTypeInfo> queue, HashSet<Type> seen)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        w.WriteString("description", "");
        if (t == typeof(string)) { w.WriteString("type", "string"); return; }
        if (t == typeof(bool)) { w.WriteString("type", "boolean"); return; }
        if (t == typeof(int)) { w.WriteString("type", "integer"); w.WriteString("format", "int32"); return; }
        if (t == typeof(long)) { w.WriteString("type", "integer"); w.WriteString("format", "int64"); return; }
        if (t == typeof(double)) { w.WriteString("type", "number"); w.WriteString("format", "double"); return; }
        if (t == typeof(DateTimeOffset)) { w.WriteString("type", "string"); w.WriteString("format", "date-time"); return; }
        if (t == typeof(Quantity)) { w.WriteString("type", "string"); return; }
        if (t == typeof(IntOrString)) { w.WriteBoolean("x-kubernetes-int-or-string", true); return; }
        if (t == typeof(JsonElement)) { w.WriteString("type", "object"); w.WriteBoolean("x-kubernetes-preserve-unknown-fields", true); return; }
        var info = ApiJsonContext.Default.GetTypeInfo(t);
        switch (info?.Kind)
        {
            case JsonTypeInfoKind.Enumerable:
                w.WriteString("type", "array");
                w.WriteStartObject("items");
                WriteType(w, info.ElementType!, owner, field, queue, seen);
                w.WriteEndObject();
                if (StrategicMerge.PatchMeta(owner, field) is { } pm)
                {
                    if (pm.MergeKey is not null) w.WriteString("x-kubernetes-patch-merge-key", pm.MergeKey);
                    w.WriteString("x-kubernetes-patch-strategy", pm.Strategy);
                }
                return;
            case JsonTypeInfoKind.Dictionary:
                w.WriteString("type", "object");
                w.WriteStartObject("additionalProperties");
                WriteType(w, info.ElementType!, owner, field, queue, seen);
                w.WriteEndObject();
                return;
            case JsonTypeInfoKind.Object:
                if (seen.Add(t)) queue.Enqueue(info);
                w.WriteStartArray("allOf");
                w.WriteStartObject();
                w.WriteString("$ref", "#/components/schemas/" + SchemaName(t));
                w.WriteEndObject();
                w.WriteEndArray();
                return;
            default:
                w.WriteString("type", "object");
                w.WriteBoolean("x-kubernetes-preserve-unknown-fields", true);
                return;
        }
    }
}
