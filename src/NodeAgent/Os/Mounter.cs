using System.Text;
using Tmds.Linux;

namespace NodeAgent.Os;

/// <summary>Mount operations the volume code needs. Real: <see cref="LinuxMounter"/>; tests may fake it.</summary>
public interface IMounter
{
    void MountTmpfs(string target, long sizeBytes);
    /// <summary>Lazy unmount (MNT_DETACH); a path that is not mounted is not an error.</summary>
    void Unmount(string target);
    bool IsMountPoint(string path);
}

/// <summary>mount(2)/umount2(2) through Tmds.LibC; errno becomes an IOException that names the call and path.</summary>
public sealed unsafe class LinuxMounter : IMounter
{
    private const int MNT_DETACH = 2;
    private const int EINVAL = 22, ENOENT = 2;

    public void MountTmpfs(string target, long sizeBytes)
    {
        string data = sizeBytes > 0 ? $"size={sizeBytes}" : "";
        int rc;
        fixed (byte* src = Z("tmpfs"), tgt = Z(target), fstype = Z("tmpfs"), d = Z(data))
            rc = LibC.mount(src, tgt, fstype, 0, d);
        if (rc != 0) throw Error("mount tmpfs", target);
    }

    public void Unmount(string target)
    {
        int rc;
        fixed (byte* tgt = Z(target)) rc = LibC.umount2(tgt, MNT_DETACH);
        if (rc != 0 && LibC.errno is not (EINVAL or ENOENT)) throw Error("umount", target);
    }

    public bool IsMountPoint(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd('/');
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // "36 35 98:0 /mnt1 /mnt/parent rw ..." : the 5th field is the mount point (octal-escaped).
            var fields = line.Split(' ', 6);
            if (fields.Length > 4 && Unescape(fields[4]) == full) return true;
        }
        return false;
    }

    private static string Unescape(string s) => s.Replace("\\040", " ").Replace("\\011", "\t").Replace("\\012", "\n").Replace("\\134", "\\");

    private static byte[] Z(string s)
    {
        var b = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, b);
        return b;
    }

    private static IOException Error(string op, string path)
    {
        int errno = LibC.errno;
        return new IOException($"{op} {path}: {new System.ComponentModel.Win32Exception(errno).Message} (errno {errno})");
    }
}
