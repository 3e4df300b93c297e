using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>Raw API calls for the tests: JSON in, (status, JSON) out, and watch streams as events.</summary>
public static class Http
{
    public static async Task<(HttpStatusCode Code, JsonNode? Body)> SendAsync(this HttpClient http, HttpMethod method, string path, string? body = null, string contentType = "application/json")
    {
        using var req = new HttpRequestMessage(method, path);
        if (body is not null) req.Content = new StringContent(body, Encoding.UTF8, new System.Net.Http.Headers.MediaTypeHeaderValue(contentType));
        using var resp = await http.SendAsync(req);
        string text = await resp.Content.ReadAsStringAsync();
        JsonNode? json = null;
        try { json = text.Length > 0 ? JsonNode.Parse(text) : null; } catch (System.Text.Json.JsonException) { }
        return (resp.StatusCode, json);
    }

    public static async Task<JsonNode> OkAsync(this HttpClient http, HttpMethod method, string path, string? body = null, string contentType = "application/json")
    {
        var (code, json) = await http.SendAsync(method, path, body, contentType);
        if ((int)code is < 200 or > 299) throw new InvalidOperationException($"{method} {path}: {(int)code} {json?.ToJsonString()}");
        return json!;
    }

    public static string Rv(this JsonNode obj) => obj["metadata"]!["resourceVersion"]!.GetValue<string>();

    /// <summary>Reads a watch as a stream of events until <paramref name="ct"/> fires or the server ends it.</summary>
    public static async IAsyncEnumerable<JsonNode> WatchAsync(this HttpClient http, string path, [EnumeratorCancellation] CancellationToken ct)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, path);
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct);
        resp.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(ct));
        while (true)
        {
            string? line;
            try { line = await reader.ReadLineAsync(ct); }
            catch (OperationCanceledException) { yield break; }
            if (line is null) yield break;
            if (line.Length > 0) yield return JsonNode.Parse(line)!;
        }
    }

    public static string ConfigMap(string ns, string name, string value = "v") =>
        new JsonObject { ["apiVersion"] = "v1", ["kind"] = "ConfigMap", ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns }, ["data"] = new JsonObject { ["k"] = value } }.ToJsonString();

    public static async Task EnsureNamespaceAsync(this HttpClient http, string ns)
    {
        var (code, body) = await http.SendAsync(HttpMethod.Post, "/api/v1/namespaces", new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = ns } }.ToJsonString());
        if (code is not (HttpStatusCode.Created or HttpStatusCode.Conflict)) throw new InvalidOperationException($"namespace {ns}: {(int)code} {body?.ToJsonString()}");
    }
}
