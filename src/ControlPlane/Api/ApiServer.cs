using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Serialization;
using NodeAgent.ControlPlane.Etcd;
using NodeAgent.ControlPlane.Registry;
using NodeAgent.ControlPlane.Storage;
using NodeAgent.ControlPlane.Watch;

namespace NodeAgent.ControlPlane.Api;

/// <summary>Tunables of the API server.</summary>
public sealed class ApiServerOptions
{
    public long MaxRequestBytes { get; set; } = 3 * 1024 * 1024;
    public TimeSpan MinRequestTimeout { get; set; } = TimeSpan.FromMinutes(30);
    public int WatchCacheSize { get; set; } = 1024;
    public int WatcherQueue { get; set; } = 1000;
    public TimeSpan BookmarkInterval { get; set; } = TimeSpan.FromMinutes(1);
    public string ServiceClusterIpRange { get; set; } = "10.96.0.0/12";
    public string NodePortRange { get; set; } = "30000-32767";
    public string ExternalAddress { get; set; } = "127.0.0.1:6443";
    /// <summary>The client certificate the server presents to kubelets (pods/log proxy).</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? KubeletClientCertificate { get; set; }
    /// <summary>Issues serviceaccounts/token (TokenRequest); without it the subresource answers 404.</summary>
    public Auth.ServiceAccountTokens? ServiceAccountTokens { get; set; }
}

/// <summary>A parsed resource request: /api/v1/namespaces/NS/RESOURCE/NAME/SUBRESOURCE.</summary>
public sealed record RequestInfo(ResourceInfo Info, string? Namespace, string? Name, string? Subresource);

/// <summary>
/// The Kubernetes REST API over <see cref="Store"/>: discovery, CRUD with the registry
/// strategies, patches, list and watch. Stateless: everything lives in etcd, so any number of
/// processes can serve the same cluster.
/// </summary>
public sealed partial class ApiServer : IAsyncDisposable
{
    private readonly Resources _resources;
    private readonly Store _store;
    private readonly ServiceAllocator _alloc;
    private readonly ApiServerOptions _opts;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Dictionary<ResourceInfo, WatchCache> _caches = [];
    private readonly Auth.IAuthorizer _authorizer;

    /// <summary>Request and watch counters (apiserver_request_total, apiserver_watch_events_*), served at /metrics.</summary>
    public ApiMetrics Metrics { get; } = new();

    /// <summary>GET /metrics: the request and watch metrics, the storage (etcd) metrics, then the process's own.</summary>
    public string MetricsExposition()
    {
        var sb = new StringBuilder(Metrics.Exposition());
        _store.Metrics?.WriteTo(sb);
        NodeAgent.Api.Hosting.ProcessStats.WriteExposition(sb);
        return sb.ToString();
    }

    public ApiServer(Resources resources, Store store, ApiServerOptions opts, TimeProvider time, ILogger<ApiServer> log, Auth.IAuthorizer authorizer)
    {
        _authorizer = authorizer;
        _resources = resources;
        _store = store;
        _opts = opts;
        _time = time;
        _log = log;
        _alloc = new ServiceAllocator(opts.ServiceClusterIpRange, opts.NodePortRange);
        foreach (var r in resources.All)
            _caches[r] = new WatchCache(r, store.Etcd, log, opts.WatchCacheSize, opts.BookmarkInterval, opts.WatcherQueue);
    }

    /// <summary>Whether core/v1 <paramref name="resource"/> <paramref name="ns"/>/<paramref name="name"/> exists with <paramref name="uid"/> (one etcd read).</summary>
    public async Task<bool> ExistsAsync(string ns, string resource, string name, string uid, CancellationToken ct)
    {
        var item = await _store.GetAsync(_resources.Get("", resource).Key(ns, name), ct).ConfigureAwait(false);
        return item is not null && Json.ParseObject(item.Value.Value.Span).ObjOrNull("metadata").Str("uid") == uid;
    }

    public Resources Resources => _resources;
    public ServiceAllocator Allocator => _alloc;
    public WatchCache CacheOf(ResourceInfo r) => _caches[r];

