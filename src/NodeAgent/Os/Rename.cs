using System.Runtime.InteropServices;

namespace NodeAgent.Os;

/// <summary>rename(2) on the path itself (a symlink is moved, never followed): the atomic swap of volume data.</summary>
public static partial class PosixFs
{
    [LibraryImport("libc", EntryPoint = "rename", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int RenameNative(string oldPath, string newPath);

    public static void Rename(string from, string to)
    {
        if (RenameNative(from, to) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"rename {from} -> {to}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }
    }
}
