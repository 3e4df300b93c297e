using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace NodeAgent.Api.Streaming;

/// <summary>
/// Forwards an HTTP/1.1 upgrade request (WebSocket or SPDY/3.1) to a backend and, once the backend
/// switches protocols, joins the two connections byte for byte: the upgrade-aware proxying that
/// kube-apiserver does for pods/exec|attach|portforward and the kubelet does towards the CRI
/// streaming server. The protocol itself (channels, SPDY frames) is never looked at here.
/// </summary>
public static class UpgradeProxy
{
    // Request headers the protocols need end to end; everything else (cookies, authorization meant
    // for us) stays behind.
    private static readonly string[] Forwarded =
        ["Connection", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version"];

    private static readonly HashSet<string> NotCopiedBack = new(StringComparer.OrdinalIgnoreCase)
        { "Content-Length", "Transfer-Encoding", "Date", "Server", "Keep-Alive" };

    public static bool IsUpgrade(HttpContext ctx) => ctx.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true };

    /// <summary>The client's headers worth forwarding, each value of a repeated header kept.</summary>
    public static List<KeyValuePair<string, string>> ForwardedHeaders(HttpRequest request)
    {
        var list = new List<KeyValuePair<string, string>>();
        foreach (var name in Forwarded)
            foreach (var v in request.Headers[name])
                if (v is not null) list.Add(new(name, v));
        return list;
    }

    /// <summary>
    /// Dials <paramref name="target"/> with the client's upgrade headers. A 101 is passed on and the
    /// connections joined until either side closes; any other answer is relayed as status and body.
    /// </summary>
    public static async Task ForwardAsync(HttpContext ctx, Uri target, X509Certificate2? clientCertificate, CancellationToken ct)
    {
        var upgrade = ctx.Features.Get<IHttpUpgradeFeature>();
        if (upgrade is not { IsUpgradableRequest: true })
        {
            ctx.Response.StatusCode = StatusCodes.Status400BadRequest;
            await ctx.Response.WriteAsync("Upgrade request required", ct).ConfigureAwait(false);
            return;
        }
        await using var backend = await UpgradeDialer.DialAsync(target, ctx.Request.Method, ForwardedHeaders(ctx.Request), clientCertificate, ct).ConfigureAwait(false);
        await RelayAsync(ctx, upgrade, backend, ct).ConfigureAwait(false);
    }

    /// <summary>Passes a backend's answer to an upgrade request on to the client (see <see cref="ForwardAsync"/>).</summary>
    public static async Task RelayAsync(HttpContext ctx, IHttpUpgradeFeature upgrade, UpgradeResponse backend, CancellationToken ct)
    {
        if (backend.Status != StatusCodes.Status101SwitchingProtocols)
        {
            string body = await backend.ReadBodyAsync(ct).ConfigureAwait(false);
            ctx.Response.StatusCode = backend.Status;
            ctx.Response.ContentType = backend.Header("Content-Type") ?? "text/plain; charset=utf-8";
            await ctx.Response.WriteAsync(body, ct).ConfigureAwait(false);
            return;
        }
        foreach (var (k, v) in backend.Headers)
            if (!NotCopiedBack.Contains(k)) ctx.Response.Headers.Append(k, v);
        await using var client = await upgrade.UpgradeAsync().ConfigureAwait(false);
        await UpgradeDialer.JoinAsync(client, backend.Connection, ct).ConfigureAwait(false);
    }
}
