using System.Text.Json.Nodes;
using Xunit;

namespace Packaging.IntegrationTests;

/// <summary>Both packages built twice by packaging/build.sh: an older build (0.0.1) and the current one.</summary>
public sealed class PackagesFixture : IAsyncLifetime
{
    public string Work { get; } = Path.Combine(Path.GetTempPath(), "na-pkg-" + Guid.NewGuid().ToString("N")[..8]);
    public string Old => Path.Combine(Work, "old");
    public string New => Path.Combine(Work, "new");
    public string Version { get; private set; } = "";
    public string? Error { get; private set; }

    public async Task InitializeAsync()
    {
        try
        {
            foreach (var (dir, version) in new[] { (Old, "0.0.1"), (New, "") })
            {
                var env = new Dictionary<string, string>();
                if (version.Length > 0) env["VERSION"] = version;
                var r = await Host.RunAsync(Path.Combine(Host.Repo, "packaging", "build.sh"), [dir], env, TimeSpan.FromMinutes(5));
                if (r.Code != 0) throw new InvalidOperationException($"packaging/build.sh {dir} failed ({r.Code}):\n{r.Out}\n{r.Err}");
            }
            Version = Path.GetFileName(Directory.GetFiles(New, "node-agent_*_amd64.deb").Single()).Split('_')[1];
        }
        catch (Exception e) { Error = e.ToString(); }
    }

    public void RequireBuilt()
    {
        Host.Require("dpkg-deb", "rpmbuild", "rpm", "lintian", "systemd-analyze", "man");
        if (Error is not null) Assert.Fail("the packages could not be built: " + Error);
    }

    public string Deb(string dir, string name) => Directory.GetFiles(dir, $"{name}_*_amd64.deb").Single();
    public string Rpm(string dir, string name) =>
        Directory.GetFiles(dir, $"{name}-*.x86_64.rpm").Single(f => char.IsAsciiDigit(Path.GetFileName(f)[(name.Length + 1)..][0]));

