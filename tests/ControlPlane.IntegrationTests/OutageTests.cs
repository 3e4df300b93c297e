using System.Net;
using System.Text;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>etcd going away and coming back: the server answers 503 meanwhile and recovers by itself.</summary>
[Collection(ClusterCollection.Name)]
public sealed class OutageTests(ClusterFixture cluster)
{
    [Fact]
    public async Task WhenEtcdRestartsTheServerAnswers503MeanwhileThenRecoversAndOpenWatchesResume()
    {
        cluster.RequireReady();
        int port = ClusterFixture.FreePort(), peer = ClusterFixture.FreePort();
        var etcdLog = new StringBuilder();
        var etcd = await cluster.StartEtcdAsync("outage", port, peer, etcdLog);
        try
        {
            await using var api = await cluster.StartApiAsync("--etcd-servers", $"http://127.0.0.1:{port}");
            var http = api.Http;
            await http.EnsureNamespaceAsync("outage");
            await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/outage/configmaps", Http.ConfigMap("outage", "c"));
            string rv = (await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/outage/configmaps")).Rv();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var watch = Task.Run(async () =>
            {
                await foreach (var e in http.WatchAsync($"/api/v1/namespaces/outage/configmaps?watch=true&resourceVersion={rv}", cts.Token))
                    if (e["object"]!["data"]?["k"]?.GetValue<string>() == "after") return e;
                return null;
            });

            etcd.Kill(entireProcessTree: true);
            await etcd.WaitForExitAsync();
            var (code, body) = await http.SendAsync(HttpMethod.Get, "/api/v1/namespaces/outage/configmaps/c");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, code);
            Assert.Equal("ServiceUnavailable", body!["reason"]!.GetValue<string>());
            Assert.NotEqual(HttpStatusCode.OK, (await http.GetAsync("/readyz")).StatusCode);
            Assert.Equal("ok", await http.GetStringAsync("/livez"));

            etcd = await cluster.StartEtcdAsync("outage", port, peer, etcdLog);
            await ClusterFixture.WaitForAsync("the API serves again", async () => (await http.SendAsync(HttpMethod.Get, "/api/v1/namespaces/outage/configmaps/c")).Code == HttpStatusCode.OK, TimeSpan.FromSeconds(30));
            await http.OkAsync(HttpMethod.Patch, "/api/v1/namespaces/outage/configmaps/c", """{"data":{"k":"after"}}""", "application/merge-patch+json");
            var seen = await watch;
            Assert.NotNull(seen);
            Assert.Equal("MODIFIED", seen!["type"]!.GetValue<string>());
            Assert.False(api.Exited);
        }
        finally
        {
            if (!etcd.HasExited) { etcd.Kill(true); await etcd.WaitForExitAsync(); }
        }
    }
}
