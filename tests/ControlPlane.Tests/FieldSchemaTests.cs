using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Registry;
using NodeAgent.ControlPlane.Storage;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

/// <summary>
/// The served kinds' field tables for server-side field validation: the members a kind does not
/// declare, named as upstream's strict decoder names them, and nothing else.
/// </summary>
public sealed class FieldSchemaTests
{
    private static List<string> Unknown(string kind, string group, string json)
    {
        var node = JsonNode.Parse(json)!;
        var fromNode = FieldSchema.UnknownFields(kind, group, node);
        using var doc = JsonDocument.Parse(json);
        // The pod create's parsed document and the general path's tree give the same answer.
        Assert.Equal(fromNode, FieldSchema.UnknownFields(kind, group, doc.RootElement));
        return fromNode;
    }

    [Fact]
    public void EveryServedKindHasATable()
    {
        foreach (var r in new Resources().All) Assert.True(FieldSchema.Knows(r.Kind, r.Group), $"{r.Group}/{r.Kind} has no field table");
    }

    [Fact]
    public void AFullPodHasNoUnknownField()
    {
        const string pod = """
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ns","labels":{"any/key":"v"},"annotations":{"x":"y"},
          "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"r","uid":"u","controller":true,"blockOwnerDeletion":true}],
          "finalizers":["f"],"managedFields":[{"manager":"m","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:anything":{}}}}]},
         "spec":{"containers":[{"name":"app","image":"busybox","command":["sh"],"args":["-c"],"workingDir":"/",
            "ports":[{"name":"http","containerPort":80,"protocol":"TCP","hostPort":8080}],
            "env":[{"name":"A","value":"1"},{"name":"B","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},
                   {"name":"C","valueFrom":{"resourceFieldRef":{"resource":"limits.cpu","divisor":"1m"}}}],
            "envFrom":[{"configMapRef":{"name":"c"},"prefix":"P_"}],
            "resources":{"requests":{"cpu":"100m","memory":"64Mi","example.com/gpu":"1"},"limits":{"cpu":1}},
            "volumeMounts":[{"name":"v","mountPath":"/v","readOnly":true,"subPath":"s"}],
            "livenessProbe":{"httpGet":{"path":"/","port":"http","httpHeaders":[{"name":"h","value":"v"}]},"periodSeconds":5},
            "readinessProbe":{"exec":{"command":["true"]}},"startupProbe":{"tcpSocket":{"port":80}},
            "lifecycle":{"preStop":{"sleep":{"seconds":1}}},
            "securityContext":{"runAsUser":1,"capabilities":{"add":["NET_ADMIN"]},"seccompProfile":{"type":"RuntimeDefault"}},
            "imagePullPolicy":"IfNotPresent","terminationMessagePolicy":"File","tty":false}],
          "initContainers":[{"name":"init","image":"busybox","restartPolicy":"Always"}],
          "volumes":[{"name":"v","emptyDir":{"medium":"Memory","sizeLimit":"1Gi"}},{"name":"h","hostPath":{"path":"/tmp","type":"Directory"}},
                     {"name":"p","projected":{"sources":[{"serviceAccountToken":{"path":"token","expirationSeconds":3607}},
                        {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
                        {"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]}}],
          "affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"k","operator":"In","values":["v"]}]}]}},
                      "podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,"podAffinityTerm":{"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchLabels":{"a":"b"}}}}]}},
          "topologySpreadConstraints":[{"maxSkew":1,"topologyKey":"zone","whenUnsatisfiable":"DoNotSchedule","labelSelector":{"matchLabels":{"a":"b"}}}],
          "tolerations":[{"key":"k","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],
          "nodeSelector":{"kubernetes.io/os":"linux"},"restartPolicy":"Always","dnsPolicy":"ClusterFirst","hostNetwork":false,
          "securityContext":{"fsGroup":2,"sysctls":[{"name":"net.ipv4.ip_forward","value":"1"}]},"overhead":{"cpu":"10m"},
          "readinessGates":[{"conditionType":"x"}],"schedulingGates":[{"name":"g"}],"os":{"name":"linux"},"priority":0,"enableServiceLinks":true},
         "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-12-07T00:00:00Z"}],"podIP":"10.0.0.1",
           "podIPs":[{"ip":"10.0.0.1"}],"qosClass":"Burstable","containerStatuses":[{"name":"app","ready":true,"restartCount":0,"image":"busybox","imageID":"x",
           "state":{"running":{"startedAt":"2026-12-07T00:00:00Z"}},"lastState":{"terminated":{"exitCode":1,"reason":"Error"}}}]}}
        """;
        Assert.Empty(Unknown("Pod", "", pod));
    }

