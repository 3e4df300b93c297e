using Microsoft.AspNetCore.Http;
using NodeAgent.Api.Core;

namespace NodeAgent.ControlPlane.Auth;

/// <summary>An authorizer's answer, as upstream's: allow, deny, or leave it to the next one.</summary>
public enum Decision { Deny, Allow, NoOpinion }

/// <summary>
/// What a request asks to do, as upstream's authorizer attributes. A resource request has a
/// Kubernetes verb (get, list, watch, create, update, patch, delete, deletecollection, proxy) and
/// the group, version, resource, subresource, namespace and name it acts on; any other request has
/// its path and the lower-case HTTP method as its verb.
/// </summary>
public sealed record AuthorizationAttributes(UserInfo User, string Verb, bool IsResourceRequest, string Path = "",
    string Namespace = "", string ApiGroup = "", string ApiVersion = "", string Resource = "", string Subresource = "", string Name = "")
{
    public static AuthorizationAttributes From(UserInfo user, HttpRequest request) =>
        From(user, request.Method, request.Path.Value ?? "/", request.Query["watch"].ToString(), request.Query["fieldSelector"].ToString());

    /// <summary>
    /// Upstream's reading of a request path: /api/v1/... and /apis/GROUP/VERSION/... are resource
    /// requests, optionally under /namespaces/NS/ (except a namespace's own status and finalize),
    /// with /watch/ and /proxy/ as verbs in the path; a GET without a name is a list (a watch with
    /// watch=true, and a fieldSelector on metadata.name names the object); a DELETE without a name is
    /// a deletecollection. Everything else is a non-resource request.
    /// </summary>
    public static AuthorizationAttributes From(UserInfo user, string method, string path, string? watch = null, string? fieldSelector = null)
    {
        var nonResource = new AuthorizationAttributes(user, method.ToLowerInvariant(), false, path);
        var parts = path.Trim('/').Split('/');
        if (parts.Length < 3 || parts[0] is not ("api" or "apis")) return nonResource;
        int at = 1;
        string group = "";
        if (parts[0] == "apis")
        {
            if (parts.Length < 4) return nonResource;
            group = parts[at++];
        }
        string version = parts[at++];
        string verb;
        if (parts[at] is "watch" or "proxy")
        {
            if (parts.Length - at < 2) return nonResource;
            verb = parts[at++];
        }
        else
        {
            verb = method switch
            {
                "POST" => "create",
                "GET" or "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            };
        }
        string ns = "";
        if (parts[at] == "namespaces" && parts.Length - at > 1)
        {
            ns = parts[at + 1];
            if (parts.Length - at > 2 && parts[at + 2] is not ("status" or "finalize")) at += 2;
        }
        int n = parts.Length - at;
        string resource = parts[at], name = n >= 2 ? parts[at + 1] : "", sub = n >= 3 && verb != "proxy" ? parts[at + 2] : "";
        if (name.Length == 0 && verb == "get")
        {
            verb = QueryParameters.Bool(watch) && !string.IsNullOrEmpty(watch) ? "watch" : "list";
            if (ExactName(fieldSelector) is { } selected) name = selected;
        }
        if (name.Length == 0 && verb == "delete") verb = "deletecollection";
        return new AuthorizationAttributes(user, verb, true, path, ns, group, version, resource, sub, name);
    }

    /// <summary>The name a field selector pins with metadata.name=X (or ==X), if it does.</summary>
    private static string? ExactName(string? selector)
    {
        if (string.IsNullOrEmpty(selector)) return null;
        foreach (var term in selector.Split(','))
        {
            var t = term.Trim();
            if (!t.StartsWith("metadata.name", StringComparison.Ordinal)) continue;
            var rest = t.AsSpan("metadata.name".Length);
            var name = rest.StartsWith("==") ? rest[2..] : rest.StartsWith("=") ? rest[1..] : default;
            // Only a name that could be a path segment, as upstream checks.
            if (name.Length > 0 && name is not "." and not ".." && name.IndexOfAny('/', '%') < 0) return name.ToString();
        }
        return null;
    }

    /// <summary>Upstream's 403 message for these attributes, with the authorizer's reason after it.</summary>
    public string ForbiddenMessage(string reason)
    {
        string what;
        if (!IsResourceRequest) what = $"User \"{User.Name}\" cannot {Verb} path \"{Path}\"";
        else
        {
            string resource = Subresource.Length > 0 ? Resource + "/" + Subresource : Resource;
            what = Namespace.Length > 0
                ? $"User \"{User.Name}\" cannot {Verb} resource \"{resource}\" in API group \"{ApiGroup}\" in the namespace \"{Namespace}\""
                : $"User \"{User.Name}\" cannot {Verb} resource \"{resource}\" in API group \"{ApiGroup}\" at the cluster scope";
        }
        return reason.Length > 0 ? what + ": " + reason : what;
    }
}

/// <summary>A rule of what a user may do on resources, as authorization.k8s.io/v1 ResourceRule.</summary>
public sealed record ResourceRule(string[] Verbs, string[] ApiGroups, string[] Resources, string[] ResourceNames);

/// <summary>A rule of what a user may do on other paths, as authorization.k8s.io/v1 NonResourceRule.</summary>
public sealed record NonResourceRule(string[] Verbs, string[] NonResourceUrls);

/// <summary>Everything a user may do in one namespace, as far as the authorizer can tell (Incomplete if not all of it).</summary>
public sealed record Rules(IReadOnlyList<ResourceRule> ResourceRules, IReadOnlyList<NonResourceRule> NonResourceRules, bool Incomplete, string EvaluationError = "");

/// <summary>
/// Decides whether a request may proceed, and answers the access reviews (kubectl auth can-i) with
/// the same decision. Every authenticated user may do everything for now; RBAC and the Node
/// authorizer plug in here.
/// </summary>
public interface IAuthorizer
{
    (Decision Decision, string Reason) Authorize(AuthorizationAttributes attributes);

    /// <summary>What <paramref name="user"/> may do in <paramref name="ns"/> (SelfSubjectRulesReview).</summary>
    Rules RulesFor(UserInfo user, string ns);
}

/// <summary>Upstream's AlwaysAllow mode.</summary>
public sealed class AllowAllAuthorizer : IAuthorizer
{
    private static readonly Rules All = new([new ResourceRule(["*"], ["*"], ["*"], [])], [new NonResourceRule(["*"], ["*"])], false);

    public (Decision Decision, string Reason) Authorize(AuthorizationAttributes attributes) => (Decision.Allow, "");

    public Rules RulesFor(UserInfo user, string ns) => All;
}
