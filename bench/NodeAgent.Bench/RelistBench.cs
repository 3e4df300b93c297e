using System.Globalization;
using Google.Protobuf;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;

namespace NodeAgent.Bench;

/// <summary>
/// PLEG relist decoding (issue 2, steady-state cost): the two list responses of one relist with
/// 10, 50 and 110 pods (a sandbox and one container each, with the labels and annotations the
/// agent sets), read by <see cref="RelistDecoder"/> next to the peer, the generated messages'
/// parser plus the label lookup the PLEG did before (what any protobuf client does). The network
/// part (the two gRPC calls) is the same for both and not measured here. Median of 200 runs after
/// 20 warm-up runs; allocations per relist on this thread. Unchanged pods between relists, as at
/// steady state.
/// </summary>
internal static class RelistBench
{
    public static int Run(int[] sizes)
    {
        Console.WriteLine("relist benchmark: decoding one relist's ListPodSandbox + ListContainers responses");
        Console.WriteLine();
        Console.WriteLine("| pods | response bytes | peer: Google.Protobuf messages | peer: allocated | RelistDecoder | allocated |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (int n in sizes)
        {
            var (sandboxes, containers) = Responses(n);
            var entries = new List<RelistEntry>(2 * n);
            var peerTable = new Dictionary<string, (string, int)>(StringComparer.Ordinal);
            var peer = MetricsBench.Measure(() =>
            {
                peerTable.Clear();
                foreach (var sb in ListPodSandboxResponse.Parser.ParseFrom(sandboxes).Items)
                    if (sb.Labels.TryGetValue(Labels.PodUid, out var uid)) peerTable[sb.Id] = (uid, 100 + (int)sb.State);
                foreach (var c in ListContainersResponse.Parser.ParseFrom(containers).Containers)
                    if (c.Labels.TryGetValue(Labels.PodUid, out var uid)) peerTable[c.Id] = (uid, (int)c.State);
            });
            var decoder = new RelistDecoder();
            var ours = MetricsBench.Measure(() =>
            {
                entries.Clear();
                decoder.DecodeSandboxes(sandboxes, entries);
                decoder.DecodeContainers(containers, entries);
                decoder.EndRelist();
                peerTable.Clear();
                foreach (var e in entries) peerTable[e.Id] = (e.PodUid, e.State);
            });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {n} | {sandboxes.Length + containers.Length} | {peer.Ms * 1000:F1} µs | {peer.Bytes} B | {ours.Ms * 1000:F1} µs | {ours.Bytes} B |"));
        }
        return 0;
    }

    private static (byte[] Sandboxes, byte[] Containers) Responses(int n)
    {
        var sbs = new ListPodSandboxResponse();
        var cs = new ListContainersResponse();
        for (int i = 0; i < n; i++)
        {
            string uid = Guid.NewGuid().ToString(), sbId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()) + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
            string name = $"web-{i}", ns = "default";
            var sb = new PodSandbox
            {
                Id = sbId, State = PodSandboxState.SandboxReady, CreatedAt = 1_700_000_000_000_000_000 + i, RuntimeHandler = "",
                Metadata = new PodSandboxMetadata { Name = name, Namespace = ns, Uid = uid, Attempt = 0 },
            };
            sb.Labels[Labels.PodUid] = uid;
            sb.Labels["io.kubernetes.pod.name"] = name;
            sb.Labels["io.kubernetes.pod.namespace"] = ns;
            sb.Labels["app"] = "web";
            sb.Annotations["kubernetes.io/config.seen"] = "2026-11-23T08:00:00.000000000Z";
            sb.Annotations["kubernetes.io/config.source"] = "api";
            sbs.Items.Add(sb);
            var c = new Container
            {
                Id = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()) + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()),
                PodSandboxId = sbId, State = ContainerState.ContainerRunning, CreatedAt = 1_700_000_000_000_000_000 + i,
                Metadata = new ContainerMetadata { Name = "app", Attempt = 0 },
                Image = new ImageSpec { Image = "sha256:" + new string('a', 64) },
                ImageRef = "sha256:" + new string('a', 64), ImageId = "sha256:" + new string('a', 64),
            };
            c.Labels[Labels.PodUid] = uid;
            c.Labels["io.kubernetes.pod.name"] = name;
            c.Labels["io.kubernetes.pod.namespace"] = ns;
            c.Labels[Labels.ContainerName] = "app";
            c.Annotations["io.kubernetes.container.hash"] = "3f1c9a2b";
            c.Annotations[Labels.ContainerRestartCount] = "0";
            c.Annotations["io.kubernetes.container.terminationMessagePath"] = "/dev/termination-log";
            c.Annotations["io.kubernetes.container.terminationMessagePolicy"] = "File";
            c.Annotations["io.kubernetes.pod.terminationGracePeriod"] = "30";
            cs.Containers.Add(c);
        }
        return (sbs.ToByteArray(), cs.ToByteArray());
    }
}
