using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace NodeAgent.Server;

/// <summary>
/// The server side of the RFC 6455 handshake, done here rather than by the ASP.NET middleware
/// because Kubernetes subprotocol names ("SPDY/3.1+portforward.k8s.io") contain characters .NET
/// refuses in a subprotocol token, while Go clients send and expect them verbatim.
/// </summary>
public static class WebSocketAccept
{
    private const string Guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    public static bool IsWebSocketRequest(HttpContext ctx) =>
        ctx.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true }
        && string.Equals(ctx.Request.Headers.Upgrade.ToString(), "websocket", StringComparison.OrdinalIgnoreCase)
        && ctx.Request.Headers.SecWebSocketKey.Count == 1;

    /// <summary>The subprotocols the client offered, in its order.</summary>
    public static List<string> RequestedProtocols(HttpContext ctx)
    {
        var list = new List<string>();
        foreach (var header in ctx.Request.Headers.SecWebSocketProtocol)
            foreach (var p in (header ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                list.Add(p);
        return list;
    }

    public static async Task<WebSocket> AcceptAsync(HttpContext ctx, string protocol)
    {
        var upgrade = ctx.Features.Get<IHttpUpgradeFeature>() ?? throw new InvalidOperationException("not an upgrade request");
        string key = ctx.Request.Headers.SecWebSocketKey.ToString();
        ctx.Response.Headers.Connection = "Upgrade";
        ctx.Response.Headers.Upgrade = "websocket";
        ctx.Response.Headers.SecWebSocketAccept = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + Guid)));
        ctx.Response.Headers.SecWebSocketProtocol = protocol;
        var stream = await upgrade.UpgradeAsync().ConfigureAwait(false);
        return WebSocket.CreateFromStream(stream, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.FromSeconds(30) });
    }
}
