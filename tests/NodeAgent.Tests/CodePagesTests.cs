using System.Globalization;
using System.IO.MemoryMappedFiles;
using NodeAgent.Os;
using Xunit;

namespace NodeAgent.Tests;

public class CodePagesTests
{
    private const string Maps = """
        55d0c0000000-55d0c0400000 r--p 00000000 08:01 1311 /usr/bin/node-agent
        55d0c0400000-55d0c1000000 r-xp 00400000 08:01 1311 /usr/bin/node-agent
        55d0c1000000-55d0c1200000 r--p 01000000 08:01 1311 /usr/bin/node-agent
        55d0c1200000-55d0c1280000 rw-p 01200000 08:01 1311 /usr/bin/node-agent
        55d0c1280000-55d0c1300000 rw-p 00000000 00:00 0
        7f0000000000-7f0000100000 r-xp 00000000 08:01 2222 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
        7f0000200000-7f0000210000 r--p 00000000 08:01 3333 /usr/bin/node-agent-old (deleted)
        7f0000300000-7f0000310000 r--p 00000000 08:01 4444 /opt/my agent/node-agent
        7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
        """;

    [Fact]
    public void OnlyTheExecutablesReadOnlyMappingsAreChosen()
    {
        var ranges = CodePages.ReadOnlyMappings(Maps, "/usr/bin/node-agent");
        Assert.Equal(
            [new(0x55d0c0000000, 0x55d0c0400000), new(0x55d0c0400000, 0x55d0c1000000), new(0x55d0c1000000, 0x55d0c1200000)],
            ranges);
        Assert.Equal(0x1200000UL, ranges.Aggregate(0UL, (sum, r) => sum + r.Length));
        // A path with a space; a replaced binary is not the running one's path; writable data never.
        Assert.Equal([new CodePages.Range(0x7f0000300000, 0x7f0000310000)], CodePages.ReadOnlyMappings(Maps, "/opt/my agent/node-agent"));
        Assert.Empty(CodePages.ReadOnlyMappings(Maps, "/usr/bin/node-agent-old"));
        Assert.Empty(CodePages.ReadOnlyMappings("garbage\n\nzz-yy r--p 0 0 0 /usr/bin/node-agent\n", "/usr/bin/node-agent"));
    }

    [Fact]
    public void CodeMappingsAreTheExecutablesAndTheSharedLibrariesReadOnlyOnes()
    {
        const string maps = Maps + """

            7f0000400000-7f0000410000 r--p 00000000 08:01 5555 /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30
            7f0000410000-7f0000420000 rw-p 00010000 08:01 5555 /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30
            7f0000500000-7f0000510000 r--p 00000000 08:01 6666 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)
            7f0000600000-7f0000610000 r--p 00000000 08:01 7777 /var/lib/data.sox
            7f0000700000-7f0000710000 r--p 00000000 08:01 8888 /usr/lib/libplain.so
            7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0                          [vdso]
            """;
        Assert.Equal(
            [new(0x55d0c0000000, 0x55d0c0400000), new(0x55d0c0400000, 0x55d0c1000000), new(0x55d0c1000000, 0x55d0c1200000),
             new(0x7f0000000000, 0x7f0000100000), new(0x7f0000400000, 0x7f0000410000), new(0x7f0000700000, 0x7f0000710000)],
            CodePages.CodeMappings(maps, "/usr/bin/node-agent"));
    }

    [Fact]
    public void PagingOutAReadOnlyFileMappingTakesItsPagesOutOfTheResidentSet()
    {
        // The real madvise on a file this process owns (as the agent owns its pages' file, or is root).
        string path = Path.Combine(Path.GetTempPath(), $"codepages-{Guid.NewGuid():N}");
        const int size = 4 << 20;
        try
        {
            using (var f = new FileStream(path, FileMode.CreateNew))
            {
                f.Write(Enumerable.Repeat((byte)0x5A, size).ToArray());
                f.Flush(flushToDisk: true); // clean pages: dirty ones are not reclaimed by madvise
            }
            using var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            using var view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            long sum = 0;
            for (long i = 0; i < size; i += 4096) sum += view.ReadByte(i); // fault every page in
            Assert.True(sum > 0);

            var ranges = CodePages.ReadOnlyMappings(File.ReadAllText("/proc/self/maps"), path);
            Assert.NotEmpty(ranges);
            long before = ResidentKiB(ranges);
            Assert.True(before >= size / 1024 * 3 / 4, $"resident before: {before} KiB");

            var result = CodePages.PageOut(ranges);
            Assert.Equal(0, result.Errno);
            Assert.Equal((ulong)ranges.Sum(r => (long)r.Length), result.Bytes);
            long after = ResidentKiB(ranges);
            Assert.True(after < before / 4, $"resident after the pageout: {after} KiB of {before}");

            for (long i = 0; i < size; i += 4096) sum += view.ReadByte(i); // the pages come back when used
            Assert.True(ResidentKiB(ranges) >= size / 1024 * 3 / 4);
        }
        finally { File.Delete(path); }
    }

    // Rss of the given mappings, from /proc/self/smaps.
    private static long ResidentKiB(IReadOnlyList<CodePages.Range> ranges)
    {
        long total = 0;
        bool inRange = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            if (dash > 0 && space > dash && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var start))
                inRange = ranges.Any(r => r.Start == start);
            else if (inRange && line.StartsWith("Rss:", StringComparison.Ordinal))
                total += long.Parse(line.AsSpan(4).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
        }
        return total;
    }
}
