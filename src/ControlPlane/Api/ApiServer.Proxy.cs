using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Api;

/// <summary>pods/log: proxied to the kubelet API of the pod's node (/containerLogs), streamed back.</summary>
public sealed partial class ApiServer
{
    private static readonly string[] LogParams = ["follow", "previous", "timestamps", "tailLines", "limitBytes", "sinceSeconds", "sinceTime"];
    private HttpClient? _kubelet;

    private HttpClient Kubelet => _kubelet ??= new HttpClient(new SocketsHttpHandler
    {
        ConnectTimeout = TimeSpan.FromSeconds(10),
        SslOptions =
        {
            ClientCertificates = _opts.KubeletClientCertificate is { } c ? [c] : null,
            // As kube-apiserver without --kubelet-certificate-authority: kubelet serving certificates are self-signed.
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        },
    }) { Timeout = Timeout.InfiniteTimeSpan };

    private async Task PodLogAsync(HttpContext ctx, RequestInfo req)
    {
        var pods = req.Info;
        var item = await _store.GetAsync(pods.Key(req.Namespace, req.Name!), ctx.RequestAborted).ConfigureAwait(false) ?? throw ApiException.NotFound(pods.Ref, req.Name!);
        var pod = Json.ParseObject(item.Value);
        var spec = pod.ObjOrNull("spec");
        var names = spec.ArrOrNull("containers").Objects().Select(c => c.Str("name") ?? "").ToList();
        var all = names.Concat(spec.ArrOrNull("initContainers").Objects().Select(c => c.Str("name") ?? "")).ToList();
        string? container = ctx.Request.Query["container"].ToString() is { Length: > 0 } cn ? cn : names.Count == 1 ? names[0] : null;
        if (container is null)
            throw ApiException.BadRequest($"a container name must be specified for pod {req.Name}, choose one of: [{string.Join(" ", names)}]");
        if (!all.Contains(container))
            throw ApiException.BadRequest($"container {container} is not valid for pod {req.Name}");
        string? nodeName = spec.Str("nodeName");
        if (string.IsNullOrEmpty(nodeName)) throw ApiException.BadRequest($"pod {req.Name} does not have a host assigned");
        var nodes = _resources.Get("", "nodes");
        var nodeItem = await _store.GetAsync(nodes.Key(null, nodeName), ctx.RequestAborted).ConfigureAwait(false) ?? throw ApiException.NotFound(nodes.Ref, nodeName);
        var node = Json.ParseObject(nodeItem.Value);
        var status = node.ObjOrNull("status");
        string? address = status.ArrOrNull("addresses").Objects().FirstOrDefault(a => a.Str("type") == "InternalIP").Str("address")
            ?? status.ArrOrNull("addresses").Objects().FirstOrDefault(a => a.Str("type") == "Hostname").Str("address");
        long port = status?.ObjOrNull("daemonEndpoints")?.ObjOrNull("kubeletEndpoint").Long("Port") ?? 10250;
        if (address is null) throw new ApiException(500, "InternalError", $"node {nodeName} has no address to reach its kubelet");
        var query = new StringBuilder();
        foreach (var p in LogParams)
            if (ctx.Request.Query[p].ToString() is { Length: > 0 } v) query.Append(query.Length == 0 ? '?' : '&').Append(p).Append('=').Append(Uri.EscapeDataString(v));
        string host = IPAddress.TryParse(address, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address;
        var url = $"https://{host}:{port}/containerLogs/{req.Namespace}/{req.Name}/{container}{query}";
        HttpResponseMessage resp;
        try
        {
            resp = await Kubelet.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new ApiException(500, "InternalError", $"Get \"{url}\": {e.Message}");
        }
        using (resp)
        {
            if (!resp.IsSuccessStatusCode)
            {
                string text = await resp.Content.ReadAsStringAsync(ctx.RequestAborted).ConfigureAwait(false);
                throw resp.StatusCode switch
                {
                    HttpStatusCode.NotFound => new ApiException(404, "NotFound", text),
                    HttpStatusCode.BadRequest => ApiException.BadRequest(text),
                    _ => new ApiException(500, "InternalError", $"kubelet {nodeName}: {(int)resp.StatusCode} {text}"),
                };
            }
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "text/plain";
            await using var body = await resp.Content.ReadAsStreamAsync(ctx.RequestAborted).ConfigureAwait(false);
            var buffer = new byte[16384];
            int n;
            while ((n = await body.ReadAsync(buffer, ctx.RequestAborted).ConfigureAwait(false)) > 0)
            {
                await ctx.Response.Body.WriteAsync(buffer.AsMemory(0, n), ctx.RequestAborted).ConfigureAwait(false);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
            }
        }
    }
}
