using System.Text;
using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Patch;
using NodeAgent.ControlPlane.Registry;
using NodeAgent.ControlPlane.Storage;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

public sealed class SelectorTests
{
    private static readonly Dictionary<string, string> Labels = new() { ["app"] = "web", ["tier"] = "front", ["rev"] = "3" };

    [Theory]
    [InlineData("app=web", true)]
    [InlineData("app==web", true)]
    [InlineData("app!=web", false)]
    [InlineData("app=web,tier=front", true)]
    [InlineData("app=web,tier=back", false)]
    [InlineData("tier in (front,back)", true)]
    [InlineData("tier notin (front)", false)]
    [InlineData("tier", true)]
    [InlineData("!tier", false)]
    [InlineData("!missing", true)]
    [InlineData("missing!=x", true)]
    [InlineData("rev>2", true)]
    [InlineData("rev<3", false)]
    [InlineData(" app = web , tier in ( front ) ", true)]
    [InlineData("", true)]
    public void LabelSelectorsMatchAsApimachineryDoes(string selector, bool matches) =>
        Assert.Equal(matches, LabelSelector.Parse(selector).Matches(Labels));

    [Theory]
    [InlineData("app=we b")]
    [InlineData("app in (a")]
    [InlineData("app foo (a)")]
    [InlineData("-bad=x")]
    [InlineData("app=web,")]
    [InlineData("rev>x")]
    public void BadLabelSelectorsAre400(string selector) =>
        Assert.Equal(400, Assert.Throws<ApiException>(() => LabelSelector.Parse(selector)).Code);

