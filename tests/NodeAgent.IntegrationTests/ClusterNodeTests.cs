using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>The agent joined to the control plane (--kubeconfig with a system:node identity): Node and Lease.</summary>
[Collection(NodeCollection.Name)]
public sealed class ClusterNodeTests(NodeFixture node)
{
    [Fact]
    public async Task TheNodeRegistersReadyWithCapacityAddressesAndRuntimeVersion()
    {
        node.RequireReady();
        await node.WaitForAsync("node Ready in the API", async () =>
            (await node.KubectlAsync("get", "node", NodeFixture.NodeName, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")).Out == "True", TimeSpan.FromSeconds(30));
        var wide = await node.Kubectl("get", "nodes", "-o", "wide");
        Assert.Matches($@"{NodeFixture.NodeName}\s+Ready\s+<none>\s+\S+\s+v1\.32\.0\s+\d+\.\d+\.\d+\.\d+\s+<none>\s+.+containerd://", wide);
        var n = JsonNode.Parse(await node.Kubectl("get", "node", NodeFixture.NodeName, "-o", "json"))!;
        var status = n["status"]!;
        Assert.Equal(Environment.ProcessorCount.ToString(), status["capacity"]!["cpu"]!.GetValue<string>());
        Assert.Equal("110", status["capacity"]!["pods"]!.GetValue<string>());
        Assert.EndsWith("Ki", status["capacity"]!["memory"]!.GetValue<string>());
        Assert.NotNull(status["allocatable"]!["ephemeral-storage"]);
        Assert.Contains(status["addresses"]!.AsArray(), a => a!["type"]!.GetValue<string>() == "InternalIP");
        Assert.Contains(status["addresses"]!.AsArray(), a => a!["type"]!.GetValue<string>() == "Hostname" && a["address"]!.GetValue<string>() == NodeFixture.NodeName);
        Assert.StartsWith("containerd://", status["nodeInfo"]!["containerRuntimeVersion"]!.GetValue<string>());
        Assert.Equal("linux", status["nodeInfo"]!["operatingSystem"]!.GetValue<string>());
        foreach (var (type, reason) in (ReadOnlySpan<(string, string)>)[("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"), ("PIDPressure", "KubeletHasSufficientPID"), ("Ready", "KubeletReady")])
            Assert.Contains(status["conditions"]!.AsArray(), c => c!["type"]!.GetValue<string>() == type && c["reason"]!.GetValue<string>() == reason);
        var labels = n["metadata"]!["labels"]!;
        Assert.Equal(NodeFixture.NodeName, labels["kubernetes.io/hostname"]!.GetValue<string>());
        Assert.Equal("linux", labels["kubernetes.io/os"]!.GetValue<string>());
        Assert.Equal("true", labels["it"]!.GetValue<string>());
        var who = JsonNode.Parse((await node.Kubectl("--kubeconfig", node.NodeKubeconfig, "auth", "whoami", "-o", "json")))!;
        Assert.Equal($"system:node:{NodeFixture.NodeName}", who["status"]!["userInfo"]!["username"]!.GetValue<string>());
    }

    [Fact]
    public async Task TheLeaseRenewsEveryTenSeconds()
    {
        node.RequireReady();
        async Task<DateTimeOffset?> RenewTime()
        {
            var (code, o, _) = await node.KubectlAsync("get", "lease", NodeFixture.NodeName, "-n", "kube-node-lease", "-o", "jsonpath={.spec.renewTime}");
            return code == 0 && DateTimeOffset.TryParse(o, out var t) ? t : null;
        }
        await node.WaitForAsync("the node lease exists", async () => await RenewTime() is not null, TimeSpan.FromSeconds(30));
        var lease = JsonNode.Parse(await node.Kubectl("get", "lease", NodeFixture.NodeName, "-n", "kube-node-lease", "-o", "json"))!;
        Assert.Equal(NodeFixture.NodeName, lease["spec"]!["holderIdentity"]!.GetValue<string>());
        Assert.Equal(40, lease["spec"]!["leaseDurationSeconds"]!.GetValue<int>());
        Assert.Equal("Node", lease["metadata"]!["ownerReferences"]![0]!["kind"]!.GetValue<string>());
        var first = (await RenewTime())!.Value;
        DateTimeOffset second = first;
        await node.WaitForAsync("the lease renews", async () => (second = (await RenewTime())!.Value) > first, TimeSpan.FromSeconds(15));
        Assert.InRange((second - first).TotalSeconds, 8, 12.5);
    }

    [Fact]
    public async Task ADeletedNodeIsRegisteredAgain()
    {
        node.RequireReady();
        await node.WaitForAsync("node registered", async () => (await node.KubectlAsync("get", "node", NodeFixture.NodeName)).Code == 0, TimeSpan.FromSeconds(30));
        string uid = await node.Kubectl("get", "node", NodeFixture.NodeName, "-o", "jsonpath={.metadata.uid}");
        await node.Kubectl("delete", "node", NodeFixture.NodeName);
        string again = "";
        await node.WaitForAsync("node registered again", async () =>
        {
            var (code, o, _) = await node.KubectlAsync("get", "node", NodeFixture.NodeName, "-o", "jsonpath={.metadata.uid}");
            again = o;
            return code == 0 && o.Length > 0 && o != uid;
        }, TimeSpan.FromSeconds(15));
        await node.WaitForAsync("node Ready again", async () =>
            (await node.KubectlAsync("get", "node", NodeFixture.NodeName, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")).Out == "True", TimeSpan.FromSeconds(15));
    }
}
