using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NodeAgent.Api.Client;

/// <summary>A request the API server answered with an error Status (or could not be reached: Code 0).</summary>
public sealed class ApiError(int code, string reason, string message) : Exception(message)
{
    public int Code { get; } = code;
    public string Reason { get; } = reason;
    public bool IsNotFound => Code == 404;
    public bool IsConflict => Code == 409;
    public bool IsGone => Code == 410;
}

/// <summary>
/// A small Kubernetes REST client: JSON over HTTP/2 (when the server offers it), client
/// certificates or bearer tokens, rate-limited writes, list and streaming watch. Thread-safe.
/// Standard API calls only, so it works against any conforming API server.
/// </summary>
public sealed class ApiClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly ClientConfig _config;
    private readonly TokenBucket _writes;
    private string? _token;
    private DateTime _tokenRead;

    public ApiClient(ClientConfig config, string userAgent, double writeQps = 50, int writeBurst = 100)
    {
        _config = config;
        _writes = new TokenBucket(writeQps, writeBurst);
        var handler = new SocketsHttpHandler
        {
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(15),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            EnableMultipleHttp2Connections = true,
        };
        if (config.ClientCertificate is { } cert) handler.SslOptions.ClientCertificates = [cert];
        if (config.InsecureSkipTlsVerify) handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        else if (config.CaCertificate is { } ca)
            handler.SslOptions.RemoteCertificateValidationCallback = (_, c, _, errors) =>
            {
                if (c is null) return false;
                using var leaf = new X509Certificate2(c);
                return Certificates.ChainsTo(leaf, ca) && (errors & ~System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors) == 0;
            };
        _http = new HttpClient(handler)
        {
            BaseAddress = config.Server,
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd(userAgent);
        _http.DefaultRequestHeaders.Accept.ParseAdd("application/json");
    }

    public Uri Server => _config.Server;

    private string? Token()
    {
        if (_config.Token is { } t) return t;
        if (_config.TokenFile is null) return null;
        // Projected tokens rotate: re-read the file once a minute.
        if (_token is null || DateTime.UtcNow - _tokenRead > TimeSpan.FromMinutes(1))
        {
            try { _token = File.ReadAllText(_config.TokenFile).Trim(); _tokenRead = DateTime.UtcNow; }
            catch (IOException) { }
        }
        return _token;
    }

    private HttpRequestMessage Request(HttpMethod method, string path, byte[]? body, string contentType)
    {
        var req = new HttpRequestMessage(method, path);
        if (Token() is { } token) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null)
        {
            req.Content = new ByteArrayContent(body);
            req.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }
        return req;
    }

    /// <summary>Sends a request and returns the parsed JSON body; errors become <see cref="ApiError"/>.</summary>
    public async Task<JsonObject> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct,
        string contentType = "application/json", TimeSpan? timeout = null)
    {
        if (method != HttpMethod.Get) await _writes.TakeAsync(ct).ConfigureAwait(false);
        byte[]? bytes = body is null ? null : Encoding.UTF8.GetBytes(body.ToJsonString());
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout ?? TimeSpan.FromSeconds(30));
        HttpResponseMessage resp;
        try
        {
            using var req = Request(method, path, bytes, contentType);
            resp = await _http.SendAsync(req, cts.Token).ConfigureAwait(false);
        }
        catch (HttpRequestException e) { throw new ApiError(0, "Unavailable", $"{method} {path}: {e.Message}"); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { throw new ApiError(0, "Timeout", $"{method} {path}: no answer in time"); }
        using (resp)
        {
            var text = await resp.Content.ReadAsByteArrayAsync(cts.Token).ConfigureAwait(false);
            JsonObject? json = null;
            try { json = text.Length > 0 ? JsonNode.Parse(text) as JsonObject : null; } catch (JsonException) { }
            if (resp.IsSuccessStatusCode) return json ?? new JsonObject();
            string reason = json?["reason"]?.GetValue<string>() ?? resp.StatusCode.ToString();
            string message = json?["message"]?.GetValue<string>() ?? Encoding.UTF8.GetString(text);
            throw new ApiError((int)resp.StatusCode, reason, $"{method} {path}: {(int)resp.StatusCode} {reason}: {message}");
        }
    }

    public Task<JsonObject> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, null, ct);
    public Task<JsonObject> CreateAsync(string path, JsonNode body, CancellationToken ct) => SendAsync(HttpMethod.Post, path, body, ct);
    public Task<JsonObject> UpdateAsync(string path, JsonNode body, CancellationToken ct) => SendAsync(HttpMethod.Put, path, body, ct);
    public Task<JsonObject> PatchAsync(string path, JsonNode patch, CancellationToken ct, string type = "application/strategic-merge-patch+json") =>
        SendAsync(HttpMethod.Patch, path, patch, ct, type);
    public Task<JsonObject> DeleteAsync(string path, JsonNode? options, CancellationToken ct) => SendAsync(HttpMethod.Delete, path, options, ct);

    /// <summary>
    /// Removes a pod object at once (gracePeriodSeconds=0) only if it is still the one with
    /// <paramref name="uid"/>; true when it is gone, false when a different pod now has that name.
    /// </summary>
    public async Task<bool> DeletePodNowAsync(string ns, string name, string? uid, CancellationToken ct)
    {
        try
        {
            await DeleteAsync($"/api/v1/namespaces/{ns}/pods/{name}", new JsonObject
            {
                ["kind"] = "DeleteOptions", ["apiVersion"] = "v1", ["gracePeriodSeconds"] = 0,
                ["preconditions"] = new JsonObject { ["uid"] = uid },
            }, ct).ConfigureAwait(false);
            return true;
        }
        catch (ApiError e) when (e.IsNotFound) { return true; }
        catch (ApiError e) when (e.IsConflict) { return false; }
    }

    /// <summary>
    /// One watch request: yields events until the server ends the stream, the watch times out or
    /// <paramref name="ct"/> fires. An ERROR event is thrown as <see cref="ApiError"/> (410 Expired included).
    /// </summary>
    public async IAsyncEnumerable<(string Type, JsonObject Object)> WatchAsync(string path, [EnumeratorCancellation] CancellationToken ct)
    {
        HttpResponseMessage resp;
        try
        {
            using var req = Request(HttpMethod.Get, path, null, "");
            resp = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e) { throw new ApiError(0, "Unavailable", $"watch {path}: {e.Message}"); }
        using (resp)
        {
            if (!resp.IsSuccessStatusCode)
            {
                var text = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                string reason = resp.StatusCode.ToString();
                try { reason = JsonNode.Parse(text)?["reason"]?.GetValue<string>() ?? reason; } catch (JsonException) { }
                throw new ApiError((int)resp.StatusCode, reason, $"watch {path}: {(int)resp.StatusCode} {text}");
            }
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(ct).ConfigureAwait(false), Encoding.UTF8);
            while (true)
            {
                string? line;
                try { line = await reader.ReadLineAsync(ct).ConfigureAwait(false); }
                catch (IOException e) { throw new ApiError(0, "Unavailable", $"watch {path}: {e.Message}"); }
                catch (HttpRequestException e) { throw new ApiError(0, "Unavailable", $"watch {path}: {e.Message}"); }
                if (line is null) yield break;
                if (line.Length == 0) continue;
                JsonObject? ev;
                try { ev = JsonNode.Parse(line) as JsonObject; }
                catch (JsonException e) { throw new ApiError(0, "BadResponse", $"watch {path}: undecodable event: {e.Message}"); }
                if (ev?["type"]?.GetValue<string>() is not { } type || ev["object"] is not JsonObject obj) continue;
                if (type == "ERROR")
                    throw new ApiError(obj["code"]?.GetValue<int>() ?? 500, obj["reason"]?.GetValue<string>() ?? "Unknown", $"watch {path}: {obj["message"]?.GetValue<string>()}");
                yield return (type, obj);
            }
        }
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>Client-side write rate limit (the kubelet's kubeAPIQPS/kubeAPIBurst).</summary>
internal sealed class TokenBucket(double qps, int burst)
{
    private readonly Lock _lock = new();
    private double _tokens = burst;
    private long _last = Environment.TickCount64;

    public async Task TakeAsync(CancellationToken ct)
    {
        while (true)
        {
            TimeSpan wait;
            lock (_lock)
            {
                long now = Environment.TickCount64;
                _tokens = Math.Min(burst, _tokens + (now - _last) / 1000.0 * qps);
                _last = now;
                if (_tokens >= 1) { _tokens -= 1; return; }
                wait = TimeSpan.FromSeconds((1 - _tokens) / qps);
            }
            await Task.Delay(wait, ct).ConfigureAwait(false);
        }
    }
}
