using System.Net;
using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>Optimistic concurrency, allocation under concurrency, and bad requests.</summary>
[Collection(ClusterCollection.Name)]
public sealed class WriteTests(ClusterFixture cluster)
{
    [Fact]
    public async Task TwoConcurrentUpdatesWithTheSameResourceVersionExactlyOneWins()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("race");
        await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/race/configmaps", Http.ConfigMap("race", "c"));
        for (int round = 0; round < 20; round++)
        {
            var current = await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/race/configmaps/c");
            var a = current.DeepClone(); a["data"]!["k"] = $"a{round}";
            var b = current.DeepClone(); b["data"]!["k"] = $"b{round}";
            var results = await Task.WhenAll(
                http.SendAsync(HttpMethod.Put, "/api/v1/namespaces/race/configmaps/c", a.ToJsonString()),
                http.SendAsync(HttpMethod.Put, "/api/v1/namespaces/race/configmaps/c", b.ToJsonString()));
            Assert.Single(results, r => r.Code == HttpStatusCode.OK);
            var loser = Assert.Single(results, r => r.Code == HttpStatusCode.Conflict);
            Assert.Equal("Conflict", loser.Body!["reason"]!.GetValue<string>());
            string winner = results.First(r => r.Code == HttpStatusCode.OK).Body!["data"]!["k"]!.GetValue<string>();
            Assert.Equal(winner, (await http.OkAsync(HttpMethod.Get, "/api/v1/namespaces/race/configmaps/c"))["data"]!["k"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task ConcurrentServicesNeverShareAClusterIpOrNodePortAndDeletingReleasesThem()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("alloc");
        var created = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/alloc/services",
            new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "Service", ["metadata"] = new JsonObject { ["name"] = $"s{i}" },
                ["spec"] = new JsonObject { ["type"] = "NodePort", ["ports"] = new JsonArray(new JsonObject { ["port"] = 80 }) },
            }.ToJsonString())));
        var ips = created.Select(s => s["spec"]!["clusterIP"]!.GetValue<string>()).ToList();
        var ports = created.Select(s => s["spec"]!["ports"]![0]!["nodePort"]!.GetValue<int>()).ToList();
        Assert.Equal(40, ips.Distinct().Count());
        Assert.Equal(40, ports.Distinct().Count());
        var ipKeys = (await cluster.EtcdKeysAsync("/registry/ranges/serviceips/")).Select(k => k.Key).ToHashSet();
        Assert.All(ips, ip => Assert.Contains("/registry/ranges/serviceips/" + ip, ipKeys));

        // A fixed IP that is taken is refused; the same IP is free again after the delete.
        var (code, body) = await http.SendAsync(HttpMethod.Post, "/api/v1/namespaces/alloc/services",
            $"{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"dup\"}},\"spec\":{{\"clusterIP\":\"{ips[0]}\",\"ports\":[{{\"port\":80}}]}}}}");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, code);
        Assert.Contains("provided IP is already allocated", body!["message"]!.GetValue<string>());
        for (int i = 0; i < 40; i++) await http.OkAsync(HttpMethod.Delete, $"/api/v1/namespaces/alloc/services/s{i}");
        var left = (await cluster.EtcdKeysAsync("/registry/ranges/")).Select(k => k.Key).ToList();
        Assert.DoesNotContain(left, k => ips.Any(ip => k.EndsWith("/" + ip)) || ports.Any(p => k == "/registry/ranges/servicenodeports/" + p));
        await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/alloc/services",
            $"{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"dup\"}},\"spec\":{{\"clusterIP\":\"{ips[0]}\",\"ports\":[{{\"port\":80}}]}}}}");
    }

    [Fact]
    public async Task PodsAreDeletedGracefullyOnceScheduledAndStatusIsIsolatedFromSpec()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("grace");
        var pod = await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/grace/pods",
            """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]},"status":{"phase":"Running"}}""");
        Assert.Equal("Pending", pod["status"]!["phase"]!.GetValue<string>());
        Assert.Equal("BestEffort", pod["status"]!["qosClass"]!.GetValue<string>());
        Assert.Equal(30, pod["spec"]!["terminationGracePeriodSeconds"]!.GetValue<int>());
        await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/grace/pods/p/binding",
            """{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"n1"}}""");
        // Status through the main resource is ignored; through /status it lands, spec untouched.
        var put = await http.OkAsync(HttpMethod.Patch, "/api/v1/namespaces/grace/pods/p", """{"status":{"phase":"Failed"}}""", "application/merge-patch+json");
        Assert.Equal("Pending", put["status"]!["phase"]!.GetValue<string>());
        var st = await http.OkAsync(HttpMethod.Patch, "/api/v1/namespaces/grace/pods/p/status", """{"status":{"phase":"Running"},"spec":{"nodeName":"other"}}""", "application/merge-patch+json");
        Assert.Equal("Running", st["status"]!["phase"]!.GetValue<string>());
        Assert.Equal("n1", st["spec"]!["nodeName"]!.GetValue<string>());
        Assert.Contains(st["status"]!["conditions"]!.AsArray(), c => c!["type"]!.GetValue<string>() == "PodScheduled");

        var deleting = await http.OkAsync(HttpMethod.Delete, "/api/v1/namespaces/grace/pods/p");
        Assert.NotNull(deleting["metadata"]!["deletionTimestamp"]);
        Assert.Equal(30, deleting["metadata"]!["deletionGracePeriodSeconds"]!.GetValue<int>());
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(HttpMethod.Get, "/api/v1/namespaces/grace/pods/p")).Code);
        await http.OkAsync(HttpMethod.Delete, "/api/v1/namespaces/grace/pods/p?gracePeriodSeconds=0");
        Assert.Equal(HttpStatusCode.NotFound, (await http.SendAsync(HttpMethod.Get, "/api/v1/namespaces/grace/pods/p")).Code);

        // Finalizers hold an object until they are removed.
        await http.OkAsync(HttpMethod.Post, "/api/v1/namespaces/grace/configmaps", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"f","finalizers":["example.com/hold"]}}""");
        var held = await http.OkAsync(HttpMethod.Delete, "/api/v1/namespaces/grace/configmaps/f");
        Assert.NotNull(held["metadata"]!["deletionTimestamp"]);
        await http.OkAsync(HttpMethod.Patch, "/api/v1/namespaces/grace/configmaps/f", """[{"op":"remove","path":"/metadata/finalizers"}]""", "application/json-patch+json");
        Assert.Equal(HttpStatusCode.NotFound, (await http.SendAsync(HttpMethod.Get, "/api/v1/namespaces/grace/configmaps/f")).Code);
    }

    public static TheoryData<string, string, string, string?, string, int, string> BadRequests() => new()
    {
        { "malformed JSON", "POST", "/api/v1/namespaces/bad/configmaps", "{\"apiVersion\":\"v1\",", "application/json", 400, "BadRequest" },
        { "malformed YAML", "POST", "/api/v1/namespaces/bad/configmaps", "a: [b", "application/yaml", 400, "BadRequest" },
        { "wrong kind for the path", "POST", "/api/v1/namespaces/bad/configmaps", """{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x1"}}""", "application/json", 400, "BadRequest" },
        { "wrong apiVersion for the path", "POST", "/api/v1/namespaces/bad/configmaps", """{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x2"}}""", "application/json", 400, "BadRequest" },
        { "invalid name", "POST", "/api/v1/namespaces/bad/configmaps", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}""", "application/json", 422, "Invalid" },
        { "invalid label", "POST", "/api/v1/namespaces/bad/configmaps", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x3","labels":{"a":"-no-"}}}""", "application/json", 422, "Invalid" },
        { "pod without containers", "POST", "/api/v1/namespaces/bad/pods", """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x4"},"spec":{"containers":[]}}""", "application/json", 422, "Invalid" },
        { "field of the wrong type", "POST", "/api/v1/namespaces/bad/pods", """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x5"},"spec":{"containers":"nope"}}""", "application/json", 400, "BadRequest" },
        { "member given twice", "POST", "/api/v1/namespaces/bad/pods", """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x8"},"spec":{"containers":[{"name":"c","image":"i","image":"j"}]}}""", "application/json", 400, "BadRequest" },
        { "account name of the wrong type", "POST", "/api/v1/namespaces/bad/pods", """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x9"},"spec":{"serviceAccountName":5,"containers":[{"name":"c","image":"i"}]}}""", "application/json", 400, "BadRequest" },
        { "null list item", "POST", "/api/v1/namespaces/bad/pods", """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x10"},"spec":{"containers":[null]}}""", "application/json", 422, "Invalid" },
        { "selector not matching template", "POST", "/apis/apps/v1/namespaces/bad/deployments", """{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x6"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"c"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}""", "application/json", 422, "Invalid" },
        { "immutable field change", "PUT", "/api/v1/namespaces/bad/services/svc", """{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},"spec":{"clusterIP":"10.96.200.200","ports":[{"port":80}]}}""", "application/json", 422, "Invalid" },
        { "stale resourceVersion", "PUT", "/api/v1/namespaces/bad/configmaps/exists", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"exists","resourceVersion":"1"}}""", "application/json", 409, "Conflict" },
        { "already exists", "POST", "/api/v1/namespaces/bad/configmaps", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"exists"}}""", "application/json", 409, "AlreadyExists" },
        { "name in body differs from URL", "PUT", "/api/v1/namespaces/bad/configmaps/exists", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}""", "application/json", 400, "BadRequest" },
        { "oversized body", "POST", "/api/v1/namespaces/bad/configmaps", "BIG", "application/json", 413, "RequestEntityTooLarge" },
        { "unknown resource", "GET", "/api/v1/namespaces/bad/widgets", null, "application/json", 404, "NotFound" },
        { "unknown group", "GET", "/apis/example.com/v1/things", null, "application/json", 404, "NotFound" },
        { "missing object", "GET", "/api/v1/namespaces/bad/configmaps/absent", null, "application/json", 404, "NotFound" },
        { "missing namespace", "POST", "/api/v1/namespaces/absent-ns/configmaps", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x7"}}""", "application/json", 404, "NotFound" },
        { "bad label selector", "GET", "/api/v1/namespaces/bad/configmaps?labelSelector=a%20in%20(b", null, "application/json", 400, "BadRequest" },
        { "unsupported field selector", "GET", "/api/v1/namespaces/bad/configmaps?fieldSelector=spec.nodeName%3Dx", null, "application/json", 400, "BadRequest" },
        { "bad resourceVersion", "GET", "/api/v1/namespaces/bad/configmaps?watch=true&resourceVersion=abc", null, "application/json", 400, "BadRequest" },
        { "unsupported patch type", "PATCH", "/api/v1/namespaces/bad/configmaps/exists", "{}", "text/plain", 415, "UnsupportedMediaType" },
        { "unknown field under fieldValidation=Strict", "POST", "/api/v1/namespaces/bad/configmaps?fieldValidation=Strict", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fv1"},"dta":{"a":"b"}}""", "application/json", 400, "BadRequest" },
        { "pod with an unknown field under fieldValidation=Strict", "POST", "/api/v1/namespaces/bad/pods?fieldValidation=Strict", """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"fv2"},"spec":{"containers":[{"name":"c","image":"busybox","imagee":"x"}]}}""", "application/json", 400, "BadRequest" },
        { "merge patch bringing an unknown field under fieldValidation=Strict", "PATCH", "/api/v1/namespaces/bad/configmaps/exists?fieldValidation=Strict", """{"dta":{"a":"b"}}""", "application/merge-patch+json", 400, "BadRequest" },
        { "malformed JSON patch", "PATCH", "/api/v1/namespaces/bad/configmaps/exists", "[{\"op\":", "application/json-patch+json", 400, "BadRequest" },
        { "JSON patch on a missing path", "PATCH", "/api/v1/namespaces/bad/configmaps/exists", """[{"op":"remove","path":"/data/nope"}]""", "application/json-patch+json", 422, "Invalid" },
        { "merge patch changing the name", "PATCH", "/api/v1/namespaces/bad/configmaps/exists", """{"metadata":{"name":"renamed"}}""", "application/merge-patch+json", 400, "BadRequest" },
        { "ConfigMap data value that is not a string", "POST", "/api/v1/namespaces/bad/configmaps", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x14}\ndata: {replicas: 3}\n", "application/yaml", 400, "BadRequest" },
        { "ConfigMap data that is not a map", "POST", "/api/v1/namespaces/bad/configmaps", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x15"},"data":["a"]}""", "application/json", 400, "BadRequest" },
        { "Secret stringData value that is not a string", "POST", "/api/v1/namespaces/bad/secrets", """{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x16"},"stringData":{"debug":true}}""", "application/json", 400, "BadRequest" },
        { "Deployment replicas that is not a number", "POST", "/apis/apps/v1/namespaces/bad/deployments", """{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x17"},"spec":{"replicas":"3","selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}""", "application/json", 400, "BadRequest" },
        { "Service port that is not a number", "POST", "/api/v1/namespaces/bad/services", """{"apiVersion":"v1","kind":"Service","metadata":{"name":"x18"},"spec":{"ports":[{"port":"80"}]}}""", "application/json", 400, "BadRequest" },
        { "annotation value that is not a string", "PUT", "/api/v1/namespaces/bad/configmaps/exists", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"exists","annotations":{"replicas":3}}}""", "application/json", 400, "BadRequest" },
        { "dryRun other than All", "POST", "/api/v1/namespaces/bad/configmaps?dryRun=Bogus", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x11"}}""", "application/json", 422, "Invalid" },
        { "fieldManager over 128 bytes", "POST", "/api/v1/namespaces/bad/configmaps?fieldManager=" + new string('m', 129), """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x12"}}""", "application/json", 422, "Invalid" },
        { "unknown fieldValidation", "POST", "/api/v1/namespaces/bad/configmaps?fieldValidation=Loose", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x13"}}""", "application/json", 400, "BadRequest" },
        { "precondition of the wrong type", "DELETE", "/api/v1/namespaces/bad/configmaps/exists", """{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":5}}""", "application/json", 400, "BadRequest" },
        { "grace period of the wrong type", "DELETE", "/api/v1/namespaces/bad/configmaps/exists", """{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":"soon"}""", "application/json", 400, "BadRequest" },
        { "unknown resourceVersionMatch", "GET", "/api/v1/namespaces/bad/configmaps?resourceVersion=1&resourceVersionMatch=Closest", null, "application/json", 422, "Invalid" },
        { "timeoutSeconds that does not parse", "GET", "/api/v1/namespaces/bad/configmaps?timeoutSeconds=soon", null, "application/json", 400, "BadRequest" },
        { "Lease duration that is not a number", "POST", "/apis/coordination.k8s.io/v1/namespaces/bad/leases", """{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"x19"},"spec":{"holderIdentity":"a","leaseDurationSeconds":"40s"}}""", "application/json", 400, "BadRequest" },
        { "EndpointSlice address that is not a string", "POST", "/apis/discovery.k8s.io/v1/namespaces/bad/endpointslices", """{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"x20"},"addressType":"IPv4","endpoints":[{"addresses":[5]}]}""", "application/json", 400, "BadRequest" },
        { "Node taint that is not an object", "POST", "/api/v1/nodes", """{"apiVersion":"v1","kind":"Node","metadata":{"name":"x21"},"spec":{"taints":["NoSchedule"]}}""", "application/json", 400, "BadRequest" },
        { "Event count that is not a number", "POST", "/api/v1/namespaces/bad/events", """{"apiVersion":"v1","kind":"Event","metadata":{"name":"x22"},"involvedObject":{"kind":"Pod","name":"p"},"count":"many"}""", "application/json", 400, "BadRequest" },
        { "owner reference flag that is not a boolean", "POST", "/apis/apps/v1/namespaces/bad/replicasets", """{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"x23","ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"d","uid":"u","controller":"yes"}]},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}""", "application/json", 400, "BadRequest" },
        { "maxSurge that is neither a number nor a percent", "POST", "/apis/apps/v1/namespaces/bad/deployments", """{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x24"},"spec":{"strategy":{"rollingUpdate":{"maxSurge":"lots"}},"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}""", "application/json", 422, "Invalid" },
        { "maxSurge and maxUnavailable both 0", "POST", "/apis/apps/v1/namespaces/bad/deployments", """{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x25"},"spec":{"strategy":{"rollingUpdate":{"maxSurge":0,"maxUnavailable":"0%"}},"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}""", "application/json", 422, "Invalid" },
        { "DaemonSet maxUnavailable over 100%", "POST", "/apis/apps/v1/namespaces/bad/daemonsets", """{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"x26"},"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":"150%"}},"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}""", "application/json", 422, "Invalid" },
        { "bad propagationPolicy", "DELETE", "/api/v1/namespaces/bad/configmaps/exists?propagationPolicy=Sometimes", null, "application/json", 422, "Invalid" },
        // Numbers past their field's width and dates that are not RFC 3339: stored, no Go client could read them back.
        { "replicas past 32 bits", "POST", "/apis/apps/v1/namespaces/bad/deployments", """{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x27"},"spec":{"replicas":2147483648,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}""", "application/json", 400, "BadRequest" },
        { "DaemonSet maxUnavailable past 32 bits", "POST", "/apis/apps/v1/namespaces/bad/daemonsets", """{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"x28"},"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":9223372036854775808}},"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}""", "application/json", 400, "BadRequest" },
        { "Event timestamp that is not a date", "POST", "/api/v1/namespaces/bad/events", """{"apiVersion":"v1","kind":"Event","metadata":{"name":"x29"},"involvedObject":{"kind":"Pod","name":"p"},"firstTimestamp":"2026-13-45T99:99:99Z"}""", "application/json", 400, "BadRequest" },
        { "pod grace period past 64 bits", "POST", "/api/v1/namespaces/bad/pods", """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x30"},"spec":{"terminationGracePeriodSeconds":9223372036854775808,"containers":[{"name":"c","image":"i"}]}}""", "application/json", 400, "BadRequest" },
        { "Node capacity that is not a quantity", "POST", "/api/v1/nodes", """{"apiVersion":"v1","kind":"Node","metadata":{"name":"x31"},"status":{"capacity":{"cpu":"xyz"}}}""", "application/json", 400, "BadRequest" },
        { "merge patch with a Service port past 32 bits", "PATCH", "/api/v1/namespaces/bad/services/svc", """{"spec":{"ports":[{"port":4294967376}]}}""", "application/merge-patch+json", 400, "BadRequest" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task BadRequestsGetTheRightStatusAndLeaveNothingBehind(string what, string method, string path, string? body, string contentType, int code, string reason)
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("bad");
        await http.SendAsync(HttpMethod.Post, "/api/v1/namespaces/bad/configmaps", Http.ConfigMap("bad", "exists"));
        await http.SendAsync(HttpMethod.Post, "/api/v1/namespaces/bad/services", """{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},"spec":{"ports":[{"port":80}]}}""");
        var before = await cluster.EtcdKeysAsync("/registry/");
        if (body == "BIG") body = Http.ConfigMap("bad", "big", new string('x', 4 * 1024 * 1024));
        var (status, status2) = await http.SendAsync(new HttpMethod(method), path, body, contentType);
        Assert.True((int)status == code, $"{what}: expected {code}, got {(int)status}: {status2?.ToJsonString()}");
        Assert.Equal("Status", status2!["kind"]!.GetValue<string>());
        Assert.Equal("Failure", status2["status"]!.GetValue<string>());
        Assert.Equal(reason, status2["reason"]!.GetValue<string>());
        Assert.Equal(code, status2["code"]!.GetValue<int>());
        Assert.False(string.IsNullOrEmpty(status2["message"]!.GetValue<string>()));
        if (code == 422 && reason == "Invalid" && method == "POST") Assert.NotEmpty(status2["details"]!["causes"]!.AsArray());
        // Nothing was written, and the server keeps serving.
        Assert.Equal(before, await cluster.EtcdKeysAsync("/registry/"));
        Assert.Equal("ok", await http.GetStringAsync("/readyz"));
    }

    [Fact]
    public async Task AnonymousAndUnknownCallersAreRefused()
    {
        cluster.RequireReady();
        using var anon = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } })
        { BaseAddress = cluster.Http.BaseAddress };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anon.SendAsync(HttpMethod.Get, "/api/v1/namespaces")).Code);
        anon.DefaultRequestHeaders.Authorization = new("Bearer", "wrong");
        var (code, body) = await anon.SendAsync(HttpMethod.Get, "/api/v1/namespaces");
        Assert.Equal(HttpStatusCode.Unauthorized, code);
        Assert.Equal("Unauthorized", body!["reason"]!.GetValue<string>());
        Assert.Equal("ok", await anon.GetStringAsync("/healthz"));
    }

    private static readonly (string Path, string Json)[] Valid =
    [
        ("/api/v1/namespaces/sweep/pods", """
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"busybox",
             "ports":[{"containerPort":80}],"env":[{"name":"E","value":"v"}],"resources":{"limits":{"cpu":"1"}},"readinessProbe":{"httpGet":{"path":"/","port":80}},
             "volumeMounts":[{"name":"d","mountPath":"/d"}]}],"volumes":[{"name":"d","emptyDir":{}}],"tolerations":[{"key":"k","operator":"Exists"}]}}
            """),
        ("/apis/apps/v1/namespaces/sweep/deployments", """
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":1,"selector":{"matchLabels":{"a":"b"}},
             "strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":"25%"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}
            """),
        ("/api/v1/namespaces/sweep/services", """
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"NodePort","selector":{"a":"b"},"ports":[{"port":80,"targetPort":8080,"protocol":"TCP"}],
             "sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":10}}}}
            """),
        ("/apis/discovery.k8s.io/v1/namespaces/sweep/endpointslices", """
            {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"e"},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true}}],"ports":[{"port":80}]}
            """),
    ];

    /// <summary>
    /// Every member of a valid object of four kinds, replaced in turn by a value of the wrong type
    /// or an out-of-range one, is a 4xx Status naming the problem, never a server error; what was
    /// accepted is deleted again, and the server serves on.
    /// </summary>
    [Fact]
    public async Task NoMemberReplacedByAWrongValueMakesAServerError()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync("sweep");
        JsonNode?[] wrong = [null, true, -1, 9223372036854775807, 1e308, 1.5, "", new string('x', 300), "-", new JsonArray(), new JsonObject(), "2026-13-45T99:99:99Z"];
        int sent = 0;
        foreach (var (path, json) in Valid)
        {
            var valid = JsonNode.Parse(json)!;
            var members = new List<string>();
            void Walk(JsonNode node, string at)
            {
                if (at.Length > 0) members.Add(at);
                if (node is JsonObject o) foreach (var (k, v) in o) { if (v is not null) Walk(v, at + "/" + k); }
                else if (node is JsonArray a) for (int i = 0; i < a.Count; i++) if (a[i] is { } v) Walk(v, at + "/" + i);
            }
            Walk(valid, "");
            foreach (var member in members)
                foreach (var value in wrong)
                {
                    var o = valid.DeepClone();
                    var segments = member.Split('/')[1..];
                    var parent = segments[..^1].Aggregate(o, (n, seg) => n is JsonArray arr ? arr[int.Parse(seg)]! : n[seg]!);
                    if (parent is JsonArray list) list[int.Parse(segments[^1])] = value?.DeepClone(); else parent[segments[^1]] = value?.DeepClone();
                    var (code, body) = await http.SendAsync(HttpMethod.Post, path, o.ToJsonString());
                    sent++;
                    Assert.True((int)code < 500, $"{path} with {member} = {value?.ToJsonString() ?? "null"}: {(int)code} {body?.ToJsonString()}");
                    if ((int)code >= 400) Assert.Equal("Status", body!["kind"]!.GetValue<string>());
                    else await http.SendAsync(HttpMethod.Delete, $"{path}/{body!["metadata"]!["name"]!.GetValue<string>()}?gracePeriodSeconds=0");
                }
        }
        Assert.True(sent > 1000, $"only {sent} requests");
        Assert.Equal("ok", await http.GetStringAsync("/readyz"));
    }
}
