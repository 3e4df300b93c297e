using NodeAgent.Contracts;
using NodeAgent.Cri;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>
/// The runtime contract against real containerd: what keeps tests/NodeAgent.Tests' FakeRuntime honest.
/// The fixture's agent is frozen for each test: the test's sandboxes carry pod UIDs the agent does
/// not know, which its orphan collection would remove if it came due during the test.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class ContainerdRuntimeContractTests(NodeFixture node) : RuntimeContract, IDisposable
{
    private readonly IDisposable _frozen = node.FreezeAgent();

    protected override IRuntimeService Runtime { get { node.RequireReady(); return node.Cri; } }
    protected override IImageService Images { get { node.RequireReady(); return node.Cri; } }

    public void Dispose() => _frozen.Dispose();
}
