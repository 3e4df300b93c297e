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

    /// <summary>
    /// Deletes this very pod (a uid precondition, so a namesake created meanwhile is spared), with
    /// <paramref name="graceSeconds"/> when given (0: at once, for pods no kubelet will confirm);
    /// a pod already gone or replaced is not an error.
    /// </summary>
    public static async Task DeletePodAsync(ApiClient api, JsonObject pod, long? graceSeconds, CancellationToken ct)
    {
        var m = pod["metadata"]!;
        var options = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "DeleteOptions", ["preconditions"] = new JsonObject { ["uid"] = m["uid"]?.DeepClone() } };
        if (graceSeconds is { } g) options["gracePeriodSeconds"] = g;
        try { await api.DeleteAsync($"/api/v1/namespaces/{m["namespace"]}/pods/{m["name"]}", options, ct).ConfigureAwait(false); }
        catch (ApiError e) when (e.IsNotFound || e.IsConflict) { }
    }

    /// <summary>
    /// Makes <paramref name="controller"/> the controller of <paramref name="obj"/> (at <paramref name="path"/>), or
    /// with null releases it, keeping its other owners; the patch carries the object's uid (and,
    /// with <paramref name="exact"/>, its resourceVersion) as preconditions. The patched object,
    /// or null when it is gone or changed meanwhile (the watch brings it).
    /// </summary>
    public static async Task<JsonObject?> SetControllerAsync(ApiClient api, string path, JsonObject obj, JsonObject? controller, bool exact, CancellationToken ct)
    {
        var m = obj["metadata"]!;
        var refs = (m["ownerReferences"] as JsonArray)?.OfType<JsonObject>().Where(r => r["controller"]?.GetValueKind() != System.Text.Json.JsonValueKind.True)
            .Select(r => (JsonNode)r.DeepClone()).ToList() ?? [];
        if (controller is not null) refs.Add(controller);
        var meta = new JsonObject { ["ownerReferences"] = new JsonArray([.. refs]), ["uid"] = m["uid"]?.DeepClone() };
        if (exact) meta["resourceVersion"] = m["resourceVersion"]?.DeepClone();
        try { return await api.PatchAsync(path, new JsonObject { ["metadata"] = meta }, ct, "application/merge-patch+json").ConfigureAwait(false); }
        catch (ApiError e) when (e.IsNotFound || e.IsConflict) { return null; }
    }

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
