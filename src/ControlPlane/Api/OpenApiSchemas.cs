using System.Text.Json;
using NodeAgent.ControlPlane.Patch;
using NodeAgent.ControlPlane.Registry;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// OpenAPI v3 component schemas of an API group's served kinds and everything they reference, from
/// the field table of <see cref="FieldSchema"/> (every field, with its type), under upstream's
/// definition names, so that <c>kubectl explain</c> knows every kind. List and object fields carry
/// the strategic-merge-patch extensions of <see cref="StrategicMerge"/>: kubectl computes its apply
/// patches from them, so it computes the patches this server applies. Descriptions are left empty.
/// </summary>
public static class OpenApiSchemas
{
    private const string Quantity = "io.k8s.apimachinery.pkg.api.resource.Quantity", IntOrString = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";

    /// <summary>Writes the schemas of <paramref name="group"/>'s kinds into the current "schemas" object.</summary>
    public static void Write(Utf8JsonWriter w, string group, string version)
    {
        // Each type once, with the patch-metadata type it was first reached as (the same for every path the served kinds have).
        var queue = new Queue<(string Type, string? Patch, string? Kind)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (kind, type) in FieldSchema.KindsOf(group))
            if (seen.Add(type)) queue.Enqueue((type, StrategicMerge.RootOf(kind), kind));
        bool quantity = false, intOrString = false;
        while (queue.TryDequeue(out var item))
        {
            w.WriteStartObject(FieldSchema.DefinitionName(item.Type));
            w.WriteString("description", "");
            w.WriteString("type", "object");
            w.WriteStartObject("properties");
            foreach (var (name, shape) in FieldSchema.FieldsOf(item.Type))
            {
                var (patchType, strategy, mergeKey) = StrategicMerge.Describe(item.Patch, name);
                w.WriteStartObject(name);
                WriteShape(w, shape, patchType);
                if (mergeKey is not null) w.WriteString("x-kubernetes-patch-merge-key", mergeKey);
                if (strategy is not null) w.WriteString("x-kubernetes-patch-strategy", strategy);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            if (item.Kind is not null)
            {
                w.WriteStartArray("x-kubernetes-group-version-kind");
                w.WriteStartObject();
                w.WriteString("group", group);
                w.WriteString("kind", item.Kind);
                w.WriteString("version", version);
                w.WriteEndObject();
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        if (quantity) Scalar(w, Quantity, "string", null);
        if (intOrString) Scalar(w, IntOrString, "string", "int-or-string");

        void WriteShape(Utf8JsonWriter w, string shape, string? patchType)
        {
            w.WriteString("description", "");
            switch (shape)
            {
                case "": w.WriteString("type", "string"); return;
                case "*": w.WriteString("type", "object"); w.WriteBoolean("x-kubernetes-preserve-unknown-fields", true); return;
                case "=i": w.WriteString("type", "integer"); w.WriteString("format", "int32"); return;
                case "=l": w.WriteString("type", "integer"); w.WriteString("format", "int64"); return;
                case "=b": w.WriteString("type", "boolean"); return;
                case "=d": w.WriteString("type", "number"); w.WriteString("format", "double"); return;
                case "=t": w.WriteString("type", "string"); w.WriteString("format", "date-time"); return;
                case "=y": w.WriteString("type", "string"); w.WriteString("format", "byte"); return;
                case "=q": quantity = true; Ref(w, Quantity); return;
                case "=o": intOrString = true; Ref(w, IntOrString); return;
                case ['[' or '{', ..]:
                    bool list = shape[0] == '[';
                    w.WriteString("type", list ? "array" : "object");
                    w.WriteStartObject(list ? "items" : "additionalProperties");
                    WriteShape(w, shape[1..], patchType);
                    w.WriteEndObject();
                    return;
                default:
                    if (seen.Add(shape)) queue.Enqueue((shape, patchType, null));
                    Ref(w, FieldSchema.DefinitionName(shape));
                    return;
            }
        }
    }

    private static void Ref(Utf8JsonWriter w, string definition)
    {
        w.WriteStartArray("allOf");
        w.WriteStartObject();
        w.WriteString("$ref", "#/components/schemas/" + definition);
        w.WriteEndObject();
        w.WriteEndArray();
    }

    private static void Scalar(Utf8JsonWriter w, string name, string type, string? format)
    {
        w.WriteStartObject(name);
        w.WriteString("description", "");
        w.WriteString("type", type);
        if (format is not null) w.WriteString("format", format);
        w.WriteEndObject();
    }
}
