using System.Text.Json;
using System.Text.Json.Serialization;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;

namespace NodeAgent.Api.Serialization;

/// <summary>
/// The one JSON context for the API types. Strict like the apiserver's decoder: a string where a
/// number belongs is an error (whose JsonException.Path names the field), never a guess.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowTrailingCommas = false,
    ReadCommentHandling = JsonCommentHandling.Disallow)]
[JsonSerializable(typeof(Pod))]
[JsonSerializable(typeof(PodList))]
[JsonSerializable(typeof(Status))]
[JsonSerializable(typeof(Container))]
[JsonSerializable(typeof(LifecycleHandler))]
[JsonSerializable(typeof(PodStatus))]
[JsonSerializable(typeof(JsonElement))]
public sealed partial class ApiJsonContext : JsonSerializerContext;
