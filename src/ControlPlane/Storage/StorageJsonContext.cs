using System.Text.Json.Serialization;

namespace NodeAgent.ControlPlane.Storage;

/// <summary>The control plane's source-generated JSON context (scalars it serializes directly).</summary>
[JsonSerializable(typeof(string))]
public sealed partial class StorageJsonContext : JsonSerializerContext;
