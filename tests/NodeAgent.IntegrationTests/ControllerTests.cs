using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>The control plane's controllers, driving real pods on the agent's node through the scheduler.</summary>
[Collection(NodeCollection.Name)]
public sealed class ControllerTests(NodeFixture node)
{
    [Fact]
    public async Task AReplicaSetKeepsItsReplicasRunningScalesAndReplacesDeletedPods()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "rs.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata: {name: web, namespace: default}
            spec:
              replicas: 2
              selector: {matchLabels: {app: rs-web}}
              template:
                metadata: {labels: {app: rs-web}}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: httpd
                    image: busybox:1.36
                    command: [httpd, -f, -p, "8080"]
                    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
            """);
        await node.Kubectl("apply", "-f", file);
        try
        {
            async Task Ready(int n) => await node.WaitForAsync($"{n} ready replicas", async () =>
            {
                var (code, o, _) = await node.KubectlAsync("get", "rs", "web", "-o", "jsonpath={.status.replicas}/{.status.readyReplicas}/{.status.availableReplicas}");
                var running = (await node.KubectlAsync("get", "pods", "-l", "app=rs-web", "--field-selector=status.phase=Running", "-o", "name")).Out
                    .Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
                return code == 0 && o == $"{n}/{n}/{n}" && running == n;
            }, TimeSpan.FromSeconds(90));

            await Ready(2);
            var pods = (await node.Kubectl("get", "pods", "-l", "app=rs-web", "-o", "jsonpath={range .items[*]}{.metadata.name} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.spec.nodeName}{\"\\n\"}{end}"))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(2, pods.Length);
            Assert.All(pods, p => Assert.Matches($@"^web-\S+ ReplicaSet/web {NodeFixture.NodeName}$", p));

            await node.Kubectl("scale", "rs", "web", "--replicas=3");
            await Ready(3);

            // A deleted pod is replaced by a new one.
            string victim = pods[0].Split(' ')[0];
            await node.Kubectl("delete", "pod", victim, "--wait=false");
            await node.WaitForAsync("the deleted pod replaced", async () =>
            {
                var names = (await node.KubectlAsync("get", "pods", "-l", "app=rs-web", "--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}")).Out;
                return !names.Contains(victim) && names.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 3;
            }, TimeSpan.FromSeconds(90));
            await Ready(3);

            await node.Kubectl("scale", "rs", "web", "--replicas=1");
            await node.WaitForAsync("scaled down to 1", async () =>
                (await node.KubectlAsync("get", "pods", "-l", "app=rs-web", "-o", "name")).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length == 1,
                TimeSpan.FromSeconds(60));
            await Ready(1);
            Assert.Contains("SuccessfulCreate", (await node.KubectlAsync("describe", "rs", "web")).Out);
        }
        finally
        {
            await node.KubectlAsync("delete", "-f", file, "--wait=true", "--timeout=30s");
            await node.KubectlAsync("delete", "pods", "-l", "app=rs-web", "--wait=true", "--timeout=30s");
        }
    }
}
