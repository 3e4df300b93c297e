using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>
/// authorization.k8s.io access reviews and impersonation, driven by kubectl 1.32 (which sends the
/// reviews as protobuf) and by raw requests for what kubectl will not send.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class AccessReviewTests(ClusterFixture cluster)
{
    private const string Reviews = "/apis/authorization.k8s.io/v1/";

    [Fact]
    public async Task KubectlAuthCanIIsAnsweredByTheAuthorizerForTheCallerOrWhoeverItImpersonates()
    {
        cluster.RequireReady();
        Assert.Equal("yes", (await cluster.Kubectl("auth", "can-i", "create", "pods")).Trim());
        Assert.Equal("yes", (await cluster.Kubectl("auth", "can-i", "delete", "nodes", "--all-namespaces")).Trim());
        Assert.Equal("yes", (await cluster.Kubectl("auth", "can-i", "get", "/healthz")).Trim());
        Assert.Equal("yes", (await cluster.Kubectl("auth", "can-i", "update", "deployments.apps/scale", "-n", "kube-system", "--as=bob")).Trim());
        var list = await cluster.Kubectl("auth", "can-i", "--list", "-n", "default");
        Assert.Contains("*.*", list);
        Assert.Contains("[*]", list);
        Assert.Contains("authorization.k8s.io/v1", await cluster.Kubectl("api-versions"));

        // Impersonation: the request runs as the user named, in the groups named (or a service
        // account's own), plus system:authenticated.
        var bob = JsonNode.Parse(await cluster.Kubectl("auth", "whoami", "--as=bob", "--as-group=devs", "--as-uid=42", "-o", "json"))!["status"]!["userInfo"]!;
        Assert.Equal("bob", bob["username"]!.GetValue<string>());
        Assert.Equal("42", bob["uid"]!.GetValue<string>());
        Assert.Equal(["devs", "system:authenticated"], bob["groups"]!.AsArray().Select(g => g!.GetValue<string>()));
        var sa = JsonNode.Parse(await cluster.Kubectl("auth", "whoami", "--as=system:serviceaccount:kube-system:bot", "-o", "json"))!["status"]!["userInfo"]!;
        Assert.Equal(["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"], sa["groups"]!.AsArray().Select(g => g!.GetValue<string>()));

        var extra = await Send(HttpMethod.Post, "/apis/authentication.k8s.io/v1/selfsubjectreviews", """{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}""",
            ("Impersonate-User", "carol"), ("Impersonate-Extra-Scopes", "read"), ("Impersonate-Extra-Reason%2Fticket", "T-1"));
        Assert.Equal(HttpStatusCode.Created, extra.Code);
        Assert.Equal(["read"], extra.Body!["status"]!["userInfo"]!["extra"]!["scopes"]!.AsArray().Select(v => v!.GetValue<string>()));
        // Header names are case-insensitive and escape what a header name cannot hold: the key is unescaped and lower-cased.
        Assert.Equal(["T-1"], extra.Body!["status"]!["userInfo"]!["extra"]!["reason/ticket"]!.AsArray().Select(v => v!.GetValue<string>()));
        // Groups without a user: upstream answers 500, and nothing runs.
        var groupOnly = await Send(HttpMethod.Get, "/api/v1/namespaces", null, ("Impersonate-Group", "devs"));
        Assert.Equal(HttpStatusCode.InternalServerError, groupOnly.Code);
        Assert.Contains("without impersonating a user", groupOnly.Body!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task ReviewsAnswerWithTheSpecTheyWereAskedAboutAndRefuseMalformedOnes()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        var sar = await http.OkAsync(HttpMethod.Post, Reviews + "subjectaccessreviews", """
            {"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview",
             "spec":{"user":"dave","groups":["ops"],"resourceAttributes":{"namespace":"prod","verb":"delete","group":"apps","resource":"deployments","name":"api"}}}
            """);
        Assert.True(sar["status"]!["allowed"]!.GetValue<bool>());
        Assert.Equal("dave", sar["spec"]!["user"]!.GetValue<string>());
        Assert.Equal("deployments", sar["spec"]!["resourceAttributes"]!["resource"]!.GetValue<string>());
        var local = await http.OkAsync(HttpMethod.Post, "/apis/authorization.k8s.io/v1/namespaces/prod/localsubjectaccessreviews", """
            {"apiVersion":"authorization.k8s.io/v1","kind":"LocalSubjectAccessReview","spec":{"user":"dave","resourceAttributes":{"namespace":"prod","verb":"get","resource":"pods"}}}
            """);
        Assert.Equal("prod", local["metadata"]!["namespace"]!.GetValue<string>());
        Assert.True(local["status"]!["allowed"]!.GetValue<bool>());
        var nonResource = await http.OkAsync(HttpMethod.Post, Reviews + "selfsubjectaccessreviews", """
            {"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"nonResourceAttributes":{"path":"/metrics","verb":"get"}}}
            """);
        Assert.True(nonResource["status"]!["allowed"]!.GetValue<bool>());

        var cases = new (string Path, string Body, HttpStatusCode Code, string Message)[]
        {
            (Reviews + "selfsubjectaccessreviews", """{"spec":{}}""", (HttpStatusCode)422,
                "spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified"),
            (Reviews + "selfsubjectaccessreviews", """{"spec":{"resourceAttributes":{"verb":"get"},"nonResourceAttributes":{"path":"/x","verb":"get"}}}""", (HttpStatusCode)422,
                "cannot be specified in combination with resourceAttributes"),
            (Reviews + "subjectaccessreviews", """{"spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}""", (HttpStatusCode)422,
                "spec.user: Invalid value: \"\": at least one of user or group must be specified"),
            ("/apis/authorization.k8s.io/v1/namespaces/prod/localsubjectaccessreviews", """{"spec":{"user":"u","resourceAttributes":{"namespace":"dev","verb":"get","resource":"pods"}}}""",
                (HttpStatusCode)422, "spec.resourceAttributes.namespace: Invalid value: \"dev\": must match metadata.namespace"),
            (Reviews + "selfsubjectaccessreviews", """{"metadata":{"name":"x"},"spec":{"resourceAttributes":{"verb":"get"}}}""", (HttpStatusCode)422, "metadata: Invalid value"),
            (Reviews + "selfsubjectaccessreviews", """{"kind":"SubjectAccessReview","spec":{}}""", HttpStatusCode.BadRequest, "does not match the expected kind (SelfSubjectAccessReview)"),
            (Reviews + "selfsubjectaccessreviews", """{"spec":{"resourceAttributes":{"verb":7}}}""", HttpStatusCode.BadRequest, "spec.resourceAttributes.verb"),
            (Reviews + "selfsubjectaccessreviews", """{"spec":""", HttpStatusCode.BadRequest, "json parse error"),
            (Reviews + "selfsubjectrulesreviews", """{"spec":{}}""", HttpStatusCode.BadRequest, "no namespace on request"),
            (Reviews + "tokenreviews", "{}", HttpStatusCode.NotFound, "the server could not find the requested resource"),
        };
        foreach (var (path, body, code, message) in cases)
        {
            var (got, status) = await http.SendAsync(HttpMethod.Post, path, body);
            Assert.True(got == code, $"{path} {body}: {(int)got} {status?.ToJsonString()}");
            Assert.Equal("Status", status!["kind"]!.GetValue<string>());
            Assert.Contains(message, status["message"]!.GetValue<string>());
        }
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await http.SendAsync(HttpMethod.Get, Reviews + "selfsubjectaccessreviews")).Code);
        // The server serves on.
        Assert.Equal("yes", (await cluster.Kubectl("auth", "can-i", "list", "pods")).Trim());
    }

    private async Task<(HttpStatusCode Code, JsonNode? Body)> Send(HttpMethod method, string path, string? body, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        using var response = await cluster.Http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null);
    }
}
