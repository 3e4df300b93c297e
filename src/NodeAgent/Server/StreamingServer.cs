using System.Net.WebSockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Core;
using NodeAgent.Api.Streaming;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using NodeAgent.Status;

namespace NodeAgent.Server;

/// <summary>
/// /exec, /attach and /portForward on the kubelet port. The container runtime serves the sessions
/// itself (CRI Exec/Attach/PortForward return a URL on its streaming server); this class finds the
/// container, asks for the URL and connects the caller to it:
/// <list type="bullet">
/// <item>SPDY/3.1 upgrades (kubectl's fallback, older clients) are joined byte for byte with the
/// runtime, as the kubelet proxies them.</item>
/// <item>WebSocket v5.channel.k8s.io / v4.channel.k8s.io (what kubectl 1.30+ asks for first) are
/// terminated here and bridged to the runtime over SPDY (<see cref="ExecBridge"/>), because
/// containerd 1.6–1.7 streaming servers predate v5 and v4 over WebSocket cannot close stdin.</item>
/// <item>Port forwarding over WebSocket uses the "SPDY/3.1+portforward.k8s.io" tunnel (KEP-4006):
/// the messages carry the SPDY byte stream, which is passed to the runtime unchanged.</item>
/// </list>
/// Tests: tests/NodeAgent.IntegrationTests/ExecTests (kubectl through the control plane, real containerd).
/// </summary>
public sealed partial class StreamingServer(IStreamingRuntime streaming, IPodSandboxManager sandboxes, PodStatusStore store, ILogger<StreamingServer> log)
{
    public const string V5 = "v5.channel.k8s.io";
    public const string V4 = "v4.channel.k8s.io";
    public const string PortForwardTunnel = "SPDY/3.1+portforward.k8s.io";

