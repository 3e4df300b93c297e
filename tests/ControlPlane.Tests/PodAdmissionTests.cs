using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Registry;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

/// <summary>
/// What a new pod gets on create besides the spec defaults: the ServiceAccount admission plugin's
/// account and kube-api-access volume, and the DefaultTolerationSeconds plugin's two tolerations.
/// The live check is NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed class PodAdmissionTests
{
    private static JsonObject Pod(string spec, string meta = "") =>
        JsonNode.Parse($$"""{"metadata":{"name":"p","namespace":"d"{{meta}}},"spec":{{spec}}}""")!.AsObject();

    private static JsonObject Spec(JsonObject pod) => (JsonObject)pod["spec"]!;

    private static string[] Mounts(JsonObject container) =>
        (container["volumeMounts"] as JsonArray ?? []).Select(m => $"{m!["name"]}:{m["mountPath"]}:{m["readOnly"]}").ToArray();

    [Fact]
    public void APodGetsTheDefaultAccountAndOneAccessVolumeMountedInEveryContainer()
    {
        var pod = Pod("""{"initContainers":[{"name":"i","image":"x"}],"containers":[{"name":"a","image":"x","volumeMounts":[{"name":"data","mountPath":"/data"}]},{"name":"b","image":"x"}]}""");
        ServiceAccountAdmission.Admit(pod);
        var spec = Spec(pod);
        Assert.Equal("default", (string?)spec["serviceAccountName"]);
        Assert.Equal("default", (string?)spec["serviceAccount"]);
        var volume = Assert.Single(spec["volumes"]!.AsArray())!.AsObject();
        string name = (string)volume["name"]!;
        Assert.Matches("^kube-api-access-[a-z0-9]{5}$", name);
        Assert.Equal(420, (int)volume["projected"]!["defaultMode"]!);
        Assert.Equal(3607, (long)volume["projected"]!["sources"]![0]!["serviceAccountToken"]!["expirationSeconds"]!);
        Assert.Equal("kube-root-ca.crt", (string?)volume["projected"]!["sources"]![1]!["configMap"]!["name"]);
        Assert.Equal("metadata.namespace", (string?)volume["projected"]!["sources"]![2]!["downwardAPI"]!["items"]![0]!["fieldRef"]!["fieldPath"]);
        string mount = $"{name}:{ServiceAccountAdmission.MountPath}:true";
        Assert.Equal([mount], Mounts(spec["initContainers"]![0]!.AsObject()));
        Assert.Equal(["data:/data:", mount], Mounts(spec["containers"]![0]!.AsObject()));
        Assert.Equal([mount], Mounts(spec["containers"]![1]!.AsObject()));
    }

    [Fact]
    public void TheLegacyAccountFieldNamesTheAccountWhenTheNewOneIsEmpty()
    {
        var pod = Pod("""{"serviceAccountName":"","serviceAccount":"builder","containers":[{"name":"a","image":"x"}]}""");
        ServiceAccountAdmission.Admit(pod);
        Assert.Equal("builder", (string?)Spec(pod)["serviceAccountName"]);
        Assert.Equal("builder", (string?)Spec(pod)["serviceAccount"]);

        pod = Pod("""{"serviceAccountName":"reader","serviceAccount":"other","containers":[{"name":"a","image":"x"}]}""");
        ServiceAccountAdmission.Admit(pod);
        Assert.Equal("reader", (string?)Spec(pod)["serviceAccountName"]);
        Assert.Equal("reader", (string?)Spec(pod)["serviceAccount"]);
    }

    [Fact]
    public void NoVolumeWhenAutomountIsOffOrEveryContainerAlreadyMountsThePath()
    {
        var off = Pod("""{"automountServiceAccountToken":false,"containers":[{"name":"a","image":"x"}]}""");
        ServiceAccountAdmission.Admit(off);
        Assert.Null(Spec(off)["volumes"]);
        Assert.Equal("default", (string?)Spec(off)["serviceAccountName"]);

        var own = Pod("""{"volumes":[{"name":"mine","secret":{"secretName":"s"}}],"containers":[{"name":"a","image":"x","volumeMounts":[{"name":"mine","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount/"}]}]}""");
        ServiceAccountAdmission.Admit(own);
        Assert.Equal("mine", (string?)Assert.Single(Spec(own)["volumes"]!.AsArray())!["name"]);
        Assert.Single(Spec(own)["containers"]![0]!["volumeMounts"]!.AsArray());
    }

    [Fact]
    public void OnlyTheContainersWithoutTheMountGetIt()
    {
        var pod = Pod("""{"containers":[{"name":"a","image":"x","volumeMounts":[{"name":"mine","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}]},{"name":"b","image":"x"}]}""");
        ServiceAccountAdmission.Admit(pod);
        Assert.Single(Spec(pod)["containers"]![0]!["volumeMounts"]!.AsArray());
        Assert.Single(Spec(pod)["containers"]![1]!["volumeMounts"]!.AsArray());
    }

    // Admission runs before the typed decode; a member of the wrong type must reach that decode
    // (a 400 naming it), not throw inside admission (a 500).
    [Theory]
    [InlineData("""{"containers":[{"name":"a","image":"x","volumeMounts":[{"name":"v","mountPath":5}]}]}""", "spec.containers[0].volumeMounts[0].mountPath")]
    [InlineData("""{"serviceAccountName":5,"containers":[{"name":"a","image":"x"}]}""", "spec.serviceAccountName")]
    [InlineData("""{"serviceAccountName":["a"],"containers":[{"name":"a","image":"x"}]}""", "spec.serviceAccountName")]
    [InlineData("""{"serviceAccount":true,"containers":[{"name":"a","image":"x"}]}""", "spec.serviceAccount")]
    [InlineData("""{"tolerations":[{"key":5,"effect":"NoExecute"}],"containers":[{"name":"a","image":"x"}]}""", "spec.tolerations[0].key")]
    public void AMemberOfTheWrongTypeIsABadRequestNamingIt(string spec, string field)
    {
        var e = Assert.Throws<NodeAgent.ControlPlane.Api.ApiException>(() => new PodStrategy().PrepareAndValidateCreate(Pod(spec), true, out _));
        Assert.Equal(400, e.Code);
        Assert.Contains(field + ":", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AMirrorPodAnnotationUnderMetadataOfTheWrongShapeIsNoMirrorPod()
    {
        var pod = Pod("""{"containers":[{"name":"a","image":"x"}]}""", ""","annotations":"kubernetes.io/config.mirror" """);
        ServiceAccountAdmission.Admit(pod);
        Assert.Equal("default", (string?)Spec(pod)["serviceAccountName"]);
    }

    // A null where the API has a list item is Go's zero value, as upstream decodes it: here an
    // unnamed container without an image, which validation names, instead of a crash.
    [Fact]
    public void ANullListItemIsAnInvalidEmptyItem()
    {
        var pod = Pod("""{"containers":[null],"volumes":[null]}""");
        var errs = new PodStrategy().PrepareAndValidateCreate(pod, true, out _);
        Assert.Contains(errs, e => e.Field == "spec.containers[0].name" && e.Kind == "Required value");
        Assert.Contains(errs, e => e.Field == "spec.containers[0].image" && e.Kind == "Required value");
        Assert.Contains(errs, e => e.Field == "spec.volumes[0].name" && e.Kind == "Required value");
    }

    [Fact]
    public void AMirrorPodIsLeftAsItIs()
    {
        var pod = Pod("""{"containers":[{"name":"a","image":"x"}]}""", ""","annotations":{"kubernetes.io/config.mirror":"abc"}""");
        string before = pod.ToJsonString();
        ServiceAccountAdmission.Admit(pod);
        Assert.Equal(before, pod.ToJsonString());
    }

    [Fact]
    public void APodToleratesNotReadyAndUnreachableForFiveMinutesUnlessItSaysOtherwise()
    {
        static string[] Tolerations(string spec)
        {
            var s = Spec(Pod(spec));
            PodStrategy.DefaultTolerationSeconds(s);
            return (s["tolerations"] as JsonArray ?? []).Select(t => $"{t!["key"]}/{t["operator"]}/{t["effect"]}/{t["tolerationSeconds"]}").ToArray();
        }
        const string NotReady = "node.kubernetes.io/not-ready/Exists/NoExecute/300", Unreachable = "node.kubernetes.io/unreachable/Exists/NoExecute/300";

        Assert.Equal([NotReady, Unreachable], Tolerations("""{"containers":[]}"""));
        // Its own toleration of one key (any NoExecute-including effect) keeps that key's default out.
        Assert.Equal(["node.kubernetes.io/unreachable/Exists/NoExecute/2", NotReady],
            Tolerations("""{"tolerations":[{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":2}]}"""));
        Assert.Equal(["node.kubernetes.io/not-ready/Exists//", Unreachable],
            Tolerations("""{"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists"}]}"""));
        // A NoSchedule toleration of the same key does not count; tolerating everything does.
        Assert.Equal(["node.kubernetes.io/not-ready/Exists/NoSchedule/", NotReady, Unreachable],
            Tolerations("""{"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoSchedule"}]}"""));
        Assert.Equal(["/Exists//"], Tolerations("""{"tolerations":[{"operator":"Exists"}]}"""));
    }
}
