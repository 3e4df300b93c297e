using System.Text.RegularExpressions;
using NodeAgent.Api.Core;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>Acceptance for the static pod source: edits replace, deletes remove everything, bad files hurt no one.</summary>
[Collection(NodeCollection.Name)]
public sealed class ManifestTests(NodeFixture node)
{
    private static readonly TimeSpan Start = TimeSpan.FromSeconds(30);

    private static string Sleeper(string name, string env = "one") => $$"""
        apiVersion: v1
        kind: Pod
        metadata: {name: {{name}}}
        spec:
          terminationGracePeriodSeconds: 2
          containers:
          - name: app
            image: busybox:1.36
            command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
            env: [{name: VERSION, value: "{{env}}"}]
        """;

    [Fact]
    public async Task EditingAManifestReplacesThePodAndDeletingItRemovesEverything()
    {
        node.RequireReady();
        node.WriteManifest("edit.yaml", Sleeper("edit"));
        var first = await node.WaitForPodAsync("edit", p => p.Status?.ContainerStatuses?[0].State?.Running is not null, "running", Start);
        string oldUid = first.Metadata.Uid!;
        Assert.Equal((1, 1), await node.RuntimeObjectsAsync(oldUid));

        node.WriteManifest("edit.yaml", Sleeper("edit", "two"));
        var second = await node.WaitForPodAsync("edit", p => p.Metadata.Uid != oldUid && p.Status?.ContainerStatuses?[0].State?.Running is not null, "replaced and running", Start);
        Assert.Equal("two", second.Spec.Containers[0].Env![0].Value);
        await node.WaitForAsync("old pod's sandbox and containers gone", async () => await node.RuntimeObjectsAsync(oldUid) == (0, 0), Start);
        Assert.False(Directory.Exists(Path.Combine(node.PodLogs, $"default_edit-{NodeFixture.NodeName}_{oldUid}")));

        string uid = second.Metadata.Uid!;
        await node.RemoveAllAsync("edit.yaml");
        Assert.Equal((0, 0), await node.RuntimeObjectsAsync(uid));
        Assert.False(Directory.Exists(Path.Combine(node.PodLogs, $"default_edit-{NodeFixture.NodeName}_{uid}")), "pod log directory left behind");
        Assert.False(Directory.Exists(Path.Combine(node.RootDir, "pods", uid)), "pod directory left behind");
        foreach (var controller in Directory.EnumerateDirectories("/sys/fs/cgroup"))
            Assert.False(Directory.Exists(Path.Combine(controller, "kubepods", "besteffort", "pod" + uid)), $"pod cgroup left in {controller}");
    }

