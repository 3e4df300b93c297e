using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Registry;
using NodeAgent.ControlPlane.Storage;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

/// <summary>
/// The pod create's direct encoder against the general path it stands in for: for every body it
/// takes, the stored bytes are the general path's, byte for byte; a body it is not sure of goes to
/// the general path. The general path here is the server's own code (CheckTypeMeta, CheckNewObject,
/// StampNewObject, PodStrategy.AdmitAndEncode); only the random names are carried across.
/// </summary>
public sealed partial class PodCreateEncoderTests
{
    private const string Ns = "team";
    private const string Uid = "3f0c2a1e-5b7d-4c8e-9a61-0d2f4b6c8e10", Created = "2026-12-06T10:00:00Z";
    private static readonly ResourceInfo Pods = new Resources().Get("", "pods");

    [GeneratedRegex("kube-api-access-[a-z0-9]{5}")]
    private static partial Regex AccessVolume();

    /// <summary>The general path's stored bytes (before status), or null when it refuses the body before encoding.</summary>
    private static string? General(string body, out string name)
    {
        name = "";
        JsonObject obj;
        try
        {
            obj = Json.ParseObject(Encoding.UTF8.GetBytes(body));
            if (body.Contains("null", StringComparison.Ordinal)) Json.DropNulls(obj);
            ApiServer.CheckTypeMeta(obj, Pods, "Pod", "v1");
            ApiServer.CheckNewObject(Pods, Ns, obj);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or ApiException) { return null; }
        name = obj.Meta().Str("name") ?? "";
        ApiServer.StampNewObject(Pods, obj, Uid, Created);
        return Encoding.UTF8.GetString(PodStrategy.AdmitAndEncode(obj));
    }

    /// <summary>The encoder's bytes, with the general path's random names, or null when it declines the body.</summary>
    private static string? Direct(string body, string name, string? general)
    {
        using var pod = PodCreateEncoder.TryParse(Encoding.UTF8.GetBytes(body), Ns);
        if (pod is null) return null;
        string volume = general is not null && AccessVolume().Match(general) is { Success: true } m ? m.Value : "kube-api-access-zzzzz";
        Assert.True(pod.VolumeNameFree(volume));
        return Encoding.UTF8.GetString(pod.Encode(Ns, pod.Name ?? name, Uid, Created, volume));
    }

    private static void Same(string body)
    {
        string? general = General(body, out string name);
        Assert.True(general is not null, "the general path refuses " + body);
        string? direct = Direct(body, name, general);
        Assert.True(direct is not null, "the encoder declines " + body);
        Assert.Equal(general, direct);
    }

    private const string Bench = """
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1","namespace":"team","labels":{"app":"bench","tier":"web"},"annotations":{"example.com/owner":"benchmark"}},
         "spec":{"containers":[{"name":"app","image":"registry.example.com/team/app:1.2.3","command":["/bin/app","--port=8080"],
           "ports":[{"name":"http","containerPort":8080}],"env":[{"name":"MODE","value":"bench"},{"name":"POD","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
           "resources":{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"cpu":"500m","memory":"128Mi"}},
           "readinessProbe":{"httpGet":{"path":"/healthz","port":8080},"periodSeconds":5},
           "volumeMounts":[{"name":"data","mountPath":"/data"}]}],
          "volumes":[{"name":"data","emptyDir":{}}],"nodeSelector":{"kubernetes.io/os":"linux"}}}
        """;

