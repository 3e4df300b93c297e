using System.ComponentModel;
using System.Diagnostics;

namespace NodeAgent.Os;

/// <summary>A host tool that is not installed: names the tool and the Debian package that has it.</summary>
public sealed class ToolMissingException(string tool, string package, string detail)
    : Exception($"cannot run {tool} (install the {package} package): {detail}");

/// <summary>
/// Runs a host tool (nft, ip, conntrack) to completion: arguments as a list (no shell), optional
/// bytes on stdin, stdout and stderr read concurrently. The tools the proxy shells out to, in one place.
/// </summary>
public static class Exec
{
    public static async Task<(int Code, string Output, string Error)> RunAsync(string file, IEnumerable<string> args, ReadOnlyMemory<byte>? stdin,
        string package, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardInput = stdin is not null, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (Win32Exception e) { throw new ToolMissingException(file, package, e.Message); }
        using (p)
        {
            var output = p.StandardOutput.ReadToEndAsync(ct);
            var error = p.StandardError.ReadToEndAsync(ct);
            if (stdin is { } input)
            {
                await p.StandardInput.BaseStream.WriteAsync(input, ct).ConfigureAwait(false);
                p.StandardInput.Close();
            }
            await p.WaitForExitAsync(ct).ConfigureAwait(false);
            return (p.ExitCode, await output.ConfigureAwait(false), await error.ConfigureAwait(false));
        }
    }
}
