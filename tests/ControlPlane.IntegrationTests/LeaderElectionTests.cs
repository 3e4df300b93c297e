using System.Diagnostics;
using System.Net;
using System.Text;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>Two control-plane processes on one etcd: one leads (runs the scheduler and controllers), the other takes over when it dies.</summary>
[Collection(ClusterCollection.Name)]
public sealed class LeaderElectionTests(ClusterFixture cluster)
{
    private const string Lease = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager";

    private static async Task<string> HolderAsync(HttpClient http)
    {
        var (code, body) = await http.SendAsync(HttpMethod.Get, Lease);
        return code == HttpStatusCode.OK ? body!["spec"]?["holderIdentity"]?.GetValue<string>() ?? "" : "";
    }

    private static Task ServiceAccountAppearsAsync(HttpClient http, string ns) =>
        ClusterFixture.WaitForAsync($"serviceaccount {ns}/default", async () =>
            (await http.SendAsync(HttpMethod.Get, $"/api/v1/namespaces/{ns}/serviceaccounts/default")).Code == HttpStatusCode.OK, TimeSpan.FromSeconds(15));

    [Fact]
    public async Task OnlyOneProcessLeadsAndTheOtherTakesOverWithin15SecondsWhenItDies()
    {
        cluster.RequireReady();
        int port = ClusterFixture.FreePort(), peer = ClusterFixture.FreePort();
        var etcd = await cluster.StartEtcdAsync("election", port, peer, new StringBuilder());
        try
        {
            string[] args = ["--etcd-servers", $"http://127.0.0.1:{port}", "--controllers", "*"];
            var one = await cluster.StartApiAsync(args);
            await using var two = await cluster.StartApiAsync(args);
            string holder = "";
            await ClusterFixture.WaitForAsync("a leader", async () => (holder = await HolderAsync(one.Http)).Length > 0, TimeSpan.FromSeconds(20));
            await Task.Delay(TimeSpan.FromSeconds(3)); // a few renewals: a second leader would show by now

            string Line(string id) => $"became leader of kube-controller-manager as {id}";
            var (leader, follower) = one.Log.Contains(Line(holder)) ? (one, two) : (two, one);
            Assert.Contains(Line(holder), leader.Log);
            Assert.DoesNotContain("became leader of kube-controller-manager", follower.Log);
            Assert.Equal(holder, await HolderAsync(follower.Http));

            // The leader's controllers work (the serviceaccount controller fills a new namespace).
            await leader.Http.EnsureNamespaceAsync("elected-one");
            await ServiceAccountAppearsAsync(leader.Http, "elected-one");

            // The leader dies without a word; the follower takes the lease within 15 s and its controllers run.
            var clock = Stopwatch.StartNew();
            await leader.DisposeAsync();
            string next = "";
            await ClusterFixture.WaitForAsync("a new leader", async () => (next = await HolderAsync(follower.Http)) is { Length: > 0 } h && h != holder,
                TimeSpan.FromSeconds(30));
            var failover = clock.Elapsed;
            Assert.True(failover < TimeSpan.FromSeconds(15), $"failover took {failover.TotalSeconds:F1} s");
            // The lease is written before the process logs it, and its output reaches the test through a pipe.
            await ClusterFixture.WaitForAsync("the new leader's log line", () => Task.FromResult(follower.Log.Contains(Line(next), StringComparison.Ordinal)), TimeSpan.FromSeconds(5));
            await follower.Http.EnsureNamespaceAsync("elected-two");
            await ServiceAccountAppearsAsync(follower.Http, "elected-two");
            Assert.Contains("\"leaseTransitions\":1", (await follower.Http.OkAsync(HttpMethod.Get, Lease)).ToJsonString());
            await one.DisposeAsync();
        }
        finally
        {
            etcd.Kill(entireProcessTree: true);
            await etcd.WaitForExitAsync();
        }
    }
}
