using System.Net;
using System.Net.Sockets;

namespace NodeAgent.Testing;

/// <summary>What every integration test project needs of the machine: the repository, free ports, tools on PATH.</summary>
public static class TestHost
{
    /// <summary>The repository root (the directory holding NodeAgent.sln), found from the test assembly upwards.</summary>
    public static readonly string Repo = FindRepo();

    /// <summary>A loopback TCP port nothing listens on right now.</summary>
    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>The full path of <paramref name="tool"/> on PATH, or null.</summary>
    public static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    /// <summary>Runs <c>promtool check metrics</c> on <paramref name="exposition"/>; its exit code and what it said.</summary>
    public static async Task<(int Code, string Output)> PromtoolAsync(string exposition)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("promtool", ["check", "metrics"]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        System.Diagnostics.Process p;
        try { p = System.Diagnostics.Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"promtool is required (apt-get install prometheus): {e.Message}"); }
        using (p)
        {
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            await p.StandardInput.WriteAsync(exposition);
            p.StandardInput.Close();
            await p.WaitForExitAsync();
            return (p.ExitCode, await o + await e);
        }
    }

    private static string FindRepo()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NodeAgent.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root (NodeAgent.sln)");
    }
}
