using System.Text.Json;
using Microsoft.AspNetCore.Http;
using NodeAgent.Api.Serialization;
using NodeAgent.Pleg;
using NodeAgent.Status;

namespace NodeAgent.Server;

/// <summary>
/// The kubelet's read-only endpoints: GET /pods (a v1 PodList of the pods this node runs, with
/// their status) and GET /healthz ("ok" while the PLEG relists and the runtime answers). One
/// terminal handler instead of routing keeps the AOT binary and its memory small.
/// </summary>
public static class ReadOnlyServer
{
    /// <summary>Writes the response body, gzip-compressed (Content-Encoding: gzip) when the client accepts it, as scrapers do.</summary>
    private static async Task WriteBodyAsync(HttpContext ctx, long? length, Func<Stream, Task> write)
    {
        if (!ctx.Request.Headers.AcceptEncoding.ToString().Contains("gzip", StringComparison.OrdinalIgnoreCase))
        {
            if (length is { } n) ctx.Response.ContentLength = n;
            await write(ctx.Response.Body).ConfigureAwait(false);
            return;
        }
        ctx.Response.Headers.ContentEncoding = "gzip";
        await using var gzip = new System.IO.Compression.GZipStream(ctx.Response.Body, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true);
        await write(gzip).ConfigureAwait(false);
    }

    public static async Task HandleAsync(HttpContext ctx, PodStatusStore store, GenericPleg pleg, AgentHealth health, NodeAgent.Metrics.StatsCollector? stats = null)
    {
        var req = ctx.Request;
        var resp = ctx.Response;
        if (!HttpMethods.IsGet(req.Method) && !HttpMethods.IsHead(req.Method))
        {
            resp.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }
        switch (req.Path.Value)
        {
            case "/pods" or "/pods/":
                resp.ContentType = "application/json";
                await JsonSerializer.SerializeAsync(resp.Body, store.Snapshot(), ApiJsonContext.Default.PodList, ctx.RequestAborted).ConfigureAwait(false);
                return;
            case "/healthz" or "/healthz/ping" or "/livez" or "/readyz":
                resp.ContentType = "text/plain; charset=utf-8";
                string? problem = !health.Started ? "container runtime not connected yet"
                    : req.Path.Value == "/healthz/ping" ? null
                    : !pleg.Healthy ? $"PLEG is not healthy: last relist {pleg.LastRelist:O}"
                    : null;
                resp.StatusCode = problem is null ? 200 : 500;
                await resp.WriteAsync(problem ?? "ok", ctx.RequestAborted).ConfigureAwait(false);
                return;
            case "/metrics" or "/metrics/probes" when stats?.Kubelet is { } kubelet:
            {
                // As Prometheus asks: OpenMetrics when it is accepted, else the text format; gzip when accepted.
                bool openMetrics = req.Headers.Accept.ToString().Contains("application/openmetrics-text", StringComparison.Ordinal);
                resp.ContentType = openMetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8" : "text/plain; version=0.0.4; charset=utf-8";
                var registry = req.Path.Value == "/metrics" ? kubelet.Main : kubelet.Probes;
                await WriteBodyAsync(ctx, null, body => registry.CollectAndExportAsTextAsync(body,
                    openMetrics ? Prometheus.ExpositionFormat.OpenMetricsText : Prometheus.ExpositionFormat.PrometheusText, ctx.RequestAborted)).ConfigureAwait(false);
                return;
            }
            case "/stats/summary" or "/stats/summary/" when stats?.Summary is { } node:
            {
                var buffer = await stats.ScrapeAsync((c, b) => NodeAgent.Metrics.SummaryJson.Write(c, node, b), ctx.RequestAborted).ConfigureAwait(false);
                try
                {
                    resp.ContentType = "application/json";
                    resp.ContentLength = buffer.WrittenCount;
                    await resp.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted).ConfigureAwait(false);
                }
                finally { stats.Return(buffer); }
                return;
            }
            case "/metrics/cadvisor" or "/metrics/resource" when stats is not null:
            {
                var buffer = await stats.ScrapeAsync(req.Path.Value == "/metrics/resource" ? NodeAgent.Metrics.ResourceText.Write : NodeAgent.Metrics.CadvisorText.Write, ctx.RequestAborted).ConfigureAwait(false);
                try
                {
                    resp.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                    await WriteBodyAsync(ctx, buffer.WrittenCount, body => body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted).AsTask()).ConfigureAwait(false);
                }
                finally { stats.Return(buffer); }
                return;
            }
            default:
                resp.StatusCode = StatusCodes.Status404NotFound;
                await resp.WriteAsync("404 page not found\n", ctx.RequestAborted).ConfigureAwait(false);
                return;
        }
    }
}