    [Fact]
    public void TyposAreNamedWithTheirPathAsUpstreamNamesThem()
    {
        const string deployment = """
        {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","labelz":{"a":"b"}},
         "spec":{"replicas":1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"},"containers":[]},
           "spec":{"initContainers":[{"name":"i","image":"x"}],"containers":[{"name":"a","image":"x"},{"name":"b","image":"x","imagePullPolicyy":"Always",
             "resources":{"limits":{"cpu":"1"},"limitz":{}},"ports":[{"containerPort":80,"hostPortt":1}]}],"nodeSelectorr":{"a":"b"}}},
           "strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailabl":0}}},"extra":true}
        """;
        Assert.Equal(
        [
            "metadata.labelz",
            "spec.template.metadata.containers",
            "spec.template.spec.containers[1].imagePullPolicyy",
            "spec.template.spec.containers[1].resources.limitz",
            "spec.template.spec.containers[1].ports[0].hostPortt",
            "spec.template.spec.nodeSelectorr",
            "spec.strategy.rollingUpdate.maxUnavailabl",
            "extra",
        ], Unknown("Deployment", "apps", deployment));
    }

    [Fact]
    public void MapsAndRawExtensionsTakeAnyKey()
    {
        Assert.Empty(Unknown("ConfigMap", "", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"anything.at-all":"v"},"binaryData":{"b":"AA=="}}"""));
        Assert.Empty(Unknown("Secret", "", """{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"AA=="},"stringData":{"x":"y"},"type":"Opaque"}"""));
        Assert.Empty(Unknown("ControllerRevision", "apps", """{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"r"},"revision":1,"data":{"spec":{"whatever":{"deep":[1]}}}}"""));
        Assert.Equal(["spec.nope"], Unknown("Service", "", """{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"selector":{"any":"x"},"ports":[{"port":80,"targetPort":"http"}],"nope":1}}"""));
        Assert.Equal(["endpoints[0].conditions.readyy"], Unknown("EndpointSlice", "discovery.k8s.io",
            """{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"e"},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"conditions":{"readyy":true}}],"ports":[{"port":80}]}"""));
    }

    [Fact]
    public void WhatTheServerStoresForAPodIsAllKnown()
    {
        // The defaults, the service-account volume and the pending status the server writes itself.
        var obj = Json.ParseObject(Encoding.UTF8.GetBytes("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"busybox","ports":[{"containerPort":80}],"readinessProbe":{"httpGet":{"port":80}}}]}}"""));
        var pods = new Resources().Get("", "pods");
        ApiServer.CheckNewObject(pods, "ns", obj);
        ApiServer.StampNewObject(pods, obj, "3f0c2a1e-5b7d-4c8e-9a61-0d2f4b6c8e10", "2026-12-07T00:00:00Z");
        var stored = PodStrategy.AdmitAndEncode(obj);
        using var doc = JsonDocument.Parse(ObjectCodec.AppendMember(stored, PodStrategy.PendingStatus("BestEffort")));
        Assert.Empty(FieldSchema.UnknownFields("Pod", "", doc.RootElement));
    }

    private static (string Path, string Expected)? Mismatch(string kind, string group, string json)
    {
        var fromNode = FieldSchema.Check(kind, group, JsonNode.Parse(json)!).Mismatch;
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(fromNode, FieldSchema.Check(kind, group, doc.RootElement).Mismatch);
        return fromNode;
    }

    // What upstream's decoder refuses, and a Go client could not read back if it were stored.
    [Theory]
    [InlineData("""{"spec":{"replicas":2147483648}}""", "spec.replicas", "an integer of at most 32 bits")]
    [InlineData("""{"spec":{"replicas":-2147483649}}""", "spec.replicas", "an integer of at most 32 bits")]
    [InlineData("""{"spec":{"replicas":1.5}}""", "spec.replicas", "an integer")]
    [InlineData("""{"spec":{"replicas":1e3}}""", "spec.replicas", "an integer")]
    [InlineData("""{"spec":{"replicas":"3"}}""", "spec.replicas", "an integer")]
    [InlineData("""{"spec":{"progressDeadlineSeconds":9223372036854775808}}""", "spec.progressDeadlineSeconds", "an integer of at most 32 bits")]
    [InlineData("""{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":9223372036854775808}}}}""", "spec.template.spec.terminationGracePeriodSeconds", "an integer of at most 64 bits")]
    [InlineData("""{"spec":{"strategy":{"rollingUpdate":{"maxSurge":2147483648}}}}""", "spec.strategy.rollingUpdate.maxSurge", "an integer of at most 32 bits or a string")]
    [InlineData("""{"spec":{"strategy":{"rollingUpdate":{"maxSurge":true}}}}""", "spec.strategy.rollingUpdate.maxSurge", "an integer or a string")]
    [InlineData("""{"spec":{"paused":"yes"}}""", "spec.paused", "a boolean")]
    [InlineData("""{"metadata":{"labels":{"a":1}}}""", "metadata.labels[a]", "a string")]
    [InlineData("""{"metadata":{"finalizers":"f"}}""", "metadata.finalizers", "a list")]
    [InlineData("""{"metadata":{"creationTimestamp":"2026-13-45T99:99:99Z"}}""", "metadata.creationTimestamp", "an RFC 3339 date and time")]
    [InlineData("""{"metadata":{"creationTimestamp":"2026-01-02 03:04:05Z"}}""", "metadata.creationTimestamp", "an RFC 3339 date and time")]
    [InlineData("""{"metadata":{"creationTimestamp":"2026-01-02T03:04:05"}}""", "metadata.creationTimestamp", "an RFC 3339 date and time")]
    [InlineData("""{"spec":{"template":{"spec":{"containers":[{"name":"c","ports":[{"containerPort":"80"}]}]}}}}""", "spec.template.spec.containers[0].ports[0].containerPort", "an integer")]
    [InlineData("""{"spec":{"template":{"spec":{"containers":[7]}}}}""", "spec.template.spec.containers[0]", "an object")]
    [InlineData("""{"spec":{"template":{"spec":{"containers":[{"resources":{"limits":{"cpu":[]}}}]}}}}""", "spec.template.spec.containers[0].resources.limits[cpu]", "a quantity")]
    [InlineData("""{"spec":{"selector":"a=b"}}""", "spec.selector", "an object")]
    [InlineData("""{"spec":{"template":{"spec":{"overhead":{"cpu":"1x"}}}}}""", "spec.template.spec.overhead[cpu]", "a quantity (quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$')")]
    [InlineData("""{"spec":{"template":{"spec":{"containers":[{"resources":{"limits":{"cpu":1e400}}}]}}}}""", "spec.template.spec.containers[0].resources.limits[cpu]", "a quantity (quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$')")]
    public void AMemberOfATypeItsFieldCannotHoldIsNamed(string json, string path, string expected) =>
        Assert.Equal((path, expected), Mismatch("Deployment", "apps", json));

    [Theory]
    [InlineData("""{"spec":{"replicas":2147483647,"progressDeadlineSeconds":-2147483648,"paused":false}}""")]
    [InlineData("""{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":9223372036854775807,"containers":[{"name":"c","resources":{"limits":{"cpu":1,"memory":"1Gi"},"requests":{"cpu":"250m","memory":"1.5e3","ephemeral-storage":"+2Ki"}}}]}}}}""")]
    [InlineData("""{"spec":{"strategy":{"rollingUpdate":{"maxSurge":"25%","maxUnavailable":0}}},"status":{"conditions":[{"type":"A","lastUpdateTime":"2026-01-02T03:04:05.123456789Z","lastTransitionTime":"2026-01-02T03:04:05+05:30"}]}}""")]
    [InlineData("""{"metadata":{"creationTimestamp":null,"deletionTimestamp":"","labels":{"a":"b"}},"spec":{"replicas":null}}""")]
    public void ValuesOfTheRightTypeAndRangePass(string json) => Assert.Null(Mismatch("Deployment", "apps", json));
}