    [Fact]
    public void ExplicitNullsAreDroppedAsTypedDecodingDropsThemAndAreNoSpecChangeOnAStatusUpdate()
    {
        var obj = (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse("""
            {"metadata":{"name":"p","labels":null},"spec":{"nodeName":null,"containers":[{"name":"c","image":"i","args":null}]}}
            """)!;
        NodeAgent.ControlPlane.Storage.Json.DropNulls(obj);
        Assert.Equal("""{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}""", obj.ToJsonString());

        // A pod stored with a null (before they were dropped on write): its status update is not a spec change.
        var old = (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"d"},"spec":{"nodeName":null,"containers":[{"name":"c","image":"i"}]}}
            """)!;
        var next = (System.Text.Json.Nodes.JsonObject)old.DeepClone();
        next["spec"]!.AsObject().Remove("nodeName");
        next["status"] = new System.Text.Json.Nodes.JsonObject { ["phase"] = "Succeeded" };
        Assert.DoesNotContain(new NodeAgent.ControlPlane.Registry.PodStrategy().ValidateUpdate(next, old, namespaced: true), e => e.Field == "spec");
    }

    [Fact]
    public void SelectorObjectsCombineMatchLabelsAndExpressions()
    {
        var sel = LabelSelector.FromObject(JsonNode.Parse("""{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["front"]},{"key":"x","operator":"DoesNotExist"}]}""")!.AsObject());
        Assert.True(sel.Matches(Labels));
        Assert.Equal("app=web,tier in (front),!x", sel.ToString());
    }

    [Fact]
    public void FieldSelectorsUseTheResourcesFieldLabels()
    {
        var pods = new Resources().Get("", "pods");
        var pod = JsonNode.Parse("""{"metadata":{"name":"a","namespace":"ns"},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}""")!.AsObject();
        var attrs = new ObjectAttrs(pods, pod);
        Assert.True(FieldSelector.Parse("spec.nodeName=n1,status.phase!=Failed", pods).Matches(attrs));
        Assert.False(FieldSelector.Parse("metadata.name=b", pods).Matches(attrs));
        Assert.True(FieldSelector.Parse("spec.schedulerName=", pods).Matches(attrs));
        var e = Assert.Throws<ApiException>(() => FieldSelector.Parse("spec.bogus=1", pods));
        Assert.Equal("field label not supported: spec.bogus", e.Message);
    }

    // The watch cache and filtered lists read selector attributes straight from the stored bytes;
    // they must be what the object tree gives, for every served resource and every odd shape.
    [Theory]
    [InlineData("pods", """{"kind":"Pod","metadata":{"name":"a","namespace":"ns","labels":{"app":"web","n":1,"o":{"x":"y"}}},"spec":{"nodeName":"n1","hostNetwork":true,"template":{"spec":{"nodeName":"no"}},"containers":[{"name":"c"}]},"status":{"phase":"Running","podIP":"10.0.0.1"}}""")]
    [InlineData("pods", """{"metadata":{"name":"b\u0041","labels":{}},"spec":{"node\u004eame":"esc","restartPolicy":null,"schedulerName":{"x":1},"serviceAccountName":["a"]},"status":"odd"}""")]
    [InlineData("pods", """{"metadata":"not an object","spec":{"nodeName":"n2"},"status":{"phase":"Pending","nominatedNodeName":"n3"}}""")]
    [InlineData("pods", """{"spec":{}}""")]
    [InlineData("events", """{"metadata":{"name":"e","namespace":"ns"},"involvedObject":{"kind":"Pod","namespace":"ns","name":"p","uid":"u-1","fieldPath":"spec.containers{c}"},"reason":"Started","source":{"component":"kubelet"},"type":"Normal"}""")]
    [InlineData("secrets", """{"metadata":{"name":"s","namespace":"ns","labels":{"a":"b"}},"type":"Opaque","data":{"k":"dg=="}}""")]
    [InlineData("replicasets", """{"metadata":{"name":"r","namespace":"ns"},"status":{"replicas":3,"readyReplicas":2}}""")]
    [InlineData("nodes", """{"metadata":{"name":"n"},"spec":{"unschedulable":false}}""")]
    [InlineData("namespaces", """{"metadata":{"name":"gone"},"status":{"phase":"Terminating"}}""")]
    [InlineData("services", """{"metadata":{"name":"svc","namespace":"ns"},"spec":{"clusterIP":"10.96.0.10","type":"ClusterIP","ports":[{"port":53}]}}""")]
    public void AttributesReadFromTheBytesAreTheOnesTheObjectTreeGives(string resource, string json)
    {
        var info = new Resources().All.Single(r => r.Resource == resource);
        var fromTree = new ObjectAttrs(info, JsonNode.Parse(json)!.AsObject());
        var fromBytes = new ObjectAttrs(info, Encoding.UTF8.GetBytes(json));
        Assert.Equal(fromTree.Name, fromBytes.Name);
        Assert.Equal(fromTree.Namespace, fromBytes.Namespace);
        Assert.Equal(fromTree.Labels?.OrderBy(l => l.Key), fromBytes.Labels?.OrderBy(l => l.Key));
        foreach (var label in info.FieldLabels) Assert.Equal(fromTree.Field(label), fromBytes.Field(label));
        Assert.Contains(info.FieldLabels, l => fromBytes.Field(l) is not null || json == """{"spec":{}}""");
    }
}

public sealed class PatchTests
{
    private static JsonObject O(string json) => JsonNode.Parse(json)!.AsObject();

    [Fact]
    public void StrategicMergeMergesContainersByNameAndKeepsTheRest()
    {
        var deploy = O("""{"kind":"Deployment","spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"a","image":"x:1","ports":[{"containerPort":80}]},{"name":"b","image":"y:1"}]}}}}""");
        var patch = O("""{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}],"containers":[{"name":"a","image":"x:2"}]}}}}""");
        var r = StrategicMerge.Apply(deploy, patch, "Deployment");
        var cs = r["spec"]!["template"]!["spec"]!["containers"]!.AsArray();
        Assert.Equal(["b", "a"], cs.Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal("x:2", cs[1]!["image"]!.GetValue<string>());
        Assert.Equal(80, cs[1]!["ports"]![0]!["containerPort"]!.GetValue<int>());
        Assert.Equal(1, r["spec"]!["replicas"]!.GetValue<int>());
    }

    [Fact]
    public void StrategicMergeDirectivesDeleteReplaceAndRetainKeys()
    {
        var pod = O("""{"metadata":{"finalizers":["a","b"]},"spec":{"containers":[{"name":"a","env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}]}],"volumes":[{"name":"v","emptyDir":{}}]}}""");
        var patch = O("""
            {"metadata":{"$deleteFromPrimitiveList/finalizers":["a"],"finalizers":["c"]},
             "spec":{"containers":[{"name":"a","env":[{"name":"X","$patch":"delete"}]}],
                     "volumes":[{"name":"v","$retainKeys":["name","hostPath"],"hostPath":{"path":"/tmp"}}]}}
            """);
        var r = StrategicMerge.Apply(pod, patch, "Pod");
        Assert.Equal(["b", "c"], r["metadata"]!["finalizers"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal("Y", r["spec"]!["containers"]![0]!["env"]![0]!["name"]!.GetValue<string>());
        Assert.Single(r["spec"]!["containers"]![0]!["env"]!.AsArray());
        var v = r["spec"]!["volumes"]![0]!.AsObject();
        Assert.False(v.ContainsKey("emptyDir"));
        Assert.Equal("/tmp", v["hostPath"]!["path"]!.GetValue<string>());
        var replaced = StrategicMerge.Apply(O("""{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}"""), O("""{"spec":{"containers":[{"name":"c"},{"$patch":"replace"}]}}"""), "Pod");
        Assert.Equal(["c"], replaced["spec"]!["containers"]!.AsArray().Select(c => c!["name"]!.GetValue<string>()));
    }

    [Fact]
    public void UntaggedListsAreReplacedAndNullDeletes()
    {
        var svc = O("""{"spec":{"ports":[{"port":80,"name":"http"},{"port":443,"name":"https"}],"externalIPs":["1.1.1.1"],"selector":{"a":"b"}}}""");
        var r = StrategicMerge.Apply(svc, O("""{"spec":{"ports":[{"port":80,"targetPort":8080}],"externalIPs":["2.2.2.2"],"selector":null}}"""), "Service");
        Assert.Equal(2, r["spec"]!["ports"]!.AsArray().Count);
        Assert.Equal(8080, r["spec"]!["ports"]![0]!["targetPort"]!.GetValue<int>());
        Assert.Equal("2.2.2.2", r["spec"]!["externalIPs"]![0]!.GetValue<string>());
        Assert.False(r["spec"]!.AsObject().ContainsKey("selector"));
    }

    [Fact]
    public void MergePatchReplacesListsAndJsonPatchFollowsRfc6902()
    {
        var o = O("""{"a":{"b":1,"c":[1,2]},"d":"x"}""");
        var m = (JsonObject)MergePatch.Apply(o.DeepClone(), O("""{"a":{"b":null,"c":[3]},"e":true}"""))!;
        Assert.Equal("""{"a":{"c":[3]},"d":"x","e":true}""", m.ToJsonString());
        var j = JsonPatch.Apply((JsonObject)o.DeepClone(), Encoding.UTF8.GetBytes("""
            [{"op":"test","path":"/d","value":"x"},{"op":"add","path":"/a/c/-","value":9},{"op":"remove","path":"/a/b"},
             {"op":"move","from":"/d","path":"/f"},{"op":"copy","from":"/f","path":"/g"},{"op":"replace","path":"/g","value":"y"}]
            """));
        Assert.Equal("""{"a":{"c":[1,2,9]},"f":"x","g":"y"}""", j.ToJsonString());
        Assert.Equal(422, Assert.Throws<ApiException>(() => JsonPatch.Apply(O("{}"), """[{"op":"remove","path":"/nope"}]"""u8)).Code);
        Assert.Equal(422, Assert.Throws<ApiException>(() => JsonPatch.Apply(O("""{"a":1}"""), """[{"op":"test","path":"/a","value":2}]"""u8)).Code);
        Assert.Equal(400, Assert.Throws<ApiException>(() => JsonPatch.Apply(O("{}"), "{"u8)).Code);
    }
}

public sealed class StorageCodecTests
{
    [Fact]
    public void StoredObjectsPutTypeMetaFirstDropTheResourceVersionAndGetItSplicedBack()
    {
        var obj = JsonNode.Parse("""{"spec":{"x":"\"metadata\":{"},"metadata":{"resourceVersion":"9","name":"a"},"apiVersion":"v1","kind":"Pod"}""")!.AsObject();
        var stored = ObjectCodec.Encode(obj);
        Assert.Equal("""{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a"},"spec":{"x":"\"metadata\":{"}}""", Encoding.UTF8.GetString(stored));
        var read = Encoding.UTF8.GetString(ObjectCodec.WithResourceVersion(stored, 42));
        Assert.Equal("42", JsonNode.Parse(read)!["metadata"]!["resourceVersion"]!.GetValue<string>());
        Assert.Equal("""{"kind":"Namespace","apiVersion":"v1","metadata":{"resourceVersion":"7"}}""",
            Encoding.UTF8.GetString(ObjectCodec.WithResourceVersion(ObjectCodec.Encode(JsonNode.Parse("""{"kind":"Namespace","apiVersion":"v1","metadata":{}}""")!.AsObject()), 7)));
    }

    [Fact]
    public void StringsAreWrittenAsGoWritesThemAndStillNeverLookLikeTheTopLevelMetadata()
    {
        // kubectl's last-applied-configuration is JSON inside a string: its quotes are \" (2 bytes), not \u0022 (6),
        // and text outside ASCII stays UTF-8.
        var obj = JsonNode.Parse("""{"kind":"x\"metadata\":{","apiVersion":"v1","metadata":{"name":"a","annotations":{"last":"{\"apiVersion\":\"v1\"}","note":"café <b> & 'q' +1"}}}""")!.AsObject();
        var stored = ObjectCodec.Encode(obj);
        Assert.Equal("""{"kind":"x\"metadata\":{","apiVersion":"v1","metadata":{"name":"a","annotations":{"last":"{\"apiVersion\":\"v1\"}","note":"café <b> & 'q' +1"}}}""",
            Encoding.UTF8.GetString(stored));
        var read = JsonNode.Parse(ObjectCodec.WithResourceVersion(stored, 5))!;
        Assert.Equal("5", read["metadata"]!["resourceVersion"]!.GetValue<string>());
        Assert.Equal("x\"metadata\":{", read["kind"]!.GetValue<string>());
        Assert.Equal("café <b> & 'q' +1", read["metadata"]!["annotations"]!["note"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"n"},"spec":{"containers":[{"name":"c","image":"i"}]}}""")]
    [InlineData("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b","namespace":"n","labels":{"app":"x<&>"}},"status":{"phase":"Running"},"spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}}""")]
    [InlineData("""{"metadata":{"name":"ü","namespace":"n"},"spec":{"containers":[{"name":"c","image":"i","resources":{"requests":{"cpu":"100m"}}}],"tolerations":[{"operator":"Exists"}]}}""")]
    public void APodsCreateBytesAreItsEncoding(string json)
    {
        var obj = JsonNode.Parse(json)!.AsObject();
        var strategy = new PodStrategy();
        strategy.Default(obj);
        strategy.PrepareAndValidateCreate(obj, namespaced: true, out var encoded);
        Assert.NotNull(encoded);
        Assert.Equal(Encoding.UTF8.GetString(ObjectCodec.Encode(obj)), Encoding.UTF8.GetString(encoded));
        Assert.Equal("Pending", obj["status"]!["phase"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(59, "59s")]
    [InlineData(119, "119s")]
    [InlineData(150, "2m30s")]
    [InlineData(600, "10m")]
    [InlineData(3 * 3600 + 120, "3h2m")]
    [InlineData(10 * 3600, "10h")]
    [InlineData(3 * 86400 + 3600, "3d1h")]
    [InlineData(30 * 86400, "30d")]
    [InlineData(3 * 365 * 86400 + 5 * 86400, "3y5d")]
    public void AgesPrintLikeKubectl(long seconds, string text) => Assert.Equal(text, Table.HumanDuration(TimeSpan.FromSeconds(seconds)));
}

public sealed class ServiceAllocatorTests
{
    [Fact]
    public void AssignsAClusterIpInRangeAndNodePortsOnlyWhereTheTypeWantsThem()
    {
        var alloc = new ServiceAllocator("10.96.0.0/24", "30000-30010");
        var svc = JsonNode.Parse("""{"spec":{"type":"NodePort","ports":[{"port":80,"protocol":"TCP"}]}}""")!.AsObject();
        var errs = new List<NodeAgent.Api.Validation.FieldError>();
        var picked = alloc.Assign(svc, null, errs);
        Assert.Empty(errs);
        Assert.True(alloc.InRange(svc["spec"]!["clusterIP"]!.GetValue<string>()));
        long np = svc["spec"]!["ports"]![0]!["nodePort"]!.GetValue<long>();
        Assert.InRange(np, 30000, 30010);
        Assert.Equal(2, picked.Count);
        Assert.Equal(["/registry/ranges/serviceips/" + svc["spec"]!["clusterIP"]!.GetValue<string>(), "/registry/ranges/servicenodeports/" + np], ServiceAllocator.KeysOf(svc));
        Assert.Equal("10.96.0.1", alloc.KubernetesServiceIp);
        var outside = JsonNode.Parse("""{"spec":{"clusterIP":"10.0.0.5","ports":[{"port":80}]}}""")!.AsObject();
        alloc.Assign(outside, null, errs);
        Assert.Contains(errs, e => e.Field == "spec.clusterIPs");
    }

    private static (JsonObject Spec, List<NodeAgent.Api.Validation.FieldError> Errors, HashSet<string> Picked) Assign(ServiceAllocator alloc, string spec, string? oldSpec = null)
    {
        var svc = JsonNode.Parse($$"""{"spec":{{spec}}}""")!.AsObject();
        var old = oldSpec is null ? null : JsonNode.Parse($$"""{"spec":{{oldSpec}}}""")!.AsObject();
        var errs = new List<NodeAgent.Api.Validation.FieldError>();
        var picked = alloc.Assign(svc, old, errs);
        return (svc["spec"]!.AsObject(), errs, picked);
    }

    private static string[] Strings(JsonNode? a) => a!.AsArray().Select(n => n!.GetValue<string>()).ToArray();

    private static string FamilyOf(JsonNode? ip) => System.Net.IPAddress.Parse(ip!.GetValue<string>()).AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4";

    [Fact]
    public void DualStackFamiliesAndAddressesAreSettledAsUpstream()
    {
        var dual = new ServiceAllocator("10.96.0.0/24,fd00:96::/112", "30000-30010");
        var single = new ServiceAllocator("10.96.0.0/24", "30000-30010");
        const string ports = "\"ports\":[{\"port\":80,\"protocol\":\"TCP\"}],\"selector\":{\"app\":\"a\"}";

        // Nothing asked: SingleStack of the primary family.
        var (spec, errs, _) = Assign(dual, "{" + ports + "}");
        Assert.Empty(errs);
        Assert.Equal("SingleStack", spec["ipFamilyPolicy"]!.GetValue<string>());
        Assert.Equal(["IPv4"], Strings(spec["ipFamilies"]));
        Assert.Equal(spec["clusterIP"]!.GetValue<string>(), Strings(spec["clusterIPs"]).Single());

        // RequireDualStack: both families, primary first; the IPv6 address from the IPv6 range.
        (spec, errs, var picked) = Assign(dual, "{\"ipFamilyPolicy\":\"RequireDualStack\"," + ports + "}");
        Assert.Empty(errs);
        Assert.Equal(["IPv4", "IPv6"], Strings(spec["ipFamilies"]));
        var ips = Strings(spec["clusterIPs"]);
        Assert.Equal(2, ips.Length);
        Assert.Equal(ips[0], spec["clusterIP"]!.GetValue<string>());
        Assert.Equal(["IPv4", "IPv6"], ips.Select(ip => FamilyOf(JsonValue.Create(ip))));
        Assert.True(dual.InRange(ips[0]) && dual.InRange(ips[1]));
        Assert.StartsWith("fd00:96::", ips[1]);
        Assert.Equal(2, picked.Count);
        Assert.Equal(ips.Select(ip => "/registry/ranges/serviceips/" + ip), ServiceAllocator.KeysOf(new JsonObject { ["spec"] = spec.DeepClone() }));

        // ipFamilies [IPv6, IPv4] with the policy unset: RequireDualStack, IPv6 first.
        (spec, errs, _) = Assign(dual, "{\"ipFamilies\":[\"IPv6\",\"IPv4\"]," + ports + "}");
        Assert.Empty(errs);
        Assert.Equal("RequireDualStack", spec["ipFamilyPolicy"]!.GetValue<string>());
        Assert.Equal(["IPv6", "IPv4"], Strings(spec["clusterIPs"]).Select(ip => FamilyOf(JsonValue.Create(ip))));

        // A given IPv6 clusterIP: its family, single-stack; PreferDualStack adds the other family.
        (spec, errs, _) = Assign(dual, "{\"clusterIP\":\"fd00:96::a\",\"ipFamilyPolicy\":\"PreferDualStack\"," + ports + "}");
        Assert.Empty(errs);
        Assert.Equal(["IPv6", "IPv4"], Strings(spec["ipFamilies"]));
        Assert.Equal("fd00:96::a", Strings(spec["clusterIPs"])[0]);

        // PreferDualStack on a single-stack cluster: one family; RequireDualStack there fails, naming the field.
        (spec, errs, _) = Assign(single, "{\"ipFamilyPolicy\":\"PreferDualStack\"," + ports + "}");
        Assert.Empty(errs);
        Assert.Equal(["IPv4"], Strings(spec["ipFamilies"]));
        (_, errs, _) = Assign(single, "{\"ipFamilyPolicy\":\"RequireDualStack\"," + ports + "}");
        Assert.Contains(errs, e => e.Field == "spec.ipFamilyPolicy" && e.Detail!.Contains("not configured for dual-stack"));
        (_, errs, _) = Assign(single, "{\"ipFamilies\":[\"IPv6\"]," + ports + "}");
        Assert.Contains(errs, e => e.Field == "spec.ipFamilies[0]" && e.Detail!.Contains("not configured on this cluster"));

        // Inconsistent requests are refused with the field named.
        (_, errs, _) = Assign(dual, "{\"ipFamilyPolicy\":\"SingleStack\",\"ipFamilies\":[\"IPv4\",\"IPv6\"]," + ports + "}");
        Assert.Contains(errs, e => e.Field == "spec.ipFamilyPolicy");
        (_, errs, _) = Assign(dual, "{\"clusterIPs\":[\"10.96.0.7\",\"10.96.0.8\"],\"ipFamilyPolicy\":\"RequireDualStack\"," + ports + "}");
        Assert.Contains(errs, e => e.Field == "spec.clusterIPs[1]");
        (_, errs, _) = Assign(dual, "{\"clusterIP\":\"10.96.0.7\",\"ipFamilies\":[\"IPv6\"]," + ports + "}");
        Assert.Contains(errs, e => e.Field == "spec.ipFamilies[0]");
        (_, errs, _) = Assign(dual, "{\"ipFamilies\":[\"IPv5\"]," + ports + "}");
        Assert.Contains(errs, e => e.Field == "spec.ipFamilies[0]" && e.Kind == "Unsupported value");
        (_, errs, _) = Assign(dual, "{\"ipFamilyPolicy\":\"Sometimes\"," + ports + "}");
        Assert.Contains(errs, e => e.Field == "spec.ipFamilyPolicy" && e.Kind == "Unsupported value");
        (_, errs, _) = Assign(dual, "{\"clusterIPs\":[\"fd00:1::7\"],\"ipFamilyPolicy\":\"SingleStack\"," + ports + "}");
        Assert.Contains(errs, e => e.Field == "spec.clusterIPs" && e.Detail!.Contains("fd00:96::/112"));

        // Headless without selector: RequireDualStack and both families, not checked against the cluster.
        (spec, errs, _) = Assign(single, "{\"clusterIP\":\"None\"}");
        Assert.Empty(errs);
        Assert.Equal("RequireDualStack", spec["ipFamilyPolicy"]!.GetValue<string>());
        Assert.Equal(["IPv4", "IPv6"], Strings(spec["ipFamilies"]));
        Assert.Equal(["None"], Strings(spec["clusterIPs"]));

        // Upgrade on update: the old primary stays and an IPv6 address is added; downgrade drops it again.
        var before = "{\"clusterIP\":\"10.96.0.9\",\"clusterIPs\":[\"10.96.0.9\"],\"ipFamilies\":[\"IPv4\"],\"ipFamilyPolicy\":\"SingleStack\"," + ports + "}";
        (spec, errs, picked) = Assign(dual, "{\"clusterIP\":\"10.96.0.9\",\"clusterIPs\":[\"10.96.0.9\"],\"ipFamilies\":[\"IPv4\"],\"ipFamilyPolicy\":\"RequireDualStack\"," + ports + "}", before);
        Assert.Empty(errs);
        ips = Strings(spec["clusterIPs"]);
        Assert.Equal("10.96.0.9", ips[0]);
        Assert.Equal("IPv6", FamilyOf(JsonValue.Create(ips[1])));
        Assert.Equal(["/registry/ranges/serviceips/" + ips[1]], picked);
        var upgraded = spec.ToJsonString();
        (spec, errs, _) = Assign(dual, upgraded.Replace("RequireDualStack", "SingleStack"), upgraded);
        Assert.Empty(errs);
        Assert.Equal(["10.96.0.9"], Strings(spec["clusterIPs"]));
        Assert.Equal(["IPv4"], Strings(spec["ipFamilies"]));
        // A replace without addresses keeps the old ones.
        (spec, errs, picked) = Assign(dual, "{\"ipFamilyPolicy\":\"RequireDualStack\"," + ports + "}", upgraded);
        Assert.Empty(errs);
        Assert.Equal(ips, Strings(spec["clusterIPs"]));
        Assert.Empty(picked);

        // The ranges: one CIDR per family, sizes as upstream allows.
        Assert.Throws<ArgumentException>(() => new ServiceAllocator("10.96.0.0/24,10.97.0.0/24", "30000-30010"));
        Assert.Throws<ArgumentException>(() => new ServiceAllocator("10.96.0.0/24,fd00::/48", "30000-30010"));
        Assert.Equal("fd00:96::1", new ServiceAllocator("fd00:96::/112,10.96.0.0/24", "30000-30010").KubernetesServiceIp);
    }

    [Fact]
    public void ACollisionOnOneFamilyRepicksOnlyThatFamilysAddress()
    {
        var dual = new ServiceAllocator("10.96.0.0/24,fd00:96::/112", "30000-30010");
        var svc = JsonNode.Parse("""{"spec":{"clusterIPs":["10.96.0.20"],"ipFamilyPolicy":"RequireDualStack","ports":[{"port":80,"protocol":"TCP"}],"selector":{"a":"b"}}}""")!.AsObject();
        var errs = new List<NodeAgent.Api.Validation.FieldError>();
        var picked = dual.Assign(svc, null, errs);
        string v6 = svc["spec"]!["clusterIPs"]![1]!.GetValue<string>();
        Assert.True(dual.Repick(svc, "/registry/ranges/serviceips/" + v6, picked, errs));
        var ips = Strings(svc["spec"]!["clusterIPs"]);
        Assert.Equal("10.96.0.20", ips[0]);
        Assert.NotEqual(v6, ips[1]);
        Assert.Equal("IPv6", FamilyOf(JsonValue.Create(ips[1])));
        // The address the user gave is not re-picked: the collision is the user's error.
        Assert.False(dual.Repick(svc, "/registry/ranges/serviceips/10.96.0.20", picked, errs));
        Assert.Contains(errs, e => e.Field == "spec.clusterIPs" && e.Detail!.Contains("already allocated"));
    }
}
