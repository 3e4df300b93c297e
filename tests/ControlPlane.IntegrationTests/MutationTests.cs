using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

/// <summary>
/// Bad input beyond the hand-written table: every member of a valid object of each served kind,
/// replaced in turn by a value of each other JSON type (and list items by null), sent as a create,
/// an update (and a status update where the kind has status), a JSON patch, and where no list lies
/// on the way a merge, strategic merge and apply patch. Each answer is a success or a client error with a Status body:
/// never a 500, which is what a crash inside defaulting, admission or validation turns into.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class MutationTests(ClusterFixture cluster)
{
    private const string Ns = "mutations";

    private static readonly (string Path, string Json)[] Objects =
    [
        ("/api/v1/namespaces/mutations/pods", """
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app":"a"},"annotations":{"k":"v"}},
             "spec":{"initContainers":[{"name":"init","image":"busybox"}],
                     "containers":[{"name":"app","image":"app:1","command":["/app"],"args":["-v"],"ports":[{"name":"http","containerPort":8080}],
                                    "env":[{"name":"A","value":"b"},{"name":"POD","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
                                    "envFrom":[{"configMapRef":{"name":"c"}}],
                                    "resources":{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"cpu":"1","memory":"128Mi"}},
                                    "readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":5},"livenessProbe":{"exec":{"command":["true"]}},
                                    "lifecycle":{"preStop":{"httpGet":{"path":"/x","port":"http"}}},"securityContext":{"capabilities":{"add":["NET_ADMIN"]}},
                                    "volumeMounts":[{"name":"data","mountPath":"/data"}]}],
                     "volumes":[{"name":"data","emptyDir":{}},{"name":"h","hostPath":{"path":"/tmp"}}],"nodeSelector":{"os":"linux"},
                     "tolerations":[{"key":"k","operator":"Equal","value":"v","effect":"NoSchedule"}],"serviceAccountName":"default",
                     "dnsConfig":{"nameservers":["1.1.1.1"],"options":[{"name":"ndots","value":"2"}]},"hostAliases":[{"ip":"1.2.3.4","hostnames":["a"]}],
                     "securityContext":{"runAsNonRoot":true,"sysctls":[{"name":"net.core.somaxconn","value":"1024"}]},"restartPolicy":"Always"}}
            """),
        ("/apis/apps/v1/namespaces/mutations/deployments", """
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","labels":{"a":"b"}},
             "spec":{"replicas":0,"selector":{"matchLabels":{"a":"b"},"matchExpressions":[{"key":"a","operator":"In","values":["b"]}]},
                     "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1,"maxUnavailable":"25%"}},
                     "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x:1","ports":[{"containerPort":80}]}]}}}}
            """),
        ("/apis/apps/v1/namespaces/mutations/daemonsets", """
            {"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"ds"},
             "spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"nodeSelector":{"none":"none"},"containers":[{"name":"c","image":"x"}]}}}}
            """),
        ("/api/v1/namespaces/mutations/services", """
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},
             "spec":{"type":"NodePort","selector":{"a":"b"},"ports":[{"name":"http","port":80,"targetPort":"http","protocol":"TCP"}],"sessionAffinity":"None","externalIPs":["192.0.2.1"]}}
            """),
        ("/api/v1/namespaces/mutations/configmaps", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","annotations":{"x":"y"}},"data":{"a":"b"},"binaryData":{"b":"Yg=="}}"""),
        ("/api/v1/namespaces/mutations/secrets", """{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"type":"Opaque","stringData":{"a":"b"},"data":{"c":"ZA=="}}"""),
        ("/apis/discovery.k8s.io/v1/namespaces/mutations/endpointslices", """
            {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"e","labels":{"kubernetes.io/service-name":"s"}},"addressType":"IPv4",
             "endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true}}],"ports":[{"name":"http","port":80,"protocol":"TCP"}]}
            """),
        ("/api/v1/namespaces/mutations/endpoints", """{"apiVersion":"v1","kind":"Endpoints","metadata":{"name":"ep"},"subsets":[{"addresses":[{"ip":"10.0.0.1"}],"ports":[{"port":80}]}]}"""),
        ("/apis/coordination.k8s.io/v1/namespaces/mutations/leases", """{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l"},"spec":{"holderIdentity":"a","leaseDurationSeconds":40}}"""),
        ("/api/v1/namespaces/mutations/events", """
            {"apiVersion":"v1","kind":"Event","metadata":{"name":"ev"},"involvedObject":{"kind":"Pod","name":"p","namespace":"mutations"},"reason":"R","message":"m","type":"Normal","count":1}
            """),
        ("/api/v1/namespaces/mutations/serviceaccounts", """{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa"},"secrets":[{"name":"x"}]}"""),
    ];

    private static readonly Func<JsonNode?>[] Replacements =
        [() => 5, () => "s", () => true, () => null, () => new JsonArray(), () => new JsonObject(), () => new JsonArray((JsonNode?)null), () => -1.5];

    [Fact]
    public async Task EveryMemberReplacedByAnotherTypeIsAClientErrorNeverAServerError()
    {
        cluster.RequireReady();
        var http = cluster.Http;
        await http.EnsureNamespaceAsync(Ns);
        var failures = new List<string>();
        var accepted = new List<string>();
        int requests = 0, n = 0;
        foreach (var (path, json) in Objects)
        {
            var valid = JsonNode.Parse(json)!.AsObject();
            // The unchanged object is accepted, so every refusal below is the mutation's doing.
            var created = await http.OkAsync(HttpMethod.Post, path, valid.ToJsonString());
            string name = created["metadata"]!["name"]!.GetValue<string>();
            var mutations = new List<(string Where, JsonObject Obj, JsonNode? Patch, string Pointer, string Value, bool WrongType)>();
            foreach (var at in Paths(created, []))
            {
                if (at.Count == 0 || at[0] is "apiVersion" or "kind" || at is ["metadata", "name" or "namespace" or "resourceVersion" or "uid", ..]) continue;
                foreach (var make in Replacements)
                {
                    var obj = (JsonObject)created.DeepClone();
                    Set(obj, at, make());
                    string value = make()?.ToJsonString() ?? "null";
                    mutations.Add((string.Join('.', at) + " = " + value, obj, MergePatch(at, make()), "/" + string.Join('/', at.Select(p => p.ToString()!.Replace("~", "~0").Replace("/", "~1"))), value,
                                   WrongType(Get(created, at), make(), at)));
                }
            }
            await Parallel.ForEachAsync(mutations, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (m, _) =>
            {
                // As a create under a new name, as an update of the live object, and as a merge patch.
                var asNew = (JsonObject)m.Obj.DeepClone();
                if (asNew["metadata"] is JsonObject meta) { meta["name"] = $"m{Interlocked.Increment(ref n)}"; meta.Remove("resourceVersion"); meta.Remove("uid"); }
                await Check("POST", path, asNew.ToJsonString(), "application/json", m.Where, m.WrongType);
                // Without its resourceVersion, so that one accepted update does not make the rest conflicts.
                var asUpdate = (JsonObject)m.Obj.DeepClone();
                (asUpdate["metadata"] as JsonObject)?.Remove("resourceVersion");
                await Check("PUT", $"{path}/{name}", asUpdate.ToJsonString(), "application/json", m.Where, m.WrongType);
                if (m.Patch is not null)
                {
                    await Check("PATCH", $"{path}/{name}", m.Patch.ToJsonString(), "application/merge-patch+json", m.Where, m.WrongType);
                    await Check("PATCH", $"{path}/{name}", m.Patch.ToJsonString(), "application/strategic-merge-patch+json", m.Where, m.WrongType);
                    await Check("PATCH", $"{path}/{name}?fieldManager=mutations&force=true", m.Patch.ToJsonString(), "application/apply-patch+yaml", m.Where, m.WrongType);
                }
                await Check("PATCH", $"{path}/{name}", $$"""[{"op":"replace","path":"{{m.Pointer}}","value":{{m.Value}}}]""", "application/json-patch+json", m.Where, m.WrongType);
                if (m.Obj["status"] is not null) await Check("PUT", $"{path}/{name}/status", asUpdate.ToJsonString(), "application/json", m.Where, m.WrongType);
            });
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {requests} requests were not answered with success or a client error Status:\n" + string.Join("\n", failures.Take(30)));
        Assert.True(accepted.Count == 0, $"{accepted.Count} writes with a member of the wrong type were stored:\n" + string.Join("\n", accepted.Take(300)));
        Assert.True(requests > 10000, $"only {requests} requests");
        Assert.Equal("ok", await http.GetStringAsync("/readyz"));
        await http.SendAsync(HttpMethod.Delete, $"/api/v1/namespaces/{Ns}");

        async Task Check(string method, string path, string body, string contentType, string where, bool wrongType)
        {
            Interlocked.Increment(ref requests);
            var (code, status) = await http.SendAsync(new HttpMethod(method), path, body, contentType);
            bool ok = (int)code < 400 || (int)code < 500 && status?["kind"]?.GetValue<string>() == "Status" && status["code"]?.GetValue<int>() == (int)code;
            if (!ok) lock (failures) failures.Add($"{method} {path} with {where}: {(int)code} {status?.ToJsonString()}");
            // A scalar of the wrong JSON type is what upstream's decoder refuses: it must never be stored.
            if (wrongType && (int)code < 300) lock (accepted) accepted.Add($"{method} {path} with {where}: {(int)code}");
        }
    }

    /// <summary>
    /// Whether <paramref name="now"/> in place of the scalar <paramref name="was"/> is a type upstream's
    /// decoder refuses: another JSON kind, or a fraction for an integer. Null is every type's zero
    /// value; int-or-string members (ports, targetPort, maxSurge, maxUnavailable) take numbers and
    /// strings, and quantities (resources) take numbers.
    /// </summary>
    private static bool WrongType(JsonNode? was, JsonNode? now, List<object> at)
    {
        if (was is not JsonValue || now is null) return false;
        var a = was.GetValueKind();
        var b = now.GetValueKind();
        if (a is JsonValueKind.True or JsonValueKind.False) return b is not (JsonValueKind.True or JsonValueKind.False);
        if (a == JsonValueKind.Number && b == JsonValueKind.Number) return IsInteger(was) && !IsInteger(now);
        bool intOrString = at[^1] is "port" or "targetPort" or "maxSurge" or "maxUnavailable";
        bool quantity = at.Count >= 2 && at[^2] is "requests" or "limits";
        if ((intOrString || quantity) && a is (JsonValueKind.Number or JsonValueKind.String) && b is (JsonValueKind.Number or JsonValueKind.String))
            return b == JsonValueKind.Number && !IsInteger(now) && intOrString;
        return a != b;
    }

    private static bool IsInteger(JsonNode n) => n.ToJsonString().AsSpan().IndexOfAny(".eE") < 0;

    private static JsonNode? Get(JsonNode root, List<object> at)
    {
        JsonNode? node = root;
        foreach (var p in at) node = p is string k ? node?[k] : node?[(int)p];
        return node;
    }

    private static IEnumerable<List<object>> Paths(JsonNode? node, List<object> at)
    {
        yield return at;
        if (node is JsonObject o)
            foreach (var (k, v) in o) foreach (var p in Paths(v, [.. at, k])) yield return p;
        else if (node is JsonArray a)
            for (int i = 0; i < a.Count; i++) foreach (var p in Paths(a[i], [.. at, i])) yield return p;
    }

    private static void Set(JsonNode root, List<object> at, JsonNode? value)
    {
        var node = root;
        for (int i = 0; i < at.Count - 1; i++) node = at[i] is string k ? node[k]! : node[(int)at[i]]!;
        if (at[^1] is string key) node[key] = value; else node[(int)at[^1]] = value;
    }

    /// <summary>The merge patch that sets the member at <paramref name="at"/>, when no list lies on the way.</summary>
    private static JsonNode? MergePatch(List<object> at, JsonNode? value)
    {
        JsonNode? patch = value;
        for (int i = at.Count - 1; i >= 0; i--)
        {
            if (at[i] is not string k) return null;
            patch = new JsonObject { [k] = patch };
        }
        return patch;
    }
}
