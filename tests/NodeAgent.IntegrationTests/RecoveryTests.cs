using NodeAgent.Api.Core;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>Acceptance for restart safety: the agent and the runtime can each die without hurting pods.</summary>
[Collection(NodeCollection.Name)]
public sealed class RecoveryTests(NodeFixture node)
{
    private static readonly TimeSpan Start = TimeSpan.FromSeconds(30);

    private const string Web = """
        apiVersion: v1
        kind: Pod
        metadata: {name: survivor}
        spec:
          terminationGracePeriodSeconds: 2
          containers:
          - name: httpd
            image: busybox:1.36
            command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
            readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
        """;

    [Fact]
    public async Task SigkilledAgentAdoptsItsRunningContainersWithoutRestartingThem()
    {
        node.RequireReady();
        node.WriteManifest("survivor.yaml", Web);
        try
        {
            var before = await node.WaitForPodAsync("survivor", IsReady, "Ready", Start);
            var cs = before.Status!.ContainerStatuses![0];

            await node.StopAgentAsync(9);
            node.StartAgent();
            await node.WaitForAsync("agent healthy again", async () => await node.Healthz() == "ok", Start);
            var after = await node.WaitForPodAsync("survivor", IsReady, "Ready after agent restart", Start);
            Assert.Equal(before.Metadata.Uid, after.Metadata.Uid);
            Assert.Equal(cs.ContainerID, after.Status!.ContainerStatuses![0].ContainerID);
            Assert.Equal(cs.RestartCount, after.Status.ContainerStatuses[0].RestartCount);
            Assert.Equal(before.Status.PodIP, after.Status.PodIP);
            await Task.Delay(3000); // a few PLEG relists and syncs later, still untouched
            after = (await node.GetPodAsync("survivor"))!;
            Assert.Equal(cs.ContainerID, after.Status!.ContainerStatuses![0].ContainerID);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            Assert.Contains("hello from node-agent", await http.GetStringAsync($"http://{after.Status.PodIP}:8080/"));
        }
        finally
        {
            await node.RemoveAllAsync("survivor.yaml");
        }
    }

    [Fact]
    public async Task AgentRecoversByItselfWhenContainerdIsStoppedAndStartedAgain()
    {
        node.RequireReady();
        node.WriteManifest("survivor.yaml", Web);
        try
        {
            var before = await node.WaitForPodAsync("survivor", IsReady, "Ready", Start);
            await node.StopContainerdAsync();
            await Task.Delay(3000); // the agent notices (PLEG relists fail) and keeps retrying
            Assert.Null(node.AgentExitCode);
            await node.StartContainerdAsync();

            // A pod added after the runtime came back must start: the agent reconnected on its own.
            node.WriteManifest("after.yaml", Web.Replace("name: survivor", "name: after-restart"));
            await node.WaitForPodAsync("after-restart", IsReady, "new pod Ready after containerd restart", TimeSpan.FromSeconds(60));
            var after = await node.WaitForPodAsync("survivor", IsReady, "survivor still Ready", Start);
            Assert.Equal(before.Status!.ContainerStatuses![0].ContainerID, after.Status!.ContainerStatuses![0].ContainerID);
            Assert.Equal("ok", await node.Healthz());
            await node.WaitForAsync("PLEG reports the runtime back", () => Task.FromResult(node.AgentLog.Contains("container runtime is back")), Start);
        }
        finally
        {
            await node.RemoveAllAsync("survivor.yaml", "after.yaml");
        }
    }

    [Fact]
    public async Task PodsDeletedWhileTheAgentWasDownAreCollectedAfterItStarts()
    {
        node.RequireReady();
        node.WriteManifest("survivor.yaml", Web);
        var pod = await node.WaitForPodAsync("survivor", IsReady, "Ready", Start);
        string uid = pod.Metadata.Uid!;
        await node.StopAgentAsync(9);
        node.DeleteManifest("survivor.yaml");
        node.StartAgent();
        // No worker owns the UID any more: garbage collection removes it once the file source is ready.
        await node.WaitForAsync("orphaned sandbox and container removed", async () => await node.RuntimeObjectsAsync(uid) == (0, 0), Start);
        await node.WaitForAsync("orphaned log directory removed", () => Task.FromResult(
            !Directory.Exists(Path.Combine(node.PodLogs, $"default_survivor-{NodeFixture.NodeName}_{uid}"))), Start);
        Assert.Contains($"removing orphaned sandbox", node.AgentLog);
    }

    [Fact]
    public async Task SigtermStopsTheAgentPromptlyAndLeavesPodsRunning()
    {
        node.RequireReady();
        node.WriteManifest("survivor.yaml", Web);
        try
        {
            var before = await node.WaitForPodAsync("survivor", IsReady, "Ready", Start);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            await node.StopAgentAsync(15);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(6), $"agent took {sw.Elapsed} to stop");
            Assert.Equal((1, 1), await node.RuntimeObjectsAsync(before.Metadata.Uid!));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            Assert.Contains("hello from node-agent", await http.GetStringAsync($"http://{before.Status!.PodIP}:8080/"));
            node.StartAgent();
            var after = await node.WaitForPodAsync("survivor", IsReady, "Ready after restart", Start);
            Assert.Equal(before.Status.ContainerStatuses![0].ContainerID, after.Status!.ContainerStatuses![0].ContainerID);
        }
        finally
        {
            await node.RemoveAllAsync("survivor.yaml");
        }
    }

    private static bool IsReady(Pod p) => p.Status?.Conditions?.Any(c => c is { Type: "Ready", Status: "True" }) == true;
}
