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
