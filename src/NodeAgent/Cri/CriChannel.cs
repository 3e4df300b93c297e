using System.Net.Sockets;
using Grpc.Net.Client;

namespace NodeAgent.Cri;

/// <summary>
/// A gRPC channel to a CRI runtime over its unix socket. The handler dials the socket afresh for
/// each new HTTP/2 connection, so after a runtime restart the next call simply reconnects; callers
/// retry Unavailable with backoff. 16 MiB receive limit as the kubelet's remote client uses.
/// </summary>
public static class CriChannel
{
    public const int MaxMessageSize = 16 * 1024 * 1024;

    public static GrpcChannel Create(string socketPath)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch (SocketException e)
                {
                    socket.Dispose();
                    throw new IOException($"cannot connect to the runtime socket {socketPath}: {e.SocketErrorCode}", e);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            // Notice a dead runtime quickly instead of waiting for a deadline.
            KeepAlivePingDelay = TimeSpan.FromSeconds(15),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };
        return GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = MaxMessageSize,
            MaxSendMessageSize = MaxMessageSize,
            DisposeHttpClient = true,
        });
    }
}
