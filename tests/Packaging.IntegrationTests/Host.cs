using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Xunit;

namespace Packaging.IntegrationTests;

/// <summary>Running the host's tools, as root, the way an operator would.</summary>
public static class Host
{
    public static readonly string Repo = NodeAgent.Testing.TestHost.Repo;

    public sealed record Result(int Code, string Out, string Err)
    {
        public string All => Out + Err;
    }

    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Repo };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(5));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeout ?? TimeSpan.FromMinutes(5)}:\n{await stdout}{await stderr}");
        }
        return new Result(p.ExitCode, await stdout, await stderr);
    }

    public static Task<Result> RunAsync(string file, params string[] args) => RunAsync(file, args, null);

    /// <summary>Runs and fails the test (with what the command said) on a non-zero exit.</summary>
    public static async Task<string> MustAsync(string file, params string[] args)
    {
        var r = await RunAsync(file, args, null);
        Assert.True(r.Code == 0, $"{file} {string.Join(' ', args)} exited {r.Code}:\n{r.Out}\n{r.Err}");
        return r.Out;
    }

    /// <summary>Fails (never skips) when a tool the acceptance needs is missing.</summary>
    public static void Require(params string[] tools)
    {
        var missing = new List<string>();
        if (Environment.UserName != "root") missing.Add("these tests install packages: run them as root");
        foreach (var t in tools)
            if (Which(t) is null) missing.Add($"{t} not on PATH (scripts/prereqs.sh installs it)");
        if (missing.Count > 0) Assert.Fail("missing prerequisites:\n  " + string.Join("\n  ", missing));
    }

    public static string? Which(string tool) => NodeAgent.Testing.TestHost.Which(tool);

    public static int FreePort() => NodeAgent.Testing.TestHost.FreePort();

    public static async Task WaitForAsync(string what, Func<Task<bool>> condition, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (DateTime.UtcNow < until)
        {
            try { if (await condition()) return; last = null; }
            catch (Exception e) { last = e; }
            await Task.Delay(250);
        }
        Assert.Fail($"timed out after {timeout.TotalSeconds} s waiting for {what}" + (last is null ? "" : $" (last error: {last.Message})"));
    }

    /// <summary>A process started in the background, its output collected.</summary>
    public sealed class Daemon : IAsyncDisposable
    {
        private readonly Process _p;
        private readonly StringBuilder _log = new();

        public Daemon(string file, IEnumerable<string> args)
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args) psi.ArgumentList.Add(a);
            _p = Process.Start(psi)!;
            _p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
            _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
            _p.BeginOutputReadLine();
            _p.BeginErrorReadLine();
        }

        public int Pid => _p.Id;
        public bool Running => !_p.HasExited;
        public string Log { get { lock (_log) return _log.ToString(); } }

        /// <summary>SIGTERM, as systemctl stop/restart sends it; waits for the exit.</summary>
        public async Task StopAsync()
        {
            if (_p.HasExited) return;
            Process.Start("kill", ["-TERM", _p.Id.ToString()])!.WaitForExit();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            try { await _p.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { _p.Kill(); }
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _p.Dispose();
        }
    }
}
