using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace NodeAgent.Api.Hosting;

/// <summary>
/// sd_notify(3) without libsystemd: one datagram of newline-separated assignments ("READY=1",
/// "WATCHDOG=1", "STATUS=...", "STOPPING=1") to the unix socket systemd names in NOTIFY_SOCKET
/// (a path, or an abstract name written with a leading '@'). The watchdog interval is WATCHDOG_USEC
/// when WATCHDOG_PID is unset or is this process.
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly UnixDomainSocketEndPoint _target;

    private SystemdNotifier(string address, TimeSpan? watchdog)
    {
        _target = new UnixDomainSocketEndPoint(address[0] == '@' ? "\0" + address[1..] : address);
        WatchdogInterval = watchdog;
    }

    /// <summary>How often systemd expects WATCHDOG=1 at the latest; null when the unit has no watchdog.</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>The notifier systemd asked for through the environment; null when not started by systemd as Type=notify.</summary>
    public static SystemdNotifier? FromEnvironment()
    {
        string? address = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(address) || (address[0] != '/' && address[0] != '@')) return null;
        TimeSpan? watchdog = null;
        string? pid = Environment.GetEnvironmentVariable("WATCHDOG_PID");
        if ((string.IsNullOrEmpty(pid) || pid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture))
            && ulong.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), NumberStyles.None, CultureInfo.InvariantCulture, out ulong usec) && usec > 0)
            watchdog = TimeSpan.FromMicroseconds(usec);
        return new SystemdNotifier(address, watchdog);
    }

    /// <summary>Sends the assignments; false (never an exception) when systemd is not listening.</summary>
    public bool Notify(string state)
    {
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(state), _target);
            return true;
        }
        catch (SocketException) { return false; }
    }

    public void Dispose() => _socket.Dispose();
}