    /// <summary>/exec/{ns}/{pod}[/{uid}]/{container} and /attach/... (<paramref name="seg"/> after the verb).</summary>
    public async Task ExecAsync(HttpContext ctx, string[] seg, bool attach)
    {
        var ct = ctx.RequestAborted;
        if (seg.Length is not (3 or 4)) { await FailAsync(ctx, 404, "404 page not found"); return; }
        var pod = FindPod(seg[0], seg[1], seg.Length == 4 ? seg[2] : null);
        string containerName = seg[^1];
        if (pod is null) { await FailAsync(ctx, 404, $"pod {seg[0]}/{seg[1]} not found on this node"); return; }
        var status = (pod.Status?.ContainerStatuses ?? []).Concat(pod.Status?.InitContainerStatuses ?? []).FirstOrDefault(c => c.Name == containerName);
        string? id = status?.ContainerID is { } cid && cid.IndexOf("://", StringComparison.Ordinal) is var i and >= 0 ? cid[(i + 3)..] : null;
        if (id is null || status!.State?.Running is null)
        {
            await FailAsync(ctx, 404, $"container not found (\"{containerName}\")");
            return;
        }
        var q = ctx.Request.Query;
        // The kubelet's parameter names (the API server renames stdin/stdout/stderr to these).
        bool stdin = Flag(q, "input"), stdout = Flag(q, "output"), stderr = Flag(q, "error"), tty = Flag(q, "tty");
        if (tty) stderr = false;                                             // a terminal has one output stream
        string[] command = [.. q["command"].Where(c => c is not null)!];
        if (!attach && command.Length == 0) { await FailAsync(ctx, 400, "you must specify at least 1 command"); return; }
        if (!stdin && !stdout && !stderr) { await FailAsync(ctx, 400, "you must specify at least 1 of stdin, stdout, stderr"); return; }

        bool websocket = WebSocketAccept.IsWebSocketRequest(ctx);
        var offered = WebSocketAccept.RequestedProtocols(ctx);
        string? protocol = websocket ? Pick(offered, V5, V4) : null;
        if (websocket && protocol is null)
        {
            await FailAsync(ctx, 400, $"unsupported WebSocket subprotocols [{string.Join(", ", offered)}]; this kubelet speaks {V5} and {V4}");
            return;
        }
        if (!websocket && !UpgradeProxy.IsUpgrade(ctx)) { await FailAsync(ctx, 400, "Upgrade request required"); return; }

        Uri url;
        try
        {
            url = attach
                ? await streaming.AttachAsync(new AttachRequest { ContainerId = id, Stdin = stdin, Stdout = stdout, Stderr = stderr, Tty = tty }, ct).ConfigureAwait(false)
                : await streaming.ExecAsync(Exec(id, command, stdin, stdout, stderr, tty), ct).ConfigureAwait(false);
        }
        catch (CriException e)
        {
            await FailAsync(ctx, e.Kind == CriErrorKind.NotFound ? 404 : 500, e.RuntimeMessage);
            return;
        }
        LogSession(attach ? "attach" : "exec", pod.Metadata.Namespace ?? "", pod.Metadata.Name ?? "", containerName, protocol ?? "SPDY/3.1");
        try
        {
            if (websocket) await BridgeExecAsync(ctx, url, protocol!, stdin, stdout, stderr, tty, ct).ConfigureAwait(false);
            else await UpgradeProxy.ForwardAsync(ctx, url, null, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException && !ctx.Response.HasStarted)
        {
            await FailAsync(ctx, 500, $"cannot reach the container runtime's streaming server: {e.Message}");
        }
    }

    private static async Task BridgeExecAsync(HttpContext ctx, Uri url, string protocol, bool stdin, bool stdout, bool stderr, bool tty, CancellationToken ct)
    {
        await using var runtime = await DialSpdyAsync(url, V4, ct).ConfigureAwait(false);
        if (runtime.Status != StatusCodes.Status101SwitchingProtocols)
        {
            await FailAsync(ctx, 500, $"container runtime refused the stream: {runtime.Status} {await runtime.ReadBodyAsync(ct).ConfigureAwait(false)}");
            return;
        }
        await using var spdy = new SpdyClient(runtime.Connection);
        var bridge = await ExecBridge.OpenAsync(spdy, stdin, stdout, stderr, tty, ct).ConfigureAwait(false);
        using var ws = await WebSocketAccept.AcceptAsync(ctx, protocol).ConfigureAwait(false);
        await bridge.RunAsync(ws, protocol == V5, ct).ConfigureAwait(false);
    }

    /// <summary>/portForward/{ns}/{pod}[/{uid}].</summary>
    public async Task PortForwardAsync(HttpContext ctx, string[] seg)
    {
        var ct = ctx.RequestAborted;
        if (seg.Length is not (2 or 3)) { await FailAsync(ctx, 404, "404 page not found"); return; }
        var pod = FindPod(seg[0], seg[1], seg.Length == 3 ? seg[2] : null);
        if (pod?.Metadata.Uid is not { } uid) { await FailAsync(ctx, 404, $"pod {seg[0]}/{seg[1]} not found on this node"); return; }
        bool websocket = WebSocketAccept.IsWebSocketRequest(ctx);
        if (websocket && !WebSocketAccept.RequestedProtocols(ctx).Contains(PortForwardTunnel))
        {
            await FailAsync(ctx, 400, $"unsupported WebSocket subprotocols [{string.Join(", ", WebSocketAccept.RequestedProtocols(ctx))}]; port forwarding speaks {PortForwardTunnel}");
            return;
        }
        if (!websocket && !UpgradeProxy.IsUpgrade(ctx)) { await FailAsync(ctx, 400, "Upgrade request required"); return; }
        var ports = new List<int>();
        foreach (var p in ctx.Request.Query["port"])
            if (int.TryParse(p, out int port) && port is > 0 and < 65536) ports.Add(port);
            else { await FailAsync(ctx, 400, $"invalid port \"{p}\""); return; }
        Uri url;
        try
        {
            var sandbox = (await sandboxes.ListPodSandboxAsync(new PodSandboxFilter
            {
                State = new PodSandboxStateValue { State = PodSandboxState.SandboxReady },
                LabelSelector = { [Labels.PodUid] = uid },
            }, ct).ConfigureAwait(false)).MaxBy(s => s.CreatedAt);
            if (sandbox is null) { await FailAsync(ctx, 404, $"pod {seg[0]}/{seg[1]} has no running sandbox"); return; }
            url = await streaming.PortForwardAsync(sandbox.Id, ports, ct).ConfigureAwait(false);
        }
        catch (CriException e)
        {
            await FailAsync(ctx, e.Kind == CriErrorKind.NotFound ? 404 : 500, e.RuntimeMessage);
            return;
        }
        LogSession("portforward", pod.Metadata.Namespace ?? "", pod.Metadata.Name ?? "", "", websocket ? PortForwardTunnel : "SPDY/3.1");
        try
        {
            if (websocket) await TunnelPortForwardAsync(ctx, url, ct).ConfigureAwait(false);
            else await UpgradeProxy.ForwardAsync(ctx, url, null, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException && !ctx.Response.HasStarted)
        {
            await FailAsync(ctx, 500, $"cannot reach the container runtime's streaming server: {e.Message}");
        }
    }

    private static async Task TunnelPortForwardAsync(HttpContext ctx, Uri url, CancellationToken ct)
    {
        await using var runtime = await DialSpdyAsync(url, "portforward.k8s.io", ct).ConfigureAwait(false);
        if (runtime.Status != StatusCodes.Status101SwitchingProtocols)
        {
            await FailAsync(ctx, 500, $"container runtime refused the stream: {runtime.Status} {await runtime.ReadBodyAsync(ct).ConfigureAwait(false)}");
            return;
        }
        using var ws = await WebSocketAccept.AcceptAsync(ctx, PortForwardTunnel).ConfigureAwait(false);
        await using var tunnel = WebSocketStream.Create(ws, WebSocketMessageType.Binary, ownsWebSocket: false);
        await UpgradeDialer.JoinAsync(tunnel, runtime.Connection, ct).ConfigureAwait(false);
        if (ws.State == WebSocketState.Open)
        {
            using var close = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try { await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, close.Token).ConfigureAwait(false); }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException) { }
        }
    }