    public static TheoryData<string> Bodies => new()
    {
        Bench,
        """{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}""",
        // Server-owned members sent by the client; status dropped; an unknown member at the top.
        """{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","uid":"x","resourceVersion":"9","generation":4,"selfLink":"/x","creationTimestamp":"2020-01-01T00:00:00Z","deletionTimestamp":"2020-01-01T00:00:00Z","deletionGracePeriodSeconds":3,"namespace":""},"status":{"phase":"Running"},"spec":{"containers":[{"name":"c","image":"busybox:latest"}]},"zzz":{"keep":[1,2.50,"x"]}}""",
        // hostNetwork after the containers: ports get hostPort from containerPort.
        """{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b","ports":[{"containerPort":80},{"containerPort":53,"protocol":"UDP","hostPort":5353},{"name":"x","containerPort":8081}]}],"hostNetwork":true}}""",
        // Limits without requests, requests without limits, requests before limits with a key missing, empty limits, numeric quantities.
        """{"metadata":{"name":"a"},"spec":{"initContainers":[{"name":"i","image":"b","resources":{"limits":{"cpu":2,"memory":"1Gi"}}}],"containers":[{"name":"c","image":"b","resources":{"requests":{"cpu":"1"}}},{"name":"d","image":"b","resources":{"requests":{"cpu":"1"},"limits":{"memory":"1Gi","cpu":"2","example.com/gpu":"1"}}},{"name":"e","image":"b","resources":{"limits":{}}}]}}""",
        // Probes of every handler, lifecycle hooks, a startup probe with everything set.
        """{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b","livenessProbe":{"exec":{"command":["true"]}},"readinessProbe":{"tcpSocket":{"port":80},"timeoutSeconds":3},"startupProbe":{"httpGet":{"port":"http","path":"/s","scheme":"HTTPS"},"timeoutSeconds":2,"periodSeconds":3,"successThreshold":1,"failureThreshold":9},"lifecycle":{"postStart":{"httpGet":{"port":80}},"preStop":{"exec":{"command":["sleep","1"]}}}}]}}""",
        // Every volume source with a default, and others.
        """{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b"}],"volumes":[{"name":"h","hostPath":{"path":"/x"}},{"name":"h2","hostPath":{"path":"/y","type":"Directory"}},{"name":"cm","configMap":{"name":"c","items":[{"key":"a","path":"b"}]}},{"name":"s","secret":{"secretName":"s","defaultMode":256}},{"name":"p","projected":{"sources":[]}},{"name":"d","downwardAPI":{"items":[]}},{"name":"e","emptyDir":{"medium":"Memory"}},{"name":"v","persistentVolumeClaim":{"claimName":"c"}},{"name":"u","unknownSource":{"a":1}}]}}""",
        // Tolerations: one already covering not-ready, one wildcard, one for another effect.
        """{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b"}],"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":60},{"key":"x","effect":"NoSchedule"}]}}""",
        """{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b"}],"tolerations":[{"operator":"Exists"}]}}""",
        """{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b"}],"tolerations":[]}}""",
        // The ServiceAccount admission's cases.
        """{"metadata":{"name":"a"},"spec":{"serviceAccountName":"builder","containers":[{"name":"c","image":"b"}]}}""",
        """{"metadata":{"name":"a"},"spec":{"serviceAccountName":"","serviceAccount":"legacy","containers":[{"name":"c","image":"b"}]}}""",
        """{"metadata":{"name":"a"},"spec":{"serviceAccount":"other","serviceAccountName":"reader","containers":[{"name":"c","image":"b"}]}}""",
        """{"metadata":{"name":"a"},"spec":{"automountServiceAccountToken":false,"containers":[{"name":"c","image":"b"}]}}""",
        """{"metadata":{"name":"a","annotations":{"kubernetes.io/config.mirror":"x"}},"spec":{"containers":[{"name":"c","image":"b"}]}}""",
        """{"metadata":{"name":"a"},"spec":{"initContainers":[{"name":"i","image":"b"}],"containers":[{"name":"c","image":"b","volumeMounts":[{"name":"t","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount/"}]},{"name":"d","image":"b","volumeMounts":[]}],"volumes":[{"name":"t","emptyDir":{}}]}}""",
        """{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b","volumeMounts":[{"name":"t","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}]}],"volumes":[{"name":"t","emptyDir":{}}]}}""",
        // Everything already defaulted: nothing added but the admission's.
        """{"metadata":{"name":"a"},"spec":{"restartPolicy":"Never","dnsPolicy":"Default","terminationGracePeriodSeconds":0,"schedulerName":"s","securityContext":{"runAsUser":1},"enableServiceLinks":false,"priority":5,"preemptionPolicy":"Never","containers":[{"name":"c","image":"b","terminationMessagePath":"/t","terminationMessagePolicy":"FallbackToLogsOnError","imagePullPolicy":"Never","resources":{}}]}}""",
        // Strings the writer escapes, escaped input, non-ASCII, an escaped member name, env fieldRef with apiVersion.
        """{"metadata":{"name":"a","labels":{"a":"b"},"annotations":{"note":"a+b <c> & \"d\"\n\u00e9\u4e2d\ud83d\ude00","na\u006de2":"x"}},"spec":{"containers":[{"name":"c","image":"b","args":["sh","-c","echo \"$X\" > /tmp/x\tok"],"env":[{"name":"A","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"status.podIP"}}},{"name":"B","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]}]}}""",
        // An image with a digest, without a tag, with :latest: three pull policies.
        """{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},{"name":"d","image":"b"},{"name":"e","image":"host:5000/b:latest"},{"name":"f"}]}}""",
        // Whitespace and member order as a person writes them.
        "{\n  \"spec\": {\n    \"containers\": [ { \"image\": \"b\", \"name\": \"c\" } ]\n  },\n  \"metadata\": { \"labels\": { \"x\": \"y\" }, \"name\": \"a\" }\n}",
    };

