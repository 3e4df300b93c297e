using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>The DaemonSet controller alone on its own etcd keeps a ControllerRevision per template, which kubectl rollout history/undo ds use.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DaemonSetHistoryTests(ClusterFixture cluster)
{
    private static async Task<List<(string Name, long Revision, string Image)>> RevisionsAsync(HttpClient http)
    {
        var list = await http.OkAsync(HttpMethod.Get, "/apis/apps/v1/namespaces/hist/controllerrevisions");
        return [.. list["items"]!.AsArray().Select(r => (r!["metadata"]!["name"]!.GetValue<string>(), r["revision"]!.GetValue<long>(),
            r["data"]!["spec"]!["template"]!["spec"]!["containers"]![0]!["image"]!.GetValue<string>())).OrderBy(r => r.Item2)];
    }

    [Fact]
    public async Task EachTemplateIsARevisionThatKubectlRolloutHistoryShowsAndUndoRestores()
    {
        cluster.RequireReady();
        await using var solo = await cluster.StartIsolatedAsync("dshistory", "--controllers", "daemonset");
        var api = solo.Api;
        var http = api.Http;
        string kubeconfig = Path.Combine(cluster.Work, "dshistory.kubeconfig");
        File.WriteAllText(kubeconfig, File.ReadAllText(cluster.Kubeconfig).Replace($"https://127.0.0.1:{cluster.Api.Port}", $"https://127.0.0.1:{api.Port}"));
        var env = new Dictionary<string, string> { ["KUBECONFIG"] = kubeconfig };
        async Task<string> Kubectl(params string[] args)
        {
            var (code, o, e) = await cluster.KubectlAsync(args, env: env);
            Assert.True(code == 0, $"kubectl {string.Join(' ', args)} exited {code}\nstdout: {o}\nstderr: {e}\napi log:\n{api.Log}");
            return o;
        }

        await http.EnsureNamespaceAsync("hist");
        await http.OkAsync(HttpMethod.Post, "/apis/apps/v1/namespaces/hist/daemonsets", """
            {"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"agentd","namespace":"hist"},
             "spec":{"selector":{"matchLabels":{"app":"agentd"}},
                     "template":{"metadata":{"labels":{"app":"agentd"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}
            """);
        List<(string Name, long Revision, string Image)> revs = [];
        await ClusterFixture.WaitForAsync("revision 1", async () => (revs = await RevisionsAsync(http)).Count == 1, TimeSpan.FromSeconds(20));
        Assert.Equal((1L, "busybox:1.36"), (revs[0].Revision, revs[0].Image));
        Assert.StartsWith("agentd-", revs[0].Name, StringComparison.Ordinal);

        await Kubectl("set", "image", "daemonset/agentd", "c=busybox:1.37", "-n", "hist");
        await ClusterFixture.WaitForAsync("revision 2", async () => (revs = await RevisionsAsync(http)).Count == 2, TimeSpan.FromSeconds(20));
        Assert.Equal([(1L, "busybox:1.36"), (2L, "busybox:1.37")], revs.Select(r => (r.Revision, r.Image)));

        string history = await Kubectl("rollout", "history", "daemonset/agentd", "-n", "hist");
        Assert.Matches(@"(?m)^1\s", history);
        Assert.Matches(@"(?m)^2\s", history);
        Assert.Contains("busybox:1.36", await Kubectl("rollout", "history", "daemonset/agentd", "-n", "hist", "--revision=1"));
        string table = await Kubectl("get", "controllerrevisions", "-n", "hist");
        Assert.Matches(@"(?m)^agentd-\S+\s+daemonset\.apps/agentd\s+2\s", table);

        // Undo to revision 1: the template comes back, and its revision becomes the newest (3).
        await Kubectl("rollout", "undo", "daemonset/agentd", "-n", "hist", "--to-revision=1");
        var ds = await http.OkAsync(HttpMethod.Get, "/apis/apps/v1/namespaces/hist/daemonsets/agentd");
        Assert.Equal("busybox:1.36", ds["spec"]!["template"]!["spec"]!["containers"]![0]!["image"]!.GetValue<string>());
        await ClusterFixture.WaitForAsync("the restored template is revision 3", async () =>
            (revs = await RevisionsAsync(http)).Count == 2 && revs[^1] is { Revision: 3, Image: "busybox:1.36" }, TimeSpan.FromSeconds(20));
    }
}
