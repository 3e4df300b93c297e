using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Client;
using NodeAgent.Api.Meta;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>What every controller needs of an object: its controller reference, owner references to set, events.</summary>
public static class ControllerKit
{
    public readonly record struct Owner(string Kind, string Name, string Uid);

    public static Owner? ControllerOf(JsonObject obj) =>
        (obj["metadata"]?["ownerReferences"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(r => r["controller"]?.GetValueKind() == JsonValueKind.True) is { } r
            ? new Owner(r["kind"]?.GetValue<string>() ?? "", r["name"]?.GetValue<string>() ?? "", r["uid"]?.GetValue<string>() ?? "")
            : null;

    /// <summary>An ownerReference to <paramref name="owner"/> marking it as the controller.</summary>
    public static JsonObject ControllerRef(JsonObject owner, string apiVersion, string kind) => new()
    {
        ["apiVersion"] = apiVersion, ["kind"] = kind, ["name"] = owner["metadata"]!["name"]!.DeepClone(),
        ["uid"] = owner["metadata"]!["uid"]!.DeepClone(), ["controller"] = true, ["blockOwnerDeletion"] = true,
    };

    public static string Str(JsonNode? n, string name) => n?[name]?.GetValue<string>() ?? "";

    public static long Long(JsonNode? n, string name, long fallback = 0) =>
        n?[name] is JsonValue v && v.TryGetValue<long>(out var l) ? l : fallback;

    /// <summary>Posts a core/v1 Event about <paramref name="obj"/> from <paramref name="component"/>; failures are not the caller's problem.</summary>
    public static async Task EventAsync(ApiClient api, TimeProvider time, string component, JsonObject obj, string apiVersion, string kind,
        string type, string reason, string message, CancellationToken ct)
    {
        var m = obj["metadata"]!;
        string now = ApiTime.Format(time.GetUtcNow());
        try
        {
            await api.CreateAsync($"/api/v1/namespaces/{m["namespace"]}/events", new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "Event",
                ["metadata"] = new JsonObject { ["generateName"] = Str(m, "name") + ".", ["namespace"] = m["namespace"]?.DeepClone() },
                ["involvedObject"] = new JsonObject
                {
                    ["apiVersion"] = apiVersion, ["kind"] = kind, ["name"] = m["name"]?.DeepClone(), ["namespace"] = m["namespace"]?.DeepClone(), ["uid"] = m["uid"]?.DeepClone(),
                },
                ["type"] = type, ["reason"] = reason, ["message"] = message,
                ["source"] = new JsonObject { ["component"] = component },
                ["reportingComponent"] = component, ["reportingInstance"] = component,
                ["firstTimestamp"] = now, ["lastTimestamp"] = now, ["count"] = 1,
            }, ct).ConfigureAwait(false);
        }
        catch (ApiError) { }
        catch (HttpRequestException) { }
        catch (OperationCanceledException) { }
    }
}
