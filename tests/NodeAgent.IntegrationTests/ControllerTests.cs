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

    [Fact]
    public async Task ADeploymentRollsOutUpdatesAndRollsBackWithKubectlRollout()
    {
        node.RequireReady();
        // sh traps SIGTERM so old pods end at once (an httpd as PID 1 would ignore it for the whole grace period).
        await node.Kubectl("create", "deployment", "roll", "--image=busybox:1.36", "--replicas=2", "--", "sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 & wait");
        try
        {
            async Task RolledOut()
            {
                var (code, o, e) = await node.KubectlAsync("rollout", "status", "deployment/roll", "--timeout=90s");
                Assert.True(code == 0, o + e + "\n" + NodeFixture.Tail(node.ControlPlaneLog, 30));
                Assert.Contains("successfully rolled out", o);
            }
            async Task<string[]> Env() => (await node.Kubectl("get", "pods", "-l", "app=roll", "--field-selector=status.phase=Running",
                "-o", "jsonpath={range .items[*]}{.spec.containers[0].env[0].value}|{end}")).Split('|', StringSplitOptions.RemoveEmptyEntries);

            await RolledOut();
            Assert.Equal("2/2", await node.Kubectl("get", "deployment", "roll", "-o", "jsonpath={.status.readyReplicas}/{.status.updatedReplicas}"));
            Assert.Matches(@"roll\s+2/2\s+2\s+2", await node.Kubectl("get", "deployment", "roll"));

            // A template change rolls out a second ReplicaSet; the first is scaled to zero.
            await node.Kubectl("set", "env", "deployment/roll", "RELEASE=two");
            await RolledOut();
            await node.WaitForAsync("only the new pods remain", async () =>
            {
                var env = await Env();
                return env.Length == 2 && env.All(v => v == "two")
                    && (await node.KubectlAsync("get", "pods", "-l", "app=roll", "-o", "name")).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length == 2;
            }, TimeSpan.FromSeconds(60));
            var sets = await node.Kubectl("get", "rs", "-l", "app=roll", "-o", "jsonpath={range .items[*]}{.metadata.annotations.deployment\\.kubernetes\\.io/revision}:{.spec.replicas} {end}");
            Assert.Equal(["1:0", "2:2"], sets.Split(' ', StringSplitOptions.RemoveEmptyEntries).Order().ToArray());
            var history = await node.Kubectl("rollout", "history", "deployment/roll");
            Assert.Matches(@"(?m)^1\s", history);
            Assert.Matches(@"(?m)^2\s", history);

            // rollout undo: the first template comes back, in its old ReplicaSet, as revision 3.
            await node.Kubectl("rollout", "undo", "deployment/roll");
            await RolledOut();
            await node.WaitForAsync("the old pods are back", async () =>
            {
                var names = (await node.KubectlAsync("get", "pods", "-l", "app=roll", "-o", "name")).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                return names.Length == 2 && (await Env()).Length == 0;
            }, TimeSpan.FromSeconds(60));
            sets = await node.Kubectl("get", "rs", "-l", "app=roll", "-o", "jsonpath={range .items[*]}{.metadata.annotations.deployment\\.kubernetes\\.io/revision}:{.spec.replicas} {end}");
            Assert.Equal(["2:0", "3:2"], sets.Split(' ', StringSplitOptions.RemoveEmptyEntries).Order().ToArray());
        }
        finally
        {
            await node.KubectlAsync("delete", "deployment", "roll", "--wait=true", "--timeout=30s");
            await node.KubectlAsync("delete", "rs", "-l", "app=roll", "--wait=true", "--timeout=30s");
            await node.KubectlAsync("delete", "pods", "-l", "app=roll", "--wait=true", "--timeout=30s");
        }
    }

    private async Task<string[]> Names(string kind, string selector, string ns = "default") =>
        (await node.Kubectl("get", kind, "-n", ns, "-l", selector, "-o", "name")).Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public async Task DeletingADeploymentCascadesInTheBackgroundAndTheForegroundOrOrphans()
    {
        node.RequireReady();
        async Task Create()
        {
            await node.Kubectl("create", "deployment", "casc", "--image=busybox:1.36", "--replicas=2", "--", "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait");
            await node.WaitForAsync("2 pods of casc", async () => (await Names("pods", "app=casc")).Length == 2, TimeSpan.FromSeconds(60));
        }
        try
        {
            // Orphan: the ReplicaSet and its pods stay, without the reference to the deleted owner.
            await Create();
            await node.Kubectl("delete", "deployment", "casc", "--cascade=orphan", "--timeout=30s");
            Assert.NotEqual(0, (await node.KubectlAsync("get", "deployment", "casc")).Code);
            var rs = Assert.Single(await Names("rs", "app=casc"));
            Assert.Equal("", await node.Kubectl("get", rs, "-o", "jsonpath={.metadata.ownerReferences}"));
            Assert.Equal(2, (await Names("pods", "app=casc")).Length);

            // Foreground: kubectl's wait ends only after the pods are gone, then the ReplicaSet.
            await node.Kubectl("delete", rs, "--cascade=foreground", "--timeout=60s");
            Assert.Empty(await Names("rs", "app=casc"));
            Assert.Empty(await Names("pods", "app=casc"));

            // Background (kubectl's default): the Deployment goes at once, its ReplicaSet and pods after it.
            await Create();
            await node.Kubectl("delete", "deployment", "casc", "--wait=false");
            await node.WaitForAsync("the ReplicaSet and pods collected", async () =>
                (await Names("rs", "app=casc")).Length == 0 && (await Names("pods", "app=casc")).Length == 0, TimeSpan.FromSeconds(60));
        }
        finally
        {
            await node.KubectlAsync("delete", "deployment", "casc", "--wait=true", "--timeout=30s");
            await node.KubectlAsync("delete", "rs,pods", "-l", "app=casc", "--wait=true", "--timeout=30s");
        }
    }

    [Fact]
    public async Task DeletingANamespaceRemovesEverythingInItThenTheNamespace()
    {
        node.RequireReady();
        await node.Kubectl("create", "namespace", "gone");
        try
        {
            await node.Kubectl("create", "deployment", "inside", "-n", "gone", "--image=busybox:1.36", "--", "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait");
            await node.Kubectl("create", "configmap", "settings", "-n", "gone", "--from-literal=a=b");
            await node.WaitForAsync("the pod in the namespace running", async () =>
                (await node.KubectlAsync("get", "pods", "-n", "gone", "--field-selector=status.phase=Running", "-o", "name")).Out.Contains("pod/inside-"),
                TimeSpan.FromSeconds(60));

            var (code, o, e) = await node.KubectlAsync("delete", "namespace", "gone", "--timeout=90s");
            Assert.True(code == 0, o + e + "\n" + NodeFixture.Tail(node.ControlPlaneLog, 30));
            var (getCode, _, err) = await node.KubectlAsync("get", "namespace", "gone");
            Assert.NotEqual(0, getCode);
            Assert.Contains("NotFound", err);
            Assert.DoesNotContain("gone", await node.Kubectl("get", "pods,rs,deployments,configmaps", "-A", "-o", "jsonpath={.items[*].metadata.namespace}"));
        }
        finally
        {
            await node.KubectlAsync("delete", "namespace", "gone", "--timeout=60s");
        }
    }

    [Fact]
    public async Task AServiceGetsEndpointSlicesOfExactlyItsReadyPodsWithinASecondOfAChange()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "eps.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Service
            metadata: {name: eps, namespace: default, labels: {team: a}}
            spec:
              selector: {app: eps}
              ports: [{port: 80, targetPort: web}]
            ---
            apiVersion: apps/v1
            kind: ReplicaSet
            metadata: {name: eps, namespace: default}
            spec:
              replicas: 2
              selector: {matchLabels: {app: eps}}
              template:
                metadata: {labels: {app: eps}}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: httpd
                    image: busybox:1.36
                    command: [sh, -c, "touch /tmp/ready; trap 'exit 0' TERM; httpd -f -p 8080 & wait"]
                    ports: [{name: web, containerPort: 8080}]
                    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1}
            """);
        await node.Kubectl("apply", "-f", file);
        var watches = new List<System.Diagnostics.Process>();
        try
        {
            const string Endpoints = "jsonpath={range .items[*]}{range .endpoints[*]}{.targetRef.name}={.conditions.ready} {end}{end}";
            async Task<string[]> SliceEndpoints() => (await node.Kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=eps", "-o", Endpoints))
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).Order().ToArray();
            string[] pods = [];
            await node.WaitForAsync("both pods ready in the slice", async () =>
            {
                pods = await node.ReadyPodsAsync("app=eps");
                return pods.Length == 2 && (await SliceEndpoints()).SequenceEqual(pods.Select(p => p + "=true"));
            }, TimeSpan.FromSeconds(90));

            var slice = System.Text.Json.Nodes.JsonNode.Parse(await node.Kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=eps", "-o", "json"))!["items"]![0]!;
            Assert.Equal("endpointslice-controller.k8s.io", slice["metadata"]!["labels"]!["endpointslice.kubernetes.io/managed-by"]!.GetValue<string>());
            Assert.Equal("a", slice["metadata"]!["labels"]!["team"]!.GetValue<string>());
            Assert.Equal("Service/eps", slice["metadata"]!["ownerReferences"]![0]!["kind"] + "/" + slice["metadata"]!["ownerReferences"]![0]!["name"]);
            Assert.NotNull(slice["metadata"]!["annotations"]!["endpoints.kubernetes.io/last-change-trigger-time"]);
            Assert.Equal("IPv4", slice["addressType"]!.GetValue<string>());
            Assert.Equal(8080, slice["ports"]![0]!["port"]!.GetValue<int>()); // the named targetPort, resolved in the pod
            Assert.All(slice["endpoints"]!.AsArray(), e => Assert.Equal(NodeFixture.NodeName, e!["nodeName"]!.GetValue<string>()));
            var endpoints = System.Text.Json.Nodes.JsonNode.Parse(await node.Kubectl("get", "endpoints", "eps", "-o", "json"))!;
            Assert.Equal(2, endpoints["subsets"]![0]!["addresses"]!.AsArray().Count);
            Assert.Equal(8080, endpoints["subsets"]![0]!["ports"]![0]!["port"]!.GetValue<int>());

            // Readiness lost: the slice follows the pod's Ready condition within a second. Both are
            // watched through the same API server, so the gap between the two sightings is the controller's.
            string victim = pods[0];
            using var api = new NodeAgent.Api.Client.ApiClient(NodeAgent.Api.Client.ClientConfig.FromKubeconfig(node.AdminKubeconfig), "controller-tests");
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            async Task<TimeSpan> Seen(string path, Func<System.Text.Json.Nodes.JsonObject, bool> condition)
            {
                await foreach (var (_, obj) in api.WatchAsync(path, stop.Token))
                    if (condition(obj)) return clock.Elapsed;
                throw new InvalidOperationException($"the watch of {path} ended");
            }
            static bool NotReady(System.Text.Json.Nodes.JsonNode? conditions) =>
                conditions?.AsArray().Any(c => c!["type"]!.GetValue<string>() == "Ready" && c["status"]!.GetValue<string>() == "False") == true;
            var podSeen = Seen($"/api/v1/namespaces/default/pods?watch=true&fieldSelector=metadata.name%3D{victim}", p => NotReady(p["status"]?["conditions"]));
            var sliceSeen = Seen("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?watch=true&labelSelector=kubernetes.io%2Fservice-name%3Deps",
                s => s["endpoints"]?.AsArray().Any(e => e!["targetRef"]!["name"]!.GetValue<string>() == victim && e["conditions"]!["ready"]!.GetValue<bool>() == false) == true);
            await Task.Delay(500); // both watches established
            await node.Kubectl("exec", victim, "--", "rm", "/tmp/ready");
            var lag = await sliceSeen - await podSeen;
            Assert.True(lag < TimeSpan.FromSeconds(1), $"the slice changed {lag.TotalMilliseconds:F0} ms after the pod");
            Assert.Equal([victim + "=false", pods[1] + "=true"], await SliceEndpoints());
            Assert.Contains("notReadyAddresses", await node.Kubectl("get", "endpoints", "eps", "-o", "json"));

            // A pod going away leaves the slice; the Service going away takes its slices and Endpoints.
            await node.Kubectl("scale", "rs", "eps", "--replicas=0");
            await node.WaitForAsync("no endpoints left", async () => (await SliceEndpoints()).Length == 0, TimeSpan.FromSeconds(60));
            await node.Kubectl("delete", "service", "eps");
            await node.WaitForAsync("slices and Endpoints gone", async () =>
                (await node.Kubectl("get", "endpointslices,endpoints", "-l", "kubernetes.io/service-name=eps", "-o", "name")).Trim().Length == 0
                && (await node.KubectlAsync("get", "endpoints", "eps")).Code != 0, TimeSpan.FromSeconds(30));
        }
        finally
        {
            foreach (var w in watches) { try { w.Kill(); } catch (InvalidOperationException) { } w.Dispose(); }
            await node.KubectlAsync("delete", "-f", file, "--wait=true", "--timeout=30s");
            await node.KubectlAsync("delete", "pods", "-l", "app=eps", "--wait=true", "--timeout=30s");
        }
    }

    [Fact]
    public async Task ANodeThatStopsRenewingItsLeaseGoesNotReadyAndItsPodsAreRecreatedElsewhere()
    {
        node.RequireReady();
        // A second node whose heartbeat the test controls: it reports Ready once, then falls silent.
        string now = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        string file = Path.Combine(node.Work, "ghost.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Node
            metadata: {name: ghost, labels: {kubernetes.io/hostname: ghost}}
            ---
            apiVersion: coordination.k8s.io/v1
            kind: Lease
            metadata: {name: ghost, namespace: kube-node-lease}
            spec: {holderIdentity: ghost, leaseDurationSeconds: 40, renewTime: "NOW.000000Z"}
            """.Replace("NOW", now[..^1]));
        try
        {
            await node.Kubectl("apply", "-f", file);
            await node.Kubectl("patch", "node", "ghost", "--subresource=status", "--type=merge", "-p", """
                {"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","lastHeartbeatTime":"NOW","lastTransitionTime":"NOW"}],
                 "capacity":{"cpu":"4","memory":"8Gi","pods":"110"},"allocatable":{"cpu":"4","memory":"8Gi","pods":"110"}}}
                """.Replace("NOW", now));
            // Only the ghost takes new pods for a moment.
            await node.Kubectl("cordon", NodeFixture.NodeName);
            string deployment = Path.Combine(node.Work, "moving.yaml");
            await File.WriteAllTextAsync(deployment, """
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: moving, namespace: default}
                spec:
                  replicas: 1
                  selector: {matchLabels: {app: moving}}
                  template:
                    metadata: {labels: {app: moving}}
                    spec:
                      terminationGracePeriodSeconds: 1
                      tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}]
                      containers: [{name: c, image: "busybox:1.36", command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]}]
                """);
            await node.Kubectl("create", "-f", deployment);
            await node.WaitForAsync("the pod bound to ghost", async () =>
                (await node.KubectlAsync("get", "pods", "-l", "app=moving", "-o", "jsonpath={.items[*].spec.nodeName}")).Out == "ghost", TimeSpan.FromSeconds(30));
            string first = (await node.Kubectl("get", "pods", "-l", "app=moving", "-o", "jsonpath={.items[0].metadata.name}")).Trim();
            var tolerations = await node.Kubectl("get", "pod", first, "-o", "jsonpath={range .spec.tolerations[*]}{.key}={.tolerationSeconds} {end}");
            Assert.Contains("node.kubernetes.io/not-ready=300", tolerations); // DefaultTolerationSeconds
            Assert.Contains("node.kubernetes.io/unreachable=2", tolerations);
            await node.Kubectl("uncordon", NodeFixture.NodeName);

            // 40 s without a heartbeat: Unknown, tainted, the pod evicted after its 2 s and replaced on the live node.
            await node.WaitForAsync("ghost NotReady and tainted", async () =>
                (await node.KubectlAsync("get", "node", "ghost", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.spec.taints[*].key}")).Out
                    is var o && o.StartsWith("Unknown", StringComparison.Ordinal) && o.Contains("node.kubernetes.io/unreachable"), TimeSpan.FromSeconds(75));
            Assert.Matches(@"ghost\s+NotReady", await node.Kubectl("get", "node", "ghost"));
            await node.WaitForAsync("the pod recreated on the live node", async () =>
            {
                var pods = (await node.KubectlAsync("get", "pods", "-l", "app=moving", "--field-selector=status.phase=Running", "-o",
                    "jsonpath={range .items[*]}{.metadata.name}@{.spec.nodeName} {end}")).Out.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return pods.Length == 1 && pods[0].EndsWith("@" + NodeFixture.NodeName, StringComparison.Ordinal);
            }, TimeSpan.FromSeconds(60));
            Assert.NotEqual("", await node.Kubectl("get", "pod", first, "-o", "jsonpath={.metadata.deletionTimestamp}"));
            Assert.Contains("TaintManagerEviction", await node.Kubectl("get", "events", "--field-selector", "involvedObject.name=" + first));
        }
        finally
        {
            await node.KubectlAsync("uncordon", NodeFixture.NodeName);
            await node.KubectlAsync("delete", "deployment", "moving", "--wait=false");
            await node.KubectlAsync("delete", "-f", file, "--wait=false");
            await node.KubectlAsync("delete", "pods", "-l", "app=moving", "--grace-period=0", "--force");
        }
    }

    [Fact]
    public async Task ADaemonSetRunsOnePodPerEligibleNodeAndRollsOutUpdates()
    {
        node.RequireReady();
        string now = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        string file = Path.Combine(node.Work, "ds.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: apps/v1
            kind: DaemonSet
            metadata: {name: agentd, namespace: default}
            spec:
              selector: {matchLabels: {app: agentd}}
              template:
                metadata: {labels: {app: agentd}}
                spec:
                  nodeSelector: {it: "true"}
                  terminationGracePeriodSeconds: 1
                  containers: [{name: c, image: "busybox:1.36", command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]}]
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: ghost2, labels: {kubernetes.io/hostname: ghost2}}
            """);
        async Task<string> Pods() => (await node.Kubectl("get", "pods", "-l", "app=agentd", "-o",
            "jsonpath={range .items[*]}{.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values[0]}:{.metadata.deletionTimestamp}:{.status.phase} {end}")).Trim();
        try
        {
            await node.Kubectl("apply", "-f", file);
            await node.Kubectl("patch", "node", "ghost2", "--subresource=status", "--type=merge", "-p", """
                {"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","lastHeartbeatTime":"NOW","lastTransitionTime":"NOW"}],
                 "capacity":{"cpu":"4","memory":"8Gi","pods":"110"},"allocatable":{"cpu":"4","memory":"8Gi","pods":"110"}}}
                """.Replace("NOW", now));
            var (code, o, e) = await node.KubectlAsync("rollout", "status", "ds/agentd", "--timeout=60s");
            Assert.True(code == 0, o + e);
            // ghost2 lacks the it=true label: only the agent's node runs one.
            Assert.Equal($"{NodeFixture.NodeName}::Running", await Pods());
            Assert.Equal("1/1/1", await node.Kubectl("get", "ds", "agentd", "-o", "jsonpath={.status.desiredNumberScheduled}/{.status.currentNumberScheduled}/{.status.numberReady}"));

            // Labelled, ghost2 becomes eligible and gets its pod; unlabelled, the pod goes again.
            await node.Kubectl("label", "node", "ghost2", "it=true");
            await node.WaitForAsync("a pod for ghost2", async () => (await Pods()).Contains("ghost2::Pending"), TimeSpan.FromSeconds(30));
            Assert.Equal("ghost2", await node.Kubectl("get", "pods", "-l", "app=agentd", "-o", "jsonpath={.items[?(@.spec.nodeName==\"ghost2\")].spec.nodeName}"));
            Assert.Equal("2", await node.Kubectl("get", "ds", "agentd", "-o", "jsonpath={.status.desiredNumberScheduled}"));
            var tolerations = await node.Kubectl("get", "pods", "-l", "app=agentd", "-o", "jsonpath={.items[0].spec.tolerations[*].key}");
            Assert.Contains("node.kubernetes.io/unschedulable", tolerations);
            Assert.Contains("node.kubernetes.io/unreachable", tolerations);
            await node.Kubectl("label", "node", "ghost2", "it-");
            await node.WaitForAsync("the ghost2 pod deleted", async () => !(await Pods()).Contains("ghost2::"), TimeSpan.FromSeconds(30));
            await node.Kubectl("delete", "pods", "-l", "app=agentd", "--field-selector", "spec.nodeName=ghost2", "--grace-period=0", "--force");

            // A template change rolls the pod on the live node.
            await node.Kubectl("set", "env", "ds/agentd", "V=2");
            (code, o, e) = await node.KubectlAsync("rollout", "status", "ds/agentd", "--timeout=60s");
            Assert.True(code == 0, o + e);
            Assert.Contains("successfully rolled out", o);
            await node.WaitForAsync("only the new pod left", async () => await Pods() == $"{NodeFixture.NodeName}::Running", TimeSpan.FromSeconds(30));
            Assert.Equal("2", await node.Kubectl("get", "pods", "-l", "app=agentd", "-o", "jsonpath={.items[0].spec.containers[0].env[0].value}"));
        }
        finally
        {
            await node.KubectlAsync("delete", "-f", file, "--wait=false");
            await node.KubectlAsync("delete", "pods", "-l", "app=agentd", "--grace-period=0", "--force");
        }
    }

    [Fact]
    public async Task EveryNamespaceGetsADefaultServiceAccountAndTheRootCaAndPodsMountThem()
    {
        node.RequireReady();
        await node.Kubectl("create", "namespace", "sa-test");
        try
        {
            async Task Present(string what) => await node.WaitForAsync(what, async () =>
                (await node.KubectlAsync("get", what, "-n", "sa-test")).Code == 0, TimeSpan.FromSeconds(15));
            await Present("serviceaccount/default");
            await Present("configmap/kube-root-ca.crt");
            Assert.Equal(await File.ReadAllTextAsync(Path.Combine(node.ControlPlaneDir, "pki", "ca.crt")),
                await node.Kubectl("get", "configmap", "kube-root-ca.crt", "-n", "sa-test", "-o", "jsonpath={.data.ca\\.crt}"));

            // Deleted, both come back.
            await node.Kubectl("delete", "serviceaccount", "default", "-n", "sa-test");
            await node.Kubectl("delete", "configmap", "kube-root-ca.crt", "-n", "sa-test");
            await Present("serviceaccount/default");
            await Present("configmap/kube-root-ca.crt");

            // A pod gets the default account and the kube-api-access volume in every container.
            await node.Kubectl("run", "reader", "-n", "sa-test", "--image=busybox:1.36", "--restart=Never", "--",
                "sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo; head -1 /var/run/secrets/kubernetes.io/serviceaccount/ca.crt; cut -c1-3 /var/run/secrets/kubernetes.io/serviceaccount/token");
            Assert.Equal("default", await node.Kubectl("get", "pod", "reader", "-n", "sa-test", "-o", "jsonpath={.spec.serviceAccountName}"));
            Assert.Matches("^kube-api-access-[a-z0-9]{5} /var/run/secrets/kubernetes.io/serviceaccount true$",
                await node.Kubectl("get", "pod", "reader", "-n", "sa-test", "-o", "jsonpath={.spec.volumes[0].name} {.spec.containers[0].volumeMounts[0].mountPath} {.spec.containers[0].volumeMounts[0].readOnly}"));
            await node.WaitForAsync("the pod done", async () =>
                (await node.KubectlAsync("get", "pod", "reader", "-n", "sa-test", "-o", "jsonpath={.status.phase}")).Out == "Succeeded", TimeSpan.FromSeconds(60));
            var lines = (await node.Kubectl("logs", "reader", "-n", "sa-test")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(["sa-test", "-----BEGIN CERTIFICATE-----", "eyJ"], lines);

            // automountServiceAccountToken: false keeps the volume out.
            await node.Kubectl("run", "quiet", "-n", "sa-test", "--image=busybox:1.36", "--restart=Never", "--overrides", """{"spec":{"automountServiceAccountToken":false}}""", "--", "true");
            Assert.Equal("", await node.Kubectl("get", "pod", "quiet", "-n", "sa-test", "-o", "jsonpath={.spec.volumes}"));
        }
        finally
        {
            await node.KubectlAsync("delete", "namespace", "sa-test", "--timeout=60s");
        }
    }

    [Fact]
    public async Task ADeploymentScalesAndRollsANewImageWithoutDroppingBelowItsAvailability()
    {
        node.RequireReady();
        string file = Path.Combine(node.Work, "web.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web, namespace: default}
            spec:
              replicas: 3
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: httpd
                    image: busybox:1.36
                    command: [sh, -c, "trap 'exit 0' TERM; httpd -f -p 8080 & wait"]
                    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
            """);
        // A second tag of the local image, for kubectl set image.
        using var tag = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ctr", ["-a", node.Socket, "-n", "k8s.io", "images", "tag", "--force",
            "docker.io/library/busybox:1.36", "docker.io/library/busybox:1.37"]) { RedirectStandardOutput = true })!;
        await tag.WaitForExitAsync();
        Assert.Equal(0, tag.ExitCode);
        using var api = new NodeAgent.Api.Client.ApiClient(NodeAgent.Api.Client.ClientConfig.FromKubeconfig(node.AdminKubeconfig), "controller-tests");
        async Task<(int Ready, int All)> Count()
        {
            var list = await api.GetAsync("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb", CancellationToken.None);
            var pods = list["items"]!.AsArray().Select(p => p!).ToList();
            int ready = pods.Count(p => p["metadata"]!["deletionTimestamp"] is null
                && p["status"]?["conditions"]?.AsArray().Any(c => c!["type"]!.GetValue<string>() == "Ready" && c["status"]!.GetValue<string>() == "True") == true);
            return (ready, pods.Count);
        }
        async Task RolledOut()
        {
            var (code, o, e) = await node.KubectlAsync("rollout", "status", "deployment/web", "--timeout=90s");
            Assert.True(code == 0, o + e + "\n" + NodeFixture.Tail(node.ControlPlaneLog, 30));
        }
        async Task Exactly(int n) => await node.WaitForAsync($"exactly {n} ready pods", async () => await Count() == (n, n), TimeSpan.FromSeconds(60));
        try
        {
            await node.Kubectl("apply", "-f", file);
            await RolledOut();
            await Exactly(3);
            // A deleted pod of the Deployment is replaced.
            string victim = (await node.Kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}")).Trim();
            await node.Kubectl("delete", "pod", victim, "--wait=false");
            await node.WaitForAsync("the deleted pod replaced", async () =>
                !(await node.Kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}")).Contains(victim)
                && await Count() == (3, 3), TimeSpan.FromSeconds(60));
            await node.Kubectl("scale", "deployment", "web", "--replicas=5");
            await RolledOut();
            await Exactly(5);
            await node.Kubectl("scale", "deployment", "web", "--replicas=1");
            await RolledOut();
            await Exactly(1);
            await node.Kubectl("scale", "deployment", "web", "--replicas=3");
            await RolledOut();
            await Exactly(3);

            // set image: 25% of 3 rounds maxUnavailable down to 0, so 3 pods stay ready throughout.
            using var sampling = new CancellationTokenSource();
            int lowest = int.MaxValue, samples = 0;
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    lowest = Math.Min(lowest, (await Count()).Ready);
                    samples++;
                    try { await Task.Delay(100, sampling.Token); } catch (OperationCanceledException) { }
                }
            });
            await node.Kubectl("set", "image", "deployment/web", "httpd=busybox:1.37");
            await RolledOut();
            await Exactly(3);
            await sampling.CancelAsync();
            await sampler;
            Assert.True(lowest >= 3, $"ready pods dropped to {lowest} during the rollout ({samples} samples)");
            Assert.Equal("busybox:1.37 busybox:1.37 busybox:1.37", await node.Kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.containers[0].image}"));

            await node.Kubectl("rollout", "undo", "deployment/web");
            await RolledOut();
            await Exactly(3);
            Assert.Equal("busybox:1.36", await node.Kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"));
            Assert.Equal("busybox:1.36 busybox:1.36 busybox:1.36", await node.Kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.containers[0].image}"));

            // rollout restart: every pod replaced, the template stamped with restartedAt.
            var before = (await node.Kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}")).Split(' ');
            await node.Kubectl("rollout", "restart", "deployment/web");
            await RolledOut();
            await Exactly(3);
            var after = (await node.Kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}")).Split(' ');
            Assert.Empty(before.Intersect(after));
            Assert.NotEqual("", await node.Kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}"));
        }
        finally
        {
            await node.KubectlAsync("delete", "deployment", "web", "--wait=true", "--timeout=30s");
            await node.KubectlAsync("delete", "rs,pods", "-l", "app=web", "--wait=true", "--timeout=30s");
        }
    }
}
