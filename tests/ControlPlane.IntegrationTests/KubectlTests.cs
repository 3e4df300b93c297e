using System.Globalization;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>The installed kubectl (1.32) against the control plane with its generated admin kubeconfig.</summary>
[Collection(ClusterCollection.Name)]
public sealed class KubectlTests(ClusterFixture cluster)
{
    private static string App(string ns, string image, string labels) => $$$"""
        apiVersion: v1
        kind: Namespace
        metadata: {name: {{{ns}}}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: cfg, namespace: {{{ns}}}}
        data: {greeting: hello}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: sec, namespace: {{{ns}}}}
        stringData: {password: s3cret}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: {{{ns}}}
          labels: {{{labels}}}
        spec:
          replicas: 2
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
              - name: httpd
                image: {{{image}}}
                command: [httpd, -f, -p, "8080"]
                ports: [{containerPort: 8080}]
              - name: sidecar
                image: busybox:1.36
                command: [sleep, "3600"]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: {{{ns}}}}
        spec:
          type: NodePort
          selector: {app: web}
          ports: [{port: 80, targetPort: 8080}]
        """;

    /// <summary>
    /// Requests are not logged one by one at the default level (kube-apiserver logs them only at
    /// higher verbosity): the web host's two Information lines per request once went to the
    /// journal for every lease renewal, watch and kubectl call.
    /// </summary>
    [Fact]
    public async Task ServedRequestsAreNotLoggedOneByOne()
    {
        for (int i = 0; i < 3; i++) await cluster.Kubectl("get", "namespaces");
        Assert.DoesNotContain("Request starting", cluster.Api.Log, StringComparison.Ordinal);
        Assert.DoesNotContain("Request finished", cluster.Api.Log, StringComparison.Ordinal);
    }

