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
                resp.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                await (req.Path.Value == "/metrics" ? kubelet.Main : kubelet.Probes).CollectAndExportAsTextAsync(resp.Body, ctx.RequestAborted).ConfigureAwait(false);
                return;
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
                    resp.ContentLength = buffer.WrittenCount;
                    await resp.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted).ConfigureAwait(false);
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