    private static Task<UpgradeResponse> DialSpdyAsync(Uri url, string streamProtocol, CancellationToken ct) =>
        UpgradeDialer.DialAsync(url, "POST",
            [new("Connection", "Upgrade"), new("Upgrade", "SPDY/3.1"), new("X-Stream-Protocol-Version", streamProtocol), new("Content-Length", "0")],
            null, ct);

    private static ExecRequest Exec(string id, string[] command, bool stdin, bool stdout, bool stderr, bool tty)
    {
        var r = new ExecRequest { ContainerId = id, Stdin = stdin, Stdout = stdout, Stderr = stderr, Tty = tty };
        r.Cmd.AddRange(command);
        return r;
    }

    private Pod? FindPod(string ns, string name, string? uid)
    {
        var pod = store.Find(ns, name);
        return uid is null || pod?.Metadata.Uid == uid ? pod : null;
    }

    private static bool Flag(IQueryCollection q, string name) => q[name].ToString() is "1" or "true";

    private static string? Pick(IList<string> offered, params string[] supported)
    {
        foreach (var s in supported)
            if (offered.Contains(s)) return s;
        return null;
    }

    private static Task FailAsync(HttpContext ctx, int status, string message)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "text/plain; charset=utf-8";
        return ctx.Response.WriteAsync(message + "\n", ctx.RequestAborted);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Streaming session {Kind} for {Namespace}/{Pod} {Container} over {Protocol}")]
    private partial void LogSession(string kind, string @namespace, string pod, string container, string protocol);
}