    /// <summary>
    /// /metrics has kube-apiserver's latency histograms under the upstream names, labels and
    /// buckets, so its SLO queries and dashboards read them: a create is "resource" scope, a
    /// server-side dry run is dry_run="All", and the etcd call under a create is timed as
    /// operation="create". promtool accepts the whole exposition.
    /// </summary>
    [Fact]
    public async Task MetricsCarryTheUpstreamRequestAndEtcdLatencyHistograms()
    {
        cluster.RequireReady();
        await cluster.Kubectl("create", "namespace", "metrics-ns");
        await cluster.Kubectl("create", "configmap", "m1", "-n", "metrics-ns", "--from-literal=a=b");
        await cluster.Kubectl("create", "configmap", "m2", "-n", "metrics-ns", "--from-literal=a=b", "--dry-run=server");
        await cluster.Kubectl("get", "configmap", "m1", "-n", "metrics-ns");
        string text = await cluster.Kubectl("get", "--raw", "/metrics");

        long Value(string series)
        {
            var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
            Assert.True(line is not null, $"no {series} in /metrics");
            return long.Parse(line![(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        const string create = "component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"configmaps\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"";
        Assert.True(Value($"apiserver_request_duration_seconds_count{{{create}}}") >= 1);
        // Cumulative buckets: the +Inf bucket holds every request, and no bucket holds more than the next.
        Assert.Equal(Value($"apiserver_request_duration_seconds_count{{{create}}}"), Value($"apiserver_request_duration_seconds_bucket{{{create},le=\"+Inf\"}}"));
        Assert.True(Value($"apiserver_request_duration_seconds_bucket{{{create},le=\"0.005\"}}") <= Value($"apiserver_request_duration_seconds_bucket{{{create},le=\"60\"}}"));
        Assert.True(Value($"apiserver_request_duration_seconds_count{{{create.Replace("dry_run=\"\"", "dry_run=\"All\"")}}}") >= 1);
        Assert.True(Value("apiserver_request_duration_seconds_count{component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"configmaps\",scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\"}") >= 1);
        Assert.True(Value("etcd_request_duration_seconds_count{group=\"\",operation=\"create\",resource=\"configmaps\"}") >= 1);
        Assert.True(Value("etcd_requests_total{group=\"\",operation=\"create\",resource=\"configmaps\"}") >= 1);
        // The process collector's series, as upstream's apiserver has them.
        foreach (var series in (string[])["process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds", "process_open_fds"])
            Assert.Matches($@"(?m)^{series} [0-9.e+]+$", text);

        var (code, said) = await NodeAgent.Testing.TestHost.PromtoolAsync(text);
        Assert.True(code == 0 && said.Trim().Length == 0, $"promtool check metrics: exit {code}: {said}");
    }

    [Fact]
    public async Task ApplyingAMultiDocumentManifestTwiceCreatesThenStrategicallyPatches()
    {
        cluster.RequireReady();
        string file = Path.Combine(cluster.Work, "app.yaml");
        await File.WriteAllTextAsync(file, App("apply-ns", "busybox:1.36", "{app: web}"));
        var first = await cluster.Kubectl("apply", "-f", file);
        foreach (var line in (string[])["namespace/apply-ns created", "configmap/cfg created", "secret/sec created", "deployment.apps/web created", "service/web created"])
            Assert.Contains(line, first);
        await File.WriteAllTextAsync(file, App("apply-ns", "busybox:1.37", "{app: web, tier: front}"));
        var second = await cluster.Kubectl("apply", "-f", file);
        Assert.Contains("deployment.apps/web configured", second);
        Assert.Contains("configmap/cfg unchanged", second);
        // The last-applied-configuration annotation is stored as Go writes a string: quotes as \" (not \u0022).
        string stored = await cluster.EtcdValueAsync("/registry/configmaps/apply-ns/cfg");
        Assert.Contains("\\\"greeting\\\":\\\"hello\\\"", stored);
        Assert.DoesNotContain("\\u0022", stored);

        var deploy = JsonNode.Parse(await cluster.Kubectl("get", "deploy", "web", "-n", "apply-ns", "-o", "json"))!;
        var containers = deploy["spec"]!["template"]!["spec"]!["containers"]!.AsArray();
        Assert.Equal(["busybox:1.37", "busybox:1.36"], containers.Select(c => c!["image"]!.GetValue<string>()));
        Assert.Equal("front", deploy["metadata"]!["labels"]!["tier"]!.GetValue<string>());
        Assert.Equal(2, deploy["metadata"]!["generation"]!.GetValue<long>());
        // Defaults as upstream applies them.
        Assert.Equal("RollingUpdate", deploy["spec"]!["strategy"]!["type"]!.GetValue<string>());
        Assert.Equal(10, deploy["spec"]!["revisionHistoryLimit"]!.GetValue<int>());
        Assert.Equal("Always", deploy["spec"]!["template"]!["spec"]!["restartPolicy"]!.GetValue<string>());
        Assert.Equal("IfNotPresent", containers[0]!["imagePullPolicy"]!.GetValue<string>());

        var svc = JsonNode.Parse(await cluster.Kubectl("get", "svc", "web", "-n", "apply-ns", "-o", "json"))!["spec"]!;
        Assert.StartsWith("10.", svc["clusterIP"]!.GetValue<string>());
        Assert.InRange(svc["ports"]![0]!["nodePort"]!.GetValue<int>(), 30000, 30999);
        Assert.Equal(8080, svc["ports"]![0]!["targetPort"]!.GetValue<int>());
        var secret = JsonNode.Parse(await cluster.Kubectl("get", "secret", "sec", "-n", "apply-ns", "-o", "json"))!;
        Assert.Equal("czNjcmV0", secret["data"]!["password"]!.GetValue<string>());
        Assert.Null(secret["stringData"]);

        var all = await cluster.Kubectl("get", "all", "-n", "apply-ns");
        Assert.Contains("service/web", all);
        Assert.Contains("deployment.apps/web", all);
        var wide = await cluster.Kubectl("get", "deploy", "-n", "apply-ns", "-o", "wide");
        Assert.Matches(@"NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\s+CONTAINERS\s+IMAGES\s+SELECTOR", wide);
        Assert.Matches(@"web\s+0/2\s+0\s+0\s+\S+\s+httpd,sidecar\s+busybox:1.37,busybox:1.36\s+app=web", wide);
        var describe = await cluster.Kubectl("describe", "deploy", "web", "-n", "apply-ns");
        Assert.Contains("Replicas:               2 desired", describe);
        Assert.Contains("Image:      busybox:1.37", describe);
        Assert.Contains("deployment.apps \"web\" deleted", await cluster.Kubectl("delete", "deploy", "web", "-n", "apply-ns"));
        Assert.Contains("NotFound", (await cluster.KubectlAsync(["get", "deploy", "web", "-n", "apply-ns"])).Err);
    }

    [Fact]
    public async Task LabelAnnotatePatchScaleAndEditChangeWhatTheySay()
    {
        cluster.RequireReady();
        string file = Path.Combine(cluster.Work, "edit.yaml");
        await File.WriteAllTextAsync(file, App("edit-ns", "busybox:1.36", "{app: web}"));
        await cluster.Kubectl("apply", "-f", file);
        Assert.Contains("labeled", await cluster.Kubectl("label", "deploy", "web", "-n", "edit-ns", "env=prod"));
        Assert.Contains("annotated", await cluster.Kubectl("annotate", "deploy", "web", "-n", "edit-ns", "note=hi"));
        await cluster.Kubectl("patch", "deploy", "web", "-n", "edit-ns", "--type=merge", "-p", """{"spec":{"minReadySeconds":5}}""");
        await cluster.Kubectl("patch", "deploy", "web", "-n", "edit-ns", "--type=json", "-p", """[{"op":"replace","path":"/spec/replicas","value":4}]""");
        await cluster.Kubectl("patch", "deploy", "web", "-n", "edit-ns", "--type=strategic", "-p", """{"spec":{"template":{"spec":{"containers":[{"name":"httpd","image":"busybox:1.38"}]}}}}""");
        Assert.Contains("scaled", await cluster.Kubectl("scale", "deploy", "web", "-n", "edit-ns", "--replicas=5"));
        string editor = Path.Combine(cluster.Work, "editor.sh");
        await File.WriteAllTextAsync(editor, "#!/bin/sh\nsed -i 's/greeting: hello/greeting: edited/' \"$1\"\n");
        File.SetUnixFileMode(editor, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var (code, o, e) = await cluster.KubectlAsync(["edit", "cm", "cfg", "-n", "edit-ns"], env: new() { ["EDITOR"] = editor });
        Assert.True(code == 0, o + e);
        Assert.Contains("edited", o);

        var d = JsonNode.Parse(await cluster.Kubectl("get", "deploy", "web", "-n", "edit-ns", "-o", "json"))!;
        Assert.Equal("prod", d["metadata"]!["labels"]!["env"]!.GetValue<string>());
        Assert.Equal("hi", d["metadata"]!["annotations"]!["note"]!.GetValue<string>());
        Assert.Equal(5, d["spec"]!["minReadySeconds"]!.GetValue<int>());
        Assert.Equal(5, d["spec"]!["replicas"]!.GetValue<int>());
        var containers = d["spec"]!["template"]!["spec"]!["containers"]!.AsArray();
        Assert.Equal("busybox:1.38", containers[0]!["image"]!.GetValue<string>());
        Assert.Equal("sidecar", containers[1]!["name"]!.GetValue<string>());
        Assert.Equal("edited", await cluster.Kubectl("get", "cm", "cfg", "-n", "edit-ns", "-o", "jsonpath={.data.greeting}"));
        Assert.Equal("5", await cluster.Kubectl("get", "deploy", "web", "-n", "edit-ns", "-o", "jsonpath={.spec.replicas}"));
    }

    /// <summary>
    /// Server-side field validation as kubectl 1.32 asks for it (fieldValidation=Strict by default):
    /// a manifest with misspelt fields is refused with upstream's message naming every one, and
    /// nothing is stored; --validate=warn stores it and prints a warning per field; a later write
    /// is refused only for unknown fields it brings itself.
    /// </summary>
    [Fact]
    public async Task MisspeltFieldsAreRefusedByDefaultAndWarnedAboutWhenAsked()
    {
        cluster.RequireReady();
        await cluster.Kubectl("create", "namespace", "fv-ns");
        string file = Path.Combine(cluster.Work, "typo.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: v1
            kind: Pod
            metadata: {name: typo, namespace: fv-ns}
            spec:
              containers:
              - {name: app, image: "busybox:1.36", imagePullPolicyy: Always}
              nodeSelectorr: {disk: ssd}
            """);
        var (code, _, err) = await cluster.KubectlAsync(["apply", "-f", file]);
        Assert.NotEqual(0, code);
        Assert.Contains("Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.containers[0].imagePullPolicyy\", unknown field \"spec.nodeSelectorr\"", err);
        Assert.Equal(1, (await cluster.KubectlAsync(["get", "pod", "typo", "-n", "fv-ns"])).Code);

        (code, _, err) = await cluster.KubectlAsync(["apply", "--validate=warn", "-f", file]);
        Assert.True(code == 0, err);
        Assert.Contains("Warning: unknown field \"spec.containers[0].imagePullPolicyy\"", err);
        Assert.Contains("Warning: unknown field \"spec.nodeSelectorr\"", err);
        // Kept, as every unknown field is; a label change does not trip over them.
        Assert.Contains("ssd", await cluster.Kubectl("get", "pod", "typo", "-n", "fv-ns", "-o", "jsonpath={.spec.nodeSelectorr}"));
        Assert.Contains("labeled", await cluster.Kubectl("label", "pod", "typo", "-n", "fv-ns", "tier=web"));

        // A Deployment through the patch of kubectl apply, and through server-side apply.
        string deploy = Path.Combine(cluster.Work, "typo-deploy.yaml");
        string manifest = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web, namespace: fv-ns}
            spec:
              replicas: 1
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec: {containers: [{name: app, image: "busybox:1.36"}]}
            """;
        await File.WriteAllTextAsync(deploy, manifest);
        await cluster.Kubectl("apply", "-f", deploy);
        await File.WriteAllTextAsync(deploy, manifest.Replace("replicas: 1", "replicas: 1\n  replicaz: 3"));
        (code, _, err) = await cluster.KubectlAsync(["apply", "-f", deploy]);
        Assert.NotEqual(0, code);
        Assert.Contains("Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicaz\"", err);
        (code, _, err) = await cluster.KubectlAsync(["apply", "--server-side", "-f", deploy]);
        Assert.NotEqual(0, code);
        Assert.Contains("unknown field \"spec.replicaz\"", err);
        Assert.DoesNotContain("replicaz", await cluster.Kubectl("get", "deploy", "web", "-n", "fv-ns", "-o", "json"));
    }

    [Fact]
    public async Task ServerSideApplyCreatesConflictsWithOtherManagersForcesAndPrunes()
    {
        cluster.RequireReady();
        await cluster.Kubectl("create", "namespace", "ssa-ns");
        string file = Path.Combine(cluster.Work, "ssa.yaml");
        static string Manifest(int replicas, string env, string labels) => """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web, namespace: ssa-ns, labels: LABELS}
            spec:
              replicas: REPLICAS
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  containers:
                  - {name: app, image: "busybox:1.36", env: ENV}
            """.Replace("LABELS", labels).Replace("REPLICAS", replicas.ToString(CultureInfo.InvariantCulture)).Replace("ENV", env);
        await File.WriteAllTextAsync(file, Manifest(2, "[{name: A, value: '1'}, {name: B, value: '2'}]", "{app: web, tier: front}"));
        Assert.Contains("deployment.apps/web serverside-applied", await cluster.Kubectl("apply", "--server-side", "-f", file));
        JsonNode Get() => JsonNode.Parse(cluster.Kubectl("get", "deploy", "web", "-n", "ssa-ns", "-o", "json", "--show-managed-fields").GetAwaiter().GetResult())!;
        var applied = Get()["metadata"]!["managedFields"]!.AsArray().Single(e => e!["operation"]!.GetValue<string>() == "Apply")!;
        Assert.Equal("kubectl", applied["manager"]!.GetValue<string>());
        Assert.NotNull(applied["fieldsV1"]!["f:spec"]!["f:template"]!["f:spec"]!["f:containers"]!["k:{\"name\":\"app\"}"]!["f:env"]);

        // kubectl scale takes spec.replicas (an Update through the scale subresource): applying another
        // value is a conflict that names it, and nothing changes.
        await cluster.Kubectl("scale", "deploy", "web", "-n", "ssa-ns", "--replicas=5");
        var scale = Get()["metadata"]!["managedFields"]!.AsArray().Single(e => e!["subresource"]?.GetValue<string>() == "scale")!;
        Assert.Equal("Update", scale["operation"]!.GetValue<string>());
        Assert.Equal("""{"f:spec":{"f:replicas":{}}}""", scale["fieldsV1"]!.ToJsonString());
        var (code, o, e) = await cluster.KubectlAsync(["apply", "--server-side", "-f", file]);
        Assert.True(code != 0, o);
        Assert.Contains("Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas", e);
        Assert.Equal(5, Get()["spec"]!["replicas"]!.GetValue<int>());

        // Forced, with env B and label tier dropped from the manifest: the applier takes replicas,
        // and what it alone had applied and applies no more is removed; another manager's label stays.
        await cluster.Kubectl("label", "deploy", "web", "-n", "ssa-ns", "owner=ops");
        await File.WriteAllTextAsync(file, Manifest(3, "[{name: A, value: '1'}]", "{app: web}"));
        Assert.Contains("serverside-applied", await cluster.Kubectl("apply", "--server-side", "--force-conflicts", "-f", file));
        var d = Get();
        Assert.Equal(3, d["spec"]!["replicas"]!.GetValue<int>());
        Assert.Equal(["A"], d["spec"]!["template"]!["spec"]!["containers"]![0]!["env"]!.AsArray().Select(x => x!["name"]!.GetValue<string>()));
        var labels = d["metadata"]!["labels"]!.AsObject();
        Assert.False(labels.ContainsKey("tier"));
        Assert.Equal("ops", labels["owner"]!.GetValue<string>());
        var managers = d["metadata"]!["managedFields"]!.AsArray().Select(x => x!["manager"]!.GetValue<string>() + "/" + x["operation"]!.GetValue<string>()).ToList();
        Assert.Contains("kubectl-label/Update", managers);
        Assert.DoesNotContain(d["metadata"]!["managedFields"]!.AsArray(), x => x!["subresource"]?.GetValue<string>() == "scale");
        // The same manifest again writes nothing.
        Assert.Contains("serverside-applied", await cluster.Kubectl("apply", "--server-side", "-f", file));
        Assert.Equal(d["metadata"]!["resourceVersion"]!.GetValue<string>(), Get()["metadata"]!["resourceVersion"]!.GetValue<string>());

        // A server-side dry run changes nothing; an apply without a field manager is refused.
        await File.WriteAllTextAsync(file, Manifest(7, "[{name: A, value: '1'}]", "{app: web}"));
        Assert.Contains("(server dry run)", await cluster.Kubectl("apply", "--server-side", "--dry-run=server", "-f", file));
        Assert.Equal(3, Get()["spec"]!["replicas"]!.GetValue<int>());
        var raw = await cluster.Http.SendAsync(HttpMethod.Patch, "/apis/apps/v1/namespaces/ssa-ns/deployments/web",
            """{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}""", "application/apply-patch+yaml");
        Assert.Equal(422, (int)raw.Code);
        Assert.Contains("fieldManager: Required value: is required for apply patch", raw.Body!["message"]!.GetValue<string>());
        await cluster.Kubectl("delete", "namespace", "ssa-ns", "--wait=false");
    }

    [Fact]
    public async Task GetPodsWatchReceivesAddedModifiedAndDeletedEvents()
    {
        cluster.RequireReady();
        await cluster.Kubectl("apply", "-f", Write("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: watch-ns}\n"));
        var psi = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["get", "pods", "-n", "watch-ns", "-w", "--output-watch-events"]) psi.ArgumentList.Add(a);
        psi.Environment["KUBECONFIG"] = cluster.Kubeconfig;
        using var watch = Process.Start(psi)!;
        var lines = new List<string>();
        watch.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
        watch.BeginOutputReadLine();
        await Task.Delay(1000);
        await cluster.Kubectl("run", "w1", "-n", "watch-ns", "--image=busybox:1.36", "--", "sleep", "60");
        await cluster.Kubectl("label", "pod", "w1", "-n", "watch-ns", "seen=yes");
        await cluster.Kubectl("delete", "pod", "w1", "-n", "watch-ns", "--wait=false");
        await ClusterFixture.WaitForAsync("kubectl -w shows ADDED, MODIFIED, DELETED", () =>
        {
            lock (lines) return Task.FromResult(lines.Any(l => l.StartsWith("ADDED") && l.Contains("w1")) && lines.Any(l => l.StartsWith("MODIFIED"))
                                                && lines.Any(l => l.StartsWith("DELETED") && l.Contains("w1")));
        }, TimeSpan.FromSeconds(15));
        watch.Kill();
        lock (lines) Assert.Matches(@"^EVENT\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE", lines[0]);
    }

    [Fact]
    public async Task ApiResourcesListsEveryServedKindWithShortNames()
    {
        cluster.RequireReady();
        var o = await cluster.Kubectl("api-resources");
        foreach (var row in (string[])[@"pods\s+po\s+v1\s+true\s+Pod", @"services\s+svc\s+v1\s+true\s+Service", @"deployments\s+deploy\s+apps/v1\s+true\s+Deployment",
                                       @"nodes\s+no\s+v1\s+false\s+Node", @"leases\s+coordination.k8s.io/v1\s+true\s+Lease",
                                       @"endpointslices\s+discovery.k8s.io/v1\s+true\s+EndpointSlice", @"namespaces\s+ns\s+v1\s+false\s+Namespace"])
            Assert.Matches(row, o);
        Assert.Contains("daemonsets", await cluster.Kubectl("api-resources", "--categories=all"));
        Assert.Contains("Server Version: v1.32.0", await cluster.Kubectl("version"));
    }

    [Fact]
    public async Task DiscoveryIsOneAggregatedDocumentPerRootWhenAskedAndTheClassicListOtherwise()
    {
        cluster.RequireReady();
        const string Accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        async Task<(string Type, JsonNode Body)> Get(string path, string accept)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.TryAddWithoutValidation("Accept", accept);
            using var response = await cluster.Http.SendAsync(request);
            response.EnsureSuccessStatusCode();
            Assert.Contains("Accept", response.Headers.Vary);
            return (response.Content.Headers.ContentType!.ToString(), JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
        }
        var (type, apis) = await Get("/apis", Accept);
        Assert.Equal("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", type.Replace(" ", ""));
        Assert.Equal("apidiscovery.k8s.io/v2", apis["apiVersion"]!.GetValue<string>());
        var apps = apis["items"]!.AsArray().Single(g => g!["metadata"]!["name"]?.GetValue<string>() == "apps")!["versions"]![0]!;
        Assert.Equal(("v1", "Current"), (apps["version"]!.GetValue<string>(), apps["freshness"]!.GetValue<string>()));
        var deployments = apps["resources"]!.AsArray().Single(r => r!["resource"]!.GetValue<string>() == "deployments")!;
        Assert.Equal(("Namespaced", "deployment", "deploy"), (deployments["scope"]!.GetValue<string>(), deployments["singularResource"]!.GetValue<string>(),
            deployments["shortNames"]![0]!.GetValue<string>()));
        var scale = deployments["subresources"]!.AsArray().Single(r => r!["subresource"]!.GetValue<string>() == "scale")!["responseKind"]!;
        Assert.Equal("""{"group":"autoscaling","version":"v1","kind":"Scale"}""", scale.ToJsonString());
        Assert.Contains(apis["items"]!.AsArray(), g => g!["metadata"]!["name"]?.GetValue<string>() == "authorization.k8s.io");
        Assert.Equal("v1beta1", apis["items"]!.AsArray().Single(g => g!["metadata"]!["name"]?.GetValue<string>() == "metrics.k8s.io")!["versions"]![0]!["version"]!.GetValue<string>());

        var (_, core) = await Get("/api", Accept);
        var group = Assert.Single(core["items"]!.AsArray())!;
        Assert.Null(group["metadata"]!["name"]);
        var pods = group["versions"]![0]!["resources"]!.AsArray().Single(r => r!["resource"]!.GetValue<string>() == "pods")!;
        Assert.Equal(["attach", "binding", "exec", "log", "portforward", "status"], pods["subresources"]!.AsArray().Select(r => r!["subresource"]!.GetValue<string>()).Order());
        Assert.DoesNotContain(group["versions"]![0]!["resources"]!.AsArray(), r => r!["resource"]!.GetValue<string>().Contains('/'));

        // An older client (v2beta1 first) and a plain one get the classic documents.
        var (oldType, classic) = await Get("/apis", "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json");
        Assert.StartsWith("application/json", oldType);
        Assert.Equal("APIGroupList", classic["kind"]!.GetValue<string>());
        Assert.Equal("APIVersions", (await Get("/api", "application/json")).Body["kind"]!.GetValue<string>());
        // kubectl 1.32 uses the aggregated form: two discovery requests in all, not one per group version.
        string cache = Path.Combine(cluster.Work, "fresh-cache");
        var (code, _, log) = await cluster.KubectlAsync(["api-resources", "--cache-dir", cache, "-v=6"]);
        Assert.Equal(0, code);
        Assert.Equal(["/api", "/apis"], System.Text.RegularExpressions.Regex.Matches(log, @"GET https://[^/]+(/[^? ]*)\S* 200").Select(m => m.Groups[1].Value).Order());
    }

    [Fact]
    public async Task DeletingANamespaceLeavesItTerminatingAndClosedToNewContent()
    {
        cluster.RequireReady();
        await cluster.Kubectl("create", "-f", Write("ns-del.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: doomed}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: doomed}\n"));
        Assert.Contains("namespace \"doomed\" deleted", await cluster.Kubectl("delete", "namespace", "doomed", "--wait=false"));
        Assert.Matches(@"doomed\s+Terminating", await cluster.Kubectl("get", "ns", "doomed"));
        var (code, _, err) = await cluster.KubectlAsync(["apply", "-f", Write("late.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: doomed}\n")]);
        Assert.NotEqual(0, code);
        Assert.Contains("because it is being terminated", err);
    }

    [Fact]
    public async Task ExplainDescribesEveryServedKindAndApplyMergesListsOnTheirKeys()
    {
        cluster.RequireReady();
        var spec = await cluster.Kubectl("explain", "pod.spec");
        Assert.Contains("FIELD: spec <PodSpec>", spec);
        Assert.Matches(@"containers\s+<\[\]Container>", spec);
        Assert.Matches(@"containerPort\s+<integer>", await cluster.Kubectl("explain", "pod.spec.containers.ports"));
        // Every served kind, under upstream's definition names, with every field and its type.
        var deploy = await cluster.Kubectl("explain", "deployment.spec");
        Assert.Contains("GROUP:      apps", deploy);
        Assert.Contains("FIELD: spec <DeploymentSpec>", deploy);
        Assert.Matches(@"strategy\s+<DeploymentStrategy>", deploy);
        Assert.Matches(@"revisionHistoryLimit\s+<integer>", deploy);
        Assert.Matches(@"sessionAffinityConfig\s+<SessionAffinityConfig>", await cluster.Kubectl("explain", "service.spec"));
        Assert.Matches(@"lastTransitionTime\s+<string>", await cluster.Kubectl("explain", "node.status.conditions"));
        Assert.Matches(@"leaseDurationSeconds\s+<integer>", await cluster.Kubectl("explain", "lease.spec"));
        Assert.Matches(@"endpoints\s+<\[\]Endpoint>", await cluster.Kubectl("explain", "endpointslice"));
        Assert.Matches(@"binaryData\s+<map\[string\]string>", await cluster.Kubectl("explain", "configmap"));
        // kubectl computes a client-side apply's strategic merge patch from upstream's list keys:
        // re-applying a pod with one image changed keeps the other container and the env of the first.
        string pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: pa, namespace: default, labels: {a: b}}\nspec:\n  containers:\n"
                     + "  - {name: one, image: \"busybox:1.36\", env: [{name: X, value: \"1\"}]}\n  - {name: two, image: \"busybox:1.36\"}\n";
        await cluster.Kubectl("apply", "-f", Write("pod-a.yaml", pod));
        Assert.Contains("pod/pa configured", await cluster.Kubectl("apply", "-f", Write("pod-a.yaml", pod.Replace("one, image: \"busybox:1.36\"", "one, image: \"busybox:1.37\"").Replace("{a: b}", "{a: c}"))));
        var live = JsonNode.Parse(await cluster.Kubectl("get", "pod", "pa", "-n", "default", "-o", "json"))!;
        Assert.Equal(["busybox:1.37", "busybox:1.36"], live["spec"]!["containers"]!.AsArray().Select(c => c!["image"]!.GetValue<string>()));
        Assert.Equal("1", live["spec"]!["containers"]![0]!["env"]![0]!["value"]!.GetValue<string>());
        Assert.Equal("c", live["metadata"]!["labels"]!["a"]!.GetValue<string>());
    }

    [Fact]
    public async Task ReapplyingADeploymentRemovesWhatTheManifestDroppedAndSwitchesItsStrategy()
    {
        cluster.RequireReady();
        const string Head = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: two, namespace: default}\nspec:\n  selector: {matchLabels: {app: two}}\n";
        const string Template = "  template:\n    metadata: {labels: {app: two}}\n    spec:\n      containers:\n";
        await cluster.Kubectl("apply", "-f", Write("two.yaml", Head + "  strategy: {type: Recreate}\n" + Template
            + "      - {name: a, image: \"busybox:1.36\", env: [{name: EX, value: \"1\"}, {name: WHY, value: \"2\"}]}\n      - {name: b, image: \"busybox:1.36\"}\n"));
        // The second manifest drops container b and env EX, changes WHY, and goes back to the
        // default strategy: kubectl sends $setElementOrder, $patch: delete and $retainKeys.
        Assert.Contains("deployment.apps/two configured", await cluster.Kubectl("apply", "-f", Write("two.yaml", Head + "  strategy: {type: RollingUpdate}\n" + Template
            + "      - {name: a, image: \"busybox:1.37\", env: [{name: WHY, value: \"3\"}]}\n")));
        var spec = JsonNode.Parse(await cluster.Kubectl("get", "deploy", "two", "-n", "default", "-o", "json"))!["spec"]!;
        var container = Assert.Single(spec["template"]!["spec"]!["containers"]!.AsArray())!;
        Assert.Equal(("a", "busybox:1.37"), (container["name"]!.GetValue<string>(), container["image"]!.GetValue<string>()));
        Assert.Equal("""[{"name":"WHY","value":"3"}]""", container["env"]!.ToJsonString());
        Assert.Equal("RollingUpdate", spec["strategy"]!["type"]!.GetValue<string>());
        Assert.Equal("25%", spec["strategy"]!["rollingUpdate"]!["maxSurge"]!.GetValue<string>());
    }

    private string Write(string name, string text)
    {
        string path = Path.Combine(cluster.Work, name);
        File.WriteAllText(path, text);
        return path;
    }
}

/// <summary>Identities: the admin kubeconfig, node kubeconfigs issued by the control plane, static tokens.</summary>
[Collection(ClusterCollection.Name)]
public sealed class IdentityTests(ClusterFixture cluster)
{
    [Fact]
    public async Task NodeKubeconfigsAuthenticateAsSystemNodeInTheNodesGroup()
    {
        cluster.RequireReady();
        var admin = await cluster.Kubectl("auth", "whoami", "-o", "json");
        Assert.Equal("kubernetes-admin", System.Text.Json.Nodes.JsonNode.Parse(admin)!["status"]!["userInfo"]!["username"]!.GetValue<string>());
        string file = Path.Combine(cluster.Work, "node-1.kubeconfig");
        var psi = new System.Diagnostics.ProcessStartInfo(cluster.Binary) { RedirectStandardError = true };
        foreach (var a in (string[])["node-kubeconfig", "--node", "node-1", "--data-dir", cluster.DataDir, "--server", $"https://127.0.0.1:{cluster.Api.Port}", "--out", file])
            psi.ArgumentList.Add(a);
        using (var p = System.Diagnostics.Process.Start(psi)!)
        {
            await p.WaitForExitAsync();
            Assert.True(p.ExitCode == 0, await p.StandardError.ReadToEndAsync());
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        var (code, o, e) = await cluster.KubectlAsync(["--kubeconfig", file, "auth", "whoami", "-o", "json"]);
        Assert.True(code == 0, o + e);
        var info = System.Text.Json.Nodes.JsonNode.Parse(o)!["status"]!["userInfo"]!;
        Assert.Equal("system:node:node-1", info["username"]!.GetValue<string>());
        Assert.Contains(info["groups"]!.AsArray(), g => g!.GetValue<string>() == "system:nodes");
        var token = await cluster.Http.OkAsync(HttpMethod.Post, "/apis/authentication.k8s.io/v1/selfsubjectreviews", """{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}""");
        Assert.Equal("it-admin", token["status"]!["userInfo"]!["username"]!.GetValue<string>());
    }
}

/// <summary>serviceaccounts/token (TokenRequest) and the bound tokens it issues.</summary>
[Collection(ClusterCollection.Name)]
public sealed class TokenRequestTests(ClusterFixture cluster)
{
    private static string Request(long seconds, string? pod = null, string? uid = null) => new System.Text.Json.Nodes.JsonObject
    {
        ["apiVersion"] = "authentication.k8s.io/v1",
        ["kind"] = "TokenRequest",
        ["spec"] = new System.Text.Json.Nodes.JsonObject
        {
            ["expirationSeconds"] = seconds,
            ["boundObjectRef"] = pod is null ? null : new System.Text.Json.Nodes.JsonObject { ["kind"] = "Pod", ["apiVersion"] = "v1", ["name"] = pod, ["uid"] = uid },
        },
    }.ToJsonString();

