using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Http;
using NodeAgent.Pleg;
using NodeAgent.Status;

namespace NodeAgent.Server;

/// <summary>
/// The authenticated kubelet API (:10250, TLS): every caller must present a client certificate
/// issued by the cluster CA (the API server does, when it proxies kubectl logs and exec). Serves
/// /pods, /healthz, /containerLogs/{namespace}/{pod}/{container}, /exec, /attach and /portForward
/// (<see cref="StreamingServer"/>). Finer authorization is a later step.
/// </summary>
public sealed class KubeletServer(X509Certificate2 clientCa, PodStatusStore store, GenericPleg pleg, AgentHealth health, string podLogsDir, StreamingServer streaming,
    NodeAgent.Metrics.StatsCollector? stats = null)
{
    public bool Authenticate(X509Certificate2? cert) => cert is not null && NodeAgent.Api.Client.Certificates.ChainsTo(cert, clientCa);

    public async Task HandleAsync(HttpContext ctx)
    {
        var cert = ctx.Connection.ClientCertificate ?? await ctx.Connection.GetClientCertificateAsync(ctx.RequestAborted).ConfigureAwait(false);
        if (!Authenticate(cert))
        {
            ctx.Response.StatusCode = 401;
            await ctx.Response.WriteAsync("Unauthorized", ctx.RequestAborted).ConfigureAwait(false);
            return;
        }
        string path = ctx.Request.Path.Value ?? "/";
        if (path.StartsWith("/containerLogs/", StringComparison.Ordinal) && HttpMethods.IsGet(ctx.Request.Method))
        {
            var seg = path["/containerLogs/".Length..].Split('/');
            if (seg.Length == 3 && seg.All(s => s.Length > 0))
            {
                await ContainerLogs.HandleAsync(ctx, seg[0], seg[1], seg[2], store, podLogsDir).ConfigureAwait(false);
                return;
            }
        }
        if (path.StartsWith("/exec/", StringComparison.Ordinal) || path.StartsWith("/attach/", StringComparison.Ordinal))
        {
            bool attach = path[1] == 'a';
            await streaming.ExecAsync(ctx, path[(attach ? "/attach/" : "/exec/").Length..].Split('/'), attach).ConfigureAwait(false);
            return;
        }
        if (path.StartsWith("/portForward/", StringComparison.Ordinal))
        {
            await streaming.PortForwardAsync(ctx, path["/portForward/".Length..].Split('/')).ConfigureAwait(false);
            return;
        }
        await ReadOnlyServer.HandleAsync(ctx, store, pleg, health, stats).ConfigureAwait(false);
    }

    /// <summary>A self-signed serving certificate for the node, kept under ROOT/pki and reused while valid.</summary>
    public static X509Certificate2 ServingCertificate(string rootDir, string nodeName, IReadOnlyList<string> ips)
    {
        string dir = Path.Combine(rootDir, "pki");
        Directory.CreateDirectory(dir);
        string crt = Path.Combine(dir, "kubelet.crt"), key = Path.Combine(dir, "kubelet.key");
        if (File.Exists(crt) && File.Exists(key))
        {
            var existing = X509Certificate2.CreateFromPemFile(crt, key);
            if (existing.NotAfter > DateTime.UtcNow.AddDays(30)) return existing;
        }
        using var k = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={nodeName}@{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}", k, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(nodeName);
        san.AddDnsName("localhost");
        foreach (var ip in ips) if (System.Net.IPAddress.TryParse(ip, out var addr)) san.AddIpAddress(addr);
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));
        File.WriteAllText(crt, cert.ExportCertificatePem());
        File.WriteAllText(key, "");
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(key, k.ExportPkcs8PrivateKeyPem());
        return X509Certificate2.CreateFromPemFile(crt, key);
    }
}
