using System.Text;
using NodeAgent.ControlPlane.Api;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

public sealed class KubeProtobufTests
{
    // A minimal protobuf writer for building request bodies as Go's encoder lays them out.
    private sealed class W
    {
        private readonly List<byte> _b = [];
        public byte[] Bytes => [.. _b];
        private void V(ulong v) { while (v >= 0x80) { _b.Add((byte)(v | 0x80)); v >>= 7; } _b.Add((byte)v); }
        public W Str(int n, string s) => Raw(n, Encoding.UTF8.GetBytes(s));
        public W Int(int n, long v) { V((ulong)(n << 3)); V((ulong)v); return this; }
        public W Raw(int n, byte[] data) { V((ulong)(n << 3 | 2)); V((ulong)data.Length); _b.AddRange(data); return this; }
        public W Msg(int n, W m) => Raw(n, m.Bytes);
        public W Map(int n, string k, string v) => Msg(n, new W().Str(1, k).Str(2, v));
    }

    private static byte[] Envelope(string apiVersion, string kind, W obj) =>
        [.. "k8s\0"u8.ToArray(), .. new W().Msg(1, new W().Str(1, apiVersion).Str(2, kind)).Raw(2, obj.Bytes).Str(3, "").Str(4, "").Bytes];

    [Fact]
    public void ADeploymentAsKubectlCreateSendsItBecomesTheSameJson()
    {
        var meta = new W().Str(1, "web").Str(2, "").Str(3, "").Str(4, "").Str(5, "").Str(6, "").Int(7, 0).Msg(8, new W().Int(1, 0).Int(2, 0)).Map(11, "app", "web");
        var container = new W().Str(1, "busybox").Str(2, "busybox:1.36").Str(3, "httpd").Str(3, "-f").Str(5, "")
            .Msg(6, new W().Str(1, "").Int(2, 0).Int(3, 8080).Str(4, "").Str(5, "")).Msg(8, new W()).Str(13, "").Str(14, "")
            .Int(16, 0).Int(17, 0).Int(18, 0).Str(20, "");
        var podSpec = new W().Msg(2, container).Str(3, "").Str(6, "").Str(8, "").Str(9, "").Str(10, "").Int(11, 0).Int(12, 0).Str(19, "").Str(24, "");
        var template = new W().Msg(1, new W().Map(11, "app", "web").Msg(8, new W())).Msg(2, podSpec);
        var spec = new W().Int(1, 0).Msg(2, new W().Map(1, "app", "web")).Msg(3, template).Msg(4, new W()).Int(5, 0).Int(7, 0);
        var body = Envelope("apps/v1", "Deployment", new W().Msg(1, meta).Msg(2, spec).Msg(3, new W().Int(1, 0).Int(2, 0)));
        var json = KubeProtobuf.Decode(body);
        Assert.Equal("""{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web","labels":{"app":"web"}},"spec":{"replicas":0,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"busybox","image":"busybox:1.36","command":["httpd","-f"],"ports":[{"containerPort":8080}],"resources":{}}]}},"strategy":{}},"status":{}}""",
            json.ToJsonString());
    }

    [Fact]
    public void SecretDataIsBase64AndIntOrStringKeepsItsType()
    {
        var secret = Envelope("v1", "Secret", new W().Msg(1, new W().Str(1, "s")).Msg(2, new W().Str(1, "pw").Raw(2, [0xff, 0x00])).Str(3, "Opaque"));
        Assert.Equal("""{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"},"data":{"pw":"/wA="},"type":"Opaque"}""", KubeProtobuf.Decode(secret).ToJsonString());
        var port = new W().Str(1, "p").Str(2, "TCP").Int(3, 80).Msg(4, new W().Int(1, 1).Int(2, 0).Str(3, "http")).Int(5, 0);
        var svc = Envelope("v1", "Service", new W().Msg(1, new W().Str(1, "svc")).Msg(2, new W().Msg(1, port).Str(4, "ClusterIP")));
        Assert.Equal("""{"kind":"Service","apiVersion":"v1","metadata":{"name":"svc"},"spec":{"ports":[{"name":"p","protocol":"TCP","port":80,"targetPort":"http"}],"type":"ClusterIP"}}""",
            KubeProtobuf.Decode(svc).ToJsonString());
    }

