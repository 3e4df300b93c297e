using System.Text;
using Tmds.Linux;

namespace NodeAgent.Os;

/// <summary>A filesystem's size and inode figures (statvfs).</summary>
public readonly record struct FsCapacity(ulong CapacityBytes, ulong AvailableBytes, ulong UsedBytes, ulong Inodes, ulong InodesFree);

/// <summary>
/// Which filesystem holds a path, and how full it is: fstatvfs(3) through Tmds.LibC for the figures,
/// /proc/self/mountinfo (the longest mount point that prefixes the path) for the device, which is
/// what cAdvisor puts in the "device" label.
/// </summary>
public static unsafe class Filesystems
{
    private const int O_RDONLY = 0, O_CLOEXEC = 0x80000, O_PATH = 0x200000;

    /// <summary>False (and nothing thrown) when the path does not exist or cannot be opened.</summary>
    public static bool TryStat(string path, out FsCapacity fs)
    {
        fs = default;
        var z = Encoding.UTF8.GetBytes(path + "\0");
        int fd;
        fixed (byte* p = z) fd = LibC.open(p, O_RDONLY | O_CLOEXEC | O_PATH, 0);
        if (fd < 0) return false;
        statvfs st;
        int rc = LibC.fstatvfs(fd, &st);
        LibC.close(fd);
        if (rc != 0) return false;
        ulong frsize = (ulong)st.f_frsize;
        ulong blocks = (ulong)st.f_blocks, free = (ulong)st.f_bfree, avail = (ulong)st.f_bavail;
        fs = new FsCapacity(blocks * frsize, avail * frsize, (blocks - free) * frsize, (ulong)st.f_files, (ulong)st.f_ffree);
        return true;
    }

    /// <summary>The mount source of the filesystem holding <paramref name="path"/> ("" when unknown).</summary>
    public static string DeviceOf(string path) => DeviceOf(path, "/proc/self/mountinfo");

    internal static string DeviceOf(string path, string mountinfo)
    {
        // Read once per housekeeping pass per filesystem, with a few hundred lines on a busy node
        // (every sandbox and container adds mounts): scanned as bytes, only the answer is a string.
        // Mount points are compared in their escaped form (\040 for a space, ...), escaping the path
        // once: escaping keeps '/' and prefixes, so the longest-prefix rule is unchanged.
        string full = path.Length > 1 ? path.TrimEnd('/') : path;
        byte[] escaped = Encoding.UTF8.GetBytes(Escape(full));
        byte[] text = System.Buffers.ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int length;
            try { length = ReadAll(mountinfo, ref text); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
            int bestLength = -1, deviceStart = 0, deviceLength = 0;
            var rest = text.AsSpan(0, length);
            while (!rest.IsEmpty)
            {
                int nl = rest.IndexOf((byte)'\n');
                var line = nl < 0 ? rest : rest[..nl];
                int lineStart = length - rest.Length;
                rest = nl < 0 ? default : rest[(nl + 1)..];
                // "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw": field 5 is
                // the mount point; after the "-" field come the filesystem type and the source.
                if (!Field(line, 4, out int mpStart, out int mpLength)) continue;
                var mp = line.Slice(mpStart, mpLength);
                bool under = escaped.AsSpan().SequenceEqual(mp) || mp.SequenceEqual("/"u8)
                    || (escaped.Length > mp.Length && escaped.AsSpan().StartsWith(mp) && escaped[mp.Length] == (byte)'/');
                if (!under || mp.Length < bestLength) continue;
                int dash = line.IndexOf(" - "u8);
                if (dash < 0 || !Field(line[(dash + 3)..], 1, out int srcStart, out int srcLength)) continue;
                bestLength = mp.Length;
                deviceStart = lineStart + dash + 3 + srcStart;
                deviceLength = srcLength;
            }
            return bestLength < 0 ? "" : Unescape(Encoding.UTF8.GetString(text, deviceStart, deviceLength));
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(text); }
    }

    /// <summary>The <paramref name="index"/>th space-separated field of <paramref name="line"/>.</summary>
    private static bool Field(ReadOnlySpan<byte> line, int index, out int start, out int length)
    {
        start = 0;
        for (int i = 0; i < index; i++)
        {
            int sp = line[start..].IndexOf((byte)' ');
            if (sp < 0) { length = 0; return false; }
            start += sp + 1;
        }
        int end = line[start..].IndexOf((byte)' ');
        length = end < 0 ? line.Length - start : end;
        return length > 0;
    }

    /// <summary>A whole file (a /proc file reports no size) into a pooled buffer, grown as needed; its length.</summary>
    private static int ReadAll(string file, ref byte[] buffer)
    {
        using var handle = File.OpenHandle(file);
        int length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                var bigger = System.Buffers.ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                buffer.AsSpan(0, length).CopyTo(bigger);
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                buffer = bigger;
            }
            int n = RandomAccess.Read(handle, buffer.AsSpan(length), length);
            if (n == 0) return length;
            length += n;
        }
    }

    private static string Escape(string s) => s.Replace("\\", "\\134").Replace(" ", "\\040").Replace("\t", "\\011").Replace("\n", "\\012");

    private static string Unescape(string s) => s.Replace("\\040", " ").Replace("\\011", "\t").Replace("\\012", "\n").Replace("\\134", "\\");

    /// <summary>Bytes and files under <paramref name="dir"/> (not following links); zeros when it does not exist.</summary>
    public static (ulong Bytes, ulong Files) Usage(string dir)
    {
        ulong bytes = 0, files = 0;
        try
        {
            var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };
            foreach (var f in new DirectoryInfo(dir).EnumerateFileSystemInfos("*", options))
            {
                files++;
                if (f is FileInfo fi) bytes += (ulong)fi.Length;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return (bytes, files);
    }
}