    /// <summary>
    /// Starts one etcd watch per resource and returns when all are established. Namespaces are
    /// listed first and then followed by their watch, so creates can check their namespace without
    /// a read from etcd (a miss still reads etcd).
    /// </summary>
    public async Task StartAsync()
    {
        var nsInfo = _resources.Get("", "namespaces");
        var (items, rev, _) = await _store.ListAsync(nsInfo.KeyPrefix, null, 0, 0, CancellationToken.None).ConfigureAwait(false);
        foreach (var it in items)
        {
            var attrs = new ObjectAttrs(nsInfo, it.Value.Span);
            _namespaces[attrs.Name] = attrs.Field("status.phase") == "Terminating";
        }
        var nsCache = _caches[nsInfo];
        nsCache.Observer = e =>
        {
            if (e.Deleted) _namespaces.TryRemove(e.Attrs.Name, out _);
            else _namespaces[e.Attrs.Name] = e.Attrs.Field("status.phase") == "Terminating";
        };
        await Task.WhenAll(_caches.Values.Select(c => c == nsCache ? c.StartAsync(rev) : c.StartAsync())).ConfigureAwait(false);
    }

    /// <summary>Namespace name -> terminating, kept by the namespaces watch.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _namespaces = new(StringComparer.Ordinal);

    public async Task HandleAsync(HttpContext ctx)
    {
        try
        {
            await RouteAsync(ctx).ConfigureAwait(false);
        }
        catch (ApiException e)
        {
            await WriteErrorAsync(ctx, e).ConfigureAwait(false);
        }
        catch (EtcdUnavailableException e)
        {
            LogEtcdError(_log, ctx.Request.Method, ctx.Request.Path, e.Message);
            await WriteErrorAsync(ctx, ApiException.Unavailable("etcd is unavailable: " + e.Message)).ConfigureAwait(false);
        }
        catch (EtcdCompactedException e)
        {
            await WriteErrorAsync(ctx, ApiException.Gone($"too old resource version: {e.Requested}")).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bug, not bad input (that is an ApiException): the client still gets a Status, as
            // from upstream, the log gets the stack, and the other requests never notice.
            LogInternalError(_log, ctx.Request.Method, ctx.Request.Path, e);
            await WriteErrorAsync(ctx, ApiException.Internal(e.Message)).ConfigureAwait(false);
        }
    }

    private async Task RouteAsync(HttpContext ctx)
    {
        string path = ctx.Request.Path.Value ?? "/";
        var seg = path.Trim('/').Split('/', StringSplitOptions.None);
        if (seg.Length == 1 && seg[0].Length == 0) { await WriteJsonAsync(ctx, 200, RootPaths).ConfigureAwait(false); return; }
        switch (seg[0])
        {
            case "version":
                await WriteJsonAsync(ctx, 200, WriteVersion).ConfigureAwait(false);
                return;
            case "healthz" or "livez" or "readyz":
                await HealthAsync(ctx, seg[0]).ConfigureAwait(false);
                return;
            case "api":
                if (seg.Length == 1) { await DiscoveryRootAsync(ctx, core: true).ConfigureAwait(false); return; }
                if (seg[1] != "v1") throw ApiException.UnknownResource();
                if (seg.Length == 2) { await WriteJsonAsync(ctx, 200, w => WriteResourceList(w, "", "v1")).ConfigureAwait(false); return; }
                await ResourceAsync(ctx, "", "v1", seg.AsMemory(2)).ConfigureAwait(false);
                return;
            case "apis" when seg.Length >= 2 && seg[1] == MetricsGroup:
                await MetricsApiAsync(ctx, seg).ConfigureAwait(false);
                return;
            case "apis" when seg.Length >= 2 && seg[1] == AuthenticationGroup:
                await SelfSubjectReviewAsync(ctx, seg).ConfigureAwait(false);
                return;
            case "apis" when seg.Length >= 2 && seg[1] == AuthorizationGroup:
                await AccessReviewAsync(ctx, seg).ConfigureAwait(false);
                return;
            case "apis":
                if (seg.Length == 1) { await DiscoveryRootAsync(ctx, core: false).ConfigureAwait(false); return; }
                string group = seg[1];
                if (!_resources.Groups.Contains(group) || group.Length == 0) throw ApiException.UnknownResource();
                if (seg.Length == 2) { await WriteJsonAsync(ctx, 200, w => WriteGroup(w, group, withKind: true)).ConfigureAwait(false); return; }
                if (seg[2] != "v1") throw ApiException.UnknownResource();
                if (seg.Length == 3) { await WriteJsonAsync(ctx, 200, w => WriteResourceList(w, group, "v1")).ConfigureAwait(false); return; }
                await ResourceAsync(ctx, group, "v1", seg.AsMemory(3)).ConfigureAwait(false);
                return;
            case "openapi":
                await OpenApiAsync(ctx, seg).ConfigureAwait(false);
                return;
            case "metrics" when seg.Length == 1:
                ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                await ctx.Response.WriteAsync(MetricsExposition(), ctx.RequestAborted).ConfigureAwait(false);
                return;
            default:
                throw ApiException.UnknownResource();
        }
    }

