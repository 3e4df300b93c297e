using NodeAgent.Contracts;
using NodeAgent.Cri;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>The runtime contract against real containerd: what keeps tests/NodeAgent.Tests' FakeRuntime honest.</summary>
[Collection(NodeCollection.Name)]
public sealed class ContainerdRuntimeContractTests(NodeFixture node) : RuntimeContract
{
    protected override IRuntimeService Runtime { get { node.RequireReady(); return node.Cri; } }
    protected override IImageService Images { get { node.RequireReady(); return node.Cri; } }
}
