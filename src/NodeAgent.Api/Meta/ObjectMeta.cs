using System.Text.Json;
using System.Text.Json.Serialization;

namespace NodeAgent.Api.Meta;

/// <summary>
/// Base for every API object and nested struct: fields this build does not know are kept in
/// <see cref="Extra"/> and written back unchanged, so a round trip never drops data.
/// </summary>
public abstract class ApiStruct : IJsonOnDeserialized
{
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; set; }

    void IJsonOnDeserialized.OnDeserialized() => OnDecoded();

    /// <summary>
    /// Runs once the object is decoded. JSON nulls where the API has a list item, a map value or a
    /// required member become what the apiserver's Go decoder makes of them, the zero value (an empty
    /// struct, ""), so defaulting, validation and the runtime never meet a null there: a manifest
    /// with <c>containers: [null]</c> is an invalid pod (name and image required), not a crash.
    /// </summary>
    protected virtual void OnDecoded() { }

    protected static void ZeroItems<T>(List<T>? list) where T : class, new()
    {
        if (list is null) return;
        for (int i = 0; i < list.Count; i++) list[i] ??= new T();
    }

    protected static void ZeroItems(List<string>? list)
    {
        if (list is null) return;
        for (int i = 0; i < list.Count; i++) list[i] ??= "";
    }

    protected static void ZeroValues(Dictionary<string, string>? map)
    {
        if (map is null || !map.ContainsValue(null!)) return;
        foreach (var key in map.Keys.ToArray()) map[key] ??= "";
    }
}

/// <summary>metav1.TypeMeta + ObjectMeta carrier for top-level kinds.</summary>
public abstract class ApiObject : ApiStruct
{
    public string? ApiVersion { get; set; }
    public string? Kind { get; set; }
    public ObjectMeta Metadata { get; set; } = new();

    protected override void OnDecoded() => Metadata ??= new();
}

public sealed class ObjectMeta : ApiStruct
{
    public string? Name { get; set; }
    public string? GenerateName { get; set; }
    public string? Namespace { get; set; }
    public string? Uid { get; set; }
    public string? ResourceVersion { get; set; }
    public long? Generation { get; set; }
    [JsonConverter(typeof(Rfc3339Converter))]
    public DateTimeOffset? CreationTimestamp { get; set; }
    [JsonConverter(typeof(Rfc3339Converter))]
    public DateTimeOffset? DeletionTimestamp { get; set; }
    public long? DeletionGracePeriodSeconds { get; set; }
    public Dictionary<string, string>? Labels { get; set; }
    public Dictionary<string, string>? Annotations { get; set; }
    public List<OwnerReference>? OwnerReferences { get; set; }
    public List<string>? Finalizers { get; set; }

    protected override void OnDecoded()
    {
        ZeroValues(Labels);
        ZeroValues(Annotations);
        ZeroItems(OwnerReferences);
        ZeroItems(Finalizers);
    }
}

public sealed class OwnerReference : ApiStruct
{
    public string? ApiVersion { get; set; }
    public string? Kind { get; set; }
    public string? Name { get; set; }
    public string? Uid { get; set; }
    public bool? Controller { get; set; }
    public bool? BlockOwnerDeletion { get; set; }
}

public sealed class ListMeta : ApiStruct
{
    public string? ResourceVersion { get; set; }
    public string? Continue { get; set; }
    public long? RemainingItemCount { get; set; }
}

public sealed class LabelSelector : ApiStruct
{
    public Dictionary<string, string>? MatchLabels { get; set; }
    public List<LabelSelectorRequirement>? MatchExpressions { get; set; }

    protected override void OnDecoded()
    {
        ZeroValues(MatchLabels);
        ZeroItems(MatchExpressions);
    }
}

public sealed class LabelSelectorRequirement : ApiStruct
{
    public string? Key { get; set; }
    public string? Operator { get; set; }
    public List<string>? Values { get; set; }

    protected override void OnDecoded() => ZeroItems(Values);
}

/// <summary>metav1.Status, the body of every API error.</summary>
public sealed class Status : ApiObject
{
    [JsonPropertyName("status")]
    public string? Outcome { get; set; }
    public string? Message { get; set; }
    public string? Reason { get; set; }
    public int? Code { get; set; }
}