    [Fact]
    public void VolumeSourcesAreInlinedAsInJson()
    {
        // Volume and ConfigMapVolumeSource embed VolumeSource and LocalObjectReference: message
        // fields on the wire whose members sit beside the others in JSON.
        var configMap = new W().Str(1, "cfg").Msg(2, new W().Msg(19, new W().Msg(1, new W().Str(1, "settings")).Int(3, 0x1a4)));
        var scratch = new W().Str(1, "scratch").Msg(2, new W().Msg(2, new W().Str(1, "Memory").Msg(2, new W().Str(1, "64Mi"))));
        var token = new W().Str(1, "token").Msg(2, new W().Msg(26, new W().Msg(1, new W().Msg(4, new W().Int(2, 3607).Str(3, "token")))));
        var toleration = new W().Str(1, "node.kubernetes.io/not-ready").Str(2, "Exists").Str(4, "NoExecute").Int(5, 300);
        var podSpec = new W().Msg(1, configMap).Msg(1, scratch).Msg(1, token).Msg(2, new W().Str(1, "c").Str(2, "i")).Msg(22, toleration).Str(31, "Never");
        var body = Envelope("apps/v1", "Deployment", new W().Msg(1, new W().Str(1, "d")).Msg(2, new W().Msg(3, new W().Msg(2, podSpec))));
        Assert.Equal("""{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d"},"spec":{"template":{"spec":{"volumes":[{"name":"cfg","configMap":{"name":"settings","defaultMode":420}},{"name":"scratch","emptyDir":{"medium":"Memory","sizeLimit":"64Mi"}},{"name":"token","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}]}}],"containers":[{"name":"c","image":"i"}],"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"preemptionPolicy":"Never"}}}}""",
            KubeProtobuf.Decode(body).ToJsonString());
    }

    [Theory]
    [InlineData("Pod", """{"metadata":{"name":"p","creationTimestamp":5},"spec":{}}""", "metadata.creationTimestamp: expected a string")]
    [InlineData("Pod", """{"metadata":{"name":"p"},"spec":{"volumes":[{"name":"v","configMap":{"name":"c","defaultMode":"0644"}}]}}""", "spec.volumes[0].configMap.defaultMode: expected an integer")]
    [InlineData("Pod", """{"metadata":{"name":"p"},"spec":{"volumes":[{"name":"v","emptyDir":{"sizeLimit":true}}]}}""", "spec.volumes[0].emptyDir.sizeLimit: expected a quantity")]
    [InlineData("Pod", """{"metadata":{"name":"p"},"spec":{"preemptionPolicy":1},"status":{}}""", "spec.preemptionPolicy: expected a string")]
    [InlineData("Pod", """{"metadata":{"name":"p"},"status":{"phase":5}}""", "status.phase: expected a string")]
    [InlineData("Lease", """{"metadata":{"name":"l"},"spec":{"renewTime":1700000000}}""", "spec.renewTime: expected a string")]
    [InlineData("ReplicaSet", """{"metadata":{"name":"r","ownerReferences":[{"uid":"u","controller":"true"}]}}""", "metadata.ownerReferences[0].controller: expected a boolean")]
    [InlineData("Binding", """{"metadata":{"name":"b","labels":["x"]}}""", "metadata.labels: expected a map")]
    public void JsonMembersOfTheWrongTypeAreNamed(string kind, string json, string expected)
    {
        var e = Assert.Throws<ApiException>(() => KubeProtobuf.CheckJsonTypes(kind, "v1", System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject()));
        Assert.Equal(400, e.Code);
        Assert.EndsWith(expected, e.Message);
    }

    [Fact]
    public void AFieldThisServerDoesNotKnowIsRefusedUnlessItIsZero()
    {
        // EnvVar.valueFrom (3) with content: not in the table, so the request is refused, naming it.
        var env = new W().Str(1, "X").Msg(3, new W().Msg(1, new W().Str(2, "metadata.name")));
        var cm = Envelope("v1", "ConfigMap", new W().Msg(1, new W().Str(1, "c").Str(4, "").Int(7, 0)).Map(2, "k", "v"));
        Assert.Equal("""{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c"},"data":{"k":"v"}}""", KubeProtobuf.Decode(cm).ToJsonString());
        var pod = new W().Msg(2, new W().Str(1, "c").Msg(7, env));
        var rs = Envelope("apps/v1", "Deployment", new W().Msg(2, new W().Msg(3, new W().Msg(2, pod))));
        var e = Assert.Throws<KubeProtobuf.UnsupportedException>(() => KubeProtobuf.Decode(rs));
        Assert.Contains("field 3 of EnvVar (at Deployment.spec.template.spec.containers.env)", e.Message);
        Assert.Throws<KubeProtobuf.UnsupportedException>(() => KubeProtobuf.Decode(Envelope("v1", "Pod", new W())));
        Assert.Throws<KubeProtobuf.UnsupportedException>(() => KubeProtobuf.Decode("k8s\0\x0a\x05"u8));
        Assert.Throws<KubeProtobuf.UnsupportedException>(() => KubeProtobuf.Decode("{}"u8));
    }
}
