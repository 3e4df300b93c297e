using System.Text.Json;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Api.Serialization;
using Xunit;

namespace NodeAgent.Tests;

public sealed class ApiTypesTests
{
    [Fact]
    public void UnknownFieldsSurviveARoundTripAtEveryLevel()
    {
        const string json = """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","futureMeta":{"x":1}},"spec":{"containers":[{"name":"c","image":"i","futureField":[1,2]}],"futureSpec":"s","topologySpreadConstraints":[{"maxSkew":1}]},"status":{"phase":"Running","resize":"InProgress"},"futureTop":true}""";
        var pod = JsonSerializer.Deserialize(json, ApiJsonContext.Default.Pod)!;
        var back = JsonSerializer.Serialize(pod, ApiJsonContext.Default.Pod);
        using var a = JsonDocument.Parse(json);
        using var b = JsonDocument.Parse(back);
        Assert.True(JsonElement.DeepEquals(a.RootElement, b.RootElement), back);
    }

    [Fact]
    public void FieldNamesMatchUpstreamJson()
    {
        var pod = new Pod
        {
            Spec = new PodSpec
            {
                HostNetwork = true, DnsPolicy = "Default",
                Containers = [new Container { Name = "c", Ports = [new ContainerPort { Number = 80, HostIP = "1.2.3.4" }],
                    LivenessProbe = new Probe { HttpGet = new HTTPGetAction { Port = 80, HttpHeaders = [] }, TcpSocket = new TCPSocketAction { Port = "http" }, Grpc = new GRPCAction { Port = 1 } } }],
            },
            Status = new PodStatus { PodIP = "10.0.0.1", PodIPs = [new PodIP { Ip = "10.0.0.1" }], HostIP = "1.1.1.1", QosClass = "BestEffort",
                ContainerStatuses = [new ContainerStatus { Name = "c", ContainerID = "x", ImageID = "y" }] },
        };
        var json = JsonSerializer.Serialize(pod, ApiJsonContext.Default.Pod);
        foreach (var name in (string[])["\"hostNetwork\"", "\"dnsPolicy\"", "\"containerPort\":80", "\"hostIP\"", "\"httpGet\"", "\"httpHeaders\"", "\"tcpSocket\"", "\"grpc\"",
                     "\"podIP\"", "\"podIPs\"", "\"ip\"", "\"qosClass\"", "\"containerID\"", "\"imageID\"", "\"port\":\"http\""])
            Assert.Contains(name, json);
    }

    [Fact]
    public void TimesAreRfc3339UtcWithZ()
    {
        var s = new ContainerStateRunning { StartedAt = new DateTimeOffset(2024, 5, 6, 7, 8, 9, 500, TimeSpan.FromHours(2)) };
        var json = JsonSerializer.Serialize(new PodStatus { ContainerStatuses = [new ContainerStatus { Name = "c", State = new ContainerState { Running = s } }] }, ApiJsonContext.Default.PodStatus);
        Assert.Contains("\"startedAt\":\"2024-05-06T05:08:09Z\"", json);
    }

    [Theory]
    [InlineData("100m", 0.1)]
    [InlineData("1", 1)]
    [InlineData("1.5", 1.5)]
    [InlineData("128Mi", 134217728)]
    [InlineData("1Gi", 1073741824)]
    [InlineData("1k", 1000)]
    [InlineData("1M", 1000000)]
    [InlineData("1e3", 1000)]
    [InlineData("5E-3", 0.005)]
    [InlineData("250u", 0.00025)]
    [InlineData("+2", 2)]
    public void QuantitiesParseAsApimachinery(string text, double expected)
    {
        Assert.True(Quantity.TryParse(text, out var v));
        Assert.Equal((decimal)expected, v);
    }

    [Theory]
    [InlineData("")]
    [InlineData("12XB")]
    [InlineData("Mi")]
    [InlineData("1.2.3")]
    [InlineData("1 Mi")]
    [InlineData(".")]
    public void BadQuantitiesAreRejected(string text) => Assert.False(Quantity.TryParse(text, out _));

    [Fact]
    public void QuantitiesRoundUpLikeValueAndMilliValue()
    {
        Assert.Equal(1, new Quantity("1m").ToLong());
        Assert.Equal(1, new Quantity("0.0001").ToMilli());
        Assert.Equal(1500, new Quantity("1.5").ToMilli());
    }

    [Fact]
    public void YamlNumberQuantitiesKeepTheirText()
    {
        var pods = ManifestDecoder.DecodePods("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i, resources: {limits: {cpu: 1.50, memory: 64Mi}}}]}\n");
        var limits = pods[0].Spec.Containers[0].Resources!.Limits!;
        Assert.Equal("1.50", limits["cpu"].Text);
        Assert.Equal(1500, limits["cpu"].ToMilli());
    }

    [Fact]
    public void ManifestsMayHoldManyDocumentsAndLists()
    {
        var pods = ManifestDecoder.DecodePods("""
            apiVersion: v1
            kind: Pod
            metadata: {name: a}
            spec: {containers: [{name: c, image: i}]}
            ---
            apiVersion: v1
            kind: PodList
            items:
            - metadata: {name: b}
              spec: {containers: [{name: c, image: i}]}
            - metadata: {name: c}
              spec: {containers: [{name: c, image: i}]}
            """);
        Assert.Equal(["a", "b", "c"], pods.Select(p => p.Metadata.Name));
        var json = ManifestDecoder.DecodePods("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"c","image":"i"}]}}""");
        Assert.Equal("j", Assert.Single(json).Metadata.Name);
    }

    [Fact]
    public void ATypeErrorNamesTheField()
    {
        var e = Assert.Throws<ManifestException>(() => ManifestDecoder.DecodePods("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {terminationGracePeriodSeconds: soon, containers: []}\n"));
        Assert.StartsWith("spec.terminationGracePeriodSeconds:", e.Message);
        var e2 = Assert.Throws<ManifestException>(() => ManifestDecoder.DecodePods("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: q, labels: [x]}\n"));
        Assert.StartsWith("document 2: metadata.labels:", e2.Message);
    }
}
