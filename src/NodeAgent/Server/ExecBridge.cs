using System.Buffers;
using System.Net.WebSockets;

namespace NodeAgent.Server;

/// <summary>
/// One exec or attach session: the client's WebSocket channels (v4/v5.channel.k8s.io: the first
/// byte of each binary message names the stream, 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize;
/// v5 adds 255, "close this stream", so stdin can reach EOF) mapped onto SPDY streams of the
/// runtime's v4.channel.k8s.io session (streams named by their "streamtype" header). The session
/// ends when the runtime has finished the error and output streams; the status it wrote on the
/// error stream (exit code) reaches the client before the normal closure.
/// </summary>
public sealed class ExecBridge
{
    private const byte Stdin = 0, Stdout = 1, Stderr = 2, Error = 3, Resize = 4, Close = 255;

    private readonly SpdyClient _spdy;
    private readonly Dictionary<uint, byte> _channelOf = [];
    private readonly HashSet<uint> _outputs = [];
    private readonly TaskCompletionSource<bool> _stdinReady = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private uint _stdin, _resize;

    private ExecBridge(SpdyClient spdy) => _spdy = spdy;

    /// <summary>Opens the streams the runtime waits for (error first, as client-go does), before the client is answered.</summary>
    public static async Task<ExecBridge> OpenAsync(SpdyClient spdy, bool stdin, bool stdout, bool stderr, bool tty, CancellationToken ct)
    {
        var b = new ExecBridge(spdy);
        await b.OpenAsync("error", Error, ct).ConfigureAwait(false);
        if (stdin) b._stdin = await b.OpenAsync("stdin", Stdin, ct).ConfigureAwait(false);
        if (stdout) await b.OpenAsync("stdout", Stdout, ct).ConfigureAwait(false);
        if (stderr) await b.OpenAsync("stderr", Stderr, ct).ConfigureAwait(false);
        if (tty) b._resize = await b.OpenAsync("resize", Resize, ct).ConfigureAwait(false);
        if (!stdin) b._stdinReady.TrySetResult(false);
        return b;
    }

    private async Task<uint> OpenAsync(string type, byte channel, CancellationToken ct)
    {
        uint id = await _spdy.OpenStreamAsync([new("streamtype", type)], ct).ConfigureAwait(false);
        _channelOf[id] = channel;
        if (channel is Error or Stdout or Stderr) _outputs.Add(id);
        return id;
    }

    public async Task RunAsync(WebSocket ws, bool v5, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var fromClient = FromClientAsync(ws, v5, cts.Token);
        try
        {
            await ToClientAsync(ws, cts.Token).ConfigureAwait(false);
            if (ws.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var close = CancellationTokenSource.CreateLinkedTokenSource(ct);
                close.CancelAfter(TimeSpan.FromSeconds(2));
                await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, close.Token).ConfigureAwait(false);
                // Let the client answer the close (its reader then sees a clean end) before the connection goes.
                await Task.WhenAny(fromClient, Task.Delay(TimeSpan.FromSeconds(2), ct)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is WebSocketException or IOException or OperationCanceledException) { }
        finally
        {
            await cts.CancelAsync().ConfigureAwait(false);
            try { await fromClient.ConfigureAwait(false); } catch (Exception e) when (e is WebSocketException or IOException or OperationCanceledException) { }
        }
    }

    private async Task ToClientAsync(WebSocket ws, CancellationToken ct)
    {
        var pending = new HashSet<uint>(_outputs);
        try
        {
            while (pending.Count > 0 && await _spdy.ReadFrameAsync(ct).ConfigureAwait(false) is { } f)
            {
                switch (f.Kind)
                {
                    case SpdyFrameKind.SynReply:
                        if (f.StreamId == _stdin) _stdinReady.TrySetResult(true);
                        if (f.Fin) pending.Remove(f.StreamId);
                        break;
                    case SpdyFrameKind.Data:
                        if (!f.Payload.IsEmpty && _channelOf.TryGetValue(f.StreamId, out byte channel) && channel is Error or Stdout or Stderr)
                            await SendAsync(ws, channel, f.Payload, ct).ConfigureAwait(false);
                        if (f.Fin) pending.Remove(f.StreamId);
                        break;
                    case SpdyFrameKind.RstStream:
                        if (f.StreamId == _stdin) _stdinReady.TrySetResult(false);
                        pending.Remove(f.StreamId);
                        break;
                }
            }
        }
        finally
        {
            _stdinReady.TrySetResult(false);
        }
    }

    private static async Task SendAsync(WebSocket ws, byte channel, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var buf = ArrayPool<byte>.Shared.Rent(data.Length + 1);
        try
        {
            buf[0] = channel;
            data.CopyTo(buf.AsMemory(1));
            await ws.SendAsync(buf.AsMemory(0, data.Length + 1), WebSocketMessageType.Binary, endOfMessage: true, ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    private async Task FromClientAsync(WebSocket ws, bool v5, CancellationToken ct)
    {
        var buf = ArrayPool<byte>.Shared.Rent(32 * 1024 + 1);
        try
        {
            bool stdinOpen = _stdin != 0;
            bool midMessage = false;
            byte channel = 0;
            while (true)
            {
                var r = await ws.ReceiveAsync(buf.AsMemory(), ct).ConfigureAwait(false);
                if (r.MessageType == WebSocketMessageType.Close) return;
                var data = buf.AsMemory(0, r.Count);
                if (!midMessage)
                {
                    if (data.IsEmpty) continue;
                    channel = data.Span[0];
                    data = data[1..];
                }
                midMessage = !r.EndOfMessage;
                switch (channel)
                {
                    case Stdin when stdinOpen && !data.IsEmpty:
                        if (await _stdinReady.Task.ConfigureAwait(false))
                            await _spdy.SendDataAsync(_stdin, data, fin: false, ct).ConfigureAwait(false);
                        break;
                    case Resize when _resize != 0 && !data.IsEmpty:
                        await _spdy.SendDataAsync(_resize, data, fin: false, ct).ConfigureAwait(false);
                        break;
                    case Close when v5 && !data.IsEmpty && data.Span[0] == Stdin && stdinOpen:
                        stdinOpen = false;
                        if (await _stdinReady.Task.ConfigureAwait(false))
                            await _spdy.SendDataAsync(_stdin, ReadOnlyMemory<byte>.Empty, fin: true, ct).ConfigureAwait(false);
                        break;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }
}
