using System.Text.Json;
using Microsoft.AspNetCore.Http;
using NodeAgent.Api.Meta;

namespace NodeAgent.Proxy;

/// <summary>
/// kube-proxy's health endpoint (:10256): GET /healthz or /livez answers 200 while the proxy keeps
/// the kernel up to date and 503 when it does not, with kube-proxy's JSON body
/// (<c>lastUpdated</c>, <c>currentTime</c>, <c>nodeEligible</c>), so load balancers and probes
/// written for kube-proxy work unchanged.
/// </summary>
public static class ProxyHealthz
{
    /// <summary>kube-proxy's metrics endpoint (:10249 on 127.0.0.1): GET /metrics in the Prometheus text format.</summary>
    public static async Task MetricsAsync(HttpContext ctx, ServiceProxy proxy)
    {
        if (ctx.Request.Path.Value != "/metrics")
        {
            ctx.Response.StatusCode = 404;
            return;
        }
        ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await ctx.Response.WriteAsync(proxy.Metrics.Exposition(), ctx.RequestAborted).ConfigureAwait(false);
    }

    public static async Task HandleAsync(HttpContext ctx, ServiceProxy proxy, TimeProvider time)
    {
        if (ctx.Request.Path.Value is not ("/healthz" or "/livez"))
        {
            ctx.Response.StatusCode = 404;
            return;
        }
        var now = time.GetUtcNow();
        var (healthy, last) = proxy.Health(now);
        ctx.Response.StatusCode = healthy ? 200 : 503;
        ctx.Response.ContentType = "application/json";
        ctx.Response.Headers["X-Content-Type-Options"] = "nosniff";
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(128);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("lastUpdated", ApiTime.FormatMicro(last));
            w.WriteString("currentTime", ApiTime.FormatMicro(now));
            w.WriteBoolean("nodeEligible", true);
            w.WriteEndObject();
        }
        await ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted).ConfigureAwait(false);
    }
}
