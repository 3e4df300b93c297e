using Microsoft.AspNetCore.Http;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Auth;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

public sealed class AuthorizationTests
{
    private static readonly UserInfo Alice = new("alice", "", ["dev", "system:authenticated"]);

    // method, path, watch, fieldSelector -> verb, resource request, namespace, group, version, resource, subresource, name
    [Theory]
    [InlineData("GET", "/api/v1/namespaces/default/pods/web", null, null, "get", true, "default", "", "v1", "pods", "", "web")]
    [InlineData("GET", "/api/v1/namespaces/default/pods", null, null, "list", true, "default", "", "v1", "pods", "", "")]
    [InlineData("GET", "/api/v1/namespaces/default/pods", "true", null, "watch", true, "default", "", "v1", "pods", "", "")]
    [InlineData("GET", "/api/v1/namespaces/default/pods", "false", null, "list", true, "default", "", "v1", "pods", "", "")]
    [InlineData("GET", "/api/v1/watch/namespaces/default/pods", null, null, "watch", true, "default", "", "v1", "pods", "", "")]
    [InlineData("GET", "/api/v1/pods", null, null, "list", true, "", "", "v1", "pods", "", "")]
    [InlineData("GET", "/api/v1/namespaces/kube-system/pods", "1", "metadata.name=dns,status.phase=Running", "watch", true, "kube-system", "", "v1", "pods", "", "dns")]
    [InlineData("GET", "/api/v1/namespaces/kube-system/pods", null, "metadata.name==dns", "list", true, "kube-system", "", "v1", "pods", "", "dns")]
    [InlineData("GET", "/api/v1/namespaces/kube-system/pods", null, "metadata.name!=dns", "list", true, "kube-system", "", "v1", "pods", "", "")]
    [InlineData("POST", "/api/v1/namespaces/default/pods", null, null, "create", true, "default", "", "v1", "pods", "", "")]
    [InlineData("POST", "/api/v1/namespaces/default/pods/web/binding", null, null, "create", true, "default", "", "v1", "pods", "binding", "web")]
    [InlineData("GET", "/api/v1/namespaces/default/pods/web/log", null, null, "get", true, "default", "", "v1", "pods", "log", "web")]
    [InlineData("PUT", "/apis/apps/v1/namespaces/prod/deployments/api/scale", null, null, "update", true, "prod", "apps", "v1", "deployments", "scale", "api")]
    [InlineData("PATCH", "/apis/apps/v1/namespaces/prod/deployments/api", null, null, "patch", true, "prod", "apps", "v1", "deployments", "", "api")]
    [InlineData("DELETE", "/apis/apps/v1/namespaces/prod/deployments/api", null, null, "delete", true, "prod", "apps", "v1", "deployments", "", "api")]
    [InlineData("DELETE", "/apis/apps/v1/namespaces/prod/deployments", null, null, "deletecollection", true, "prod", "apps", "v1", "deployments", "", "")]
    // A namespace is its own name's namespace; its status and finalize are subresources, not resources.
    [InlineData("GET", "/api/v1/namespaces/prod", null, null, "get", true, "prod", "", "v1", "namespaces", "", "prod")]
    [InlineData("PUT", "/api/v1/namespaces/prod/finalize", null, null, "update", true, "prod", "", "v1", "namespaces", "finalize", "prod")]
    [InlineData("GET", "/api/v1/namespaces", null, null, "list", true, "", "", "v1", "namespaces", "", "")]
    [InlineData("GET", "/api/v1/nodes/n1/proxy/stats/summary", null, null, "get", true, "", "", "v1", "nodes", "proxy", "n1")]
    [InlineData("GET", "/api/v1/proxy/nodes/n1/stats", null, null, "proxy", true, "", "", "v1", "nodes", "", "n1")]
    [InlineData("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", null, null, "create", true, "", "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "", "")]
    // Not resources: discovery, health, metrics, OpenAPI.
    [InlineData("GET", "/api/v1", null, null, "get", false, "", "", "", "", "", "")]
    [InlineData("GET", "/apis/apps/v1", null, null, "get", false, "", "", "", "", "", "")]
    [InlineData("GET", "/apis", null, null, "get", false, "", "", "", "", "", "")]
    [InlineData("GET", "/healthz", null, null, "get", false, "", "", "", "", "", "")]
    [InlineData("POST", "/metrics", null, null, "post", false, "", "", "", "", "", "")]
    public void RequestsAreReadAsUpstreamReadsThem(string method, string path, string? watch, string? fieldSelector,
        string verb, bool resourceRequest, string ns, string group, string version, string resource, string sub, string name)
    {
        var a = AuthorizationAttributes.From(Alice, method, path, watch, fieldSelector);
        Assert.Equal((verb, resourceRequest, ns, group, version, resource, sub, name),
            (a.Verb, a.IsResourceRequest, a.Namespace, a.ApiGroup, a.ApiVersion, a.Resource, a.Subresource, a.Name));
        Assert.Equal(path, a.Path);
    }

    [Fact]
    public void AForbiddenRequestGetsUpstreamsMessageWithTheReasonAfterIt()
    {
        var named = ApiException.Forbidden(AuthorizationAttributes.From(Alice, "GET", "/apis/apps/v1/namespaces/prod/deployments/api/scale"), "");
        Assert.Equal((403, "Forbidden"), (named.Code, named.Reason));
        Assert.Equal("deployments.apps \"api\" is forbidden: User \"alice\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"prod\"", named.Message);
        Assert.Equal(("api", "apps", "deployments"), (named.DetailName, named.DetailGroup, named.DetailKind));

        var list = ApiException.Forbidden(AuthorizationAttributes.From(Alice, "GET", "/api/v1/nodes"), "no RBAC policy matched");
        Assert.Equal("nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope: no RBAC policy matched", list.Message);

        var path = ApiException.Forbidden(AuthorizationAttributes.From(Alice, "GET", "/metrics"), "");
        Assert.Equal("forbidden: User \"alice\" cannot get path \"/metrics\"", path.Message);
    }

    [Fact]
    public void AlwaysAllowAllowsEverythingAndSaysSoInItsRules()
    {
        var authz = new AllowAllAuthorizer();
        Assert.Equal(Decision.Allow, authz.Authorize(AuthorizationAttributes.From(Alice, "DELETE", "/api/v1/nodes/n1")).Decision);
        var rules = authz.RulesFor(Alice, "default");
        Assert.False(rules.Incomplete);
        Assert.Equal(["*"], Assert.Single(rules.ResourceRules).Verbs);
        Assert.Equal(["*"], Assert.Single(rules.NonResourceRules).NonResourceUrls);
    }

    /// <summary>Allows what its predicate allows, and records every question it was asked.</summary>
    private sealed class Only(Func<AuthorizationAttributes, bool> allow) : IAuthorizer
    {
        public List<AuthorizationAttributes> Asked { get; } = [];

        public (Decision Decision, string Reason) Authorize(AuthorizationAttributes attributes)
        {
            Asked.Add(attributes);
            return allow(attributes) ? (Decision.Allow, "") : (Decision.NoOpinion, "");
        }

        public Rules RulesFor(UserInfo user, string ns) => new([], [], true);
    }

    private static HeaderDictionary Headers(params (string Name, string Value)[] headers)
    {
        var h = new HeaderDictionary();
        foreach (var (name, value) in headers) h.Append(name, value);
        return h;
    }

    [Fact]
    public void ImpersonationAsksForEachThingItTakesOnAndRunsAsTheUserNamed()
    {
        var authz = new Only(_ => true);
        var headers = Headers(("Impersonate-User", "system:serviceaccount:ci:deployer"), ("Impersonate-Group", "release"), ("Impersonate-Uid", "u-1"),
            ("Impersonate-Extra-Scopes", "read"), ("Accept", "application/json"));
        var user = Impersonation.Apply(Alice, headers, authz);
        Assert.Equal(("system:serviceaccount:ci:deployer", "u-1"), (user.Name, user.Uid));
        // Groups named replace a service account's own groups; system:authenticated is always added.
        Assert.Equal(["release", "system:authenticated"], user.Groups);
        Assert.Equal(["read"], user.Extra!["scopes"]);
        Assert.Equal([("impersonate", "", "serviceaccounts", "ci", "deployer", ""), ("impersonate", "", "groups", "", "release", ""),
                      ("impersonate", "authentication.k8s.io", "userextras", "", "read", "scopes"), ("impersonate", "authentication.k8s.io", "uids", "", "u-1", "")],
            authz.Asked.Select(a => (a.Verb, a.ApiGroup, a.Resource, a.Namespace, a.Name, a.Subresource)));
        Assert.All(authz.Asked, a => Assert.Same(Alice, a.User));
        // The headers are consumed; the others stay.
        Assert.Equal(["Accept"], headers.Keys);
        // Without impersonation headers the caller is itself, and nothing is asked.
        Assert.Same(Alice, Impersonation.Apply(Alice, Headers(("Accept", "*/*")), authz));
    }

    [Fact]
    public void ImpersonationNotAllowedIsUpstreamsForbiddenAndGroupsWithoutAUserAreRefused()
    {
        var authz = new Only(a => a.Resource != "users");
        var e = Assert.Throws<ApiException>(() => Impersonation.Apply(Alice, Headers(("Impersonate-User", "root")), authz));
        Assert.Equal(403, e.Code);
        Assert.Equal("users \"root\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope", e.Message);
        var noUser = Assert.Throws<ApiException>(() => Impersonation.Apply(Alice, Headers(("Impersonate-Group", "system:masters")), authz));
        Assert.Equal(500, noUser.Code);
        var anonymous = Impersonation.Apply(Alice, Headers(("Impersonate-User", "system:anonymous")), new Only(_ => true));
        Assert.Equal(["system:unauthenticated"], anonymous.Groups);
    }
}
