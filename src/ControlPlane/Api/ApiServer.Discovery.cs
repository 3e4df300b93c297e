using System.Text.Json;
using Microsoft.AspNetCore.Http;
using NodeAgent.ControlPlane.Registry;

namespace NodeAgent.ControlPlane.Api;

/// <summary>Discovery (/api, /apis, resource lists), /version, health checks and the OpenAPI v3 index.</summary>
public sealed partial class ApiServer
{
    public const string KubeVersion = "v1.32.0";

    private static readonly string[] ObjectVerbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

    private void RootPaths(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteStartArray("paths");
        foreach (var p in (string[])["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]) w.WriteStringValue(p);
        foreach (var g in _resources.Groups.Where(g => g.Length > 0)) { w.WriteStringValue("/apis/" + g); w.WriteStringValue($"/apis/{g}/v1"); }
        foreach (var g in (string[])[AuthenticationGroup, AuthorizationGroup]) { w.WriteStringValue("/apis/" + g); w.WriteStringValue($"/apis/{g}/v1"); }
        w.WriteStringValue("/apis/" + MetricsGroup);
        w.WriteStringValue($"/apis/{MetricsGroup}/{MetricsVersion}");
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteVersion(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("major", "1");
        w.WriteString("minor", "32");
        w.WriteString("gitVersion", KubeVersion + "+nodeagent");
        w.WriteString("gitCommit", "");
        w.WriteString("gitTreeState", "clean");
        w.WriteString("buildDate", "2026-11-22T00:00:00Z");
        w.WriteString("goVersion", "dotnet" + Environment.Version);
        w.WriteString("compiler", "dotnet");
        w.WriteString("platform", "linux/amd64");
        w.WriteEndObject();
    }

    private async Task HealthAsync(HttpContext ctx, string which)
    {
        string text = "ok";
        int code = 200;
        if (which != "livez")
        {
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
                cts.CancelAfter(TimeSpan.FromSeconds(2));
                await _store.Etcd.CurrentRevisionAsync(cts.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is Etcd.EtcdUnavailableException or OperationCanceledException && !ctx.RequestAborted.IsCancellationRequested)
            {
                code = 500;
                text = "[-]etcd failed: reason withheld\n" + which + " check failed";
            }
        }
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = "text/plain; charset=utf-8";
        await ctx.Response.WriteAsync(text, ctx.RequestAborted).ConfigureAwait(false);
    }

    public const string AuthenticationGroup = "authentication.k8s.io";

    /// <summary>
    /// authentication.k8s.io/v1 selfsubjectreviews (create only, nothing stored): who the caller is,
    /// as the authenticator saw it. <c>kubectl auth whoami</c> reads it.
    /// </summary>
    private async Task SelfSubjectReviewAsync(HttpContext ctx, string[] seg)
    {
        if (await HandGroupDiscoveryAsync(ctx, seg, AuthenticationGroup, "v1",
                w => WriteResource(w, "selfsubjectreviews", "selfsubjectreview", false, "SelfSubjectReview", ["create"])).ConfigureAwait(false))
            return;
        if (seg.Length != 4 || seg[3] != "selfsubjectreviews") throw ApiException.UnknownResource();
        if (ctx.Request.Method != "POST") throw new ApiException(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
        var user = ctx.Items["user"] as Auth.UserInfo ?? throw ApiException.Unauthorized();
        await WriteJsonAsync(ctx, 201, w =>
        {
            w.WriteStartObject();
            w.WriteString("kind", "SelfSubjectReview");
            w.WriteString("apiVersion", AuthenticationGroup + "/v1");
            w.WriteStartObject("metadata");
            w.WriteString("creationTimestamp", Storage.Json.Rfc3339(_time.GetUtcNow()));
            w.WriteEndObject();
            w.WriteStartObject("status");
            w.WriteStartObject("userInfo");
            w.WriteString("username", user.Name);
            if (user.Uid.Length > 0) w.WriteString("uid", user.Uid);
            w.WriteStartArray("groups");
            foreach (var g in user.Groups) w.WriteStringValue(g);
            w.WriteEndArray();
            if (user.Extra is { Count: > 0 } extra)
            {
                w.WriteStartObject("extra");
                foreach (var (key, values) in extra)
                {
                    w.WriteStartArray(key);
                    foreach (var v in values) w.WriteStringValue(v);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    private void WriteCoreVersions(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("kind", "APIVersions");
        w.WriteStartArray("versions");
        w.WriteStringValue("v1");
        w.WriteEndArray();
        w.WriteStartArray("serverAddressByClientCIDRs");
        w.WriteStartObject();
        w.WriteString("clientCIDR", "0.0.0.0/0");
        w.WriteString("serverAddress", _opts.ExternalAddress);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private void WriteGroupList(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("kind", "APIGroupList");
        w.WriteString("apiVersion", "v1");
        w.WriteStartArray("groups");
        foreach (var g in _resources.Groups.Where(g => g.Length > 0)) WriteGroup(w, g, withKind: false);
        WriteGroup(w, AuthenticationGroup, withKind: false);
        WriteGroup(w, AuthorizationGroup, withKind: false);
        WriteGroup(w, MetricsGroup, withKind: false, MetricsVersion);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>
    /// Discovery of a group this server serves by hand rather than from its registry: /apis/GROUP
    /// and /apis/GROUP/VERSION with the resources <paramref name="resources"/> writes. False when the
    /// path goes deeper (a resource of the group), for the caller to serve.
    /// </summary>
    private async Task<bool> HandGroupDiscoveryAsync(HttpContext ctx, string[] seg, string group, string version, Action<Utf8JsonWriter> resources)
    {
        if (seg.Length == 2) { await WriteJsonAsync(ctx, 200, w => WriteGroup(w, group, withKind: true, version)).ConfigureAwait(false); return true; }
        if (seg[2] != version) throw ApiException.UnknownResource();
        if (seg.Length > 3) return false;
        await WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("kind", "APIResourceList");
            w.WriteString("apiVersion", "v1");
            w.WriteString("groupVersion", group + "/" + version);
            w.WriteStartArray("resources");
            resources(w);
            w.WriteEndArray();
            w.WriteEndObject();
        }).ConfigureAwait(false);
        return true;
    }

    private static void WriteGroup(Utf8JsonWriter w, string group, bool withKind, string version = "v1")
    {
        w.WriteStartObject();
        if (withKind) { w.WriteString("kind", "APIGroup"); w.WriteString("apiVersion", "v1"); }
        w.WriteString("name", group);
        w.WriteStartArray("versions");
        w.WriteStartObject();
        w.WriteString("groupVersion", group + "/" + version);
        w.WriteString("version", version);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteStartObject("preferredVersion");
        w.WriteString("groupVersion", group + "/" + version);
        w.WriteString("version", version);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private void WriteResourceList(Utf8JsonWriter w, string group, string version)
    {
        w.WriteStartObject();
        w.WriteString("kind", "APIResourceList");
        w.WriteString("apiVersion", "v1");
        w.WriteString("groupVersion", group.Length == 0 ? version : group + "/" + version);
        w.WriteStartArray("resources");
        foreach (var r in _resources.All.Where(r => r.Group == group && r.Version == version))
        {
            WriteResource(w, r.Resource, r.Singular, r.Namespaced, r.Kind, ObjectVerbs, r.ShortNames, r.Categories);
            foreach (var sub in r.Subresources)
            {
                switch (sub)
                {
                    case "status": WriteResource(w, r.Resource + "/status", "", r.Namespaced, r.Kind, ["get", "patch", "update"]); break;
                    case "scale": WriteResource(w, r.Resource + "/scale", "", r.Namespaced, "Scale", ["get", "patch", "update"], group: "autoscaling", version: "v1"); break;
                    case "binding": WriteResource(w, r.Resource + "/binding", "", r.Namespaced, "Binding", ["create"]); break;
                    case "finalize": WriteResource(w, r.Resource + "/finalize", "", r.Namespaced, r.Kind, ["update"]); break;
                    case "token": WriteResource(w, r.Resource + "/token", "", r.Namespaced, "TokenRequest", ["create"], group: "authentication.k8s.io", version: "v1"); break;
                    case "log": WriteResource(w, r.Resource + "/log", "", r.Namespaced, r.Kind, ["get"]); break;
                    case "exec": WriteResource(w, r.Resource + "/exec", "", r.Namespaced, "PodExecOptions", ["create", "get"]); break;
                    case "attach": WriteResource(w, r.Resource + "/attach", "", r.Namespaced, "PodAttachOptions", ["create", "get"]); break;
                    case "portforward": WriteResource(w, r.Resource + "/portforward", "", r.Namespaced, "PodPortForwardOptions", ["create", "get"]); break;
                }
            }
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteResource(Utf8JsonWriter w, string name, string singular, bool namespaced, string kind, string[] verbs,
        string[]? shortNames = null, string[]? categories = null, string? group = null, string? version = null)
    {
        w.WriteStartObject();
        w.WriteString("name", name);
        w.WriteString("singularName", singular);
        w.WriteBoolean("namespaced", namespaced);
        if (group is not null) { w.WriteString("group", group); w.WriteString("version", version); }
        w.WriteString("kind", kind);
        w.WriteStartArray("verbs");
        foreach (var v in verbs) w.WriteStringValue(v);
        w.WriteEndArray();
        if (shortNames is { Length: > 0 })
        {
            w.WriteStartArray("shortNames");
            foreach (var s in shortNames) w.WriteStringValue(s);
            w.WriteEndArray();
        }
        if (categories is { Length: > 0 })
        {
            w.WriteStartArray("categories");
            foreach (var c in categories) w.WriteStringValue(c);
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    /// <summary>
    /// OpenAPI v3: the index and, per group-version, the paths with their operations'
    /// x-kubernetes-group-version-kind and parameters (kubectl reads these to learn that the server
    /// validates fields itself, fieldValidation), and schemas where the typed model has them (Pod, so
    /// kubectl explain works for pods). Kinds without a schema make kubectl fall back to its
    /// compiled-in types for strategic merge patches.
    /// </summary>
    private async Task OpenApiAsync(HttpContext ctx, string[] seg)
    {
        if (seg.Length < 2 || seg[1] != "v3") throw ApiException.UnknownResource();
        if (seg.Length == 2)
        {
            await WriteJsonAsync(ctx, 200, w =>
            {
                w.WriteStartObject();
                w.WriteStartObject("paths");
                foreach (var g in _resources.Groups)
                {
                    string gv = g.Length == 0 ? "api/v1" : $"apis/{g}/v1";
                    w.WriteStartObject(gv);
                    w.WriteString("serverRelativeURL", $"/openapi/v3/{gv}?hash={KubeVersion}");
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                w.WriteEndObject();
            }).ConfigureAwait(false);
            return;
        }
        string group = seg[2] == "api" ? "" : seg.Length > 3 ? seg[3] : throw ApiException.UnknownResource();
        var resources = _resources.All.Where(r => r.Group == group).ToList();
        if (resources.Count == 0) throw ApiException.UnknownResource();
        await WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("openapi", "3.0.0");
            w.WriteStartObject("info");
            w.WriteString("title", "Kubernetes");
            w.WriteString("version", KubeVersion);
            w.WriteEndObject();
            w.WriteStartObject("paths");
            foreach (var r in resources)
            {
                string prefix = (group.Length == 0 ? "/api/v1/" : $"/apis/{group}/v1/") + (r.Namespaced ? "namespaces/{namespace}/" : "");
                WritePath(w, prefix + r.Resource, r, ["get", "post", "delete"]);
                WritePath(w, prefix + r.Resource + "/{name}", r, ["get", "put", "patch", "delete"]);
                if (r.HasStatus) WritePath(w, prefix + r.Resource + "/{name}/status", r, ["get", "put", "patch"]);
            }
            w.WriteEndObject();
            w.WriteStartObject("components");
            w.WriteStartObject("schemas");
            OpenApiSchemas.Write(w, group, "v1");
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    private static void WritePath(Utf8JsonWriter w, string path, ResourceInfo r, string[] methods)
    {
        w.WriteStartObject(path);
        foreach (var m in methods)
        {
            w.WriteStartObject(m);
            w.WriteString("operationId", m + r.Kind);
            w.WriteStartArray("parameters");
            if (m is "post" or "put" or "patch")
                foreach (var p in (string[])["dryRun", "fieldManager", "fieldValidation"])
                {
                    w.WriteStartObject();
                    w.WriteString("name", p);
                    w.WriteString("in", "query");
                    w.WriteStartObject("schema");
                    w.WriteString("type", "string");
                    w.WriteEndObject();
                    w.WriteEndObject();
                }
            w.WriteEndArray();
            w.WriteStartObject("responses");
            w.WriteStartObject("200");
            w.WriteString("description", "OK");
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteString("x-kubernetes-action", m switch { "post" => "post", "put" => "put", "patch" => "patch", "delete" => "delete", _ => "get" });
            w.WriteStartObject("x-kubernetes-group-version-kind");
            w.WriteString("group", r.Group);
            w.WriteString("version", r.Version);
            w.WriteString("kind", r.Kind);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}
