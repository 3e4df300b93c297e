using System.Globalization;
using Tmds.Linux;

namespace NodeAgent.Os;

/// <summary>
/// Gives back the pages of the agent's own executable (and of its shared libraries, see
/// <see cref="CodeMappings"/>) that only start-up and bursts touched.
/// A native-AOT binary is ~18 MB of code and read-only data with little locality, and the kernel
/// maps the 64 KiB around every page fault and reads ahead 128 KiB on every page-cache miss, so
/// after start-up nearly the whole file is resident in the agent (~17 MiB of its RSS) although
/// the steady state runs a small part of it. The pages are clean and the kernel would reclaim
/// them under pressure anyway; until then they count against the agent and crowd the page cache.
/// <see cref="PageOut"/> marks the executable's read-only mappings MADV_RANDOM (a later fault
/// reads the page it needs, not its neighbours) and reclaims them with MADV_PAGEOUT (Linux 5.4+),
/// so what comes back is the working set. Android compacts background apps the same way.
/// How close "what comes back" is to the working set depends on the host: a kernel that reads
/// ahead on faults in executable mappings despite MADV_RANDOM (6.18 does) brings back up to the
/// disk's read_ahead_kb around each fault (see docs/benchmarks.md, issue 2).
/// Writable mappings (relocated data, the heap) are never touched. Errors are returned, not thrown:
/// a kernel without MADV_PAGEOUT, or a binary the process may not page out (it needs to own the
/// file or be able to write it), only leaves the pages where they are.
/// </summary>
public static unsafe class CodePages
{
    private const int MADV_RANDOM = 1, MADV_PAGEOUT = 21;

    /// <summary>A mapping of a file: its address range (page-aligned, as the kernel lists it).</summary>
    public readonly record struct Range(ulong Start, ulong End)
    {
        public ulong Length => End - Start;
    }

    /// <summary>What one pass did: mappings advised, their bytes, and the first error (0: none).</summary>
    public readonly record struct Result(int Ranges, ulong Bytes, int Errno);

    /// <summary>Pages out this process's read-only mappings of its own executable and of the shared libraries it loaded.</summary>
    public static Result PageOut() =>
        Environment.ProcessPath is { } exe ? PageOut(CodeMappings(File.ReadAllText("/proc/self/maps"), ResolvedPath(exe))) : default;

    /// <summary>
    /// The read-only mappings of the executable <paramref name="exe"/> and of every shared library
    /// ("*.so", "*.so.N") in a /proc/PID/maps text. The libraries matter as much as the binary:
    /// OpenSSL's libcrypto and libssl, which .NET loads whole at the first hash (a static pod's
    /// UID) or TLS handshake, leave ~4 MiB resident that the steady state of a standalone agent
    /// never touches again. Pages another process maps too (libc's, mostly) are not reclaimed by
    /// the kernel, so this only gives back what the agent alone held.
    /// </summary>
    public static List<Range> CodeMappings(string maps, string exe) =>
        ReadOnlyMappings(maps, file => file.SequenceEqual(exe) || IsSharedObject(file));

    private static bool IsSharedObject(ReadOnlySpan<char> file)
    {
        if (file.Length == 0 || file[0] != '/') return false;
        var name = file[(file.LastIndexOf('/') + 1)..];
        int so = name.IndexOf(".so", StringComparison.Ordinal);
        if (so <= 0) return false;
        var tail = name[(so + 3)..]; // "", or ".3", ".6.0.30" (a version), or something else (not a library)
        foreach (char c in tail) if (c != '.' && !char.IsAsciiDigit(c)) return false;
        return tail.Length == 0 || tail[0] == '.';
    }

    /// <summary>Pages out the given ranges of this process (which must be file-backed and not writable).</summary>
    public static Result PageOut(IReadOnlyList<Range> ranges)
    {
        ulong bytes = 0;
        int errno = 0;
        foreach (var r in ranges)
        {
            // MADV_RANDOM first: the refaults after the pageout should bring back single pages.
            if (LibC.madvise((void*)r.Start, (size_t)r.Length, MADV_RANDOM) != 0 && errno == 0) errno = LibC.errno;
            if (LibC.madvise((void*)r.Start, (size_t)r.Length, MADV_PAGEOUT) != 0) { if (errno == 0) errno = LibC.errno; continue; }
            bytes += r.Length;
        }
        return new Result(ranges.Count, bytes, errno);
    }

    /// <summary>
    /// The read-only mappings of <paramref name="path"/> in a /proc/PID/maps text
    /// ("start-end perms offset dev inode path" a line). Mappings with 'w' in their permissions
    /// are left out, as is everything after a path that has " (deleted)" appended (a replaced
    /// binary: an upgrade put a new file in place; the old pages stay until the restart).
    /// </summary>
    public static List<Range> ReadOnlyMappings(string maps, string path) => ReadOnlyMappings(maps, file => file.SequenceEqual(path));

    private delegate bool PathMatch(ReadOnlySpan<char> file);

    private static List<Range> ReadOnlyMappings(string maps, PathMatch match)
    {
        var ranges = new List<Range>();
        foreach (var raw in maps.AsSpan().EnumerateLines())
        {
            var line = raw.Trim();
            // The path starts at the sixth field; it may itself hold spaces.
            var rest = line;
            ReadOnlySpan<char> addresses = Field(ref rest), perms = Field(ref rest);
            Field(ref rest); Field(ref rest); Field(ref rest); // offset, device, inode
            var file = rest.TrimStart();
            if (!match(file) || perms.Length < 2 || perms[1] == 'w') continue;
            int dash = addresses.IndexOf('-');
            if (dash <= 0
                || !ulong.TryParse(addresses[..dash], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var start)
                || !ulong.TryParse(addresses[(dash + 1)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var end)
                || end <= start) continue;
            ranges.Add(new Range(start, end));
        }
        return ranges;
    }

    private static ReadOnlySpan<char> Field(ref ReadOnlySpan<char> rest)
    {
        rest = rest.TrimStart();
        int space = rest.IndexOf(' ');
        var field = space < 0 ? rest : rest[..space];
        rest = space < 0 ? default : rest[space..];
        return field;
    }

    // /proc/self/maps names the file by its resolved path; Environment.ProcessPath may be a link.
    private static string ResolvedPath(string path)
    {
        try { return new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path); }
        catch (IOException) { return path; }
    }
}
