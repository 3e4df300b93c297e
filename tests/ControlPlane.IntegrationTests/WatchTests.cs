using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>List and watch semantics clients rely on, through raw HTTP against the real etcd.</summary>
[Collection(ClusterCollection.Name)]
public sealed class WatchTests(ClusterFixture cluster)
{
    [Fact]
    public async Task AWatcherReconnectingMidwayMissesNoneOfAThousandWritesAndSeesNoneTwice()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("seq");
        string rv0 = (await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/seq/configmaps")).Rv();
        var written = new List<string>();
        var writer = Task.Run(async () =>
        {
            for (int i = 0; i < 1000; i++)
            {
                var o = i < 100
                    ? await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/seq/configmaps", Http.ConfigMap("seq", $"c{i}"))
                    : await http.OkAsync(HttpMethod.Patch, $"/api/v1/namespaces/seq/configmaps/c{i % 100}", "{\"data\":{\"k\":\"" + i + "\"}}", "application/merge-patch+json");
                lock (written) written.Add(o.Rv());
            }
        });
        var seen = new List<(string Type, string Rv)>();
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            await foreach (var e in http.WatchAsync($"/api/v1/namespaces/seq/configmaps?watch=true&resourceVersion={rv0}", cts.Token))
            {
                seen.Add((e["type"]!.GetValue<string>(), e["object"]!.Rv()));
                if (seen.Count == 400) break; // disconnect midway
            }
        string resumeFrom = seen[^1].Rv;
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            await foreach (var e in http.WatchAsync($"/api/v1/namespaces/seq/configmaps?watch=true&resourceVersion={resumeFrom}", cts.Token))
            {
                seen.Add((e["type"]!.GetValue<string>(), e["object"]!.Rv()));
                if (seen.Count == 1000) break;
            }
        await writer;
        Assert.Equal(written, seen.Select(s => s.Rv));
        Assert.Equal(100, seen.Count(s => s.Type == "ADDED"));
        Assert.Equal(900, seen.Count(s => s.Type == "MODIFIED"));
    }

