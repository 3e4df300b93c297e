using System.Diagnostics;
using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Net.Client;
using NodeAgent.Cri.V1;

namespace NodeAgent.Cri;

/// <summary>
/// CRI v1 client for a remote runtime (containerd, CRI-O). Adds a deadline to every call, maps
/// gRPC errors to <see cref="CriException"/>, checks required response fields, and reports each
/// operation's duration and outcome to <see cref="Observe"/> (kubelet_runtime_operations_*).
/// Tests for this class run against real containerd in tests/NodeAgent.IntegrationTests.
/// </summary>
public sealed class RemoteRuntime(GrpcChannel channel, TimeSpan requestTimeout) : IRuntimeService, IImageService, IStreamingRuntime
{
    private readonly RuntimeService.RuntimeServiceClient _rt = new(channel);
    private readonly CallInvoker _invoker = channel.CreateCallInvoker();
    private readonly ImageService.ImageServiceClient _img = new(channel);

    /// <summary>Called after each CRI call with (operation, duration, failed).</summary>
    public Action<string, TimeSpan, bool>? Observe { get; set; }

    /// <summary>Image pulls may legitimately take longer than other calls.</summary>
    public TimeSpan PullTimeout { get; init; } = TimeSpan.FromMinutes(10);

    private async Task<T> Call<T>(string op, Func<CallOptions, AsyncUnaryCall<T>> call, CancellationToken ct, TimeSpan? timeout = null)
    {
        long start = Stopwatch.GetTimestamp();
        bool failed = true;
        try
        {
            var options = new CallOptions(deadline: DateTime.UtcNow + (timeout ?? requestTimeout), cancellationToken: ct);
            var result = await call(options).ResponseAsync.ConfigureAwait(false);
            failed = false;
            return result;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
        {
            throw new OperationCanceledException(ct);
        }
        catch (RpcException e)
        {
            throw CriException.From(e, op);
        }
        finally
        {
            Observe?.Invoke(op, Stopwatch.GetElapsedTime(start), failed);
        }
    }

    public Task<VersionResponse> VersionAsync(CancellationToken ct) =>
        Call("version", o => _rt.VersionAsync(new VersionRequest { Version = "v1" }, o), ct);

    public async Task<string> RunPodSandboxAsync(PodSandboxConfig config, string runtimeHandler, CancellationToken ct)
    {
        var r = await Call("run_podsandbox", o => _rt.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config, RuntimeHandler = runtimeHandler }, o), ct).ConfigureAwait(false);
        return string.IsNullOrEmpty(r.PodSandboxId) ? throw new CriException(CriErrorKind.Unknown, "run_podsandbox", "runtime returned an empty sandbox id") : r.PodSandboxId;
    }

    public Task StopPodSandboxAsync(string sandboxId, CancellationToken ct) =>
        Call("stop_podsandbox", o => _rt.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = sandboxId }, o), ct);

    public Task RemovePodSandboxAsync(string sandboxId, CancellationToken ct) =>
        Call("remove_podsandbox", o => _rt.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = sandboxId }, o), ct);

    public async Task<PodSandboxStatus> PodSandboxStatusAsync(string sandboxId, CancellationToken ct)
    {
        var r = await Call("podsandbox_status", o => _rt.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = sandboxId }, o), ct).ConfigureAwait(false);
        return r.Status ?? throw new CriException(CriErrorKind.Unknown, "podsandbox_status", "runtime returned no status");
    }

    public async Task<IReadOnlyList<PodSandbox>> ListPodSandboxAsync(PodSandboxFilter? filter, CancellationToken ct)
    {
        var r = await Call("list_podsandbox", o => _rt.ListPodSandboxAsync(new ListPodSandboxRequest { Filter = filter }, o), ct).ConfigureAwait(false);
        return r.Items;
    }

    /// <summary>The two list calls of a relist, their responses read as bytes by <paramref name="decoder"/> (no message objects).</summary>
    public async Task RelistAsync(RelistDecoder decoder, List<RelistEntry> into, CancellationToken ct)
    {
        var sandboxesTask = Call("list_podsandbox", o => _invoker.AsyncUnaryCall(RawLists.PodSandboxes, null, o, new ListPodSandboxRequest()), ct);
        var containersTask = Call("list_containers", o => _invoker.AsyncUnaryCall(RawLists.Containers, null, o, new ListContainersRequest()), ct);
        string op = "list_podsandbox";
        try
        {
            using (var sandboxes = await sandboxesTask.ConfigureAwait(false)) decoder.DecodeSandboxes(sandboxes.Span, into);
            op = "list_containers";
            using (var containers = await containersTask.ConfigureAwait(false)) decoder.DecodeContainers(containers.Span, into);
        }
        catch (InvalidDataException e)
        {
            throw new CriException(CriErrorKind.Unknown, op, $"malformed response: {e.Message}", e);
        }
    }

    public async Task<string> CreateContainerAsync(string sandboxId, ContainerConfig config, PodSandboxConfig sandboxConfig, CancellationToken ct)
    {
        var r = await Call("create_container", o => _rt.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = sandboxId, Config = config, SandboxConfig = sandboxConfig }, o), ct).ConfigureAwait(false);
        return string.IsNullOrEmpty(r.ContainerId) ? throw new CriException(CriErrorKind.Unknown, "create_container", "runtime returned an empty container id") : r.ContainerId;
    }

    public Task StartContainerAsync(string containerId, CancellationToken ct) =>
        Call("start_container", o => _rt.StartContainerAsync(new StartContainerRequest { ContainerId = containerId }, o), ct);

    public Task StopContainerAsync(string containerId, long timeoutSeconds, CancellationToken ct) =>
        // The runtime waits up to timeoutSeconds before SIGKILL: allow for that on top of the deadline.
        Call("stop_container", o => _rt.StopContainerAsync(new StopContainerRequest { ContainerId = containerId, Timeout = timeoutSeconds }, o), ct,
            requestTimeout + TimeSpan.FromSeconds(Math.Max(0, timeoutSeconds)));

    public Task RemoveContainerAsync(string containerId, CancellationToken ct) =>
        Call("remove_container", o => _rt.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = containerId }, o), ct);

    public async Task<IReadOnlyList<Container>> ListContainersAsync(ContainerFilter? filter, CancellationToken ct)
    {
        var r = await Call("list_containers", o => _rt.ListContainersAsync(new ListContainersRequest { Filter = filter }, o), ct).ConfigureAwait(false);
        return r.Containers;
    }

    public async Task<ContainerStatus> ContainerStatusAsync(string containerId, CancellationToken ct)
    {
        var r = await Call("container_status", o => _rt.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = containerId }, o), ct).ConfigureAwait(false);
        return r.Status ?? throw new CriException(CriErrorKind.Unknown, "container_status", "runtime returned no status");
    }

    public Task<ExecSyncResponse> ExecSyncAsync(string containerId, IReadOnlyList<string> cmd, TimeSpan timeout, CancellationToken ct)
    {
        var req = new ExecSyncRequest { ContainerId = containerId, Timeout = (long)Math.Ceiling(timeout.TotalSeconds) };
        req.Cmd.AddRange(cmd);
        return Call("exec_sync", o => _rt.ExecSyncAsync(req, o), ct, timeout + TimeSpan.FromSeconds(5));
    }

    public async Task<Uri> ExecAsync(ExecRequest request, CancellationToken ct) =>
        StreamUrl("exec", (await Call("exec", o => _rt.ExecAsync(request, o), ct).ConfigureAwait(false)).Url);

    public async Task<Uri> AttachAsync(AttachRequest request, CancellationToken ct) =>
        StreamUrl("attach", (await Call("attach", o => _rt.AttachAsync(request, o), ct).ConfigureAwait(false)).Url);

    public async Task<Uri> PortForwardAsync(string sandboxId, IReadOnlyList<int> ports, CancellationToken ct)
    {
        var req = new PortForwardRequest { PodSandboxId = sandboxId };
        req.Port.AddRange(ports);
        return StreamUrl("port_forward", (await Call("port_forward", o => _rt.PortForwardAsync(req, o), ct).ConfigureAwait(false)).Url);
    }

    private static Uri StreamUrl(string op, string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps)
            ? u : throw new CriException(CriErrorKind.Unknown, op, $"runtime returned an unusable streaming URL \"{url}\"");

    public Task ReopenContainerLogAsync(string containerId, CancellationToken ct) =>
        Call("reopen_container_log", o => _rt.ReopenContainerLogAsync(new ReopenContainerLogRequest { ContainerId = containerId }, o), ct);

    public Task<StatusResponse> StatusAsync(CancellationToken ct) =>
        Call("status", o => _rt.StatusAsync(new StatusRequest(), o), ct);

    public async IAsyncEnumerable<ContainerEventResponse> GetContainerEventsAsync([EnumeratorCancellation] CancellationToken ct)
    {
        using var call = _rt.GetContainerEvents(new GetEventsRequest(), cancellationToken: ct);
        while (true)
        {
            bool more;
            try { more = await call.ResponseStream.MoveNext(ct).ConfigureAwait(false); }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested) { yield break; }
            catch (RpcException e) { throw CriException.From(e, "get_container_events"); }
            if (!more) yield break;
            yield return call.ResponseStream.Current;
        }
    }

    public async Task<Image?> ImageStatusAsync(string image, CancellationToken ct)
    {
        var r = await Call("image_status", o => _img.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = image } }, o), ct).ConfigureAwait(false);
        return r.Image;
    }

    public async Task<string> PullImageAsync(string image, PodSandboxConfig? sandboxConfig, CancellationToken ct)
    {
        var r = await Call("pull_image", o => _img.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = image }, SandboxConfig = sandboxConfig }, o), ct, PullTimeout).ConfigureAwait(false);
        return string.IsNullOrEmpty(r.ImageRef) ? throw new CriException(CriErrorKind.Unknown, "pull_image", "runtime returned an empty image reference") : r.ImageRef;
    }

    public async Task<IReadOnlyList<Image>> ListImagesAsync(CancellationToken ct)
    {
        var r = await Call("list_images", o => _img.ListImagesAsync(new ListImagesRequest(), o), ct).ConfigureAwait(false);
        return r.Images;
    }

    public Task<ImageFsInfoResponse> ImageFsInfoAsync(CancellationToken ct) =>
        Call("image_fs_info", o => _img.ImageFsInfoAsync(new ImageFsInfoRequest(), o), ct);

    public async Task<IReadOnlyList<ContainerStats>> ListContainerStatsAsync(ContainerStatsFilter? filter, CancellationToken ct)
    {
        var r = await Call("list_container_stats", o => _rt.ListContainerStatsAsync(new ListContainerStatsRequest { Filter = filter }, o), ct).ConfigureAwait(false);
        return r.Stats;
    }
}

