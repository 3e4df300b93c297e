using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>The pod garbage collector alone on its own etcd (no scheduler, no kubelet): orphans of a deleted node, and terminated pods beyond the threshold.</summary>
[Collection(ClusterCollection.Name)]
public sealed class PodGcTests(ClusterFixture cluster)
{
    private static string Pod(string name, string? node = null) => new JsonObject
    {
        ["apiVersion"] = "v1", ["kind"] = "Pod",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "gc" },
        ["spec"] = new JsonObject
        {
            ["nodeName"] = node,
            ["containers"] = new JsonArray((JsonNode)new JsonObject { ["name"] = "c", ["image"] = "busybox:1.36" }),
        },
    }.ToJsonString();

    private static async Task<bool> ExistsAsync(HttpClient http, string name) =>
        (await http.SendAsync(HttpMethod.Get, $"/api/v1/namespaces/gc/pods/{name}")).Code == HttpStatusCode.OK;

    [Fact]
    public async Task PodsOfADeletedNodeGoAfterTheQuarantineAndTheOldestTerminatedPodsBeyondTheThreshold()
    {
        cluster.RequireReady();
        await using var solo = await cluster.StartIsolatedAsync("podgc", "--controllers", "podgc", "--terminated-pod-gc-threshold", "2");
        var api = solo.Api;
        var http = api.Http;
        await http.EnsureNamespaceAsync("gc");

        // Four pods finish, a second apart: the two oldest go, the two newest stay.
        for (int i = 0; i < 4; i++)
        {
            await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/gc/pods", Pod($"done-{i}"));
            await http.OkAsync(HttpMethod.Patch, $"/api/v1/namespaces/gc/pods/done-{i}/status", """{"status":{"phase":"Succeeded"}}""", "application/merge-patch+json");
            await Task.Delay(1100);
        }
        await ClusterFixture.WaitForAsync("the two oldest terminated pods deleted", async () => !await ExistsAsync(http, "done-0") && !await ExistsAsync(http, "done-1"), TimeSpan.FromSeconds(20));
        await Task.Delay(2000);
        Assert.True(await ExistsAsync(http, "done-2") && await ExistsAsync(http, "done-3"), "the two newest terminated pods must stay:\n" + api.Log);

        // A pod bound to a node: nothing happens while the node exists.
        await http.OkAsync(HttpMethod.Post, "/api/v1/nodes", """{"apiVersion":"v1","kind":"Node","metadata":{"name":"ghost"}}""");
        await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/gc/pods", Pod("orphan", "ghost"));
        using var watching = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var events = new List<JsonNode>();
        var watch = Task.Run(async () =>
        {
            await foreach (var e in http.WatchAsync("/api/v1/namespaces/gc/pods?watch=true&fieldSelector=metadata.name%3Dorphan", watching.Token))
            {
                lock (events) events.Add(e);
                if (e["type"]?.GetValue<string>() == "DELETED") return;
            }
        });
        await Task.Delay(3000);
        Assert.True(await ExistsAsync(http, "orphan"));

        // The node goes: after the 40 s quarantine the pod is marked Failed (DisruptionTarget,
        // DeletionByPodGC) and deleted at once.
        await http.OkAsync(HttpMethod.Delete, "/api/v1/nodes/ghost");
        var clock = Stopwatch.StartNew();
        await ClusterFixture.WaitForAsync("the orphan deleted", async () => !await ExistsAsync(http, "orphan"), TimeSpan.FromSeconds(75));
        Assert.InRange(clock.Elapsed.TotalSeconds, 35, 70);
        await watch.WaitAsync(TimeSpan.FromSeconds(10));
        JsonNode[] seen;
        lock (events) seen = [.. events];
        Assert.Contains(seen, e => e["type"]!.GetValue<string>() == "MODIFIED" && e["object"]!["status"]!["phase"]?.GetValue<string>() == "Failed"
            && e["object"]!["status"]!["conditions"]!.AsArray().Any(c => c!["type"]!.GetValue<string>() == "DisruptionTarget" && c["reason"]!.GetValue<string>() == "DeletionByPodGC"));
        Assert.Equal("DELETED", seen[^1]["type"]!.GetValue<string>());
        Assert.Contains("deleting orphaned pod gc/orphan: its node ghost no longer exists", api.Log);
    }
}
