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
        string full = path.Length > 1 ? path.TrimEnd('/') : path;
        string best = "", device = "";
        try
        {
            foreach (var line in File.ReadLines(mountinfo))
            {
                // "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw": field 5 is
                // the mount point; after " - " come the filesystem type and the source.
                var fields = line.Split(' ');
                if (fields.Length < 5) continue;
                string mp = Unescape(fields[4]);
                bool under = full == mp || mp == "/" || (full.StartsWith(mp, StringComparison.Ordinal) && full.Length > mp.Length && full[mp.Length] == '/');
                if (!under || mp.Length < best.Length) continue;
                int dash = Array.IndexOf(fields, "-");
                if (dash < 0 || dash + 2 >= fields.Length) continue;
                best = mp;
                device = Unescape(fields[dash + 2]);
            }
        }
        catch (IOException) { }
        return device;
    }

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
