using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using NodeAgent.Proxy;
using NodeAgent.Tests.Fakes;
using Xunit;
using static NodeAgent.Tests.ProxyFixture;

namespace NodeAgent.Tests;

/// <summary>
/// The service proxy's loop on its seams: Services and EndpointSlices fed by hand (<see cref="FakeFeeds"/>),
/// the kernel side recorded (<see cref="FakeProxyRules"/>). What the loop decides: when to write,
/// full or partial, what is skipped, retries, repairs, conntrack cleanup.
/// </summary>
public sealed class ServiceProxyLoopTests
{
    private sealed class Harness : IAsyncDisposable
    {
        public FakeFeeds Feeds { get; } = new();
        public FakeProxyRules Rules { get; } = new();
        public FakeEvents Events { get; } = new();
        public FakeConntrack Conntrack { get; } = new();
        public ServiceProxy Proxy { get; }
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _run;

        public Harness(TimeSpan? minSync = null, TimeSpan? check = null, TimeSpan? fullSync = null, TimeSpan? checkTakes = null)
        {
            Rules.CheckTakes = checkTakes ?? TimeSpan.Zero;
            Proxy = new ServiceProxy(Feeds, Rules, Conntrack,
                new ServiceProxyOptions(ProxyFixture.Node, new NftOptions("t", "10.244.0.0/16"), minSync ?? TimeSpan.FromMilliseconds(20), check ?? TimeSpan.FromHours(1), fullSync ?? TimeSpan.FromHours(1)),
                TimeProvider.System, NullLogger<ServiceProxy>.Instance, Events);
            _run = Task.Run(() => Proxy.RunAsync(_stop.Token));
        }

        /// <summary>Lists the fixed cluster's Services and slices (plus <paramref name="services"/>) and waits for the first sync.</summary>
        public async Task ListAsync(params JsonObject[] services)
        {
            await Feeds.Running.WaitAsync(TimeSpan.FromSeconds(10));
            Feeds.List(FakeFeeds.Services, [.. Cluster().Select(c => c.Service), .. services]);
            Feeds.List(FakeFeeds.Slices, [.. Cluster().SelectMany(c => c.Slices)]);
            await UntilAsync("the first sync", () => Rules.Syncs.Count > 0);
        }