    [Fact]
    public async Task ACompactedOrEvictedRevisionIs410Expired()
    {
        cluster.RequireReady();
        await using var small = await cluster.StartApiAsync("--watch-cache-size", "16");
        var http = small.Http;
        await http.EnsureNamespaceAsync("compact");
        string first = (await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/compact/configmaps", Http.ConfigMap("compact", "c"))).Rv();
        string last = first;
        for (int i = 0; i < 40; i++)
            last = (await http.OkAsync(HttpMethod.Patch, "/api/v1/namespaces/compact/configmaps/c", "{\"data\":{\"k\":\"" + i + "\"}}", "application/merge-patch+json")).Rv();
        await cluster.CompactEtcdAsync(long.Parse(last));

        var (code, body) = await http.SendAsync(HttpMethod.Get, $"/api/v1/namespaces/compact/configmaps?resourceVersion={first}&resourceVersionMatch=Exact");
        Assert.Equal(HttpStatusCode.Gone, code);
        Assert.Equal("Expired", body!["reason"]!.GetValue<string>());

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        JsonNode? error = null;
        await foreach (var e in http.WatchAsync($"/api/v1/namespaces/compact/configmaps?watch=true&resourceVersion={first}", cts.Token)) { error = e; break; }
        Assert.Equal("ERROR", error!["type"]!.GetValue<string>());
        Assert.Equal(410, error["object"]!["code"]!.GetValue<int>());
        Assert.Equal("Expired", error["object"]!["reason"]!.GetValue<string>());

        // Paging through a list whose snapshot was compacted away: 410 too.
        for (int i = 0; i < 3; i++) await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/compact/configmaps", Http.ConfigMap("compact", $"p{i}"));
        var page = await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/compact/configmaps?limit=1");
        string cont = page["metadata"]!["continue"]!.GetValue<string>();
        Assert.Equal(3, page["metadata"]!["remainingItemCount"]!.GetValue<int>());
        await http.OkAsync(HttpMethod.Patch, "/api/v1/namespaces/compact/configmaps/c", """{"data":{"k":"x"}}""", "application/merge-patch+json");
        await cluster.CompactEtcdAsync(long.Parse((await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/compact/configmaps/c")).Rv()));
        Assert.Equal(HttpStatusCode.Gone, (await http.SendAsync(HttpMethod.Get, $"/api/v1/namespaces/compact/configmaps?limit=1&continue={Uri.EscapeDataString(cont)}")).Code);
    }

    [Fact]
    public async Task PagesWithLimitAndContinueAddUpToTheWholeListAtOneRevision()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("pages");
        for (int i = 0; i < 7; i++) await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/pages/configmaps", Http.ConfigMap("pages", $"p{i}", i % 2 == 0 ? "even" : "odd"));
        var names = new List<string>();
        string? cont = null;
        string? rv = null;
        do
        {
            var page = await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/pages/configmaps?limit=3" + (cont is null ? "" : "&continue=" + Uri.EscapeDataString(cont)));
            rv ??= page.Rv();
            Assert.Equal(rv, page.Rv());
            names.AddRange(page["items"]!.AsArray().Select(i => i!["metadata"]!["name"]!.GetValue<string>()));
            cont = page["metadata"]!["continue"]?.GetValue<string>();
            if (cont is null) break;
            // A write between pages does not show up: the pages read one snapshot.
            await http.SendAsync(HttpMethod.Post, "/api/v1/namespaces/pages/configmaps", Http.ConfigMap("pages", "p9-late"));
        } while (true);
        Assert.Equal(["p0", "p1", "p2", "p3", "p4", "p5", "p6"], names);
        var sel = await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/pages/configmaps?fieldSelector=metadata.name%3Dp3");
        Assert.Single(sel["items"]!.AsArray());
    }

    [Fact]
    public async Task AListOrWatchLongerThanTheServersEtcdPageHasEveryItemOnceAtOneRevision()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("long-list");
        // Over two of the server's 500-key etcd pages, with a selector that keeps half of them.
        const int n = 1234;
        await Parallel.ForEachAsync(Enumerable.Range(0, n), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
            await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/long-list/configmaps",
                new JsonObject
                {
                    ["apiVersion"] = "v1", ["kind"] = "ConfigMap",
                    ["metadata"] = new JsonObject { ["name"] = $"c{i:D5}", ["labels"] = new JsonObject { ["odd"] = (i % 2).ToString(CultureInfo.InvariantCulture) } },
                }.ToJsonString()));
        var list = await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/long-list/configmaps?labelSelector=odd");
        var names = list["items"]!.AsArray().Select(x => x!["metadata"]!["name"]!.GetValue<string>()).ToList();
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"c{i:D5}"), names);
        Assert.All(list["items"]!.AsArray(), x => Assert.False(string.IsNullOrEmpty(x!.Rv())));
        var odd = await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/long-list/configmaps?labelSelector=odd%3D1");
        Assert.Equal(n / 2, odd["items"]!.AsArray().Count);
        // A write after the list is not in a list at the list's revision.
        await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/long-list/configmaps", Http.ConfigMap("long-list", "z-later"));
        var then = await http.OkAsync(HttpMethod.Get, $"/api/v1/namespaces/long-list/configmaps?labelSelector=odd&resourceVersion={list.Rv()}&resourceVersionMatch=Exact");
        Assert.Equal(list.Rv(), then.Rv());
        Assert.Equal(n, then["items"]!.AsArray().Count);