    private async Task ResourceAsync(HttpContext ctx, string group, string version, ReadOnlyMemory<string> rest)
    {
        var r = rest.Span;
        bool legacyWatch = false;
        if (r.Length > 0 && r[0] == "watch") { legacyWatch = true; r = r[1..]; }
        string? ns = null;
        if (r.Length >= 3 && r[0] == "namespaces" && !(r.Length == 3 && r[2] is "status" or "finalize"))
        {
            ns = r[1];
            r = r[2..];
        }
        if (r.Length is 0 or > 3) throw ApiException.UnknownResource();
        var info = _resources.Find(group, version, r[0]) ?? throw ApiException.UnknownResource();
        if (ns is not null && !info.Namespaced) throw ApiException.UnknownResource();
        string? name = r.Length > 1 ? r[1] : null;
        string? sub = r.Length > 2 ? r[2] : null;
        if (sub is not null && !info.Subresources.Contains(sub)) throw ApiException.UnknownResource();
        if (name is { Length: 0 }) throw ApiException.UnknownResource();
        var req = new RequestInfo(info, ns, name, sub);
        var q = ctx.Request.Query;
        bool watch = legacyWatch || q["watch"] is { Count: > 0 } wv && NodeAgent.Api.Core.QueryParameters.Bool(wv[0]);
        string verb = ctx.Request.Method switch
        {
            _ when sub is "exec" or "attach" or "portforward" => "CONNECT",
            "GET" when watch => "WATCH",
            "GET" when name is null => "LIST",
            // Upstream's CleanVerb: a server-side apply is reported as APPLY.
            "PATCH" when ctx.Request.ContentType?.StartsWith("application/apply-patch+yaml", StringComparison.OrdinalIgnoreCase) == true => "APPLY",
            var m => m,
        };
        // Upstream's CleanScope: a named object, or a create, is "resource" scope.
        var described = new ApiMetrics.Info(verb, group, version, info.Resource, sub ?? "",
            name is not null || (verb == "POST" && sub is null) ? "resource" : ns is not null ? "namespace" : "cluster");
        ApiMetrics.Describe(ctx, described);
        using var inProgress = ApiMetrics.IsLongRunning(described) ? Metrics.LongRunning(described) : default;
        if (ctx.Request.Method is "POST" or "PUT" or "PATCH" or "DELETE") CheckWriteOptions(ctx);
        switch (ctx.Request.Method)
        {
            case "GET" when sub == "log":
                await PodLogAsync(ctx, req).ConfigureAwait(false);
                break;
            case "GET" or "POST" when sub is "exec" or "attach" or "portforward":
                await PodStreamAsync(ctx, req).ConfigureAwait(false);
                break;
            case "POST" when sub == "token":
                await TokenRequestAsync(ctx, req).ConfigureAwait(false);
                break;
            case "POST" when sub == "binding":
                await BindAsync(ctx, req).ConfigureAwait(false);
                break;
            case not "POST" when sub is "token" or "binding":
            case not "GET" when sub is "log":
            case not ("GET" or "POST") when sub is "exec" or "attach" or "portforward":
                throw new ApiException(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
            case "GET" when watch:
                await WatchAsync(ctx, req).ConfigureAwait(false);
                break;
            case "GET" when name is null:
                await ListAsync(ctx, req).ConfigureAwait(false);
                break;
            case "GET":
                await GetAsync(ctx, req).ConfigureAwait(false);
                break;
            case "POST" when name is null:
                if (info.Namespaced && ns is null) throw new ApiException(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
                await CreateAsync(ctx, req).ConfigureAwait(false);
                break;
            case "PUT" when name is not null:
                await UpdateAsync(ctx, req).ConfigureAwait(false);
                break;
            case "PATCH" when name is not null:
                await PatchAsync(ctx, req).ConfigureAwait(false);
                break;
            case "DELETE" when name is not null && sub is null:
                await DeleteAsync(ctx, req).ConfigureAwait(false);
                break;
            case "DELETE" when name is null:
                await DeleteCollectionAsync(ctx, req).ConfigureAwait(false);
                break;
            default:
                throw new ApiException(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
        }
    }

    // ---- bodies -------------------------------------------------------------------------------

    private async Task<byte[]> ReadBodyAsync(HttpContext ctx)
    {
        long max = _opts.MaxRequestBytes;
        if (ctx.Request.ContentLength > max) throw ApiException.TooLarge(max);
        var body = ctx.Request.Body;
        if (ctx.Request.ContentLength is { } length)
        {
            // The usual case: read straight into an array of the announced size (Kestrel fails the
            // read if the body is shorter or longer than Content-Length).
            var exact = new byte[length];
            try { await body.ReadExactlyAsync(exact, ctx.RequestAborted).ConfigureAwait(false); }
            catch (EndOfStreamException) { throw ApiException.BadRequest($"the request body ended before its Content-Length of {length} bytes"); }
            return exact;
        }
        var buffer = new ArrayBufferWriter<byte>(4096);
        while (true)
        {
            var mem = buffer.GetMemory(16384);
            int n = await body.ReadAsync(mem, ctx.RequestAborted).ConfigureAwait(false);
            if (n == 0) break;
            buffer.Advance(n);
            if (buffer.WrittenCount > max) throw ApiException.TooLarge(max);
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads a JSON or YAML object body.</summary>
    private async Task<JsonObject> ReadObjectAsync(HttpContext ctx, ResourceInfo info) =>
        ParseObject(ctx, info, await ReadBodyAsync(ctx).ConfigureAwait(false));

    /// <summary>Whether the request body is JSON (what <see cref="ParseObject"/> takes as JSON).</summary>
    private static bool IsJsonBody(HttpContext ctx) =>
        ctx.Request.ContentType is not { } ct || ct.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) || ct.StartsWith("*/*", StringComparison.Ordinal);

    private static JsonObject ParseObject(HttpContext ctx, ResourceInfo info, byte[] bytes) => ParseObject(ctx, info.Kind, bytes);

    private static JsonObject ParseObject(HttpContext ctx, string kind, byte[] bytes)
    {
        string ct = ctx.Request.ContentType ?? "application/json";
        try
        {
            if (ct.StartsWith(KubeProtobuf.ContentType, StringComparison.OrdinalIgnoreCase))
            {
                try { return KubeProtobuf.Decode(bytes); }
                catch (KubeProtobuf.UnsupportedException e) { throw new ApiException(415, "UnsupportedMediaType", e.Message); }
            }
            if (ct.StartsWith("application/yaml", StringComparison.OrdinalIgnoreCase))
            {
                var docs = YamlToJson.Convert(Encoding.UTF8.GetString(bytes));
                if (docs.Count != 1) throw ApiException.BadRequest("expected exactly one YAML document in the request body");
                bytes = docs[0];
            }
            else if (!IsJsonBody(ctx))
            {
                throw new ApiException(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf");
            }
            var obj = Json.ParseObject(bytes);
            // A null field is the zero value, as upstream's typed decoding makes it. Without a null
            // literal in the body there is none to drop, and the tree is not walked.
            if (bytes.AsSpan().IndexOf("null"u8) >= 0) Json.DropNulls(obj);
            return obj;
        }
        catch (Exception e) when (e is JsonException or ManifestException)
        {
            throw ApiException.BadRequest($"the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {e.Message}");
        }
    }

    /// <summary>kind and apiVersion, if the body has them, are the path's; metadata is an object. Both are then set.</summary>
    public static void CheckTypeMeta(JsonObject obj, ResourceInfo info, string kind, string apiVersion) => CheckTypeMeta(obj, info.Resource, kind, apiVersion);

    /// <inheritdoc cref="CheckTypeMeta(JsonObject, ResourceInfo, string, string)"/>
    public static void CheckTypeMeta(JsonObject obj, string resource, string kind, string apiVersion)
    {
        string? k = obj.Str("kind"), av = obj.Str("apiVersion");
        if (av is not null && av != apiVersion)
            throw ApiException.BadRequest($"the API version in the data ({av}) does not match the expected API version ({apiVersion})");
        if (k is not null && k != kind)
            throw ApiException.BadRequest($"the kind in the data ({k}) does not match the expected kind ({kind}) for resource \"{resource}\"");
        if (obj["metadata"] is not null and not JsonObject)
            throw ApiException.BadRequest($"{kind} in version \"{apiVersion}\" cannot be handled as a {kind}: metadata must be an object");
        obj["kind"] = kind;
        obj["apiVersion"] = apiVersion;
    }

    // ---- output -------------------------------------------------------------------------------

    private static bool WantsTable(HttpContext ctx) =>
        ctx.Request.Headers.Accept.ToString().Contains("as=Table", StringComparison.Ordinal);

    private static async Task WriteJsonAsync(HttpContext ctx, int code, Action<Utf8JsonWriter> write, string contentType = "application/json")
    {
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = contentType;
        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var w = new Utf8JsonWriter(buffer, Json.WriterOptions)) write(w);
        buffer.Write("\n"u8);
        await ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted).ConfigureAwait(false);
    }

    public static Task WriteErrorAsync(HttpContext ctx, ApiException e)
    {
        if (ctx.Response.HasStarted) return Task.CompletedTask;
        if (e.RetryAfterSeconds is { } ra) ctx.Response.Headers.RetryAfter = ra.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return WriteJsonAsync(ctx, e.Code, e.WriteStatus);
    }

    private Task WriteObjectAsync(HttpContext ctx, int code, ResourceInfo info, JsonObject obj)
    {
        if (WantsTable(ctx))
            return WriteJsonAsync(ctx, code, w => WriteTable(w, info, [obj], null, ctx.Request.Query["includeObject"].ToString()), TableContentType);
        return WriteJsonAsync(ctx, code, w => obj.WriteTo(w));
    }

    private const string TableContentType = "application/json;as=Table;v=v1;g=meta.k8s.io";

    private void WriteTable(Utf8JsonWriter w, ResourceInfo info, IEnumerable<JsonObject> items, Action<Utf8JsonWriter>? listMeta, string include, bool columns = true)
    {
        var conv = info.Table ?? Table.Default;
        var now = _time.GetUtcNow();
        w.WriteStartObject();
        w.WriteString("kind", "Table");
        w.WriteString("apiVersion", "meta.k8s.io/v1");
        w.WriteStartObject("metadata");
        listMeta?.Invoke(w);
        w.WriteEndObject();
        if (columns) Table.WriteColumns(w, conv);
        w.WriteStartArray("rows");
        foreach (var o in items) Table.WriteRow(w, conv, o, now, include);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "{Method} {Path}: internal error")]
    private static partial void LogInternalError(ILogger log, string method, string? path, Exception e);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Method} {Path}: {Error}")]
    private static partial void LogEtcdError(ILogger log, string method, string? path, string error);

    public async ValueTask DisposeAsync()
    {
        foreach (var c in _caches.Values) await c.DisposeAsync().ConfigureAwait(false);
    }
}
