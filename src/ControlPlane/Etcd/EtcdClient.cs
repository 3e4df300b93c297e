using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using NodeAgent.ControlPlane.Etcd.V3;

namespace NodeAgent.ControlPlane.Etcd;

/// <summary>etcd refused a read or watch because the revision was compacted away.</summary>
public sealed class EtcdCompactedException(long requested, long compacted)
    : Exception($"revision {requested} has been compacted (compacted revision {compacted})")
{
    public long Requested { get; } = requested;
    public long CompactRevision { get; } = compacted;
}

/// <summary>etcd could not be reached or did not answer in time.</summary>
public sealed class EtcdUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The control plane's etcd v3 client: unary KV calls with a deadline each, plus raw watch
/// streams for <see cref="Watch.WatchCache"/>. Thread-safe; one HTTP/2 connection multiplexes
/// every call. gRPC errors are mapped once, here, to <see cref="EtcdCompactedException"/> and
/// <see cref="EtcdUnavailableException"/>.
/// </summary>
public sealed class EtcdClient : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly KV.KVClient _kv;
    private readonly V3.Watch.WatchClient _watch;
    private readonly TimeSpan _timeout;

    public EtcdClient(Uri endpoint, TimeSpan? timeout = null)
    {
        Endpoint = endpoint;
        _timeout = timeout ?? TimeSpan.FromSeconds(10);
        _channel = GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                ConnectTimeout = TimeSpan.FromSeconds(5),
            },
            MaxReceiveMessageSize = 512 * 1024 * 1024,
            MaxSendMessageSize = 8 * 1024 * 1024,
        });
        _kv = new KV.KVClient(_channel);
        _watch = new V3.Watch.WatchClient(_channel);
    }

    public Uri Endpoint { get; }

    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken ct) =>
        CallAsync(request.Revision, o => _kv.RangeAsync(request, o).ResponseAsync, ct);

    public Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken ct) =>
        CallAsync(0, o => _kv.TxnAsync(request, o).ResponseAsync, ct);

    public Task<CompactionResponse> CompactAsync(long revision, CancellationToken ct) =>
        CallAsync(revision, o => _kv.CompactAsync(new CompactionRequest { Revision = revision, Physical = true }, o).ResponseAsync, ct);

    /// <summary>The store's current revision (a linearizable read of one absent key).</summary>
    public async Task<long> CurrentRevisionAsync(CancellationToken ct)
    {
        var r = await RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/registry/.revision"), CountOnly = true }, ct).ConfigureAwait(false);
        return r.Header.Revision;
    }

    /// <summary>Opens a watch stream; the caller owns it (and disposes it to cancel).</summary>
    public AsyncDuplexStreamingCall<WatchRequest, WatchResponse> OpenWatch(CancellationToken ct) =>
        _watch.Watch(new CallOptions(cancellationToken: ct));

    private async Task<T> CallAsync<T>(long revision, Func<CallOptions, Task<T>> call, CancellationToken ct)
    {
        try
        {
            return await call(new CallOptions(deadline: DateTime.UtcNow + _timeout, cancellationToken: ct)).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.OutOfRange && e.Status.Detail.Contains("compacted", StringComparison.Ordinal))
        {
            throw new EtcdCompactedException(revision, 0);
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown && !ct.IsCancellationRequested)
        {
            throw new EtcdUnavailableException($"etcd {Endpoint}: {e.Status.StatusCode}: {e.Status.Detail}", e);
        }
        catch (HttpRequestException e)
        {
            throw new EtcdUnavailableException($"etcd {Endpoint}: {e.Message}", e);
        }
    }

    /// <summary>The exclusive end of the range of keys that start with <paramref name="prefix"/>.</summary>
    public static ByteString PrefixEnd(ReadOnlySpan<byte> prefix)
    {
        var end = prefix.ToArray();
        for (int i = end.Length - 1; i >= 0; i--)
        {
            if (end[i] < 0xff)
            {
                end[i]++;
                return ByteString.CopyFrom(end, 0, i + 1);
            }
        }
        return ByteString.CopyFrom(0);
    }

    public void Dispose() => _channel.Dispose();
}
