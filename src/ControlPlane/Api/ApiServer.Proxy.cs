using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using NodeAgent.Api.Core;
using NodeAgent.Api.Streaming;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// Pod subresources served by the pod's kubelet: pods/log is fetched from /containerLogs and streamed
/// back; pods/exec, pods/attach and pods/portforward are upgrade requests (WebSocket or SPDY), forwarded
/// to /exec, /attach and /portForward and then joined byte for byte, as kube-apiserver's
/// upgrade-aware proxy does. The kubelet is reached at the node's InternalIP (else Hostname) and its
/// daemonEndpoints port, with the apiserver's kubelet-client certificate.
/// </summary>
public sealed partial class ApiServer
{
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

    private readonly record struct KubeletTarget(string BaseUrl, string NodeName, string? Container, string? Phase);

    /// <summary>The pod's kubelet and, when asked, the container named by ?container= (or the only one).</summary>
    private async Task<KubeletTarget> ResolveKubeletAsync(HttpContext ctx, RequestInfo req, bool container)
    {
        var pods = req.Info;
        var item = await _store.GetAsync(pods.Key(req.Namespace, req.Name!), ctx.RequestAborted).ConfigureAwait(false) ?? throw ApiException.NotFound(pods.Ref, req.Name!);
        var pod = Json.ParseObject(item.Value.Span);
        var spec = pod.ObjOrNull("spec");
        string? name = null;
        if (container)
        {
            var names = spec.ArrOrNull("containers").Objects().Select(c => c.Str("name") ?? "").ToList();
            var all = names.Concat(spec.ArrOrNull("initContainers").Objects().Select(c => c.Str("name") ?? "")).ToList();
            name = ctx.Request.Query["container"].ToString() is { Length: > 0 } cn ? cn : names.Count == 1 ? names[0] : null;
            if (name is null)
                throw ApiException.BadRequest($"a container name must be specified for pod {req.Name}, choose one of: [{string.Join(" ", names)}]");
            if (!all.Contains(name))
                throw ApiException.BadRequest($"container {name} is not valid for pod {req.Name}");
        }
        string? nodeName = spec.Str("nodeName");
        if (string.IsNullOrEmpty(nodeName)) throw ApiException.BadRequest($"pod {req.Name} does not have a host assigned");
        var nodes = _resources.Get("", "nodes");
        var nodeItem = await _store.GetAsync(nodes.Key(null, nodeName), ctx.RequestAborted).ConfigureAwait(false) ?? throw ApiException.NotFound(nodes.Ref, nodeName);
        var node = Json.ParseObject(nodeItem.Value.Span);
        var status = node.ObjOrNull("status");
        string? address = status.ArrOrNull("addresses").Objects().FirstOrDefault(a => a.Str("type") == "InternalIP").Str("address")
            ?? status.ArrOrNull("addresses").Objects().FirstOrDefault(a => a.Str("type") == "Hostname").Str("address");
        long port = status?.ObjOrNull("daemonEndpoints")?.ObjOrNull("kubeletEndpoint").Long("Port") ?? 10250;
        if (address is null) throw new ApiException(500, "InternalError", $"node {nodeName} has no address to reach its kubelet");
        string host = IPAddress.TryParse(address, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address;
        return new KubeletTarget($"https://{host}:{port}", nodeName, name, pod.ObjOrNull("status").Str("phase"));
    }

    private async Task PodLogAsync(HttpContext ctx, RequestInfo req)
    {
        // As upstream: a parameter that does not parse is a 400, options that do not validate a 422
        // (kind PodLogOptions), both before the pod is looked up; the kubelet gets them normalized.
        PodLogOptions options;
        try { options = PodLogOptions.FromQuery(name => ctx.Request.Query.TryGetValue(name, out var v) ? v.ToString() : null); }
        catch (QueryParameterException e) { throw ApiException.BadRequest(e.Message); }
        if (options.Validate() is { Count: > 0 } errs) throw ApiException.Invalid("PodLogOptions", "", req.Name!, errs);
        var target = await ResolveKubeletAsync(ctx, req, container: true).ConfigureAwait(false);
        var url = $"{target.BaseUrl}/containerLogs/{req.Namespace}/{req.Name}/{target.Container}{options.ToQuery()}";
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
                throw KubeletError((int)resp.StatusCode, text, target.NodeName);
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

    private static ApiException KubeletError(int status, string text, string nodeName) => status switch
    {
        404 => new ApiException(404, "NotFound", text.TrimEnd()),
        400 => ApiException.BadRequest(text.TrimEnd()),
        _ => new ApiException(500, "InternalError", $"kubelet {nodeName}: {status} {text.TrimEnd()}"),
    };

    /// <summary>pods/exec, pods/attach, pods/portforward.</summary>
    private async Task PodStreamAsync(HttpContext ctx, RequestInfo req)
    {
        if (!UpgradeProxy.IsUpgrade(ctx)) throw ApiException.BadRequest("Upgrade request required");
        var q = ctx.Request.Query;
        var query = new StringBuilder();
        void Add(string k, string v) => query.Append(query.Length == 0 ? '?' : '&').Append(k).Append('=').Append(Uri.EscapeDataString(v));
        string path;
        KubeletTarget target;
        if (req.Subresource == "portforward")
        {
            target = await ResolveKubeletAsync(ctx, req, container: false).ConfigureAwait(false);
            foreach (var p in q["ports"])
                foreach (var port in (p ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    Add("port", ushort.TryParse(port, out var n) && n > 0 ? port : throw ApiException.BadRequest($"invalid port \"{port}\" for pod {req.Name}"));
            path = $"/portForward/{req.Namespace}/{req.Name}";
        }
        else
        {
            target = await ResolveKubeletAsync(ctx, req, container: true).ConfigureAwait(false);
            if (target.Phase is "Succeeded" or "Failed")
                throw ApiException.BadRequest($"cannot {req.Subresource} into a container in a completed pod; current phase is {target.Phase}");
            if (req.Subresource == "exec")
            {
                if (q["command"].Count == 0) throw ApiException.BadRequest($"you must specify at least 1 command to exec in pod {req.Name}");
                foreach (var c in q["command"]) Add("command", c ?? "");
            }
            // The kubelet's names for the stream switches (the API's stdin/stdout/stderr).
            bool stdin = IsTrue(q["stdin"]), stdout = IsTrue(q["stdout"]), stderr = IsTrue(q["stderr"]), tty = IsTrue(q["tty"]);
            if (!stdin && !stdout && !stderr) throw ApiException.BadRequest("you must specify at least 1 of stdin, stdout, stderr");
            if (stdin) Add("input", "1");
            if (stdout) Add("output", "1");
            if (stderr) Add("error", "1");
            if (tty) Add("tty", "1");
            path = $"/{req.Subresource}/{req.Namespace}/{req.Name}/{target.Container}";
        }
        var url = new Uri(target.BaseUrl + path + query);
        UpgradeResponse backend;
        try
        {
            backend = await UpgradeDialer.DialAsync(url, ctx.Request.Method, UpgradeProxy.ForwardedHeaders(ctx.Request), _opts.KubeletClientCertificate, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or System.Security.Authentication.AuthenticationException)
        {
            throw new ApiException(500, "InternalError", $"error dialing backend: {e.Message}");
        }
        await using (backend)
        {
            if (backend.Status != StatusCodes.Status101SwitchingProtocols)
                throw KubeletError(backend.Status, await backend.ReadBodyAsync(ctx.RequestAborted).ConfigureAwait(false), target.NodeName);
            await UpgradeProxy.RelayAsync(ctx, ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpUpgradeFeature>()!, backend, ctx.RequestAborted).ConfigureAwait(false);
        }
    }

    private static bool IsTrue(Microsoft.Extensions.Primitives.StringValues v) => v.ToString() is "true" or "1" or "True";
}
