using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Cri;
using NodeAgent.Probes.Health.V1;

namespace NodeAgent.Probes;

public enum ProbeType { Liveness, Readiness, Startup }

public enum ProbeResult { Unknown, Success, Failure }

/// <summary>One probe attempt's outcome. <see cref="Error"/> means "could not probe": the result is thrown away, as the kubelet does.</summary>
public readonly record struct ProbeOutcome(ProbeResult Result, string Output, bool Error = false)
{
    public static ProbeOutcome Ok(string output = "") => new(ProbeResult.Success, output);
    public static ProbeOutcome Fail(string output) => new(ProbeResult.Failure, output);
    public static ProbeOutcome Broken(string output) => new(ProbeResult.Unknown, output, true);
}

/// <summary>
/// Runs probe and lifecycle handlers the way the kubelet's prober does: exec via CRI ExecSync,
/// HTTP GET to the pod IP (2xx/3xx is success, no keep-alive, certificates not verified,
/// "kube-probe" user agent), TCP connect, and grpc.health.v1 Check. Stateless and thread-safe.
/// </summary>
/// <summary>Whose probe it is, for prober_probe_total and prober_probe_duration_seconds.</summary>
public sealed record ProbeSubject(string Namespace, string Pod, string Uid);

public sealed class Prober(IContainerManager runtime) : IDisposable
{
    /// <summary>Called after each probe run (type, outcome, pod, container name, how long it took); thread safe handlers only.</summary>
    public Action<ProbeType, ProbeOutcome, ProbeSubject, string, TimeSpan>? Observe { get; set; }

    public const string UserAgent = "kube-probe/1.32";
    private const int MaxOutput = 10 * 1024;

