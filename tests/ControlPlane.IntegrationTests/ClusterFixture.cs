using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace NodeAgent.ControlPlane.IntegrationTests;

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}

/// <summary>A control plane and the etcd under it, both stopped on dispose.</summary>
public sealed class IsolatedCluster(Process etcd, ApiProcess api) : IAsyncDisposable
{
    public ApiProcess Api { get; } = api;
    public HttpClient Http => Api.Http;

    public async ValueTask DisposeAsync()
    {
        await Api.DisposeAsync();
        if (!etcd.HasExited) { etcd.Kill(true); await etcd.WaitForExitAsync(); }
    }
}

/// <summary>A control-plane process: its port, its log, and an HTTP client that trusts the cluster CA.</summary>
public sealed class ApiProcess(Process process, int port, StringBuilder log, HttpClient http) : IAsyncDisposable
{
    public int Port { get; } = port;
    public HttpClient Http { get; } = http;
    public string Log { get { lock (log) return log.ToString(); } }
    public bool Exited => process.HasExited;

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited) { process.Kill(entireProcessTree: true); await process.WaitForExitAsync(); }
        Http.Dispose();
    }
}

/// <summary>
/// A real etcd (temp data dir, loopback ports) and the published AOT control-plane on it, with a
/// static token for raw HTTP and the generated admin kubeconfig for kubectl. Missing prerequisites
/// make every test fail with the reason; nothing is skipped.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public const string Token = "it-token-0123456789";
    public static readonly string Repo = NodeAgent.Testing.TestHost.Repo;
    public string Work { get; } = Path.Combine(Path.GetTempPath(), "cp-it-" + Guid.NewGuid().ToString("N")[..8]);
    public string DataDir => Path.Combine(Work, "data");
    public string Kubeconfig => Path.Combine(DataDir, "admin.kubeconfig");
    public int EtcdPort { get; } = FreePort();
    public string Binary { get; } = Environment.GetEnvironmentVariable("CONTROL_PLANE_BIN") ?? Path.Combine(Repo, "artifacts", "publish", "control-plane", "control-plane");
    public string? SetupError { get; private set; }
    public ApiProcess Api { get; private set; } = null!;
    public HttpClient Http => Api.Http;
    public HttpClient Etcd { get; } = new() { Timeout = TimeSpan.FromSeconds(10) };

    private Process? _etcd;
    private readonly StringBuilder _etcdLog = new();
    private readonly List<ApiProcess> _extra = [];

    public async Task InitializeAsync()
    {
        try
        {
            var missing = new List<string>();
            if (Which("etcd") is null) missing.Add("etcd not on PATH (apt-get install etcd-server)");
            if (Which("kubectl") is null) missing.Add("kubectl not on PATH");
            if (!File.Exists(Binary)) missing.Add($"control-plane binary {Binary} missing (dotnet publish src/ControlPlane -c Release -r linux-x64 -o artifacts/publish/control-plane, or set CONTROL_PLANE_BIN)");
            if (missing.Count > 0) throw new InvalidOperationException("missing prerequisites:\n  " + string.Join("\n  ", missing));
            Directory.CreateDirectory(Work);
            File.WriteAllText(Path.Combine(Work, "tokens.csv"), $"{Token},it-admin,1000,\"system:masters\"\n");
            _etcd = Start("etcd", ["--name", "it", "--data-dir", Path.Combine(Work, "etcd"),
                "--listen-client-urls", $"http://127.0.0.1:{EtcdPort}", "--advertise-client-urls", $"http://127.0.0.1:{EtcdPort}",
                "--listen-peer-urls", $"http://127.0.0.1:{FreePort()}", "--heartbeat-interval=10", "--election-timeout=100"], _etcdLog);
            await WaitForAsync("etcd /health", async () => (await Etcd.GetStringAsync($"http://127.0.0.1:{EtcdPort}/health")).Contains("true"), TimeSpan.FromSeconds(20));
            Api = await StartApiAsync();
        }
        catch (Exception e)
        {
            SetupError = e.ToString();
        }
    }

    public void RequireReady()
    {
        if (SetupError is not null) Assert.Fail("cluster fixture could not start: " + SetupError + "\netcd log:\n" + _etcdLog + "\napi log:\n" + Api?.Log);
    }

    /// <summary>
    /// A control plane on an etcd of its own, for a test that runs some controllers alone
    /// (<paramref name="args"/>, e.g. --controllers podgc); disposing stops both.
    /// </summary>
    public async Task<IsolatedCluster> StartIsolatedAsync(string name, params string[] args)
    {
        int port = FreePort(), peer = FreePort();
        var etcd = await StartEtcdAsync(name, port, peer, new StringBuilder());
        try { return new IsolatedCluster(etcd, await StartApiAsync(["--etcd-servers", $"http://127.0.0.1:{port}", .. args])); }
        catch
        {
            etcd.Kill(true);
            throw;
        }
    }

    /// <summary>Starts an extra etcd (own data dir and port) that the caller stops and restarts.</summary>
    public async Task<Process> StartEtcdAsync(string name, int port, int peerPort, StringBuilder log)
    {
        var p = Start("etcd", ["--name", name, "--data-dir", Path.Combine(Work, "etcd-" + name),
            "--listen-client-urls", $"http://127.0.0.1:{port}", "--advertise-client-urls", $"http://127.0.0.1:{port}",
            "--listen-peer-urls", $"http://127.0.0.1:{peerPort}", "--heartbeat-interval=10", "--election-timeout=100"], log);
        await WaitForAsync($"etcd {name} /health", async () => (await Etcd.GetStringAsync($"http://127.0.0.1:{port}/health")).Contains("true"), TimeSpan.FromSeconds(20));
        return p;
    }

    /// <summary>Starts a control-plane process on the fixture's etcd (the first one, or another beside it).</summary>
    public async Task<ApiProcess> StartApiAsync(params string[] extraArgs)
    {
        int port = FreePort();
        var log = new StringBuilder();
        var p = Start(Binary, ["--data-dir", DataDir, "--etcd-servers", $"http://127.0.0.1:{EtcdPort}", "--secure-port", port.ToString(),
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--token-auth-file", Path.Combine(Work, "tokens.csv"),
            "--watch-bookmark-interval", "1s", "--service-node-port-range", "30000-30999",
            // These tests are about the API machinery: without the scheduler and controllers, the
            // objects they write stay exactly as written (those are tested with a real node in
            // NodeAgent.IntegrationTests).
            "--controllers", "-scheduler,-replicaset,-deployment,-podgc", .. extraArgs], log);
        var ca = X509Certificate2.CreateFromPem(await WaitForFileAsync(Path.Combine(DataDir, "pki", "ca.crt")));
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, _) =>
        {
            if (cert is null) return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(new X509Certificate2(cert));
        };
        var http = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        var api = new ApiProcess(p, port, log, http);
        await WaitForAsync("control-plane /readyz", async () =>
        {
            if (api.Exited) throw new InvalidOperationException("control-plane exited:\n" + api.Log);
            return (await http.GetStringAsync("/readyz")) == "ok";
        }, TimeSpan.FromSeconds(30));
        if (Api is not null) _extra.Add(api);
        return api;
    }

    /// <summary>Runs the installed kubectl with the admin kubeconfig.</summary>
    public async Task<(int Code, string Out, string Err)> KubectlAsync(string[] args, string? stdin = null, Dictionary<string, string>? env = null, int timeoutSeconds = 60)
    {
        var psi = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["KUBECONFIG"] = Kubeconfig;
        psi.Environment["HOME"] = Work;
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        if (stdin is not null) { await p.StandardInput.WriteAsync(stdin); p.StandardInput.Close(); }
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { p.Kill(true); throw new TimeoutException($"kubectl {string.Join(' ', args)} did not finish in {timeoutSeconds}s"); }
        return (p.ExitCode, await o, await e);
    }

    /// <summary>kubectl that must succeed; returns stdout.</summary>
    public async Task<string> Kubectl(params string[] args)
    {
        var (code, o, e) = await KubectlAsync(args);
        Assert.True(code == 0, $"kubectl {string.Join(' ', args)} exited {code}\nstdout: {o}\nstderr: {e}\napi log:\n{Api.Log}");
        return o;
    }

    /// <summary>Keys under <paramref name="prefix"/> in etcd, read straight from etcd's HTTP gateway.</summary>
    public async Task<List<(string Key, long ModRevision)>> EtcdKeysAsync(string prefix)
    {
        var end = Encoding.UTF8.GetBytes(prefix);
        end[^1]++;
        var body = new JsonObject { ["key"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(prefix)), ["range_end"] = Convert.ToBase64String(end), ["keys_only"] = true };
        var resp = await Etcd.PostAsync($"http://127.0.0.1:{EtcdPort}/v3/kv/range", new StringContent(body.ToJsonString()));
        var json = JsonNode.Parse(await resp.Content.ReadAsStringAsync())!;
        return json["kvs"]?.AsArray().Select(kv => (Encoding.UTF8.GetString(Convert.FromBase64String(kv!["key"]!.GetValue<string>())), long.Parse(kv["mod_revision"]!.GetValue<string>()))).ToList() ?? [];
    }

    /// <summary>The value stored under <paramref name="key"/>, read straight from etcd's HTTP gateway.</summary>
    public async Task<string> EtcdValueAsync(string key)
    {
        var body = new JsonObject { ["key"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(key)) };
        var resp = await Etcd.PostAsync($"http://127.0.0.1:{EtcdPort}/v3/kv/range", new StringContent(body.ToJsonString()));
        var kv = JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["kvs"]?.AsArray().SingleOrDefault() ?? throw new InvalidOperationException("not in etcd: " + key);
        return Encoding.UTF8.GetString(Convert.FromBase64String(kv["value"]!.GetValue<string>()));
    }

    public async Task CompactEtcdAsync(long revision)
    {
        var resp = await Etcd.PostAsync($"http://127.0.0.1:{EtcdPort}/v3/kv/compaction", new StringContent(new JsonObject { ["revision"] = revision.ToString(), ["physical"] = true }.ToJsonString()));
        resp.EnsureSuccessStatusCode();
    }

    public async Task DisposeAsync()
    {
        foreach (var a in _extra) await a.DisposeAsync();
        if (Api is not null) await Api.DisposeAsync();
        if (_etcd is { HasExited: false }) { _etcd.Kill(true); await _etcd.WaitForExitAsync(); }
        Etcd.Dispose();
        try { Directory.Delete(Work, true); } catch (IOException) { }
    }

    private static Process Start(string file, string[] args, StringBuilder log)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static async Task<string> WaitForFileAsync(string path)
    {
        await WaitForAsync(path, () => Task.FromResult(File.Exists(path) && new FileInfo(path).Length > 0), TimeSpan.FromSeconds(20));
        return await File.ReadAllTextAsync(path);
    }

    public static async Task WaitForAsync(string what, Func<Task<bool>> check, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        Exception? last = null;
        while (sw.Elapsed < timeout)
        {
            try { if (await check()) return; }
            catch (InvalidOperationException e) when (e.Message.Contains("exited")) { throw; }
            catch (Exception e) { last = e; }
            await Task.Delay(50);
        }
        throw new TimeoutException($"{what}: not true after {timeout.TotalSeconds}s" + (last is null ? "" : $" (last error: {last.Message})"));
    }

    public static int FreePort() => NodeAgent.Testing.TestHost.FreePort();

    private static string? Which(string tool) => NodeAgent.Testing.TestHost.Which(tool);
}
