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
    public static async Task HandleAsync(HttpContext ctx, PodStatusStore store, GenericPleg pleg, AgentHealth health)
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
            default:
                resp.StatusCode = StatusCodes.Status404NotFound;
                await resp.WriteAsync("404 page not found\n", ctx.RequestAborted).ConfigureAwait(false);
                return;
        }
    }
}