    [Theory]
    [MemberData(nameof(Bodies))]
    public void TheEncoderStoresWhatTheGeneralPathStores(string body) => Same(body);

    [Fact]
    public void AGeneratedNameIsTheCallersAndTheTakenOneIsRedrawn()
    {
        const string body = """{"metadata":{"generateName":"web-"},"spec":{"containers":[{"name":"c","image":"b"}]}}""";
        string? general = General(body, out string name);
        Assert.StartsWith("web-", name);
        using var pod = PodCreateEncoder.TryParse(Encoding.UTF8.GetBytes(body), Ns)!;
        Assert.Equal("web-", pod.GenerateName);
        Assert.Null(pod.Name);
        string volume = AccessVolume().Match(general!).Value;
        Assert.Equal(general, Encoding.UTF8.GetString(pod.Encode(Ns, name, Uid, Created, volume)));
        Assert.Contains("\"name\":\"web-other\"", Encoding.UTF8.GetString(pod.Encode(Ns, "web-other", Uid, Created, volume)));
    }

    [Fact]
    public void TheAccessVolumeNameIsDrawnAgainWhenThePodHasIt()
    {
        using var pod = PodCreateEncoder.TryParse("""{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b"}],"volumes":[{"name":"kube-api-access-abcde","emptyDir":{}}]}}"""u8.ToArray(), Ns)!;
        Assert.False(pod.VolumeNameFree("kube-api-access-abcde"));
        Assert.True(pod.VolumeNameFree("kube-api-access-bcdfg"));
    }

    /// <summary>Bodies the encoder leaves to the general path (which refuses most of them, and words the error).</summary>
    [Theory]
    [InlineData("""{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"b","command":null}]}}""")] // a null anywhere
    [InlineData("""{"metadata":{"name":"a","annotations":{"x":"null"}},"spec":{"containers":[{"name":"c","image":"b"}]}}""")] // even inside a string
    [InlineData("""{"kind":"Service","metadata":{"name":"a"},"spec":{"containers":[]}}""")]
    [InlineData("""{"apiVersion":"v2","metadata":{"name":"a"},"spec":{"containers":[]}}""")]
    [InlineData("""{"kind":1,"metadata":{"name":"a"},"spec":{"containers":[]}}""")]
    [InlineData("""{"metadata":{"name":"a","namespace":"other"},"spec":{"containers":[]}}""")]
    [InlineData("""{"metadata":{},"spec":{"containers":[]}}""")]
    [InlineData("""{"metadata":{"name":""},"spec":{"containers":[]}}""")]
    [InlineData("""{"metadata":{"generateName":"Bad_"},"spec":{"containers":[]}}""")]
    [InlineData("""{"metadata":{"name":"a"}}""")]
    [InlineData("""{"spec":{"containers":[]}}""")]
    [InlineData("""{"metadata":[],"spec":{"containers":[]}}""")]
    [InlineData("""{"metadata":{"name":"a","name":"b"},"spec":{"containers":[]}}""")]
    [InlineData("""{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":7}]}}""")]
    [InlineData("""{"metadata":{"name":"a"},"spec":{"terminationGracePeriodSeconds":1.5,"containers":[]}}""")]
    [InlineData("""{"metadata":{"name":"a","labels":{"x":1}},"spec":{"containers":[]}}""")]
    [InlineData("""{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":true}}}]}}""")]
    [InlineData("""{"metadata":{"name":"a"},"spec":{"containers":[]},""")]
    [InlineData("""[]""")]
    public void BodiesItIsNotSureOfGoToTheGeneralPath(string body)
    {
        using var pod = PodCreateEncoder.TryParse(Encoding.UTF8.GetBytes(body), Ns);
        Assert.Null(pod);
    }