    private readonly HttpClient _http = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = true,
        MaxAutomaticRedirections = 10,
        PooledConnectionLifetime = TimeSpan.Zero,
        UseCookies = false,
        UseProxy = false,
        SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
    }) { Timeout = Timeout.InfiniteTimeSpan };

    public Task<ProbeOutcome> ProbeAsync(Probe p, Container c, string containerId, string? podIp, CancellationToken ct)
    {
        var timeout = TimeSpan.FromSeconds(p.TimeoutSeconds ?? 1);
        if (p.Exec is { } exec) return ExecAsync(exec, containerId, timeout, ct);
        if (p.HttpGet is { } http) return HttpAsync(http, c, podIp, timeout, ct);
        if (p.TcpSocket is { } tcp) return TcpAsync(tcp.Host ?? podIp, tcp.Port, c, timeout, ct);
        if (p.Grpc is { } grpc) return GrpcAsync(grpc, podIp, timeout, ct);
        return Task.FromResult(ProbeOutcome.Broken("probe has no handler"));
    }

    /// <summary>Runs a postStart/preStop handler; Failure carries the reason for the FailedPostStartHook/FailedPreStopHook event.</summary>
    public async Task<ProbeOutcome> RunHandlerAsync(LifecycleHandler h, Container c, string containerId, string? podIp, TimeSpan timeout, CancellationToken ct)
    {
        if (h.Exec is { } exec)
        {
            var r = await ExecAsync(exec, containerId, timeout, ct).ConfigureAwait(false);
            return r.Error ? ProbeOutcome.Fail(r.Output) : r;
        }
        if (h.HttpGet is { } http)
        {
            var r = await HttpAsync(http, c, podIp, timeout, ct).ConfigureAwait(false);
            return r.Error ? ProbeOutcome.Fail(r.Output) : r;
        }
        if (h.TcpSocket is { } tcp) return await TcpAsync(tcp.Host ?? podIp, tcp.Port, c, timeout, ct).ConfigureAwait(false);
        if (h.Sleep is { } sleep)
        {
            var d = TimeSpan.FromSeconds(sleep.Seconds);
            await Task.Delay(d < timeout ? d : timeout, ct).ConfigureAwait(false);
            return ProbeOutcome.Ok();
        }
        return ProbeOutcome.Fail("handler has no action");
    }

    private async Task<ProbeOutcome> ExecAsync(ExecAction exec, string containerId, TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            var r = await runtime.ExecSyncAsync(containerId, exec.Command ?? [], timeout, ct).ConfigureAwait(false);
            string output = Truncate(Encoding.UTF8.GetString(r.Stdout.Span) + Encoding.UTF8.GetString(r.Stderr.Span));
            return r.ExitCode == 0 ? ProbeOutcome.Ok(output) : ProbeOutcome.Fail($"command exited with {r.ExitCode}: {output}");
        }
        catch (CriException e) when (e.Kind == CriErrorKind.DeadlineExceeded || e.RuntimeMessage.Contains("timeout", StringComparison.OrdinalIgnoreCase))
        {
            return ProbeOutcome.Fail($"command timed out after {timeout.TotalSeconds:0}s");
        }
        catch (CriException e)
        {
            return ProbeOutcome.Broken(e.Message);
        }
    }

    private async Task<ProbeOutcome> HttpAsync(HTTPGetAction h, Container c, string? podIp, TimeSpan timeout, CancellationToken ct)
    {
        string? host = string.IsNullOrEmpty(h.Host) ? podIp : h.Host;
        if (string.IsNullOrEmpty(host)) return ProbeOutcome.Broken("pod has no IP yet");
        if (ResolvePort(h.Port, c) is not int port) return ProbeOutcome.Broken($"port \"{h.Port}\" is not a container port name");
        string scheme = (h.Scheme ?? "HTTP").ToLowerInvariant();
        string path = string.IsNullOrEmpty(h.Path) ? "/" : h.Path.StartsWith('/') ? h.Path : "/" + h.Path;
        string hostPart = IPAddress.TryParse(host, out var addr) && addr.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{host}]" : host;
        Uri uri;
        try { uri = new Uri($"{scheme}://{hostPart}:{port}{path}"); }
        catch (UriFormatException e) { return ProbeOutcome.Broken(e.Message); }
        using var req = new HttpRequestMessage(HttpMethod.Get, uri);
        req.Headers.ConnectionClose = true;
        req.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
        req.Headers.TryAddWithoutValidation("Accept", "*/*");
        if (h.HttpHeaders is { } headers)
            foreach (var hh in headers)
            {
                if (hh.Name.Equals("Host", StringComparison.OrdinalIgnoreCase)) { req.Headers.Host = hh.Value; continue; }
                req.Headers.Remove(hh.Name);
                req.Headers.TryAddWithoutValidation(hh.Name, hh.Value);
            }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            using var resp = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
            int code = (int)resp.StatusCode;
            string body = Truncate(await resp.Content.ReadAsStringAsync(cts.Token).ConfigureAwait(false));
            return code is >= 200 and < 400 ? ProbeOutcome.Ok(body) : ProbeOutcome.Fail($"HTTP probe failed with statuscode: {code}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return ProbeOutcome.Fail($"Get \"{uri}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)");
        }
        catch (HttpRequestException e)
        {
            return ProbeOutcome.Fail($"Get \"{uri}\": {e.Message}");
        }
    }

    private static async Task<ProbeOutcome> TcpAsync(string? host, IntOrString portSpec, Container c, TimeSpan timeout, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(host)) return ProbeOutcome.Broken("pod has no IP yet");
        if (ResolvePort(portSpec, c) is not int port) return ProbeOutcome.Broken($"port \"{portSpec}\" is not a container port name");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(host, port, cts.Token).ConfigureAwait(false);
            return ProbeOutcome.Ok();
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return ProbeOutcome.Fail($"dial tcp {host}:{port}: i/o timeout");
        }
        catch (SocketException e)
        {
            return ProbeOutcome.Fail($"dial tcp {host}:{port}: {e.Message}");
        }
    }

    private static async Task<ProbeOutcome> GrpcAsync(GRPCAction g, string? podIp, TimeSpan timeout, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(podIp)) return ProbeOutcome.Broken("pod has no IP yet");
        string host = IPAddress.TryParse(podIp, out var a) && a.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{podIp}]" : podIp;
        using var channel = GrpcChannel.ForAddress($"http://{host}:{g.Port}", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { ConnectTimeout = timeout, UseProxy = false },
        });
        var client = new NodeAgent.Probes.Health.V1.Health.HealthClient(channel);
        try
        {
            var r = await client.CheckAsync(new HealthCheckRequest { Service = g.Service ?? "" },
                new CallOptions(headers: [new Metadata.Entry("user-agent", UserAgent)], deadline: DateTime.UtcNow + timeout, cancellationToken: ct)).ConfigureAwait(false);
            return r.Status == HealthCheckResponse.Types.ServingStatus.Serving
                ? ProbeOutcome.Ok()
                : ProbeOutcome.Fail($"service unhealthy (responded with \"{r.Status.ToString().ToUpperInvariant()}\")");
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.DeadlineExceeded)
        {
            return ProbeOutcome.Fail($"timeout: health rpc did not complete within {timeout.TotalSeconds:0}s");
        }
        catch (RpcException e)
        {
            return ProbeOutcome.Fail($"error: health rpc probe failed: {e.Status.Detail}");
        }
    }

    /// <summary>A port given by name is looked up in the container's ports, as the kubelet does.</summary>
    public static int? ResolvePort(IntOrString port, Container c)
    {
        if (port.IsInt) return port.IntValue;
        if (c.Ports is { } ports)
            foreach (var p in ports)
                if (p.Name == port.StringValue) return p.Number;
        return null;
    }

    private static string Truncate(string s) => s.Length <= MaxOutput ? s : s[..MaxOutput];

    public void Dispose() => _http.Dispose();
}