    [Fact]
    public async Task TokensAreIssuedForExistingAccountsAndPodsAndAuthenticateAsTheAccount()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("tokens");
        const string sa = "/api/v1/namespaces/tokens/serviceaccounts";
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.SendAsync(HttpMethod.Post, sa + "/nobody/token", Request(3600))).Code);
        await http.OkAsync(HttpMethod.Post, sa, """{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"bot"}}""");
        var (code, body) = await http.SendAsync(HttpMethod.Post, sa + "/bot/token", Request(60));
        Assert.Equal((System.Net.HttpStatusCode)422, code);
        Assert.Contains("spec.expirationSeconds", body!["message"]!.GetValue<string>());
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.SendAsync(HttpMethod.Post, sa + "/bot/token", Request(3600, "ghost"))).Code);
        var pod = await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/tokens/pods",
            """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"holder"},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}""");
        string uid = pod["metadata"]!["uid"]!.GetValue<string>();
        Assert.Equal(System.Net.HttpStatusCode.Conflict, (await http.SendAsync(HttpMethod.Post, sa + "/bot/token", Request(3600, "holder", "not-" + uid))).Code);
        Assert.Equal(System.Net.HttpStatusCode.MethodNotAllowed, (await http.SendAsync(HttpMethod.Get, sa + "/bot/token")).Code);

        var issued = await http.OkAsync(HttpMethod.Post, sa + "/bot/token", Request(3600, "holder", uid));
        string token = issued["status"]!["token"]!.GetValue<string>();
        var expires = DateTimeOffset.Parse(issued["status"]!["expirationTimestamp"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(expires - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(58), TimeSpan.FromMinutes(61));

        using var asBot = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } })
            { BaseAddress = http.BaseAddress };
        asBot.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        var review = await asBot.OkAsync(HttpMethod.Post, "/apis/authentication.k8s.io/v1/selfsubjectreviews", """{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}""");
        Assert.Equal("system:serviceaccount:tokens:bot", review["status"]!["userInfo"]!["username"]!.GetValue<string>());
        Assert.Contains(review["status"]!["userInfo"]!["groups"]!.AsArray(), g => g!.GetValue<string>() == "system:serviceaccounts:tokens");
        // A token with its payload altered is nobody's.
        var parts = token.Split('.');
        asBot.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", parts[0] + "." + parts[1][..^2] + "AA." + parts[2]);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await asBot.SendAsync(HttpMethod.Get, "/api/v1/namespaces")).Code);

        // kubectl create token uses the same subresource.
        var kubectlToken = (await cluster.Kubectl("create", "token", "bot", "-n", "tokens", "--duration=20m")).Trim();
        Assert.Equal(3, kubectlToken.Split('.').Length);

        // Deleting the pod a token is bound to revokes it (within the authenticator's 10 s lookup cache).
        asBot.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await asBot.SendAsync(HttpMethod.Get, "/api/v1/namespaces")).Code);
        await http.OkAsync(HttpMethod.Delete, "/api/v1/namespaces/tokens/pods/holder?gracePeriodSeconds=0");
        await ClusterFixture.WaitForAsync("the bound token refused", async () =>
            (await asBot.SendAsync(HttpMethod.Get, "/api/v1/namespaces")).Code == System.Net.HttpStatusCode.Unauthorized, TimeSpan.FromSeconds(20));
        // And deleting the account revokes its unbound tokens.
        asBot.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", kubectlToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await asBot.SendAsync(HttpMethod.Get, "/api/v1/namespaces")).Code);
        await http.OkAsync(HttpMethod.Delete, sa + "/bot");
        await ClusterFixture.WaitForAsync("the account's token refused", async () =>
            (await asBot.SendAsync(HttpMethod.Get, "/api/v1/namespaces")).Code == System.Net.HttpStatusCode.Unauthorized, TimeSpan.FromSeconds(20));
    }
}