    /// <summary>
    /// Each member of the bodies above replaced by each other JSON type, removed, or doubled in
    /// an array: whenever the encoder takes the result, the general path takes it too and stores
    /// the same bytes; whenever the general path refuses it before encoding, the encoder declined it.
    /// </summary>
    [Fact]
    public void EveryMutationOfTheBodiesIsTakenAlikeOrLeftToTheGeneralPath()
    {
        string[] replacements = ["\"s\"", "\"\"", "0", "7", "-1", "1.5", "true", "false", "{}", "[]", "[\"x\"]", "[{}]", "{\"k\":\"v\"}"];
        int taken = 0, declined = 0;
        foreach (string body in Bodies)
        {
            var root = JsonNode.Parse(body)!;
            foreach (var (parent, key) in Members(root))
            {
                var original = Get(parent, key);
                foreach (var r in replacements)
                {
                    Set(parent, key, JsonNode.Parse(r));
                    Check(root.ToJsonString(), ref taken, ref declined);
                }
                if (parent is JsonObject o)
                {
                    o.Remove((string)key);
                    Check(root.ToJsonString(), ref taken, ref declined);
                    o[(string)key] = original;
                }
                else Set(parent, key, original);
            }
        }
        Assert.True(taken > 1000, $"{taken} mutations taken, {declined} declined");
    }

    private static void Check(string body, ref int taken, ref int declined)
    {
        string? general = General(body, out string name);
        string? direct = Direct(body, name, general);
        if (direct is null) { declined++; return; }
        Assert.True(general is not null, $"the encoder took a body the general path refuses: {body}");
        Assert.True(general == direct, $"different bytes for {body}:\n general {general}\n direct  {direct}");
        taken++;
    }

    private static List<(JsonNode Parent, object Key)> Members(JsonNode node)
    {
        var all = new List<(JsonNode, object)>();
        void Walk(JsonNode n)
        {
            if (n is JsonObject o)
                foreach (var (k, v) in o.ToList()) { all.Add((o, k)); if (v is not null) Walk(v); }
            else if (n is JsonArray a)
                for (int i = 0; i < a.Count; i++) { all.Add((a, i)); if (a[i] is { } v) Walk(v); }
        }
        Walk(node);
        return all;
    }

    private static JsonNode? Get(JsonNode parent, object key) => parent is JsonObject o ? o[(string)key] : parent.AsArray()[(int)key];

    private static void Set(JsonNode parent, object key, JsonNode? value)
    {
        if (parent is JsonObject o) o[(string)key] = value; else parent.AsArray()[(int)key] = value;
    }

    /// <summary>
    /// Random pods drawn from every member a default or the admission reads or writes (each present
    /// or not, members in random order): the encoder takes every one, with the general path's bytes.
    /// </summary>
    [Fact]
    public void RandomPodsAreStoredAlike()
    {
        var rnd = new Random(20261206);
        for (int i = 0; i < 3000; i++)
        {
            string body = RandomPod(rnd).ToJsonString();
            string? general = General(body, out string name);
            Assert.True(general is not null, "the general path refuses " + body);
            string? direct = Direct(body, name, general);
            Assert.True(direct is not null, "the encoder declines " + body);
            Assert.True(general == direct, $"different bytes for {body}:\n general {general}\n direct  {direct}");
        }
    }

