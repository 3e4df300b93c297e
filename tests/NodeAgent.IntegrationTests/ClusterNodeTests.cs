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
        // The owner (the Node) is set at the first renewal after the Node's uid is known.
        await node.WaitForAsync("the node lease is owned by the Node", async () =>
            (await node.KubectlAsync("get", "lease", NodeFixture.NodeName, "-n", "kube-node-lease", "-o", "jsonpath={.metadata.ownerReferences[0].kind}")).Out == "Node",
            TimeSpan.FromSeconds(30));
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

/// <summary>Pods from the API server: bound with spec.nodeName, run, reported, deleted gracefully.</summary>
[Collection(NodeCollection.Name)]
public sealed class ApiPodTests(NodeFixture node)
{
    private static readonly string Manifest = """
        apiVersion: v1
        kind: Pod
        metadata: {name: web, namespace: default, labels: {app: web}}
        spec:
          nodeName: NODE
          terminationGracePeriodSeconds: 5
          containers:
          - name: httpd
            image: busybox:1.36
            command: [httpd, -f, -p, "8080"]
            ports: [{containerPort: 8080}]
            readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
        """.Replace("NODE", NodeFixture.NodeName, StringComparison.Ordinal);

    [Fact]
    public async Task APodBoundToTheNodeRunsReportsStatusAndIsDeletedGracefully()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "api-web.yaml");
        await File.WriteAllTextAsync(file, Manifest);
        await node.Kubectl("apply", "-f", file);
        await node.WaitForAsync("pod web Running and Ready in the API", async () =>
        {
            var (code, o, _) = await node.KubectlAsync("get", "pod", "web", "-n", "default", "-o", "jsonpath={.status.phase}/{.status.conditions[?(@.type==\"Ready\")].status}/{.status.podIP}");
            return code == 0 && o.StartsWith("Running/True/10.245.", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(60));
        var wide = await node.Kubectl("get", "pod", "web", "-n", "default", "-o", "wide");
        Assert.Matches($@"web\s+1/1\s+Running\s+0\s+\S+\s+10\.245\.0\.\d+\s+{NodeFixture.NodeName}", wide);
        var pod = System.Text.Json.Nodes.JsonNode.Parse(await node.Kubectl("get", "pod", "web", "-n", "default", "-o", "json"))!;
        string uid = pod["metadata"]!["uid"]!.GetValue<string>();
        var cs = pod["status"]!["containerStatuses"]![0]!;
        Assert.True(cs["ready"]!.GetValue<bool>());
        Assert.StartsWith("containerd://", cs["containerID"]!.GetValue<string>());
        Assert.Contains(pod["status"]!["conditions"]!.AsArray(), c => c!["type"]!.GetValue<string>() == "PodScheduled" || c["type"]!.GetValue<string>() == "Initialized");
        // kubectl describe shows the agent's events (aggregated, with the kubelet as source).
        await node.WaitForAsync("events in kubectl describe", async () =>
        {
            var (_, o, _) = await node.KubectlAsync("describe", "pod", "web", "-n", "default");
            return o.Contains("Started container httpd") && o.Contains("Created container httpd");
        }, TimeSpan.FromSeconds(20));
        var describe = await node.Kubectl("describe", "pod", "web", "-n", "default");
        Assert.Matches(@"Normal\s+Started\s+\S+\s+kubelet\s+Started container httpd", describe);
        // It serves: the host reaches the pod IP.
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) })
        {
            var resp = await http.GetAsync($"http://{pod["status"]!["podIP"]!.GetValue<string>()}:8080/");
            Assert.True((int)resp.StatusCode is 200 or 404);
        }

        var (dcode, dout, derr) = await node.KubectlAsync("delete", "pod", "web", "-n", "default", "--wait=true", "--timeout=30s");
        Assert.True(dcode == 0, dout + derr + "\n" + NodeFixture.Tail(node.AgentLog, 40));
        Assert.Equal(1, (await node.KubectlAsync("get", "pod", "web", "-n", "default")).Code);
        await node.WaitForAsync("containers and sandbox gone", async () => await node.RuntimeObjectsAsync(uid) == (0, 0), TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task KubectlLogsReadsFollowsTailsAndShowsThePreviousInstance()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "api-logs.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: ticker, namespace: default}
            spec:
              nodeName: NODE
              terminationGracePeriodSeconds: 1
              containers:
              - name: tick
                image: busybox:1.36
                command: [sh, -c, 'echo first; echo second; i=0; while true; do echo tick$i; i=$((i+1)); sleep 1; done']
              - name: crash
                image: busybox:1.36
                command: [sh, -c, 'echo attempt-$(date +%s%N); sleep 1; exit 3']
            """.Replace("NODE", NodeFixture.NodeName, StringComparison.Ordinal));
        await node.Kubectl("apply", "-f", file);
        await node.WaitForAsync("ticker has logged two ticks", async () =>
        {
            var (code, o, _) = await node.KubectlAsync("logs", "ticker", "-c", "tick", "-n", "default");
            return code == 0 && o.Contains("tick1");
        }, TimeSpan.FromSeconds(60));
        var all = await node.Kubectl("logs", "ticker", "-c", "tick", "-n", "default");
        Assert.StartsWith("first\nsecond\ntick0\n", all);
        Assert.Matches(@"^tick\d+\n$", await node.Kubectl("logs", "ticker", "-c", "tick", "-n", "default", "--tail=1"));
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z first\n", await node.Kubectl("logs", "ticker", "-c", "tick", "-n", "default", "--timestamps"));
        // kubectl picks the first container itself; the API, asked without one, says which exist.
        Assert.Contains("Defaulted container \"tick\"", (await node.KubectlAsync("logs", "ticker", "-n", "default", "--tail=1")).Err);
        var (code, _, err) = await node.KubectlAsync("get", "--raw", "/api/v1/namespaces/default/pods/ticker/log");
        Assert.NotEqual(0, code);
        Assert.Contains("a container name must be specified for pod ticker, choose one of: [tick crash]", err);
        // Bad options are refused as upstream refuses them, not ignored: 400 for a value that does not
        // parse, 422 (PodLogOptions) for one out of range; sinceSeconds and limitBytes still apply.
        foreach (var (query, message) in (ValueTuple<string, string>[])[
            ("tailLines=abc", "invalid value \"abc\" for query parameter tailLines"),
            ("tailLines=-5", "PodLogOptions \"ticker\" is invalid: tailLines: Invalid value: -5: must be greater than or equal to 0"),
            ("limitBytes=0", "limitBytes: Invalid value: 0: must be greater than 0"),
            ("sinceSeconds=0", "sinceSeconds: Invalid value: 0: must be greater than 0"),
            ("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z", "at most one of `sinceTime` or `sinceSeconds` may be specified"),
            ("sinceTime=yesterday", "invalid value \"yesterday\" for query parameter sinceTime")])
        {
            var (bad, _, badErr) = await node.KubectlAsync("get", "--raw", $"/api/v1/namespaces/default/pods/ticker/log?container=tick&{query}");
            Assert.NotEqual(0, bad);
            Assert.Contains(message, badErr);
        }
        Assert.Equal("first", await node.Kubectl("get", "--raw", "/api/v1/namespaces/default/pods/ticker/log?container=tick&limitBytes=5&sinceSeconds=3600"));

        // -f streams new lines as they are written.
        var psi = new System.Diagnostics.ProcessStartInfo("kubectl", ["logs", "-f", "ticker", "-c", "tick", "-n", "default", "--tail=1"]) { RedirectStandardOutput = true };
        psi.Environment["KUBECONFIG"] = node.AdminKubeconfig;
        using var follow = System.Diagnostics.Process.Start(psi)!;
        var lines = new List<string>();
        follow.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
        follow.BeginOutputReadLine();
        await node.WaitForAsync("kubectl logs -f shows new ticks", () => { lock (lines) return Task.FromResult(lines.Count >= 3); }, TimeSpan.FromSeconds(15));
        follow.Kill();
        lock (lines) Assert.All(lines, l => Assert.StartsWith("tick", l));

        // --previous: the crashing container's last instance.
        await node.WaitForAsync("crash restarted", async () =>
            (await node.KubectlAsync("get", "pod", "ticker", "-n", "default", "-o", "jsonpath={.status.containerStatuses[?(@.name==\"crash\")].restartCount}")).Out is { Length: > 0 } rc && rc != "0",
            TimeSpan.FromSeconds(60));
        Assert.StartsWith("attempt-", await node.Kubectl("logs", "ticker", "-c", "crash", "-n", "default", "--previous"));
        await node.Kubectl("delete", "pod", "ticker", "-n", "default", "--wait=true", "--timeout=30s");
    }

    [Fact]
    public async Task PodsKeepRunningWhileTheControlPlaneIsDownAndAcrossAgentRestarts()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "api-steady.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: steady, namespace: default}
            spec:
              nodeName: NODE
              terminationGracePeriodSeconds: 1
              containers:
              - {name: app, image: busybox:1.36, command: [sleep, "3600"]}
            """.Replace("NODE", NodeFixture.NodeName, StringComparison.Ordinal));
        await node.Kubectl("apply", "-f", file);
        string Id(string json) => System.Text.Json.Nodes.JsonNode.Parse(json)!["status"]!["containerStatuses"]![0]!["containerID"]!.GetValue<string>();
        string podJson = "";
        await node.WaitForAsync("steady running", async () =>
        {
            var (code, o, _) = await node.KubectlAsync("get", "pod", "steady", "-n", "default", "-o", "json");
            podJson = o;
            return code == 0 && o.Contains("\"phase\": \"Running\"");
        }, TimeSpan.FromSeconds(60));
        string containerId = Id(podJson);

        try
        {
            // The control plane goes away for 60 s: the pod keeps running untouched.
            await node.StopApiServerAsync();
            await Task.Delay(TimeSpan.FromSeconds(60));
            var during = (await node.GetPodsAsync()).Items.Single(p => p.Metadata.Name == "steady");
            Assert.Equal("Running", during.Status!.Phase);
            Assert.Equal(containerId, during.Status.ContainerStatuses![0].ContainerID);
            await node.StartApiServerAsync();
            // ... and when it is back the agent catches up: the node is Ready, status still flows.
            await node.WaitForAsync("node Ready again after the outage", async () =>
                (await node.KubectlAsync("get", "node", NodeFixture.NodeName, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")).Out == "True", TimeSpan.FromSeconds(30));
            await node.Kubectl("label", "pod", "steady", "-n", "default", "after=outage");
            await node.WaitForAsync("the agent sees the pod again (labels)", async () =>
                (await node.GetPodsAsync()).Items.Any(p => p.Metadata.Name == "steady" && p.Metadata.Labels?.GetValueOrDefault("after") == "outage"), TimeSpan.FromSeconds(45));

            // SIGKILL the agent and start it again: same container, no restart.
            await node.StopAgentAsync(9);
            node.StartAgent();
            await node.WaitForAsync("agent healthy", async () => await node.Healthz() == "ok", TimeSpan.FromSeconds(30));
            await Task.Delay(3000);
            var after = System.Text.Json.Nodes.JsonNode.Parse(await node.Kubectl("get", "pod", "steady", "-n", "default", "-o", "json"))!;
            Assert.Equal(containerId, after["status"]!["containerStatuses"]![0]!["containerID"]!.GetValue<string>());
            Assert.Equal(0, after["status"]!["containerStatuses"]![0]!["restartCount"]!.GetValue<int>());
        }
        finally
        {
            // Never leave the API down or the pod behind for the tests that follow.
            if ((await node.KubectlAsync("get", "--raw", "/readyz")).Code != 0) await node.StartApiServerAsync();
            await node.KubectlAsync("delete", "pod", "steady", "-n", "default", "--wait=true", "--timeout=30s");
        }
    }

    [Fact]
    public async Task EnvComesFromConfigMapsAndSecretsInTheApi()
    {
        node.RequireReady();
        await node.Kubectl("create", "configmap", "env-cfg", "-n", "default", "--from-literal=mode=fast", "--from-literal=level=3");
        await node.Kubectl("create", "secret", "generic", "env-sec", "-n", "default", "--from-literal=password=hunter2");
        string file = Path.Combine(node.Work, "api-env.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: envpod, namespace: default}
            spec:
              nodeName: NODE
              restartPolicy: Never
              containers:
              - name: show
                image: busybox:1.36
                command: [sh, -c, 'echo MODE=$MODE PW=$PW CFG_level=$CFG_level OPT=${OPT:-unset}']
                envFrom: [{prefix: CFG_, configMapRef: {name: env-cfg}}]
                env:
                - {name: MODE, valueFrom: {configMapKeyRef: {name: env-cfg, key: mode}}}
                - {name: PW, valueFrom: {secretKeyRef: {name: env-sec, key: password}}}
                - {name: OPT, valueFrom: {configMapKeyRef: {name: nowhere, key: x, optional: true}}}
            """.Replace("NODE", NodeFixture.NodeName, StringComparison.Ordinal));
        await node.Kubectl("apply", "-f", file);
        await node.WaitForAsync("envpod Succeeded", async () =>
            (await node.KubectlAsync("get", "pod", "envpod", "-n", "default", "-o", "jsonpath={.status.phase}")).Out == "Succeeded", TimeSpan.FromSeconds(60));
        Assert.Equal("MODE=fast PW=hunter2 CFG_level=3 OPT=unset\n", await node.Kubectl("logs", "envpod", "-n", "default"));

        // A missing key keeps the container from starting, with the kubelet's reason and message.
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: badenv, namespace: default}
            spec:
              nodeName: NODE
              containers:
              - name: show
                image: busybox:1.36
                command: [sleep, "3600"]
                env: [{name: X, valueFrom: {configMapKeyRef: {name: env-cfg, key: nokey}}}]
            """.Replace("NODE", NodeFixture.NodeName, StringComparison.Ordinal));
        await node.Kubectl("apply", "-f", file);
        await node.WaitForAsync("badenv waits with CreateContainerConfigError", async () =>
            (await node.KubectlAsync("get", "pod", "badenv", "-n", "default", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}: {.status.containerStatuses[0].state.waiting.message}")).Out
                == "CreateContainerConfigError: couldn't find key nokey in ConfigMap default/env-cfg", TimeSpan.FromSeconds(30));
        await node.Kubectl("delete", "pod", "envpod", "badenv", "-n", "default", "--wait=true", "--timeout=40s");
    }

    [Fact]
    public async Task ConfigMapAndSecretVolumesAppearAndTheConfigMapUpdatesInPlace()
    {
        node.RequireReady();
        string cm = Path.Combine(node.Work, "vol-cm.yaml");
        await File.WriteAllTextAsync(cm, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vol-cfg, namespace: default}\ndata: {greeting: hello, other: x}\n");
        await node.Kubectl("apply", "-f", cm);
        await node.Kubectl("create", "secret", "generic", "vol-sec", "-n", "default", "--from-literal=token=s3cr3t");
        string file = Path.Combine(node.Work, "api-vol.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: volpod, namespace: default}
            spec:
              nodeName: NODE
              terminationGracePeriodSeconds: 1
              containers:
              - name: app
                image: busybox:1.36
                command: [sleep, "3600"]
                volumeMounts:
                - {name: cfg, mountPath: /etc/cfg}
                - {name: sec, mountPath: /etc/sec, readOnly: true}
                - {name: one, mountPath: /etc/one}
              volumes:
              - {name: cfg, configMap: {name: vol-cfg}}
              - {name: sec, secret: {secretName: vol-sec, defaultMode: 0400}}
              - {name: one, configMap: {name: vol-cfg, items: [{key: greeting, path: sub/hello.txt}]}}
            """.Replace("NODE", NodeFixture.NodeName, StringComparison.Ordinal));
        await node.Kubectl("apply", "-f", file);
        await node.WaitForAsync("volpod running", async () =>
            (await node.KubectlAsync("get", "pod", "volpod", "-n", "default", "-o", "jsonpath={.status.phase}")).Out == "Running", TimeSpan.FromSeconds(60));
        var pod = (await node.GetPodsAsync()).Items.Single(p => p.Metadata.Name == "volpod");
        string uid = pod.Metadata.Uid!;
        string cfgDir = Path.Combine(node.RootDir, "pods", uid, "volumes", "kubernetes.io~configmap", "cfg");
        Assert.Equal("hello", File.ReadAllText(Path.Combine(cfgDir, "greeting")));
        Assert.Equal("..data/greeting", new FileInfo(Path.Combine(cfgDir, "greeting")).LinkTarget);
        string secFile = Path.Combine(node.RootDir, "pods", uid, "volumes", "kubernetes.io~secret", "sec", "token");
        Assert.Equal("s3cr3t", File.ReadAllText(secFile));
        Assert.Equal(UnixFileMode.UserRead, File.GetUnixFileMode(Path.Combine(Path.GetDirectoryName(secFile)!, "..data", "token")));
        Assert.Contains(Path.GetDirectoryName(secFile)!, File.ReadAllText("/proc/self/mounts"));
        Assert.Equal("hello", File.ReadAllText(Path.Combine(node.RootDir, "pods", uid, "volumes", "kubernetes.io~configmap", "one", "sub", "hello.txt")));

        // kubectl apply of a changed ConfigMap: the file changes in place (same pod, same container).
        await File.WriteAllTextAsync(cm, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vol-cfg, namespace: default}\ndata: {greeting: bonjour}\n");
        await node.Kubectl("apply", "-f", cm);
        await node.WaitForAsync("the configMap volume updated", () =>
            Task.FromResult(File.ReadAllText(Path.Combine(cfgDir, "greeting")) == "bonjour" && !File.Exists(Path.Combine(cfgDir, "other"))), TimeSpan.FromSeconds(60));
        var again = (await node.GetPodsAsync()).Items.Single(p => p.Metadata.Name == "volpod");
        Assert.Equal(pod.Status!.ContainerStatuses![0].ContainerID, again.Status!.ContainerStatuses![0].ContainerID);
        await node.Kubectl("delete", "pod", "volpod", "-n", "default", "--wait=true", "--timeout=40s");
    }

    [Fact]
    public async Task ProjectedTokenAndDownwardApiVolumesAreWrittenAndFollowThePod()
    {
        node.RequireReady();
        await node.Kubectl("create", "serviceaccount", "robot", "-n", "default");
        await node.Kubectl("create", "configmap", "trust", "-n", "default", "--from-literal=ca.crt=CERT");
        string file = Path.Combine(node.Work, "api-projected.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: projpod, namespace: default, labels: {app: proj, tier: web}, annotations: {build: "7", note: 'say "hi"'}}
            spec:
              nodeName: NODE
              serviceAccountName: robot
              terminationGracePeriodSeconds: 1
              containers:
              - name: app
                image: busybox:1.36
                command: [sleep, "3600"]
                resources: {limits: {memory: 64Mi}}
                volumeMounts:
                - {name: access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
                - {name: info, mountPath: /etc/podinfo}
              volumes:
              - name: access
                projected:
                  sources:
                  - serviceAccountToken: {path: token, expirationSeconds: 3607}
                  - configMap: {name: trust, items: [{key: ca.crt, path: ca.crt}]}
                  - downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]}
              - name: info
                downwardAPI:
                  items:
                  - {path: labels, fieldRef: {fieldPath: metadata.labels}}
                  - {path: build, fieldRef: {fieldPath: "metadata.annotations['build']"}}
                  - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
                  - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
            """.Replace("NODE", NodeFixture.NodeName, StringComparison.Ordinal));
        await node.Kubectl("apply", "-f", file);
        try
        {
            await node.WaitForAsync("projpod running", async () =>
                (await node.KubectlAsync("get", "pod", "projpod", "-n", "default", "-o", "jsonpath={.status.phase}")).Out == "Running", TimeSpan.FromSeconds(60));
            string Cat(string path) => node.Kubectl("exec", "projpod", "-n", "default", "--", "cat", path).GetAwaiter().GetResult();
            string token = Cat("/var/run/secrets/kubernetes.io/serviceaccount/token");
            Assert.Equal(3, token.Split('.').Length);
            Assert.Equal("CERT", Cat("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"));
            Assert.Equal("default", Cat("/var/run/secrets/kubernetes.io/serviceaccount/namespace"));
            // The token is bound to the pod and authenticates as the service account.
            string empty = Path.Combine(node.Work, "empty.kubeconfig");
            await File.WriteAllTextAsync(empty, "apiVersion: v1\nkind: Config\n");
            var who = await node.Kubectl("auth", "whoami", "--kubeconfig", empty, "--server", $"https://127.0.0.1:{node.ApiPort}",
                "--certificate-authority", Path.Combine(node.ControlPlaneDir, "pki", "ca.crt"), "--token", token, "-o", "jsonpath={.status.userInfo.username}");
            Assert.Equal("system:serviceaccount:default:robot", who);
            Assert.Equal("app=\"proj\"\ntier=\"web\"", Cat("/etc/podinfo/labels"));
            Assert.Contains("note=\"say \\\"hi\\\"\"", Cat("/etc/podinfo/annotations"));
            Assert.Equal("7", Cat("/etc/podinfo/build"));
            Assert.Equal("64", Cat("/etc/podinfo/mem"));
            // Secrets and tokens stay off the disk.
            var pod = (await node.GetPodsAsync()).Items.Single(p => p.Metadata.Name == "projpod");
            string dir = Path.Combine(node.RootDir, "pods", pod.Metadata.Uid!, "volumes", "kubernetes.io~projected", "access");
            Assert.Contains(dir, File.ReadAllText("/proc/self/mounts"));

            // A label change reaches the running container in place.
            await node.Kubectl("label", "pod", "projpod", "-n", "default", "extra=yes");
            await node.WaitForAsync("labels file updated", async () =>
                (await node.KubectlAsync("exec", "projpod", "-n", "default", "--", "cat", "/etc/podinfo/labels")).Out.Contains("extra=\"yes\""), TimeSpan.FromSeconds(60));
            var again = (await node.GetPodsAsync()).Items.Single(p => p.Metadata.Name == "projpod");
            Assert.Equal(pod.Status!.ContainerStatuses![0].ContainerID, again.Status!.ContainerStatuses![0].ContainerID);
        }
        finally
        {
            await node.KubectlAsync("delete", "pod", "projpod", "-n", "default", "--wait=true", "--timeout=40s");
            await node.KubectlAsync("delete", "serviceaccount", "robot", "-n", "default");
            await node.KubectlAsync("delete", "configmap", "trust", "-n", "default");
        }
    }

    [Fact]
    public async Task PodsTheNodeCannotTakeAreRejectedWithAFailedStatusAndNeverStart()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "api-rejected.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: wrong-node, namespace: default}
            spec:
              nodeName: NODE
              nodeSelector: {disktype: none-here}
              containers: [{name: c, image: busybox:1.36, command: [sleep, "3600"]}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: too-big, namespace: default}
            spec:
              nodeName: NODE
              containers: [{name: c, image: busybox:1.36, command: [sleep, "3600"], resources: {requests: {cpu: "10000"}}}]
            """.Replace("NODE", NodeFixture.NodeName, StringComparison.Ordinal));
        await node.Kubectl("apply", "-f", file);
        try
        {
            foreach (var (name, reason, message) in new[]
            {
                ("wrong-node", "NodeAffinity", "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"),
                ("too-big", "OutOfcpu", "Pod was rejected: Node didn't have enough resource: cpu, requested: 10000000, used: "),
            })
            {
                await node.WaitForAsync($"{name} Failed with {reason}", async () =>
                    (await node.KubectlAsync("get", "pod", name, "-n", "default", "-o", "jsonpath={.status.phase}/{.status.reason}")).Out == $"Failed/{reason}",
                    TimeSpan.FromSeconds(30));
                Assert.StartsWith(message, await node.Kubectl("get", "pod", name, "-n", "default", "-o", "jsonpath={.status.message}"));
                await node.WaitForAsync($"{name} event", async () =>
                    (await node.KubectlAsync("describe", "pod", name, "-n", "default")).Out.Contains(reason), TimeSpan.FromSeconds(20));
                var uid = await node.Kubectl("get", "pod", name, "-n", "default", "-o", "jsonpath={.metadata.uid}");
                Assert.Equal((0, 0), await node.RuntimeObjectsAsync(uid));
            }
        }
        finally
        {
            var (code, o, e) = await node.KubectlAsync("delete", "-f", file, "--wait=true", "--timeout=30s");
            Assert.True(code == 0, o + e);
        }
    }

    [Fact]
    public async Task StaticPodsGetMirrorPodsWithTheirStatusAndLoseThemWhenRemoved()
    {
        node.RequireReady();
        node.WriteManifest("mirrored.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: mirrored, namespace: kube-system, labels: {tier: control}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: app, image: busybox:1.36, command: [sleep, \"3600\"]}\n");
        string name = $"mirrored-{NodeFixture.NodeName}";
        await node.WaitForAsync("mirror pod Running in the API", async () =>
            (await node.KubectlAsync("get", "pod", name, "-n", "kube-system", "-o", "jsonpath={.status.phase}")).Out == "Running", TimeSpan.FromSeconds(60));
        var mirror = System.Text.Json.Nodes.JsonNode.Parse(await node.Kubectl("get", "pod", name, "-n", "kube-system", "-o", "json"))!;
        Assert.NotNull(mirror["metadata"]!["annotations"]!["kubernetes.io/config.mirror"]);
        Assert.Equal("Node", mirror["metadata"]!["ownerReferences"]![0]!["kind"]!.GetValue<string>());
        Assert.Equal(NodeFixture.NodeName, mirror["spec"]!["nodeName"]!.GetValue<string>());
        Assert.Equal("control", mirror["metadata"]!["labels"]!["tier"]!.GetValue<string>());
        // Deleting a mirror pod does not stop the static pod: the agent creates the mirror again.
        string uid = mirror["metadata"]!["uid"]!.GetValue<string>();
        await node.Kubectl("delete", "pod", name, "-n", "kube-system", "--wait=false");
        await node.WaitForAsync("mirror pod created again", async () =>
        {
            var (code, o, _) = await node.KubectlAsync("get", "pod", name, "-n", "kube-system", "-o", "jsonpath={.metadata.uid}/{.status.phase}");
            return code == 0 && !o.StartsWith(uid, StringComparison.Ordinal) && o.EndsWith("/Running", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(30));
        await node.RemoveAllAsync("mirrored.yaml");
        await node.WaitForAsync("mirror pod deleted", async () =>
            (await node.KubectlAsync("get", "pod", name, "-n", "kube-system")).Code != 0, TimeSpan.FromSeconds(30));
    }
}