        /// <summary>Stops the loop; it must end within a second.</summary>
        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _run.WaitAsync(TimeSpan.FromSeconds(1));
        }
    }

    private static async Task UntilAsync(string what, Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(10);
        }
    }

    /// <summary>The usable (ready, or else serving-terminating) endpoint addresses of one port.</summary>
    private static string[] Endpoints(IReadOnlyList<ProxyServicePort>? ports, string portName) =>
        [.. ports!.Single(p => p.PortName == portName).Usable(false).Select(e => e.Ip).Order(StringComparer.Ordinal)];

    [Fact]
    public async Task NothingIsWrittenBeforeBothListsThenOneFullSyncHoldsEveryService()
    {
        await using var h = new Harness();
        await h.Feeds.Running.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(h.Proxy.Health(DateTimeOffset.UtcNow).Healthy);
        h.Feeds.List(FakeFeeds.Services, [.. Cluster().Select(c => c.Service)]);
        await Task.Delay(200);
        Assert.Empty(h.Rules.Syncs); // services without their endpoints would reject traffic that works
        h.Feeds.List(FakeFeeds.Slices, [.. Cluster().SelectMany(c => c.Slices)]);
        await UntilAsync("the first sync", () => h.Rules.Syncs.Count > 0);
        Assert.Equal([true], h.Rules.Syncs);
        Assert.Equal(["10.244.0.5", "10.244.0.6"], Endpoints(h.Rules.PortsOf("default/web"), "http"));
        Assert.Empty(h.Rules.PortsOf("default/headless")!);
        Assert.True(h.Proxy.Health(DateTimeOffset.UtcNow).Healthy);
    }

    [Fact]
    public async Task AnInvalidPortIsSkippedWithOneEventAndTheRestIsProgrammed()
    {
        await using var h = new Harness();
        var bad = Service("bad", """{"type":"ClusterIP","clusterIP":"10.96.0.50","ports":[{"name":"ok","port":80,"protocol":"TCP"},{"name":"icmp","port":81,"protocol":"ICMP"}]}""");
        bad["metadata"]!["uid"] = "u-bad";
        await h.ListAsync(bad);
        var ports = h.Rules.PortsOf("default/bad")!;
        Assert.Equal("ok", Assert.Single(ports).PortName);
        Assert.NotNull(h.Rules.PortsOf("default/web"));
        var (subject, reason, message) = Assert.Single(h.Events.Warnings);
        Assert.Equal(("Service", "bad", "u-bad", "kube-proxy"), (subject.Kind, subject.Name, subject.Uid, subject.Component));
        Assert.Equal("SkippedInvalid", reason);
        Assert.Contains("port icmp: unsupported protocol ICMP", message);

        // The same problem on later syncs is not reported again; fixed, it is forgotten.
        h.Feeds.Change(FakeFeeds.Services, "MODIFIED", bad);
        h.Feeds.Change(FakeFeeds.Services, "MODIFIED", Cluster()[0].Service);
        await UntilAsync("a second sync", () => h.Rules.Syncs.Count > 1);
        Assert.Single(h.Events.Warnings);
    }

    [Fact]
    public async Task AFailingSyncIsRetriedInFullWithBackoffAndTheProxyIsUnhealthyMeanwhile()
    {
        await using var h = new Harness();
        h.Rules.FailNext = 2;
        await h.ListAsync();
        Assert.False(h.Proxy.Health(DateTimeOffset.UtcNow).Healthy);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await UntilAsync("the third attempt", () => h.Rules.Syncs.Count >= 3);
        // Backoff with jitter: about 1 s after the first failure, 2 s after the second.
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(2), $"retried after {clock.Elapsed.TotalSeconds:F1} s");
        Assert.Equal([true, true, true], h.Rules.Syncs);
        Assert.True(h.Proxy.Health(DateTimeOffset.UtcNow).Healthy);
        Assert.Contains("kubeproxy_sync_proxy_rules_last_timestamp_seconds", h.Proxy.Metrics.Exposition());

        // Once in, a change is written as a delta.
        h.Feeds.Change(FakeFeeds.Slices, "MODIFIED", Slice("web", "web-a", """[{"name":"http","port":8080,"protocol":"TCP"},{"name":"dns","port":5353,"protocol":"UDP"}]""",
            ("10.244.0.5", ProxyFixture.Node, true, false)));
        await UntilAsync("the delta", () => h.Rules.Syncs.Count == 4);
        Assert.False(h.Rules.Syncs[3]);
        Assert.Equal(["10.244.0.5"], Endpoints(h.Rules.PortsOf("default/web"), "http"));
    }

    [Fact]
    public async Task ADamagedTableIsRewrittenWholeAtTheNextCheck()
    {
        await using var h = new Harness(check: TimeSpan.FromMilliseconds(100));
        await h.ListAsync();
        Assert.Single(h.Rules.Syncs);
        h.Rules.Intact = false;
        await UntilAsync("the repair", () => h.Rules.Syncs.Count == 2);
        Assert.True(h.Rules.Syncs[1]);
        await Task.Delay(300);
        Assert.Equal(2, h.Rules.Syncs.Count); // intact again: no more writes
    }

    [Fact]
    public async Task PeriodicFullSyncsGoOnWhenTheyFallDueDuringASlowCheck()
    {
        // The check and the full resync share a period; the check outlasts it, so the resync falls
        // due while the check runs. The loop must act on it, not wait for the next API event
        // (it once did, and a table flushed by someone else stayed empty until a Service changed).
        await using var h = new Harness(check: TimeSpan.FromMilliseconds(200), fullSync: TimeSpan.FromMilliseconds(200), checkTakes: TimeSpan.FromMilliseconds(300));
        await h.ListAsync();
        await UntilAsync("five periodic full syncs with no API event", () => h.Rules.Syncs.Count(full => full) >= 6);
    }

    [Fact]
    public async Task ABurstOfEndpointChangesIsCoalescedIntoAFewSyncs()
    {
        await using var h = new Harness(minSync: TimeSpan.FromMilliseconds(300));
        await h.ListAsync();
        for (int i = 1; i <= 50; i++)
            h.Feeds.Change(FakeFeeds.Slices, "MODIFIED", Slice("np", "np-a", """[{"name":"","port":8080,"protocol":"TCP"}]""", ($"10.244.2.{i}", ProxyFixture.Node, true, false)));
        await UntilAsync("the last change programmed", () => Endpoints(h.Rules.PortsOf("default/np"), "") is ["10.244.2.50"]);
        await Task.Delay(400);
        Assert.InRange(h.Rules.Syncs.Count - 1, 1, 3);
    }

    [Fact]
    public async Task AUdpEndpointThatGoesAwayHasItsConntrackEntriesDeletedAfterTheRulesChanged()
    {
        await using var h = new Harness();
        await h.ListAsync();
        // A UDP service that gets endpoints: entries of the packets rejected before are cleared.
        await UntilAsync("the first cleanup", () => h.Conntrack.Deletions.Contains("-D -p udp --orig-dst 10.96.0.10"));
        int before = h.Conntrack.Deletions.Count;
        h.Feeds.Change(FakeFeeds.Slices, "MODIFIED", Slice("web", "web-a", """[{"name":"http","port":8080,"protocol":"TCP"},{"name":"dns","port":5353,"protocol":"UDP"}]""",
            ("10.244.0.5", ProxyFixture.Node, true, false)));
        await UntilAsync("the cleanup", () => h.Conntrack.Deletions.Count > before);
        Assert.Equal(["-D -p udp --orig-dst 10.96.0.10 --dst-nat 10.244.0.6"], h.Conntrack.Deletions[before..]);
        Assert.Equal(2, h.Rules.Syncs.Count);
    }
}
