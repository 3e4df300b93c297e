using System.Globalization;
using System.Text.RegularExpressions;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>
/// The controller manager reads each resource through one watch however many controllers use it
/// (six read pods), as upstream's shared informers do; seen from the API server's
/// apiserver_longrunning_requests gauge, which also counts a client's own watch while it lasts.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed partial class SharedInformerTests(ClusterFixture cluster)
{
    [GeneratedRegex("""^apiserver_longrunning_requests\{component="apiserver",group="([^"]*)",resource="([^"]*)",scope="([^"]*)",subresource="",verb="WATCH",version="[^"]*"\} (\d+)$""", RegexOptions.Multiline)]
    private static partial Regex WatchGauge();

    private static async Task<Dictionary<string, long>> WatchesAsync(HttpClient http)
    {
        string text = await http.GetStringAsync("/metrics");
        var gauges = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (Match m in WatchGauge().Matches(text))
            gauges[$"{m.Groups[2].Value}.{m.Groups[1].Value}/{m.Groups[3].Value}"] = long.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture);
        return gauges;
    }

    [Fact]
    public async Task EveryControllerSharesOneWatchPerResource()
    {
        cluster.RequireReady();
        // Every controller, no scheduler (it is a client of its own, as upstream's is).
        await using var solo = await cluster.StartIsolatedAsync("shared", "--controllers", "*,-scheduler");
        var http = solo.Http;
        Dictionary<string, long> watches = [];
        await ClusterFixture.WaitForAsync("the controllers watching", async () =>
        {
            watches = await WatchesAsync(http);
            return watches.GetValueOrDefault("pods./cluster") > 0 && watches.GetValueOrDefault("replicasets.apps/cluster") > 0;
        }, TimeSpan.FromSeconds(30));
        await Task.Delay(1000);
        watches = await WatchesAsync(http);
        string all = string.Join(", ", watches.Select(kv => $"{kv.Key}={kv.Value}"));
        // Pods: replicaset, daemonset, endpointslice, nodelifecycle, podgc and the garbage collector.
        Assert.True(watches.GetValueOrDefault("pods./cluster") == 1, "one watch of pods: " + all + "\n" + solo.Api.Log);
        // Nodes: daemonset, nodelifecycle, podgc, garbage collector.
        Assert.True(watches.GetValueOrDefault("nodes./cluster") == 1, "one watch of nodes: " + all);
        Assert.True(watches.GetValueOrDefault("replicasets.apps/cluster") == 1, "one watch of replicasets: " + all);
        // Two watches of a resource only where the selectors differ (all configmaps; kube-root-ca.crt alone).
        Assert.All(watches, kv => Assert.True(kv.Value <= 2, $"{kv.Key}: {kv.Value} watches ({all})"));

        // A client's own watch counts while it lasts.
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            var events = http.WatchAsync("/api/v1/pods?watch=true", cts.Token).GetAsyncEnumerator(cts.Token);
            var first = events.MoveNextAsync().AsTask();
            await ClusterFixture.WaitForAsync("the test's watch counted", async () => (await WatchesAsync(http)).GetValueOrDefault("pods./cluster") == 2, TimeSpan.FromSeconds(10));
            await cts.CancelAsync();
            try { await first; } catch (OperationCanceledException) { }
            await events.DisposeAsync();
        }
        await ClusterFixture.WaitForAsync("the test's watch no longer counted", async () => (await WatchesAsync(http)).GetValueOrDefault("pods./cluster") == 1, TimeSpan.FromSeconds(10));
    }
}