/// <summary>kubectl create &lt;kind&gt; sends protobuf bodies; the server decodes them.</summary>
[Collection(ClusterCollection.Name)]
public sealed class KubectlCreateTests(ClusterFixture cluster)
{
    [Fact]
    public async Task KubectlCreateSubcommandsCreateWhatTheySay()
    {
        cluster.RequireReady();
        Assert.Contains("namespace/created-ns created", await cluster.Kubectl("create", "namespace", "created-ns"));
        await cluster.Kubectl("create", "configmap", "c1", "-n", "created-ns", "--from-literal=a=b", "--from-literal=x=y");
        await cluster.Kubectl("create", "secret", "generic", "s1", "-n", "created-ns", "--from-literal=pw=hunter2");
        await cluster.Kubectl("create", "deployment", "web", "-n", "created-ns", "--image=busybox:1.36", "--replicas=3", "--port=8080", "--", "httpd", "-f", "-p", "8080");
        await cluster.Kubectl("create", "deployment", "zero", "-n", "created-ns", "--image=busybox:1.36", "--replicas=0");
        await cluster.Kubectl("create", "service", "nodeport", "web", "-n", "created-ns", "--tcp=80:8080");
        await cluster.Kubectl("create", "serviceaccount", "sa1", "-n", "created-ns");

        Assert.Equal("""{"a":"b","x":"y"}""", await cluster.Kubectl("get", "cm", "c1", "-n", "created-ns", "-o", "jsonpath={.data}"));
        Assert.Equal("aHVudGVyMg==", await cluster.Kubectl("get", "secret", "s1", "-n", "created-ns", "-o", "jsonpath={.data.pw}"));
        var web = JsonNode.Parse(await cluster.Kubectl("get", "deploy", "web", "-n", "created-ns", "-o", "json"))!;
        Assert.Equal(3, web["spec"]!["replicas"]!.GetValue<int>());
        var c = web["spec"]!["template"]!["spec"]!["containers"]![0]!;
        Assert.Equal("busybox:1.36", c["image"]!.GetValue<string>());
        Assert.Equal(["httpd", "-f", "-p", "8080"], c["command"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.Equal(8080, c["ports"]![0]!["containerPort"]!.GetValue<int>());
        Assert.Equal("0", await cluster.Kubectl("get", "deploy", "zero", "-n", "created-ns", "-o", "jsonpath={.spec.replicas}"));
        var svc = JsonNode.Parse(await cluster.Kubectl("get", "svc", "web", "-n", "created-ns", "-o", "json"))!["spec"]!;
        Assert.Equal("NodePort", svc["type"]!.GetValue<string>());
        Assert.Equal(8080, svc["ports"]![0]!["targetPort"]!.GetValue<int>());
        Assert.Equal("web", svc["selector"]!["app"]!.GetValue<string>());
        Assert.Contains("sa1", await cluster.Kubectl("get", "sa", "-n", "created-ns"));
    }
}
