using System.Net;
using System.Net.Sockets;

namespace NodeAgent.IntegrationTests;

/// <summary>
/// A byte forwarder between the agent and a real service (containerd's socket, the API server's
/// port) that a test opens, pauses and resumes: closed, nothing listens (the agent sees the
/// service as down); paused, connections stay up but no byte moves (the service hangs).
/// </summary>
public sealed class Gate : IAsyncDisposable
{
    private readonly Func<Socket> _listenSocket;
    private readonly EndPoint _listenAt, _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private volatile TaskCompletionSource _flowing = Open();
    private Socket? _listener;
    private Task? _accepting;

    private Gate(Func<Socket> listenSocket, EndPoint listenAt, EndPoint target)
    {
        _listenSocket = listenSocket;
        _listenAt = listenAt;
        _target = target;
    }

    /// <summary>A unix socket at <paramref name="path"/> forwarding to the one at <paramref name="target"/>.</summary>
    public static Gate Unix(string path, string target) =>
        new(() => new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified), new UnixDomainSocketEndPoint(path), new UnixDomainSocketEndPoint(target));

    /// <summary>127.0.0.1:<paramref name="port"/> forwarding to 127.0.0.1:<paramref name="targetPort"/>.</summary>
    public static Gate Tcp(int port, int targetPort) =>
        new(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp), new IPEndPoint(IPAddress.Loopback, port), new IPEndPoint(IPAddress.Loopback, targetPort));

    private static TaskCompletionSource Open()
    {
        var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        t.SetResult();
        return t;
    }

    /// <summary>Starts listening and forwarding.</summary>
    public void Listen()
    {
        _listener = _listenSocket();
        if (_listenAt is UnixDomainSocketEndPoint u && File.Exists(u.ToString())) File.Delete(u.ToString());
        _listener.Bind(_listenAt);
        _listener.Listen(64);
        _accepting = AcceptAsync(_listener);
    }

    /// <summary>Holds every byte in both directions until <see cref="Resume"/>.</summary>
    public void Pause() => _flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Resume() => _flowing.TrySetResult();

    private async Task AcceptAsync(Socket listener)
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await listener.AcceptAsync(_stop.Token);
                var upstream = new Socket(_target.AddressFamily, SocketType.Stream, _target is IPEndPoint ? ProtocolType.Tcp : ProtocolType.Unspecified);
                try { await upstream.ConnectAsync(_target, _stop.Token); }
                catch (SocketException) { client.Dispose(); upstream.Dispose(); continue; }
                lock (_sockets) _sockets.AddRange([client, upstream]);
                _ = PumpAsync(client, upstream);
                _ = PumpAsync(upstream, client);
            }
        }
        catch (OperationCanceledException) { }
        catch (ObjectDisposedException) { }
        catch (SocketException) { }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0) break;
                await _flowing.Task.WaitAsync(_stop.Token);
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
            }
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        Resume();
        _listener?.Dispose();
        lock (_sockets) foreach (var s in _sockets) s.Dispose();
        if (_accepting is not null) await _accepting;
        if (_listenAt is UnixDomainSocketEndPoint u && File.Exists(u.ToString())) File.Delete(u.ToString());
    }
}
