using Google.Protobuf;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>The PLEG's relist decoder against messages Google.Protobuf writes (the runtime.v1 wire format).</summary>
public sealed class RelistDecoderTests
{
    private static PodSandbox Sandbox(string id, string? uid, PodSandboxState state)
    {
        var sb = new PodSandbox
        {
            Id = id, State = state, CreatedAt = 1_700_000_000_000_000_000, RuntimeHandler = "runc",
            Metadata = new PodSandboxMetadata { Name = "web", Namespace = "default", Uid = uid ?? "none", Attempt = 3 },
            Annotations = { ["kubernetes.io/config.source"] = "file", ["x"] = new string('y', 300) },
        };
        sb.Labels["io.kubernetes.pod.name"] = "web";
        if (uid is not null) sb.Labels[Labels.PodUid] = uid;
        sb.Labels["zz"] = "after";
        return sb;
    }

    private static Container Container(string id, string? uid, ContainerState state)
    {
        var c = new Container
        {
            Id = id, PodSandboxId = "sb", State = state, CreatedAt = 42, ImageRef = "sha256:abc", ImageId = "sha256:abc",
            Metadata = new ContainerMetadata { Name = "app", Attempt = 2 },
            Image = new ImageSpec { Image = "busybox:1.36" },
            Annotations = { [Labels.PodUid] = "an annotation, not the label" },
        };
        if (uid is not null) c.Labels[Labels.PodUid] = uid;
        c.Labels[Labels.ContainerName] = "app";
        return c;
    }

    [Fact]
    public void ReadsIdPodUidAndStateAndSkipsEntriesWithoutThePodUidLabel()
    {
        var sandboxes = new ListPodSandboxResponse { Items = { Sandbox("s1", "u1", PodSandboxState.SandboxReady), Sandbox("s2", null, PodSandboxState.SandboxReady), Sandbox("s3", "u3", PodSandboxState.SandboxNotready) } };
        var containers = new ListContainersResponse { Containers = { Container("c1", "u1", ContainerState.ContainerRunning), Container("c2", null, ContainerState.ContainerRunning), Container("c3", "u3", ContainerState.ContainerExited), Container("c4", "u3", ContainerState.ContainerUnknown) } };
        var decoder = new RelistDecoder();
        var into = new List<RelistEntry>();
        decoder.DecodeSandboxes(sandboxes.ToByteArray(), into);
        decoder.DecodeContainers(containers.ToByteArray(), into);
        Assert.Equal(
        [
            new("s1", "u1", 100 + (int)PodSandboxState.SandboxReady), new("s3", "u3", 100 + (int)PodSandboxState.SandboxNotready),
            new("c1", "u1", (int)ContainerState.ContainerRunning), new("c3", "u3", (int)ContainerState.ContainerExited), new("c4", "u3", (int)ContainerState.ContainerUnknown),
        ], into);
    }

    [Fact]
    public void AStateLeftAtItsDefaultIsZeroAsTheMessageSays()
    {
        // proto3 does not write a field at its default value: SandboxReady and ContainerCreated are 0.
        var containers = new ListContainersResponse { Containers = { Container("c1", "u1", ContainerState.ContainerCreated) } };
        var into = new List<RelistEntry>();
        new RelistDecoder().DecodeContainers(containers.ToByteArray(), into);
        Assert.Equal([new RelistEntry("c1", "u1", 0)], into);
        into.Clear();
        new RelistDecoder().DecodeContainers([], into);
        Assert.Empty(into);
    }

    [Fact]
    public void UnchangedRelistsReuseTheirStringsAndForgetThoseNoLongerSeen()
    {
        var decoder = new RelistDecoder();
        var first = new List<RelistEntry>();
        byte[] two = new ListContainersResponse { Containers = { Container(new string('a', 64), "uid-1", ContainerState.ContainerRunning), Container(new string('b', 64), "uid-1", ContainerState.ContainerRunning) } }.ToByteArray();
        decoder.DecodeContainers(two, first);
        decoder.EndRelist();
        Assert.Same(first[0].PodUid, first[1].PodUid); // within a relist too
        Assert.Equal(3, decoder.Held);

        var second = new List<RelistEntry>();
        decoder.DecodeContainers(two, second);
        decoder.EndRelist();
        Assert.Same(first[0].Id, second[0].Id);
        Assert.Same(first[1].Id, second[1].Id);
        Assert.Same(first[0].PodUid, second[0].PodUid);

        var third = new List<RelistEntry>();
        decoder.DecodeContainers(new ListContainersResponse { Containers = { Container(new string('b', 64), "uid-1", ContainerState.ContainerExited) } }.ToByteArray(), third);
        decoder.EndRelist();
        Assert.Same(first[1].Id, third[0].Id);
        Assert.Equal(2, decoder.Held); // the first container's ID is let go
    }

    [Fact]
    public void NonAsciiValuesRoundTrip()
    {
        var into = new List<RelistEntry>();
        var decoder = new RelistDecoder();
        byte[] msg = new ListContainersResponse { Containers = { Container("c1", "uïd-é", ContainerState.ContainerRunning) } }.ToByteArray();
        decoder.DecodeContainers(msg, into);
        decoder.EndRelist();
        decoder.DecodeContainers(msg, into);
        Assert.Equal("uïd-é", into[0].PodUid);
        Assert.Same(into[0].PodUid, into[1].PodUid);
    }

    [Fact]
    public void ATruncatedOrMalformedResponseIsAnInvalidDataException()
    {
        byte[] msg = new ListContainersResponse { Containers = { Container("c1", "u1", ContainerState.ContainerRunning) } }.ToByteArray();
        var decoder = new RelistDecoder();
        Assert.Throws<InvalidDataException>(() => decoder.DecodeContainers(msg.AsSpan(0, msg.Length - 3), []));
        Assert.Throws<InvalidDataException>(() => decoder.DecodeContainers([0x0a, 0x05, 0x0b], []));        // length beyond the end
        Assert.Throws<InvalidDataException>(() => decoder.DecodeContainers([0x0f], []));                    // wire type 7
        Assert.Throws<InvalidDataException>(() => decoder.DecodeContainers([0x08, 0xff, 0xff], []));        // varint cut short
    }
}
