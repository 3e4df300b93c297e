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
        foreach (var (g, v, _) in HandGroups) { w.WriteStringValue("/apis/" + g); w.WriteStringValue($"/apis/{g}/{v}"); }
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
        if (await HandGroupDiscoveryAsync(ctx, seg, AuthenticationGroup, "v1").ConfigureAwait(false)) return;
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

    private const string AggregatedDiscoveryType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

    /// <summary>
    /// /api and /apis: the aggregated discovery document (apidiscovery.k8s.io/v2, every group's
    /// resources in one response, which kubectl and client-go ask for first) when the Accept header
    /// puts it before plain JSON, else the classic APIVersions or APIGroupList.
    /// </summary>
    private async Task DiscoveryRootAsync(HttpContext ctx, bool core)
    {
        ctx.Response.Headers.Vary = "Accept";
        if (WantsAggregated(ctx.Request.Headers.Accept))
            await WriteJsonAsync(ctx, 200, w => WriteAggregated(w, core), AggregatedDiscoveryType).ConfigureAwait(false);
        else
            await WriteJsonAsync(ctx, 200, core ? WriteCoreVersions : WriteGroupList).ConfigureAwait(false);
    }

    /// <summary>Whether the first media range of Accept this server can answer is the aggregated v2 document (v2beta1 is not served).</summary>
    private static bool WantsAggregated(Microsoft.Extensions.Primitives.StringValues accept)
    {
        foreach (var header in accept)
        {
            if (header is null) continue;
            foreach (var range in header.Split(','))
            {
                var parts = range.Split(';');
                if (parts[0].Trim() is not ("application/json" or "application/*" or "*/*")) continue;
                string? g = null, v = null, asKind = null;
                foreach (var p in parts.AsSpan(1))
                {
                    int eq = p.IndexOf('=');
                    if (eq < 0) continue;
                    string value = p[(eq + 1)..].Trim();
                    switch (p[..eq].Trim())
                    {
                        case "g": g = value; break;
                        case "v": v = value; break;
                        case "as": asKind = value; break;
                    }
                }
                if (asKind is null) return false;
                if (g == "apidiscovery.k8s.io" && v == "v2" && asKind == "APIGroupDiscoveryList") return true;
            }
        }
        return false;
    }

    private void WriteAggregated(Utf8JsonWriter w, bool core)
    {
        w.WriteStartObject();
        w.WriteString("kind", "APIGroupDiscoveryList");
        w.WriteString("apiVersion", "apidiscovery.k8s.io/v2");
        w.WriteStartObject("metadata");
        w.WriteEndObject();
        w.WriteStartArray("items");
        if (core) WriteGroupDiscovery(w, "", "v1", ResourcesOf("", "v1"));
        else
        {
            foreach (var g in _resources.Groups)
                if (g.Length > 0) WriteGroupDiscovery(w, g, "v1", ResourcesOf(g, "v1"));
            foreach (var (g, v, resources) in HandGroups) WriteGroupDiscovery(w, g, v, resources);
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>One APIGroupDiscovery: its one version, each resource with its subresources inside it.</summary>
    private static void WriteGroupDiscovery(Utf8JsonWriter w, string group, string version, IEnumerable<Discovered> resources)
    {
        static void Kind(Utf8JsonWriter w, Discovered d, string group, string version)
        {
            w.WriteStartObject("responseKind");
            w.WriteString("group", d.Group ?? group);
            w.WriteString("version", d.Version ?? version);
            w.WriteString("kind", d.Kind);
            w.WriteEndObject();
        }
        static void Strings(Utf8JsonWriter w, string name, string[]? values)
        {
            if (values is not { Length: > 0 }) return;
            w.WriteStartArray(name);
            foreach (var v in values) w.WriteStringValue(v);
            w.WriteEndArray();
        }
        w.WriteStartObject();
        w.WriteStartObject("metadata");
        if (group.Length > 0) w.WriteString("name", group);
        w.WriteNull("creationTimestamp");
        w.WriteEndObject();
        w.WriteStartArray("versions");
        w.WriteStartObject();
        w.WriteString("version", version);
        w.WriteStartArray("resources");
        var all = resources.ToList();
        foreach (var d in all)
        {
            if (d.Name.Contains('/')) continue;
            w.WriteStartObject();
            w.WriteString("resource", d.Name);
            Kind(w, d, group, version);
            w.WriteString("scope", d.Namespaced ? "Namespaced" : "Cluster");
            w.WriteString("singularResource", d.Singular);
            Strings(w, "verbs", d.Verbs);
            Strings(w, "shortNames", d.ShortNames);
            Strings(w, "categories", d.Categories);
            string prefix = d.Name + "/";
            bool any = false;
            foreach (var sub in all)
            {
                if (!sub.Name.StartsWith(prefix, StringComparison.Ordinal)) continue;
                if (!any) { w.WriteStartArray("subresources"); any = true; }
                w.WriteStartObject();
                w.WriteString("subresource", sub.Name[prefix.Length..]);
                Kind(w, sub, group, version);
                Strings(w, "verbs", sub.Verbs);
                w.WriteEndObject();
            }
            if (any) w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("freshness", "Current");
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
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
        foreach (var (g, v, _) in HandGroups) WriteGroup(w, g, withKind: false, v);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>
    /// Discovery of a group this server serves by hand rather than from its registry: /apis/GROUP
    /// and /apis/GROUP/VERSION with the resources <paramref name="resources"/> writes. False when the
    /// path goes deeper (a resource of the group), for the caller to serve.
    /// </summary>
    private async Task<bool> HandGroupDiscoveryAsync(HttpContext ctx, string[] seg, string group, string version)
    {
        if (seg.Length == 2) { await WriteJsonAsync(ctx, 200, w => WriteGroup(w, group, withKind: true, version)).ConfigureAwait(false); return true; }
        if (seg[2] != version) throw ApiException.UnknownResource();
        if (seg.Length > 3) return false;
        await WriteJsonAsync(ctx, 200, w => WriteResourceList(w, group, version, HandResources(group))).ConfigureAwait(false);
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

    /// <summary>
    /// A resource or subresource ("pods/status") as discovery describes it; Group and Version only
    /// where its kind is another group's (a Deployment's Scale is autoscaling/v1).
    /// </summary>
    private sealed record Discovered(string Name, string Singular, bool Namespaced, string Kind, string[] Verbs,
        string[]? ShortNames = null, string[]? Categories = null, string? Group = null, string? Version = null);

    /// <summary>The registry's resources of a group version, each followed by its subresources.</summary>
    private IEnumerable<Discovered> ResourcesOf(string group, string version)
    {
        foreach (var r in _resources.All)
        {
            if (r.Group != group || r.Version != version) continue;
            yield return new(r.Resource, r.Singular, r.Namespaced, r.Kind, ObjectVerbs, r.ShortNames, r.Categories);
            foreach (var sub in r.Subresources)
            {
                string name = r.Resource + "/" + sub;
                Discovered? d = sub switch
                {
                    "status" => new(name, "", r.Namespaced, r.Kind, ["get", "patch", "update"]),
                    "scale" => new(name, "", r.Namespaced, "Scale", ["get", "patch", "update"], Group: "autoscaling", Version: "v1"),
                    "binding" => new(name, "", r.Namespaced, "Binding", ["create"]),
                    "finalize" => new(name, "", r.Namespaced, r.Kind, ["update"]),
                    "token" => new(name, "", r.Namespaced, "TokenRequest", ["create"], Group: AuthenticationGroup, Version: "v1"),
                    "log" => new(name, "", r.Namespaced, r.Kind, ["get"]),
                    "exec" => new(name, "", r.Namespaced, "PodExecOptions", ["create", "get"]),
                    "attach" => new(name, "", r.Namespaced, "PodAttachOptions", ["create", "get"]),
                    "portforward" => new(name, "", r.Namespaced, "PodPortForwardOptions", ["create", "get"]),
                    _ => null,
                };
                if (d is not null) yield return d;
            }
        }
    }

    /// <summary>The groups served by hand, beside the registry's: each with its one version and its resources.</summary>
    private static readonly (string Group, string Version, Discovered[] Resources)[] HandGroups =
    [
        (AuthenticationGroup, "v1", [new("selfsubjectreviews", "selfsubjectreview", false, "SelfSubjectReview", ["create"])]),
        (AuthorizationGroup, "v1",
        [
            new("localsubjectaccessreviews", "localsubjectaccessreview", true, "LocalSubjectAccessReview", ["create"]),
            new("selfsubjectaccessreviews", "selfsubjectaccessreview", false, "SelfSubjectAccessReview", ["create"]),
            new("selfsubjectrulesreviews", "selfsubjectrulesreview", false, "SelfSubjectRulesReview", ["create"]),
            new("subjectaccessreviews", "subjectaccessreview", false, "SubjectAccessReview", ["create"]),
        ]),
        (MetricsGroup, MetricsVersion, [new("nodes", "", false, "NodeMetrics", ["get", "list"]), new("pods", "", true, "PodMetrics", ["get", "list"])]),
    ];

    private static Discovered[] HandResources(string group) => HandGroups.First(g => g.Group == group).Resources;

    private void WriteResourceList(Utf8JsonWriter w, string group, string version) => WriteResourceList(w, group, version, ResourcesOf(group, version));

    private static void WriteResourceList(Utf8JsonWriter w, string group, string version, IEnumerable<Discovered> resources)
    {
        w.WriteStartObject();
        w.WriteString("kind", "APIResourceList");
        w.WriteString("apiVersion", "v1");
        w.WriteString("groupVersion", group.Length == 0 ? version : group + "/" + version);
        w.WriteStartArray("resources");
        foreach (var d in resources) WriteResource(w, d);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteResource(Utf8JsonWriter w, Discovered d)
    {
        var (name, singular, namespaced, kind, verbs, shortNames, categories, group, version) = d;
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