        // A watch from "now" starts with the same state as ADDED events (read in pages too), the
        // initial-events-end bookmark, then the changes after it.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var added = new List<string>();
        string? endRv = null;
        await foreach (var e in http.WatchAsync("/api/v1/namespaces/long-list/configmaps?watch=true&labelSelector=odd%3D1&sendInitialEvents=true"
                                                + "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", cts.Token))
        {
            string type = e["type"]!.GetValue<string>();
            if (type == "BOOKMARK")
            {
                if (e["object"]!["metadata"]!["annotations"]?["k8s.io/initial-events-end"]?.GetValue<string>() != "true") continue;
                endRv = e["object"]!.Rv();
                await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/long-list/configmaps",
                    """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"z-watched","labels":{"odd":"1"}}}""");
                continue;
            }
            Assert.Equal("ADDED", type);
            added.Add(e["object"]!["metadata"]!["name"]!.GetValue<string>());
            if (added[^1] == "z-watched") break;
        }
        Assert.NotNull(endRv);
        Assert.True(long.Parse(endRv!, CultureInfo.InvariantCulture) >= long.Parse(then.Rv(), CultureInfo.InvariantCulture));
        Assert.Equal(Enumerable.Range(0, n).Where(i => i % 2 == 1).Select(i => $"c{i:D5}").Append("z-watched"), added);
        await http.SendAsync(HttpMethod.Delete, "/api/v1/namespaces/long-list");
    }

    [Fact]
    public async Task BookmarksArriveWhenAskedFor()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("bookmarks");
        string rv = (await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/bookmarks/configmaps")).Rv();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        JsonNode? bookmark = null;
        await foreach (var e in http.WatchAsync($"/api/v1/namespaces/bookmarks/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion={rv}", cts.Token))
            if (e["type"]!.GetValue<string>() == "BOOKMARK") { bookmark = e; break; }
        Assert.NotNull(bookmark);
        Assert.True(long.Parse(bookmark!["object"]!.Rv()) >= long.Parse(rv));
        Assert.Equal("ConfigMap", bookmark["object"]!["kind"]!.GetValue<string>());
    }

    [Fact]
    public async Task AWriteThroughOneProcessIsSeenByAWatchOnAnother()
    {
        cluster.RequireReady();
        await using var second = await cluster.StartApiAsync();
        await cluster.Http.EnsureNamespaceAsync("two");
        string rv = (await second.Http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/two/configmaps")).Rv();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var watch = Task.Run(async () =>
        {
            await foreach (var e in second.Http.WatchAsync($"/api/v1/namespaces/two/configmaps?watch=true&resourceVersion={rv}", cts.Token))
                if (e["object"]!["metadata"]!["name"]!.GetValue<string>() == "from-first") return e;
            return null;
        });
        await Task.Delay(300);
        var created = await cluster.Http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/two/configmaps", Http.ConfigMap("two", "from-first"));
        var seen = await watch;
        Assert.NotNull(seen);
        Assert.Equal("ADDED", seen!["type"]!.GetValue<string>());
        Assert.Equal(created.Rv(), seen["object"]!.Rv());
        Assert.Equal(created.Rv(), (await second.Http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/two/configmaps/from-first")).Rv());
    }
}

/// <summary>A watcher that stops reading is cut off; the others keep their events.</summary>
[Collection(ClusterCollection.Name)]
public sealed class SlowWatcherTests(ClusterFixture cluster)
{
    [Fact]
    public async Task ASlowWatcherIsCutOffWithoutStallingAFastOne()
    {
        cluster.RequireReady();
        await using var api = await cluster.StartApiAsync("--watcher-queue", "8");
        var http = api.Http;
        await http.EnsureNamespaceAsync("slow");
        await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/slow/configmaps", Http.ConfigMap("slow", "big"));
        string rv = (await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/slow/configmaps")).Rv();
        // The slow one: headers read, body never read while the writes happen.
        using var slowHandler = new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } };
        using var slowClient = new HttpClient(slowHandler) { BaseAddress = http.BaseAddress };
        slowClient.DefaultRequestHeaders.Authorization = http.DefaultRequestHeaders.Authorization;
        using var slow = await slowClient.GetAsync($"/api/v1/namespaces/slow/configmaps?watch=true&resourceVersion={rv}", HttpCompletionOption.ResponseHeadersRead);
        int fast = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var fastTask = Task.Run(async () =>
        {
            await foreach (var _ in http.WatchAsync($"/api/v1/namespaces/slow/configmaps?watch=true&resourceVersion={rv}", cts.Token))
                if (++fast == 200) break;
        });
        string payload = new('x', 256 * 1024);
        for (int i = 0; i < 200; i++)
            await http.OkAsync(HttpMethod.Patch, "/api/v1/namespaces/slow/configmaps/big", "{\"data\":{\"k\":\"" + i + payload + "\"}}", "application/merge-patch+json");
        await fastTask;
        Assert.Equal(200, fast);
        // The slow watcher's stream was ended by the server: reading it now reaches the end early.
        int slowEvents = 0;
        using var reader = new StreamReader(await slow.Content.ReadAsStreamAsync());
        using var readCts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (await reader.ReadLineAsync(readCts.Token) is { } line) if (line.Length > 0) slowEvents++;
        Assert.InRange(slowEvents, 0, 199);
        Assert.Contains("slow watcher", api.Log);
    }
}