    private static JsonObject RandomPod(Random r)
    {
        bool P(int percent = 50) => r.Next(100) < percent;
        T Pick<T>(params T[] from) => from[r.Next(from.Length)];
        JsonObject Obj(params (string Key, JsonNode? Value)[] members)
        {
            var kept = members.Where(m => m.Value is not null).OrderBy(_ => r.Next()).ToList();
            var o = new JsonObject();
            foreach (var (k, v) in kept) o[k] = v;
            return o;
        }
        JsonNode? Maybe(JsonNode value, int percent = 50) => P(percent) ? value : null;
        JsonNode HttpGet() => Obj(("port", Pick<JsonNode>(8080, "http")), ("path", Maybe("/p")), ("scheme", Maybe(Pick("HTTP", "HTTPS"))), ("host", Maybe("h", 10)));
        (string, JsonNode?) Handler() => r.Next(3) switch
        {
            0 => ("exec", Obj(("command", new JsonArray("true")))),
            1 => ("httpGet", HttpGet()),
            _ => ("tcpSocket", Obj(("port", 80))),
        };
        JsonNode Probe() => Obj(Handler(),
            ("timeoutSeconds", Maybe(r.Next(1, 5))), ("periodSeconds", Maybe(r.Next(1, 20))), ("successThreshold", Maybe(1)),
            ("failureThreshold", Maybe(r.Next(1, 9))), ("initialDelaySeconds", Maybe(r.Next(0, 9))));
        JsonNode Quantities(string[] keys) => Obj(keys.Select(k => (k, (JsonNode?)(P(80) ? (JsonNode)$"{r.Next(1, 900)}m" : r.Next(1, 4)))).ToArray());
        string[] Keys() => new[] { "cpu", "memory", "example.com/gpu" }.Where(_ => P(60)).OrderBy(_ => r.Next()).ToArray();
        JsonNode Container(int n, bool init)
        {
            var mounts = new JsonArray();
            if (P(40)) mounts.Add((JsonNode)Obj(("name", "data"), ("mountPath", "/data")));
            if (P(15)) mounts.Add((JsonNode)Obj(("name", "data"), ("mountPath", ServiceAccountAdmission.MountPath + Pick("", "/")), ("readOnly", true)));
            var env = new JsonArray();
            JsonNode ValueFrom() => P(80)
                ? Obj(("fieldRef", Obj(("fieldPath", "metadata.name"), ("apiVersion", Maybe("v1", 30)))))
                : Obj(("secretKeyRef", Obj(("name", "s"), ("key", "k"))));
            for (int e = r.Next(3); e > 0; e--)
                env.Add(P() ? Obj(("name", $"E{e}"), ("value", "v")) : Obj(("name", $"F{e}"), ("valueFrom", ValueFrom())));
            var ports = new JsonArray();
            for (int p = r.Next(3); p > 0; p--)
                ports.Add((JsonNode)Obj(("containerPort", 8000 + p), ("protocol", Maybe(Pick("TCP", "UDP"), 30)), ("hostPort", Maybe(9000 + p, 20)), ("name", Maybe($"p{p}"))));
            return Obj(("name", $"{(init ? "i" : "c")}{n}"), ("image", Maybe(Pick("busybox", "busybox:1.36", "busybox:latest", "r.example.com:5000/a/b@sha256:" + new string('a', 64)), 95)),
                ("command", Maybe(new JsonArray("sh", "-c", "echo \"hi\" && sleep 1"))), ("ports", Maybe(ports)), ("env", Maybe(env)),
                ("resources", Maybe(Obj(("limits", Maybe(Quantities(Keys()))), ("requests", Maybe(Quantities(Keys())))), 60)),
                ("livenessProbe", Maybe(Probe(), 30)), ("readinessProbe", Maybe(Probe(), 30)), ("startupProbe", Maybe(Probe(), 15)),
                ("lifecycle", Maybe(Obj(("postStart", Maybe(Obj(("httpGet", HttpGet())))), ("preStop", Maybe(Obj(("exec", Obj(("command", new JsonArray("true")))))))), 20)),
                ("volumeMounts", Maybe(mounts, 70)), ("terminationMessagePath", Maybe("/t", 20)), ("terminationMessagePolicy", Maybe("File", 20)),
                ("imagePullPolicy", Maybe(Pick("Always", "IfNotPresent", "Never"), 20)), ("unknownMember", Maybe(new JsonObject { ["x"] = 1 }, 10)));
        }
        JsonArray List(int max, Func<int, JsonNode> item)
        {
            var a = new JsonArray();
            for (int k = 0, n = r.Next(max + 1); k < n; k++) a.Add(item(k));
            return a;
        }
        var volumes = List(4, v => Obj(("name", v == 0 ? "data" : $"v{v}"), r.Next(7) switch
        {
            0 => ("hostPath", Obj(("path", "/x"), ("type", Maybe("Directory")))),
            1 => ("configMap", Obj(("name", "c"), ("defaultMode", Maybe(256)), ("items", Maybe(new JsonArray((JsonNode)Obj(("key", "a"), ("path", "b"))))))),
            2 => ("secret", Obj(("secretName", "s"), ("defaultMode", Maybe(384)))),
            3 => ("projected", Obj(("sources", new JsonArray()), ("defaultMode", Maybe(292)))),
            4 => ("downwardAPI", Obj(("items", new JsonArray()))),
            5 => ("emptyDir", Obj(("medium", Maybe("Memory")))),
            _ => ("persistentVolumeClaim", Obj(("claimName", "c"))),
        }));
        var tolerations = List(3, _ => Obj(("key", Maybe(Pick("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable", "x"), 80)),
            ("operator", Maybe(Pick("Exists", "Equal"))), ("effect", Maybe(Pick("NoExecute", "NoSchedule", ""))), ("tolerationSeconds", Maybe(60, 30))));
        var spec = Obj(("containers", List(3, c => Container(c, false))), ("initContainers", Maybe(List(2, c => Container(c, true)), 30)),
            ("volumes", Maybe(volumes, 60)), ("tolerations", Maybe(tolerations, 40)), ("hostNetwork", Maybe(P(), 30)),
            ("restartPolicy", Maybe(Pick("Always", "OnFailure", "Never"), 30)), ("dnsPolicy", Maybe("Default", 20)), ("terminationGracePeriodSeconds", Maybe(r.Next(0, 60), 20)),
            ("schedulerName", Maybe("other", 10)), ("securityContext", Maybe(Obj(("runAsUser", Maybe(1000))), 20)), ("enableServiceLinks", Maybe(P(), 20)),
            ("priority", Maybe(0, 10)), ("preemptionPolicy", Maybe("Never", 10)), ("serviceAccountName", Maybe(Pick("", "builder"), 30)),
            ("serviceAccount", Maybe(Pick("", "legacy"), 20)), ("automountServiceAccountToken", Maybe(P(), 20)), ("nodeName", Maybe("n1", 10)),
            ("nodeSelector", Maybe(Obj(("kubernetes.io/os", "linux")), 20)));
        var meta = Obj(("name", P(85) ? "p" + r.Next(1000) : null), ("generateName", "web-"), ("namespace", Maybe(Pick("", Ns), 40)),
            ("labels", Maybe(Obj(("app", "x"), ("tier", Maybe("web"))), 60)), ("uid", Maybe("client-uid", 10)), ("resourceVersion", Maybe("5", 10)),
            ("annotations", Maybe(Obj(("note", "a+b <c> é"), ("kubernetes.io/config.mirror", Maybe("m", 15))), 40)), ("generation", Maybe(3, 10)));
        return Obj(("apiVersion", Maybe("v1", 80)), ("kind", Maybe("Pod", 80)), ("metadata", meta), ("spec", spec),
            ("status", Maybe(Obj(("phase", "Running")), 10)));
    }
}
