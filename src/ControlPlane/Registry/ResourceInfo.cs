using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Api;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>
/// One served resource: its names (as discovery publishes them), its storage prefix, its
/// strategy (defaulting, validation, create/update preparation), its table columns and the field
/// labels its field selectors accept.
/// </summary>
public sealed class ResourceInfo
{
    public required string Group { get; init; }
    public required string Version { get; init; }
    public required string Resource { get; init; }
    public required string Kind { get; init; }
    public required bool Namespaced { get; init; }
    public required Strategy Strategy { get; init; }
    public string Singular => Kind.ToLowerInvariant();
    public string ListKind => Kind + "List";
    public string[] ShortNames { get; init; } = [];
    public string[] Categories { get; init; } = [];
    /// <summary>Subresources beside the object itself: "status", "scale", "binding", "finalize".</summary>
    public string[] Subresources { get; init; } = [];
    public Table.Convertor? Table { get; init; }
    /// <summary>Field labels beyond metadata.name/metadata.namespace, e.g. spec.nodeName for pods.</summary>
    public string[] FieldLabels { get; init; } = [];
    /// <summary><see cref="FieldLabels"/> split at their dots (for scanning stored bytes).</summary>
    public string[][] FieldLabelPaths => _fieldLabelPaths ??= Array.ConvertAll(FieldLabels, l => l.Split('.'));
    private string[][]? _fieldLabelPaths;

    public string ApiVersion => Group.Length == 0 ? Version : Group + "/" + Version;
    public ResourceRef Ref => new(Group, Resource);
    public string KeyPrefix => "/registry/" + Resource + "/";
    public bool HasStatus => Subresources.Contains("status");

    public string Key(string? ns, string name) => Namespaced ? $"{KeyPrefix}{ns}/{name}" : KeyPrefix + name;
    public string Prefix(string? ns) => Namespaced && !string.IsNullOrEmpty(ns) ? $"{KeyPrefix}{ns}/" : KeyPrefix;

    /// <summary>The value of a field label for field selectors, or null when the field is unset.</summary>
    public static string? FieldValue(JsonObject obj, string label)
    {
        JsonNode? n = obj;
        foreach (var part in label.Split('.'))
        {
            n = (n as JsonObject)?[part];
            if (n is null) return null;
        }
        return n is JsonValue v ? v.GetValueKind() switch
        {
            System.Text.Json.JsonValueKind.String => v.GetValue<string>(),
            System.Text.Json.JsonValueKind.True => "true",
            System.Text.Json.JsonValueKind.False => "false",
            _ => v.ToJsonString(),
        } : null;
    }
}
