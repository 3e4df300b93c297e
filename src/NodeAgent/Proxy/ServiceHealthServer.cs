using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace NodeAgent.Proxy;

/// <summary>
/// kube-proxy's per-service health checks: a LoadBalancer Service with externalTrafficPolicy
/// Local has a <c>spec.healthCheckNodePort</c>, and on that port every node answers any GET with
/// 200 when it has local ready endpoints for the service and 503 when not (or when the proxy
/// itself is unhealthy), with <c>{"service":{"namespace","name"},"localEndpoints":N,"serviceProxyHealthy":b}</c>,
/// so the cloud load balancer sends traffic only to nodes that will keep the client's address.
/// The proxy's loop alone calls <see cref="Set"/>; each port has an accept loop that reads the
/// entry it was last given. A port that cannot be bound is logged and skipped.
/// </summary>
public sealed partial class ServiceHealthServer(Func<bool> proxyHealthy, ILogger log) : IAsyncDisposable
{
    public sealed record Entry(string Namespace, string Name, int LocalEndpoints);

    private sealed class Listener
    {
        public required TcpListener Socket;
        public required CancellationTokenSource Stop;
        public Task Loop = Task.CompletedTask;
        public volatile Entry? Current;
    }

    private readonly Dictionary<int, Listener> _listeners = [];
    private readonly Dictionary<string, int> _portOf = new(StringComparer.Ordinal);

    public IReadOnlyCollection<int> Ports => _listeners.Keys;

    /// <summary>Service <paramref name="key"/> wants a health check on <paramref name="port"/> (0: none) with <paramref name="entry"/>.</summary>
    public void Set(string key, int port, Entry? entry)
    {
        if (_portOf.TryGetValue(key, out int old) && (old != port || entry is null))
        {
            _portOf.Remove(key);
            if (_listeners.Remove(old, out var gone)) Close(gone);
        }
        if (entry is null || port is < 1 or > 65535) return;
        _portOf[key] = port;
        if (_listeners.TryGetValue(port, out var l)) { l.Current = entry; return; }
        var socket = new TcpListener(IPAddress.IPv6Any, port);
        try
        {
            socket.Server.DualMode = true;
            socket.Start();
        }
        catch (SocketException e)
        {
            socket.Dispose();
            LogBindFailed(log, key, port, e.Message);
            _portOf.Remove(key);
            return;
        }
        var listener = new Listener { Socket = socket, Stop = new CancellationTokenSource(), Current = entry };
        listener.Loop = AcceptAsync(listener);
        _listeners[port] = listener;
    }

    private static void Close(Listener l)
    {
        l.Stop.Cancel();
        l.Socket.Stop();
    }

    private async Task AcceptAsync(Listener l)
    {
        while (!l.Stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await l.Socket.AcceptSocketAsync(l.Stop.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { continue; }
            _ = AnswerAsync(client, l);
        }
    }

    private async Task AnswerAsync(Socket client, Listener l)
    {
        using (client)
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(l.Stop.Token))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            var buffer = ArrayPool<byte>.Shared.Rent(8192);
            try
            {
                // Read the request head (whatever the path: kube-proxy answers any request).
                int n = 0;
                while (n < buffer.Length)
                {
                    int got = await client.ReceiveAsync(buffer.AsMemory(n), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    if (got == 0) break;
                    n += got;
                    if (buffer.AsSpan(0, n).IndexOf("\r\n\r\n"u8) >= 0) break;
                }
                var entry = l.Current;
                if (entry is null) return;
                bool healthy = proxyHealthy();
                byte[] response = Response(entry, healthy);
                await client.SendAsync(response, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (OperationCanceledException) { }
            catch (SocketException) { }
            finally { ArrayPool<byte>.Shared.Return(buffer); }
        }
    }

    /// <summary>The HTTP response for <paramref name="e"/>: 200 with local endpoints and a healthy proxy, else 503.</summary>
    public static byte[] Response(Entry e, bool proxyHealthy)
    {
        var body = new ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartObject();
            json.WriteStartObject("service");
            json.WriteString("namespace", e.Namespace);
            json.WriteString("name", e.Name);
            json.WriteEndObject();
            json.WriteNumber("localEndpoints", e.LocalEndpoints);
            json.WriteBoolean("serviceProxyHealthy", proxyHealthy);
            json.WriteEndObject();
        }
        bool ok = e.LocalEndpoints > 0 && proxyHealthy;
        string head = string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"HTTP/1.1 {(ok ? "200 OK" : "503 Service Unavailable")}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: {e.LocalEndpoints}\r\nContent-Length: {body.WrittenCount}\r\nConnection: close\r\n\r\n");
        var response = new byte[Encoding.ASCII.GetByteCount(head) + body.WrittenCount];
        int h = Encoding.ASCII.GetBytes(head, response);
        body.WrittenSpan.CopyTo(response.AsSpan(h));
        return response;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var l in _listeners.Values) Close(l);
        foreach (var l in _listeners.Values) await l.Loop.ConfigureAwait(false);
        _listeners.Clear();
        _portOf.Clear();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "service {Service}: cannot serve its health check on port {Port}: {Error}")]
    private static partial void LogBindFailed(ILogger log, string service, int port, string error);
}
