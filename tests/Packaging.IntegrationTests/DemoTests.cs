using Xunit;

namespace Packaging.IntegrationTests;

/// <summary>The README's first command: a single-node cluster from a clean machine, and its teardown.</summary>
public sealed class DemoTests
{
    private const string State = "/var/lib/node-agent-demo";
    private static readonly string Demo = Path.Combine(Host.Repo, "scripts", "demo.sh");

    /// <summary>What the demo could leave behind: its processes (anything naming its state directory or binaries), mounts, nftables tables, links, runc containers.</summary>
    private static async Task<string> LeftoversAsync()
    {
        var found = new List<string>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == Environment.ProcessId) continue;
            string cmd;
            try { cmd = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' '); }
            catch (IOException) { continue; }
            catch (UnauthorizedAccessException) { continue; }
            if (cmd.Contains(State, StringComparison.Ordinal) || cmd.Contains("artifacts/publish/node-agent/node-agent", StringComparison.Ordinal)
                || cmd.Contains("artifacts/publish/control-plane/control-plane", StringComparison.Ordinal))
                found.Add($"process {pid}: {cmd}");
        }
        found.AddRange(File.ReadAllLines("/proc/self/mounts").Where(l => l.Contains(State, StringComparison.Ordinal)).Select(l => "mount: " + l));
        string tables = (await Host.RunAsync("nft", "list", "tables")).Out;
        found.AddRange(tables.Split('\n').Where(l => l.Contains("node-agent", StringComparison.Ordinal)).Select(l => "nftables: " + l));
        if ((await Host.RunAsync("ip", "link", "show", "na0")).Code == 0) found.Add("link na0");
        if (Directory.Exists(State)) found.Add("directory " + State);
        // The CNI bridge plugin's masquerade rules for the demo's pod network (10.244.0.0/24): gone
        // when the pods were torn down through the runtime, as the teardown does.
        if (Host.Which("iptables-save") is not null)
            found.AddRange((await Host.RunAsync("iptables-save", "-t", "nat")).Out.Split('\n')
                .Where(l => l.Contains("10.244.0.", StringComparison.Ordinal)).Select(l => "iptables: " + l));
        return string.Join('\n', found);
    }

    [Fact]
    public async Task TheOneCommandClusterAnswersItsDemoServiceAndTheTeardownLeavesNothingBehind()
    {
        Host.Require("containerd", "ctr", "runc", "etcd", "kubectl", "nft", "curl", "gcc", "busybox");
        await Host.RunAsync("bash", [Demo, "down"], null, TimeSpan.FromMinutes(3)); // from a clean state
        string before = await LeftoversAsync();
        Assert.DoesNotContain(before.Split('\n'), l => l.Length > 0 && !l.StartsWith("iptables: ", StringComparison.Ordinal)); // (another tool's old rules may stay)
        try
        {
            var up = await Host.RunAsync("bash", [Demo, "up"], null, TimeSpan.FromMinutes(8));
            Assert.True(up.Code == 0, $"demo.sh up exited {up.Code}:\n{up.Out}\n{up.Err}");
            Assert.Contains("== the demo Service answers at http://", up.Out);
            Assert.Contains("hello from web-", up.Out);
            Assert.Contains("kubectl get nodes", up.Out); // what to try

            // Twice is harmless: nothing started again, the Service still answers.
            var again = await Host.RunAsync("bash", [Demo, "up"], null, TimeSpan.FromMinutes(5));
            Assert.True(again.Code == 0, $"second demo.sh up exited {again.Code}:\n{again.Out}\n{again.Err}");
            Assert.Contains("node-agent already running", again.Out);
            Assert.Contains("== the demo Service answers at http://", again.Out);
        }
        finally
        {
            var down = await Host.RunAsync("bash", [Demo, "down"], null, TimeSpan.FromMinutes(3));
            Assert.True(down.Code == 0, $"demo.sh down exited {down.Code}:\n{down.Out}\n{down.Err}");
        }
        Assert.Equal(before, await LeftoversAsync());
    }
}
