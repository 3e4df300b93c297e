using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>The control plane's scheduler binds pods to the agent's node, and says why when it cannot.</summary>
[Collection(NodeCollection.Name)]
public sealed class SchedulingTests(NodeFixture node)
{
    [Fact]
    public async Task PodsWithoutANodeAreScheduledAndThoseThatFitNowhereWaitWithAReason()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "sched.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: sched-ok, namespace: default}
            spec:
              terminationGracePeriodSeconds: 1
              containers: [{name: c, image: busybox:1.36, command: [sleep, "3600"]}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: sched-big, namespace: default}
            spec:
              containers: [{name: c, image: busybox:1.36, command: [sleep, "3600"], resources: {requests: {cpu: "500"}}}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: sched-elsewhere, namespace: default}
            spec:
              nodeSelector: {disk: none-here}
              containers: [{name: c, image: busybox:1.36, command: [sleep, "3600"]}]
            """);
        string later = Path.Combine(node.Work, "sched-later.yaml");
        await File.WriteAllTextAsync(later, """
            apiVersion: v1
            kind: Pod
            metadata: {name: sched-later, namespace: default}
            spec:
              terminationGracePeriodSeconds: 1
              containers: [{name: c, image: busybox:1.36, command: [sleep, "3600"]}]
            """);
        await node.Kubectl("apply", "-f", file);
        try
        {
            await node.WaitForAsync("sched-ok bound and running", async () =>
                (await node.KubectlAsync("get", "pod", "sched-ok", "-o", "jsonpath={.spec.nodeName}/{.status.phase}")).Out == $"{NodeFixture.NodeName}/Running",
                TimeSpan.FromSeconds(60));
            await node.WaitForAsync("the Scheduled event", async () =>
                (await node.KubectlAsync("describe", "pod", "sched-ok")).Out.Contains($"Successfully assigned default/sched-ok to {NodeFixture.NodeName}"),
                TimeSpan.FromSeconds(20));
            Assert.Matches(@"Normal\s+Scheduled\s+\S+\s+default-scheduler\s+Successfully assigned", (await node.KubectlAsync("describe", "pod", "sched-ok")).Out);

            async Task Unschedulable(string pod, string reason)
            {
                string message = $"0/1 nodes are available: {reason}.";
                await node.WaitForAsync($"{pod} unschedulable", async () =>
                    (await node.KubectlAsync("get", "pod", pod, "-o", "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}|{.status.conditions[?(@.type==\"PodScheduled\")].message}")).Out
                        == $"Unschedulable|{message}", TimeSpan.FromSeconds(30));
                await node.WaitForAsync($"{pod} FailedScheduling event", async () =>
                    (await node.KubectlAsync("describe", "pod", pod)).Out.Contains("FailedScheduling"), TimeSpan.FromSeconds(20));
                Assert.Equal("Pending/", await node.Kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}/{.spec.nodeName}"));
            }
            await Unschedulable("sched-big", "1 Insufficient cpu");
            await Unschedulable("sched-elsewhere", "1 node(s) didn't match Pod's node affinity/selector");

            // A cordoned node takes nothing new; uncordoning it brings the waiting pod back at once.
            await node.Kubectl("cordon", NodeFixture.NodeName);
            await node.Kubectl("apply", "-f", later);
            await Unschedulable("sched-later", "1 node(s) were unschedulable");
            await node.Kubectl("uncordon", NodeFixture.NodeName);
            await node.WaitForAsync("sched-later scheduled after uncordon", async () =>
                (await node.KubectlAsync("get", "pod", "sched-later", "-o", "jsonpath={.spec.nodeName}/{.status.phase}")).Out == $"{NodeFixture.NodeName}/Running",
                TimeSpan.FromSeconds(60));
        }
        finally
        {
            await node.KubectlAsync("uncordon", NodeFixture.NodeName);
            await node.KubectlAsync("delete", "-f", file, "--wait=true", "--timeout=40s");
            await node.KubectlAsync("delete", "-f", later, "--wait=true", "--timeout=40s");
        }
    }
}
