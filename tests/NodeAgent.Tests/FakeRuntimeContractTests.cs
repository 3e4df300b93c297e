using NodeAgent.Contracts;
using NodeAgent.Cri;
using NodeAgent.Tests.Fakes;

namespace NodeAgent.Tests;

/// <summary>The runtime contract against the in-repo fake (the same class runs against containerd in the integration tests).</summary>
public sealed class FakeRuntimeContractTests : RuntimeContract
{
    private readonly FakeRuntime _fake = new();
    protected override IRuntimeService Runtime => _fake;
    protected override IImageService Images => _fake;
}
