using System.Runtime.InteropServices;
using System.Text;

namespace NodeAgent.Os;

/// <summary>
/// Small files (cgroup and /proc files) read with open(2)/read(2)/close(2) on a pre-encoded path:
/// no handle object, no path string per read, so a collector reading thousands of files per
/// cycle allocates nothing. Errors come back as a negative errno, never as exceptions.
/// </summary>
public static unsafe partial class RawFile
{
    public const int ENOENT = 2, EACCES = 13, ENODEV = 19, ENOTDIR = 20, EPERM = 1;

    /// <summary>The path as NUL-terminated UTF-8, to keep and pass to <see cref="Read"/>.</summary>
    public static byte[] Path(string path)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, bytes);
        return bytes;
    }

    /// <summary>Reads the file at <paramref name="pathZ"/> into <paramref name="buffer"/> (up to its size); bytes read, or -errno.</summary>
    public static int Read(byte[] pathZ, Span<byte> buffer)
    {
        int fd;
        fixed (byte* p = pathZ) fd = Open(p, 0x80000 /* O_RDONLY | O_CLOEXEC */);
        if (fd < 0) return -Marshal.GetLastPInvokeError();
        try
        {
            int total = 0;
            fixed (byte* b = buffer)
                while (total < buffer.Length)
                {
                    nint n = ReadNative(fd, b + total, buffer.Length - total);
                    if (n < 0)
                    {
                        int errno = Marshal.GetLastPInvokeError();
                        if (errno == 4) continue; // EINTR
                        return -errno;
                    }
                    if (n == 0) break;
                    total += (int)n;
                }
            return total;
        }
        finally { Close(fd); }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true)]
    private static partial int Open(byte* path, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint ReadNative(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
