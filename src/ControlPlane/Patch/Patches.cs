using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Patch;

/// <summary>RFC 6902 JSON Patch. A malformed patch is 400; an operation that cannot apply (missing path, failed test) is 422, as upstream.</summary>
public static class JsonPatch
{
    public static JsonObject Apply(JsonObject target, ReadOnlySpan<byte> patch)
    {
        JsonArray ops;
        try
        {
            var reader = new Utf8JsonReader(patch);
            ops = JsonNode.Parse(ref reader) as JsonArray ?? throw ApiException.BadRequest("json patch must be an array of operations");
        }
        catch (JsonException e) { throw ApiException.BadRequest("error decoding patch: " + e.Message); }
        JsonNode root = target;
        foreach (var opNode in ops)
        {
            if (opNode is not JsonObject op) throw ApiException.BadRequest("json patch operation must be an object");
            string kind = op.Str("op") ?? throw ApiException.BadRequest("json patch operation is missing \"op\"");
            string path = op.Str("path") ?? throw ApiException.BadRequest($"json patch {kind} operation is missing \"path\"");
            switch (kind)
            {
                case "add": root = Add(root, path, Value(op)); break;
                case "remove": root = Remove(root, path, out _); break;
                case "replace": root = Remove(root, path, out _); root = Add(root, path, Value(op)); break;
                case "move":
                    root = Remove(root, op.Str("from") ?? throw ApiException.BadRequest("move needs \"from\""), out var moved);
                    root = Add(root, path, moved);
                    break;
                case "copy":
                    root = Add(root, path, Get(root, op.Str("from") ?? throw ApiException.BadRequest("copy needs \"from\""))?.DeepClone());
                    break;
                case "test":
                    if (!JsonNode.DeepEquals(Get(root, path), op["value"]))
                        throw Unprocessable($"testing value {path} failed");
                    break;
                default: throw ApiException.BadRequest($"Unexpected kind: {kind}");
            }
        }
        return root as JsonObject ?? throw Unprocessable("the patch replaced the object with a non-object");
    }

    private static ApiException Unprocessable(string message) => new(422, "Invalid", message);

    private static JsonNode? Value(JsonObject op)
    {
        if (!op.ContainsKey("value")) throw ApiException.BadRequest($"json patch {op.Str("op")} operation is missing \"value\"");
        return op["value"]?.DeepClone();
    }

    private static string[] Split(string path)
    {
        if (path.Length == 0) return [];
        if (path[0] != '/') throw ApiException.BadRequest($"json patch path \"{path}\" must start with '/'");
        return path[1..].Split('/').Select(s => s.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToArray();
    }

    private static JsonNode? Get(JsonNode root, string path) => Get(root, Split(path), path);

    private static JsonNode? Get(JsonNode root, string[] parts, string path)
    {
        JsonNode? n = root;
        foreach (var part in parts)
            n = n switch
            {
                JsonObject o when o.TryGetPropertyValue(part, out var c) => c,
                JsonArray a when int.TryParse(part, out int i) && i >= 0 && i < a.Count => a[i],
                _ => throw Unprocessable($"jsonpatch: path {path} not found"),
            };
        return n;
    }

    private static JsonNode Add(JsonNode root, string path, JsonNode? value)
    {
        var parts = Split(path);
        if (parts.Length == 0) return value ?? throw Unprocessable("cannot replace the object with null");
        var parent = Get(root, parts[..^1], path);
        string last = parts[^1];
        switch (parent)
        {
            case JsonObject o: o[last] = value; break;
            case JsonArray a:
                if (last == "-") a.Add(value);
                else if (int.TryParse(last, out int i) && i >= 0 && i <= a.Count) a.Insert(i, value);
                else throw Unprocessable($"jsonpatch add operation: index {last} out of bounds in {path}");
                break;
            default: throw Unprocessable($"jsonpatch add operation does not apply: doc is missing path: \"{path}\"");
        }
        return root;
    }

    private static JsonNode Remove(JsonNode root, string path, out JsonNode? removed)
    {
        var parts = Split(path);
        if (parts.Length == 0) throw Unprocessable("cannot remove the whole object");
        var parent = Get(root, parts[..^1], path);
        string last = parts[^1];
        switch (parent)
        {
            case JsonObject o when o.ContainsKey(last):
                removed = o[last];
                o.Remove(last);
                break;
            case JsonArray a when int.TryParse(last, out int i) && i >= 0 && i < a.Count:
                removed = a[i];
                a.RemoveAt(i);
                break;
            default: throw Unprocessable($"jsonpatch remove operation does not apply: doc is missing path: \"{path}\"");
        }
        return root;
    }
}

/// <summary>RFC 7386 JSON merge patch: objects merge, null deletes, everything else (lists too) replaces.</summary>
public static class MergePatch
{
    public static JsonNode? Apply(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject p) return patch?.DeepClone();
        var t = target as JsonObject ?? new JsonObject();
        foreach (var (k, v) in p)
        {
            if (v is null) t.Remove(k);
            else t[k] = Apply(t[k] is { } existing ? existing.DeepClone() : null, v);
        }
        return t;
    }
}
