using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace NodeAgent.Api.Streaming;

/// <summary>The backend's answer to an HTTP/1.1 upgrade request.</summary>
/// <param name="Status">HTTP status code; 101 when the connection switched protocols.</param>
/// <param name="Headers">Response headers, names as sent; repeated headers keep every value.</param>
/// <param name="Connection">The connection, positioned after the response head. For a 101 it carries the
/// new protocol; otherwise the response body follows (see <see cref="ReadBodyAsync"/>). Owned by the caller.</param>
public sealed record UpgradeResponse(int Status, IReadOnlyList<KeyValuePair<string, string>> Headers, Stream Connection) : IAsyncDisposable
{
    public string? Header(string name)
    {
        foreach (var (k, v) in Headers)
            if (k.Equals(name, StringComparison.OrdinalIgnoreCase)) return v;
        return null;
    }

    /// <summary>The body of a non-101 answer (Content-Length or to end of stream, at most 64 KiB): the error to show.</summary>
    public async Task<string> ReadBodyAsync(CancellationToken ct)
    {
        int want = int.TryParse(Header("Content-Length"), out var n) ? Math.Min(n, 65536) : 65536;
        var buf = new byte[want];
        int got = 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            while (got < want)
            {
                int r = await Connection.ReadAsync(buf.AsMemory(got), timeout.Token).ConfigureAwait(false);
                if (r == 0) break;
                got += r;
            }
        }
        catch (Exception e) when ((e is OperationCanceledException or IOException) && !ct.IsCancellationRequested) { }
        return Encoding.UTF8.GetString(buf, 0, got);
    }

    public ValueTask DisposeAsync() => Connection.DisposeAsync();
}

/// <summary>
/// Opens a connection and sends one HTTP/1.1 request that asks to switch protocols (WebSocket or
/// SPDY/3.1), then reads the response head. Both the API server's pods/exec|attach|portforward proxy
/// (to the kubelet port, over TLS with the apiserver's client certificate) and the agent (to the
/// container runtime's CRI streaming server, plain HTTP on loopback) use it: after a 101 the two
/// ends are joined byte for byte, as kube-apiserver's and the kubelet's upgrade-aware proxies do.
/// </summary>
public static class UpgradeDialer
{
    private const int MaxHead = 16384;

    /// <param name="url">http:// or https:// URL with path and query.</param>
    /// <param name="headers">Request headers besides Host (e.g. Connection, Upgrade, Sec-WebSocket-*, X-Stream-Protocol-Version).</param>
    public static async Task<UpgradeResponse> DialAsync(Uri url, string method, IEnumerable<KeyValuePair<string, string>> headers,
        X509Certificate2? clientCertificate, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream stream;
        try
        {
            using (var connect = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                connect.CancelAfter(TimeSpan.FromSeconds(10));
                await socket.ConnectAsync(url.DnsSafeHost, url.Port, connect.Token).ConfigureAwait(false);
            }
            stream = new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        try
        {
            if (url.Scheme == Uri.UriSchemeHttps)
            {
                var tls = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = tls;
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = url.DnsSafeHost,
                    ClientCertificates = clientCertificate is null ? null : [clientCertificate],
                    // Upgrades speak HTTP/1.1 only.
                    ApplicationProtocols = [SslApplicationProtocol.Http11],
                    // As kube-apiserver without --kubelet-certificate-authority: kubelet serving certificates are self-signed.
                    RemoteCertificateValidationCallback = (_, _, _, _) => true,
                }, ct).ConfigureAwait(false);
            }
            var head = new StringBuilder();
            head.Append(method).Append(' ').Append(url.PathAndQuery).Append(" HTTP/1.1\r\nHost: ").Append(url.Authority).Append("\r\n");
            foreach (var (k, v) in headers)
            {
                if (k.AsSpan().ContainsAny('\r', '\n') || v.AsSpan().ContainsAny('\r', '\n'))
                    throw new ArgumentException($"header {k} holds a line break");
                head.Append(k).Append(": ").Append(v).Append("\r\n");
            }
            head.Append("\r\n");
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), ct).ConfigureAwait(false);
            await stream.FlushAsync(ct).ConfigureAwait(false);
            return await ReadHeadAsync(stream, ct).ConfigureAwait(false);
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    // Reads byte by byte up to the blank line so nothing of the new protocol is consumed: the head is
    // small and read once per session, the cost does not matter.
    private static async Task<UpgradeResponse> ReadHeadAsync(Stream stream, CancellationToken ct)
    {
        var buf = new byte[MaxHead];
        int n = 0;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            while (n < 4 || !(buf[n - 4] == '\r' && buf[n - 3] == '\n' && buf[n - 2] == '\r' && buf[n - 1] == '\n'))
            {
                if (n == buf.Length) throw new IOException("the upgrade response head is larger than 16 KiB");
                int r = await stream.ReadAsync(buf.AsMemory(n, 1), timeout.Token).ConfigureAwait(false);
                if (r == 0) throw new IOException("the connection closed before the upgrade response");
                n++;
            }
        }
        var lines = Encoding.ASCII.GetString(buf, 0, n - 4).Split("\r\n");
        var status = lines[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(status[1], out int code))
            throw new IOException($"malformed upgrade response: {lines[0]}");
        var headers = new List<KeyValuePair<string, string>>();
        foreach (var line in lines.AsSpan(1))
        {
            int colon = line.IndexOf(':');
            if (colon > 0) headers.Add(new(line[..colon].Trim(), line[(colon + 1)..].Trim()));
        }
        return new UpgradeResponse(code, headers, stream);
    }

    /// <summary>Copies both ways until either side ends, then closes both (the session is over).</summary>
    public static async Task JoinAsync(Stream a, Stream b, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var ab = CopyAsync(a, b, cts.Token);
        var ba = CopyAsync(b, a, cts.Token);
        await Task.WhenAny(ab, ba).ConfigureAwait(false);
        await cts.CancelAsync().ConfigureAwait(false);
        try { await Task.WhenAll(ab, ba).ConfigureAwait(false); } catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException) { }
    }

    private static async Task CopyAsync(Stream from, Stream to, CancellationToken ct)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(32768);
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                await to.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException) { }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
