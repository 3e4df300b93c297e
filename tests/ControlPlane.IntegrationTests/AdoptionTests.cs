using System.Net;
using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>The Deployment controller alone on its own etcd: it adopts an orphan ReplicaSet it selects, and releases one it stops selecting.</summary>
[Collection(ClusterCollection.Name)]
public sealed class AdoptionTests(ClusterFixture cluster)
{
    private static string ReplicaSet(string name, string app) => """
        {"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"NAME","namespace":"adopt","labels":{"app":"APP"}},
         "spec":{"replicas":0,"selector":{"matchLabels":{"app":"APP"}},
                 "template":{"metadata":{"labels":{"app":"APP"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}
        """.Replace("NAME", name).Replace("APP", app);

    private static async Task<JsonObject?> ControllerOfAsync(HttpClient http, string rs)
    {
        var (code, body) = await http.SendAsync(HttpMethod.Get, $"/apis/apps/v1/namespaces/adopt/replicasets/{rs}");
        Assert.Equal(HttpStatusCode.OK, code);
        return (body!["metadata"]!["ownerReferences"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(r => r["controller"]?.GetValue<bool>() == true);
    }

    [Fact]
    public async Task ADeploymentAdoptsTheOrphanReplicaSetItSelectsAndReleasesOneItStopsSelecting()
    {
        cluster.RequireReady();
        await using var solo = await cluster.StartIsolatedAsync("adoption", "--controllers", "deployment");
        var api = solo.Api;
        var http = api.Http;
        await http.EnsureNamespaceAsync("adopt");
        // An orphan set (left by `kubectl delete deployment --cascade=orphan`, say) and one the Deployment will not select.
        await http.OkAsync(HttpMethod.Post, "/apis/apps/v1/namespaces/adopt/replicasets", ReplicaSet("web-orphan", "web"));
        await http.OkAsync(HttpMethod.Post, "/apis/apps/v1/namespaces/adopt/replicasets", ReplicaSet("other", "other"));
        var d = await http.OkAsync(HttpMethod.Post, "/apis/apps/v1/namespaces/adopt/deployments", """
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"adopt"},
             "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
                     "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}
            """);
        string uid = d["metadata"]!["uid"]!.GetValue<string>();

        JsonObject? owner = null;
        await ClusterFixture.WaitForAsync("the orphan adopted", async () => (owner = await ControllerOfAsync(http, "web-orphan"))?["uid"]?.GetValue<string>() == uid, TimeSpan.FromSeconds(20));
        Assert.Equal(("Deployment", "web", true), (owner!["kind"]!.GetValue<string>(), owner["name"]!.GetValue<string>(), owner["blockOwnerDeletion"]!.GetValue<bool>()));
        Assert.Null(await ControllerOfAsync(http, "other"));
        Assert.Contains("deployment web adopts the orphan replica set adopt/web-orphan", api.Log);

        // The Deployment stops selecting it (its labels change): released, the Deployment makes a set of its own.
        await http.OkAsync(HttpMethod.Patch, "/apis/apps/v1/namespaces/adopt/replicasets/web-orphan",
            """{"metadata":{"labels":{"app":"retired"}}}""", "application/merge-patch+json");
        await ClusterFixture.WaitForAsync("the set released", async () => await ControllerOfAsync(http, "web-orphan") is null, TimeSpan.FromSeconds(20));
        await ClusterFixture.WaitForAsync("a new set of the Deployment's own", async () =>
        {
            var list = await http.OkAsync(HttpMethod.Get, "/apis/apps/v1/namespaces/adopt/replicasets");
            return list["items"]!.AsArray().Any(rs => rs!["metadata"]!["name"]!.GetValue<string>().StartsWith("web-", StringComparison.Ordinal)
                && rs["metadata"]!["name"]!.GetValue<string>() != "web-orphan"
                && rs["metadata"]!["ownerReferences"]?[0]?["uid"]?.GetValue<string>() == uid);
        }, TimeSpan.FromSeconds(20));
    }
}
