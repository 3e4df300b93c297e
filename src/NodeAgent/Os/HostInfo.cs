using System.Globalization;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace NodeAgent.Os;

/// <summary>Facts about the host read from /proc and the network interfaces.</summary>
public static class HostInfo
{
    /// <summary>When the host booted (/proc/stat btime): the node's start time in the Summary API.</summary>
    public static DateTimeOffset BootTime() => NodeAgent.Api.Hosting.ProcessStats.BootTime();

    public static long MemoryBytes()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(f[1], CultureInfo.InvariantCulture) * 1024;
            }
        return 0;
    }

    /// <summary>The IPv4 address of the interface holding the default route, else the first non-loopback one.</summary>
    public static string? PrimaryIPv4()
    {
        string? defaultIf = null;
        try
        {
            foreach (var line in File.ReadLines("/proc/net/route").Skip(1))
            {
                var f = line.Split('\t', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length > 2 && f[1] == "00000000") { defaultIf = f[0]; break; }
            }
        }
        catch (IOException) { }
        string? fallback = null;
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.OperationalStatus == OperationalStatus.Down || nic.NetworkInterfaceType == NetworkInterfaceType.Loopback) continue;
            foreach (var a in nic.GetIPProperties().UnicastAddresses)
            {
                if (a.Address.AddressFamily != AddressFamily.InterNetwork) continue;
                if (nic.Name == defaultIf) return a.Address.ToString();
                fallback ??= a.Address.ToString();
            }
        }
        return fallback;
    }

    /// <summary>
    /// Protects the agent from the OOM killer as the kubelet does (-999). Hosts that forbid a
    /// negative value (no CAP_SYS_RESOURCE) get a warning from the caller, not a failure.
    /// </summary>
    public static string? TrySetOwnOomScoreAdj(int value)
    {
        try
        {
            File.WriteAllText("/proc/self/oom_score_adj", value.ToString(CultureInfo.InvariantCulture));
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }
}