/// <summary>ListPodSandbox and ListContainers with the response left as bytes (in a pooled buffer) for <see cref="RelistDecoder"/>.</summary>
internal static class RawLists
{
    private const string Service = "runtime.v1.RuntimeService";

    // Before the methods: static initializers run in textual order.
    private static readonly Marshaller<RawMessage> Response = Marshallers.Create<RawMessage>(
        (_, _) => throw new NotSupportedException("responses are only received"),
        ctx =>
        {
            var payload = ctx.PayloadAsReadOnlySequence();
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent((int)payload.Length);
            System.Buffers.BuffersExtensions.CopyTo(payload, buffer);
            return new RawMessage(buffer, (int)payload.Length);
        });

    public static readonly Method<ListPodSandboxRequest, RawMessage> PodSandboxes =
        new(MethodType.Unary, Service, "ListPodSandbox", Request<ListPodSandboxRequest>(), Response);

    public static readonly Method<ListContainersRequest, RawMessage> Containers =
        new(MethodType.Unary, Service, "ListContainers", Request<ListContainersRequest>(), Response);

    private static Marshaller<T> Request<T>() where T : Google.Protobuf.IMessage<T> => Marshallers.Create<T>(
        (message, ctx) =>
        {
            ctx.SetPayloadLength(message.CalculateSize());
            Google.Protobuf.MessageExtensions.WriteTo(message, ctx.GetBufferWriter());
            ctx.Complete();
        },
        _ => throw new NotSupportedException("requests are only sent"));
}

/// <summary>A response's bytes in a buffer rented from the shared pool; returned on dispose.</summary>
internal sealed class RawMessage(byte[] buffer, int length) : IDisposable
{
    private byte[]? _buffer = buffer;
    public ReadOnlySpan<byte> Span => _buffer.AsSpan(0, length);
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _buffer, null) is { } b) System.Buffers.ArrayPool<byte>.Shared.Return(b);
    }
}