    public async Task DisposeAsync()
    {
        await Host.RunAsync("dpkg", "--purge", "node-agent", "node-agent-control-plane");
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class PackagesCollection : ICollectionFixture<PackagesFixture>
{
    public const string Name = "packages";
}

[Collection(PackagesCollection.Name)]
public sealed class PackageTests(PackagesFixture pkgs)
{
    private static readonly string[] AgentFiles =
    [
        "/usr/bin/node-agent", "/lib/systemd/system/node-agent.service", "/etc/node-agent/config.yaml", "/etc/node-agent/node-agent.env",
        "/usr/share/man/man8/node-agent.8.gz", "/usr/share/node-agent/10-node-agent.conflist", "/usr/share/node-agent/containerd-cri.toml",
        "/usr/share/doc/node-agent/copyright",
    ];

    private static readonly string[] ControlPlaneFiles =
    [
        "/usr/bin/node-agent-control-plane", "/lib/systemd/system/node-agent-control-plane.service", "/etc/node-agent/control-plane.env",
        "/usr/share/man/man8/node-agent-control-plane.8.gz",
    ];

    [Fact]
    public async Task TheDebsHaveNoLintianErrorsAndTheRpmsListTheirFilesDependenciesAndConfigFiles()
    {
        pkgs.RequireBuilt();
        var lintian = await Host.RunAsync("lintian", "--tag-display-limit", "0", pkgs.Deb(pkgs.New, "node-agent"), pkgs.Deb(pkgs.New, "node-agent-control-plane"));
        Assert.DoesNotContain(lintian.All.Split('\n'), l => l.StartsWith("E:", StringComparison.Ordinal));
        Assert.True(lintian.Code == 0, $"lintian exited {lintian.Code}:\n{lintian.All}");

        foreach (var (name, files, requires, config) in new[]
        {
            ("node-agent", AgentFiles, new[] { "containerd", "runc", "nftables", "containernetworking-plugins" }, new[] { "/etc/node-agent/config.yaml", "/etc/node-agent/node-agent.env" }),
            ("node-agent-control-plane", ControlPlaneFiles, new[] { "etcd" }, new[] { "/etc/node-agent/control-plane.env" }),
        })
        {
            string rpm = pkgs.Rpm(pkgs.New, name);
            string info = await Host.MustAsync("rpm", "-qip", rpm);
            Assert.Matches($@"(?m)^Name\s*: {name}$", info);
            Assert.Matches($@"(?m)^Version\s*: {pkgs.Version.Split('-')[0]}$", info);
            Assert.Matches(@"(?m)^Architecture: x86_64$", info);
            var listed = (await Host.MustAsync("rpm", "-qlp", rpm)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (var f in files)
                Assert.Contains(f.Replace("/lib/systemd/system/", "/usr/lib/systemd/system/", StringComparison.Ordinal), listed);
            var req = (await Host.MustAsync("rpm", "-qp", "--requires", rpm)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (var r in requires) Assert.Contains(r, req);
            var conf = (await Host.MustAsync("rpm", "-qp", "--configfiles", rpm)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(config.Order(), conf.Order());
            string scripts = await Host.MustAsync("rpm", "-qp", "--scripts", rpm);
            Assert.Contains($"systemctl enable {name}.service", scripts);
            Assert.Contains($"try-restart {name}.service", scripts);

            // The .deb says the same: dependencies and conffiles.
            string control = await Host.MustAsync("dpkg-deb", "-f", pkgs.Deb(pkgs.New, name), "Depends");
            foreach (var r in requires) Assert.Contains(r == "etcd" ? "etcd-server" : r, control);
            string conffiles = await ReadConffiles(pkgs.Deb(pkgs.New, name));
            Assert.Equal(config.Order(), conffiles.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order());
        }
    }

    private static async Task<string> ReadConffiles(string deb)
    {
        string dir = Directory.CreateTempSubdirectory("ctrl-").FullName;
        try
        {
            await Host.MustAsync("dpkg-deb", "-e", deb, dir);
            return File.ReadAllText(Path.Combine(dir, "conffiles"));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public async Task DpkgInstallsUpgradesUnderRunningPodsAndRemovesKeepingEditedConfig()
    {
        pkgs.RequireBuilt();
        Host.Require("containerd", "ctr", "runc", "gcc", "busybox", "curl");
        await Host.RunAsync("dpkg", "--purge", "node-agent", "node-agent-control-plane");
        string work = Path.Combine(pkgs.Work, "node");
        string containerd = Path.Combine(work, "containerd"), manifests = Path.Combine(work, "manifests");
        Directory.CreateDirectory(manifests);
        int port = Host.FreePort(), healthz = Host.FreePort();
        Host.Daemon? agent = null;
        try
        {
            // Install the older build: files where expected, units verified, enabled but not started.
            await Host.MustAsync("dpkg", "-i", pkgs.Deb(pkgs.Old, "node-agent"), pkgs.Deb(pkgs.Old, "node-agent-control-plane"));
            foreach (var f in AgentFiles.Concat(ControlPlaneFiles)) Assert.True(File.Exists(f), $"{f} not installed");
            Assert.Contains("ok installed", await Host.MustAsync("dpkg-query", "-W", "-f=${Status} ${Version}", "node-agent"));
            Assert.True(File.Exists("/etc/systemd/system/multi-user.target.wants/node-agent.service"), "node-agent.service not enabled on install");
            var verify = await Host.RunAsync("systemd-analyze", "verify", "/lib/systemd/system/node-agent.service", "/lib/systemd/system/node-agent-control-plane.service");
            Assert.True(verify.Code == 0 && verify.All.Trim().Length == 0, $"systemd-analyze verify: exit {verify.Code}:\n{verify.All}");
            // --help documents every flag, and the man page carries each one.
            string help = await Host.MustAsync("/usr/bin/node-agent", "--help");
            string man = (await Host.MustAsync("man", "-P", "cat", "-l", "/usr/share/man/man8/node-agent.8.gz")).Replace("\u2010", "-");
            foreach (var flag in System.Text.RegularExpressions.Regex.Matches(help, @"(?m)^\s+(--[a-z0-9-]+)").Select(m => m.Groups[1].Value))
                Assert.Contains(flag, man);

            // A pod runs under the installed agent (a private containerd; static pods only).
            await Host.MustAsync("bash", Path.Combine(Host.Repo, "hack", "containerd.sh"), "start", containerd, "10.246.0.0/24", "napkg0");
            await Host.MustAsync("bash", Path.Combine(Host.Repo, "hack", "images.sh"), "build", Path.Combine(work, "images"));
            await Host.MustAsync("bash", Path.Combine(Host.Repo, "hack", "images.sh"), "import", Path.Combine(work, "images"), Path.Combine(containerd, "containerd.sock"));
            File.WriteAllText(Path.Combine(manifests, "keeper.yaml"), """
                apiVersion: v1
                kind: Pod
                metadata: {name: keeper}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers: [{name: app, image: busybox:1.36, command: [sleep, "3600"]}]
                """);
            string[] flags = ["--config", "/etc/node-agent/config.yaml", "--container-runtime-endpoint", "unix://" + Path.Combine(containerd, "containerd.sock"),
                "--pod-manifest-path", manifests, "--root-dir", Path.Combine(work, "root"), "--pod-logs-dir", Path.Combine(work, "logs"),
                "--read-only-port", port.ToString(), "--healthz-port", healthz.ToString(), "--hostname-override", "pkg-node"];
            agent = new Host.Daemon("/usr/bin/node-agent", flags);
            var before = await RunningContainerAsync(port, agent);

            // Upgrade under it, after the operator edited a config file: dpkg replaces the binary
            // (the running agent keeps its old, now deleted, file), keeps the edit.
            File.AppendAllText("/etc/node-agent/node-agent.env", "# edited by the operator\n");
            await Host.MustAsync("dpkg", "-i", pkgs.Deb(pkgs.New, "node-agent"), pkgs.Deb(pkgs.New, "node-agent-control-plane"));
            Assert.Contains(pkgs.Version, await Host.MustAsync("dpkg-query", "-W", "-f=${Version}", "node-agent"));
            Assert.Contains("# edited by the operator", File.ReadAllText("/etc/node-agent/node-agent.env"));
            Assert.True(agent.Running, "the upgrade stopped the running agent");
            Assert.EndsWith("(deleted)", new FileInfo($"/proc/{agent.Pid}/exe").LinkTarget ?? "");

            // The restart the package asks systemd for (try-restart: SIGTERM, start the new binary):
            // the same containers, not restarted.
            await agent.StopAsync();
            agent = new Host.Daemon("/usr/bin/node-agent", flags);
            Assert.Equal("/usr/bin/node-agent", new FileInfo($"/proc/{agent.Pid}/exe").LinkTarget);
            var after = await RunningContainerAsync(port, agent);
            Assert.Equal(before.Id, after.Id);
            Assert.Equal(before.StartedAt, after.StartedAt);
            Assert.Equal(0, after.Restarts);

            File.Delete(Path.Combine(manifests, "keeper.yaml"));
            await Host.WaitForAsync("the pod torn down", async () => !(await Pods(port)).Contains("keeper"), TimeSpan.FromSeconds(60));
            await agent.StopAsync();

            // Remove: files gone, the edited config kept (until purge).
            await Host.MustAsync("dpkg", "-r", "node-agent", "node-agent-control-plane");
            foreach (var f in new[] { "/usr/bin/node-agent", "/lib/systemd/system/node-agent.service", "/usr/bin/node-agent-control-plane", "/usr/share/man/man8/node-agent.8.gz" })
                Assert.False(File.Exists(f), $"{f} left after dpkg -r");
            Assert.Contains("# edited by the operator", File.ReadAllText("/etc/node-agent/node-agent.env"));
            Assert.Contains("deinstall ok config-files", await Host.MustAsync("dpkg-query", "-W", "-f=${Status}", "node-agent"));
            await Host.MustAsync("dpkg", "--purge", "node-agent", "node-agent-control-plane");
            Assert.False(Directory.Exists("/etc/node-agent"), "/etc/node-agent left after purge");
            Assert.False(File.Exists("/etc/systemd/system/multi-user.target.wants/node-agent.service"), "the enablement link left after purge");
        }
        finally
        {
            if (agent is not null) await agent.DisposeAsync();
            await Host.RunAsync("bash", Path.Combine(Host.Repo, "hack", "containerd.sh"), "stop", containerd);
            foreach (var m in File.ReadAllLines("/proc/self/mounts").Select(l => l.Split(' ')[1]).Where(m => m.StartsWith(work, StringComparison.Ordinal)).OrderByDescending(m => m.Length))
                await Host.RunAsync("umount", "-l", m);
            await Host.RunAsync("ip", "link", "delete", "napkg0");
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task<string> Pods(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return await http.GetStringAsync($"http://127.0.0.1:{port}/pods");
    }

    private static async Task<(string Id, string StartedAt, int Restarts)> RunningContainerAsync(int port, Host.Daemon agent)
    {
        (string, string, int) found = default;
        await Host.WaitForAsync("the keeper pod running under /usr/bin/node-agent", async () =>
        {
            if (!agent.Running) Assert.Fail("the agent exited:\n" + agent.Log);
            var list = JsonNode.Parse(await Pods(port))!["items"]!.AsArray();
            var cs = list.FirstOrDefault(p => p!["metadata"]!["name"]!.GetValue<string>().StartsWith("keeper", StringComparison.Ordinal))?["status"]?["containerStatuses"]?[0];
            if (cs?["state"]?["running"]?["startedAt"] is not { } started) return false;
            found = (cs["containerID"]!.GetValue<string>(), started.GetValue<string>(), cs["restartCount"]!.GetValue<int>());
            return true;
        }, TimeSpan.FromSeconds(60));
        return found;
    }
}