    public static TheoryData<string, string, string> BadManifests => new()
    {
        { "syntax", "apiVersion: v1\nkind: Pod\nmetadata: {name: x\nspec: [", "invalid YAML at line" },
        { "unknown-kind", "apiVersion: v1\nkind: Deployment\nmetadata: {name: x}\n", "kind \"Deployment\" is not supported" },
        { "wrong-version", "apiVersion: apps/v1\nkind: Pod\nmetadata: {name: x}\n", "no kind \"Pod\" is registered for version \"apps/v1\"" },
        { "missing-image", "apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec: {containers: [{name: app}]}\n", "spec.containers[0].image: Required value" },
        { "bad-port-name", "apiVersion: v1\nkind: Pod\nmetadata: {name: badport}\nspec: {containers: [{name: app, image: busybox:1.36, ports: [{name: http_port, containerPort: 80}]}]}\n", "spec.containers[0].ports[0].name: Invalid value: \"http_port\"" },
        { "duplicate-names", "apiVersion: v1\nkind: Pod\nmetadata: {name: dup}\nspec: {containers: [{name: app, image: busybox:1.36}, {name: app, image: busybox:1.36}]}\n", "spec.containers[1].name: Duplicate value: \"app\"" },
        { "bad-quantity", "apiVersion: v1\nkind: Pod\nmetadata: {name: badq}\nspec: {containers: [{name: app, image: busybox:1.36, resources: {limits: {memory: 12XB}}}]}\n", "spec.containers[0].resources.limits[memory]: Invalid value: \"12XB\"" },
        { "wrong-type", "apiVersion: v1\nkind: Pod\nmetadata: {name: badtype}\nspec: {containers: [{name: app, image: busybox:1.36, ports: [{containerPort: eighty}]}]}\n", "spec.containers[0].ports[0].containerPort" },
        { "no-containers", "apiVersion: v1\nkind: Pod\nmetadata: {name: empty}\nspec: {containers: []}\n", "spec.containers: Required value" },
        { "bad-restart-policy", "apiVersion: v1\nkind: Pod\nmetadata: {name: rp}\nspec: {restartPolicy: Sometimes, containers: [{name: app, image: busybox:1.36}]}\n", "spec.restartPolicy: Unsupported value: \"Sometimes\"" },
        { "bad-name", "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: app, image: busybox:1.36}]}\n", "metadata.name: Invalid value: \"Bad_Name-it-node\"" },
        { "missing-volume", "apiVersion: v1\nkind: Pod\nmetadata: {name: novol}\nspec: {containers: [{name: app, image: busybox:1.36, volumeMounts: [{name: data, mountPath: /data}]}]}\n", "spec.containers[0].volumeMounts[0].name: Not found: \"data\"" },
        { "requests-over-limits", "apiVersion: v1\nkind: Pod\nmetadata: {name: rl}\nspec: {containers: [{name: app, image: busybox:1.36, resources: {requests: {cpu: '2'}, limits: {cpu: '1'}}}]}\n", "must be less than or equal to cpu limit of 1" },
        { "not-an-object", "- just\n- a list\n", "a manifest must be an object" },
        { "probe-without-handler", "apiVersion: v1\nkind: Pod\nmetadata: {name: probe}\nspec: {containers: [{name: app, image: busybox:1.36, livenessProbe: {periodSeconds: 5}}]}\n", "spec.containers[0].livenessProbe: Required value: must specify a handler type" },
    };

    [Theory]
    [MemberData(nameof(BadManifests))]
    public async Task BadManifestIsRejectedClearlyAndAHealthyPodBesideItIsUndisturbed(string kind, string content, string expected)
    {
        node.RequireReady();
        node.WriteManifest("healthy.yaml", Sleeper("healthy"));
        try
        {
            var before = await node.WaitForPodAsync("healthy", p => p.Status?.ContainerStatuses?[0].State?.Running is not null, "running", Start);
            string file = $"bad-{kind}.yaml";
            node.WriteManifest(file, content);
            string path = Path.Combine(node.Manifests, file);
            await node.WaitForAsync($"rejection of {kind} logged", () => Task.FromResult(
                node.AgentLog.Split('\n').Any(l => l.Contains("static pod manifest rejected") && l.Contains(path) && l.Contains(expected))), TimeSpan.FromSeconds(10));
            node.DeleteManifest(file);

            await Task.Delay(1500);
            var after = (await node.GetPodAsync("healthy"))!;
            Assert.Equal(before.Metadata.Uid, after.Metadata.Uid);
            Assert.Equal(before.Status!.ContainerStatuses![0].ContainerID, after.Status!.ContainerStatuses![0].ContainerID);
            Assert.Equal(0, after.Status.ContainerStatuses[0].RestartCount);
            Assert.Equal("ok", await node.Healthz());
            Assert.Null(node.AgentExitCode);
            var names = (await node.GetPodsAsync()).Items.Select(p => p.Metadata.Name).ToList();
            Assert.Equal([$"healthy-{NodeFixture.NodeName}"], names);
        }
        finally
        {
            await node.RemoveAllAsync("healthy.yaml");
        }
    }
}
