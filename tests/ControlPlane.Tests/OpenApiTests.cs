using System.Buffers;
using System.Text.Json;
using NodeAgent.ControlPlane.Api;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

public sealed class OpenApiTests
{
    private static JsonDocument Schemas(string group)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            OpenApiSchemas.Write(w, group, "v1");
            w.WriteEndObject();
        }
        return JsonDocument.Parse(buffer.WrittenMemory);
    }

    [Theory]
    [InlineData("", "Namespace,Pod,Node,Service,Endpoints,ConfigMap,Secret,ServiceAccount,Event")]
    [InlineData("apps", "Deployment,ReplicaSet,DaemonSet,ControllerRevision")]
    [InlineData("discovery.k8s.io", "EndpointSlice")]
    [InlineData("coordination.k8s.io", "Lease")]
    public void EveryKindOfAGroupHasItsSchemaAndEveryReferenceResolves(string group, string kinds)
    {
        using var doc = Schemas(group);
        var byName = doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value);
        var gvks = byName.Values.Where(s => s.TryGetProperty("x-kubernetes-group-version-kind", out _))
            .Select(s => s.GetProperty("x-kubernetes-group-version-kind")[0]).ToList();
        Assert.Equal(kinds.Split(',').Order(), gvks.Select(g => g.GetProperty("kind").GetString()!).Order());
        Assert.All(gvks, g => Assert.Equal((group, "v1"), (g.GetProperty("group").GetString(), g.GetProperty("version").GetString())));

        var refs = new List<string>();
        void Collect(JsonElement e)
        {
            if (e.ValueKind == JsonValueKind.Object)
                foreach (var p in e.EnumerateObject())
                {
                    if (p.Name == "$ref") refs.Add(p.Value.GetString()!["#/components/schemas/".Length..]);
                    else Collect(p.Value);
                }
            else if (e.ValueKind == JsonValueKind.Array)
                foreach (var i in e.EnumerateArray()) Collect(i);
        }
        Collect(doc.RootElement);
        Assert.All(refs, r => Assert.True(byName.ContainsKey(r), "unresolved $ref " + r));
        Assert.All(byName.Keys, n => Assert.StartsWith("io.k8s.", n));
    }

    [Fact]
    public void SchemasCarryUpstreamNamesTypesAndThePatchMetadataTheServerApplies()
    {
        using var core = Schemas("");
        var root = core.RootElement;
        var container = root.GetProperty("io.k8s.api.core.v1.Container").GetProperty("properties");
        Assert.Equal("name", container.GetProperty("env").GetProperty("x-kubernetes-patch-merge-key").GetString());
        Assert.Equal("integer", root.GetProperty("io.k8s.api.core.v1.ContainerPort").GetProperty("properties").GetProperty("containerPort").GetProperty("type").GetString());
        var podSpec = root.GetProperty("io.k8s.api.core.v1.PodSpec").GetProperty("properties");
        Assert.Equal("merge,retainKeys", podSpec.GetProperty("volumes").GetProperty("x-kubernetes-patch-strategy").GetString());
        Assert.False(podSpec.GetProperty("tolerations").TryGetProperty("x-kubernetes-patch-strategy", out _));
        Assert.Equal("date-time", root.GetProperty("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta").GetProperty("properties")
            .GetProperty("creationTimestamp").GetProperty("format").GetString());
        Assert.Equal("name", root.GetProperty("io.k8s.api.core.v1.ServiceAccount").GetProperty("properties").GetProperty("secrets")
            .GetProperty("x-kubernetes-patch-merge-key").GetString());

        using var apps = Schemas("apps");
        Assert.Equal("retainKeys", apps.RootElement.GetProperty("io.k8s.api.apps.v1.DeploymentSpec").GetProperty("properties")
            .GetProperty("strategy").GetProperty("x-kubernetes-patch-strategy").GetString());
        Assert.Equal("int-or-string", apps.RootElement.GetProperty("io.k8s.apimachinery.pkg.util.intstr.IntOrString").GetProperty("format").GetString());
    }
}
