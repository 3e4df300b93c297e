using System.Text;
using System.Text.Json;
using NodeAgent.Api.Core;

namespace NodeAgent.Api.Serialization;

/// <summary>
/// Reads Pod manifests from YAML or JSON text: one or many documents, each a v1 Pod or a v1
/// PodList/List of Pods. Errors name the document and the JSON path of the bad field.
/// </summary>
public static class ManifestDecoder
{
    public static List<Pod> DecodePods(string text)
    {
        var docs = LooksLikeJson(text) ? [Encoding.UTF8.GetBytes(text)] : YamlToJson.Convert(text);
        var pods = new List<Pod>();
        for (int i = 0; i < docs.Count; i++)
        {
            string where = docs.Count > 1 ? $"document {i + 1}: " : "";
            DecodeDocument(docs[i], where, pods);
        }
        return pods;
    }

    private static bool LooksLikeJson(string text)
    {
        foreach (char c in text)
        {
            if (char.IsWhiteSpace(c)) continue;
            return c == '{';
        }
        return false;
    }

    private static void DecodeDocument(byte[] json, string where, List<Pod> pods)
    {
        string? apiVersion = null, kind = null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ManifestException($"{where}a manifest must be an object, not {doc.RootElement.ValueKind.ToString().ToLowerInvariant()}");
            if (doc.RootElement.TryGetProperty("apiVersion", out var av) && av.ValueKind == JsonValueKind.String) apiVersion = av.GetString();
            if (doc.RootElement.TryGetProperty("kind", out var k) && k.ValueKind == JsonValueKind.String) kind = k.GetString();
        }
        catch (JsonException e)
        {
            throw new ManifestException($"{where}invalid JSON at line {e.LineNumber + 1}: {e.Message}", e);
        }
        if (string.IsNullOrEmpty(kind)) throw new ManifestException($"{where}Object 'Kind' is missing");
        if (string.IsNullOrEmpty(apiVersion)) throw new ManifestException($"{where}Object 'apiVersion' is missing");
        if (apiVersion != "v1") throw new ManifestException($"{where}no kind \"{kind}\" is registered for version \"{apiVersion}\": only v1 Pods can be static pods");
        switch (kind)
        {
            case "Pod":
                pods.Add(Deserialize(json, ApiJsonContext.Default.Pod, where));
                break;
            case "PodList" or "List":
                var list = Deserialize(json, ApiJsonContext.Default.PodList, where);
                for (int i = 0; i < list.Items.Count; i++)
                {
                    var item = list.Items[i];
                    if (item.Kind is { } ik && ik != "Pod") throw new ManifestException($"{where}items[{i}]: kind \"{ik}\" is not a Pod");
                    item.ApiVersion ??= "v1";
                    item.Kind ??= "Pod";
                    pods.Add(item);
                }
                break;
            default:
                throw new ManifestException($"{where}kind \"{kind}\" is not supported: expected Pod or PodList");
        }
    }

    private static T Deserialize<T>(byte[] json, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info, string where) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(json, info) ?? throw new ManifestException($"{where}empty manifest");
        }
        catch (JsonException e)
        {
            string field = e.Path is { Length: > 2 } p ? p[2..] : "(root)";
            string reason = e.InnerException?.Message ?? e.Message;
            int cut = reason.IndexOf(" Path:", StringComparison.Ordinal);
            if (cut > 0) reason = reason[..cut];
            throw new ManifestException($"{where}{field}: {reason}", e);
        }
    }
}
