using System.Buffers.Text;
using NodeAgent.Os;

namespace NodeAgent.Metrics;

public enum CgroupVersion { V1, V2 }

/// <summary>
/// Reads cgroup files the way cAdvisor does, for cgroup v1 (a mount per controller under the
/// root) and v2 (one unified tree), into a reused <see cref="CgroupStats"/>. A cgroup's file paths
/// are resolved and encoded once (<see cref="Open"/>); each read is open/read/close into one
/// reused buffer (<see cref="RawFile"/>) and span parsing, so steady-state collection allocates
/// nothing per file. A cgroup that vanished
/// mid-read (its container exited) makes <see cref="Read"/> return false; a malformed or
/// unreadable file skips only its fields and is counted. Not thread safe: one collector owns it.
/// Tests: NodeAgent.Tests CgroupReaderTests (recorded v1 and v2 trees under tests/NodeAgent.Tests/Fixtures/cgroup).
/// </summary>
public sealed class CgroupReader
{
    private readonly string _root;
    private readonly byte[] _buffer = new byte[64 * 1024];

    public CgroupVersion Version { get; }

    /// <summary>Where the hierarchy is mounted (/sys/fs/cgroup).</summary>
    public string Root => _root;

    /// <summary>Files that vanished, did not parse, or could not be read (the scrape goes on without them).</summary>
    public long Vanished, Malformed, Denied;

    public CgroupReader(string root = "/sys/fs/cgroup", CgroupVersion? version = null)
    {
        _root = root.TrimEnd('/');
        Version = version ?? (File.Exists(Path.Combine(_root, "cgroup.controllers")) ? CgroupVersion.V2 : CgroupVersion.V1);
    }

    // The files read, in a fixed order; a handle holds their full paths.
    private static readonly (string Controller, string File)[] V1Files =
    [
        ("cpuacct", "cpuacct.usage"), ("cpuacct", "cpuacct.usage_user"), ("cpuacct", "cpuacct.usage_sys"), ("cpu", "cpu.stat"),
        ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"), ("cpu", "cpu.shares"),
        ("memory", "memory.usage_in_bytes"), ("memory", "memory.stat"), ("memory", "memory.failcnt"), ("memory", "memory.oom_control"), ("memory", "memory.limit_in_bytes"),
        ("pids", "pids.current"), ("blkio", "blkio.throttle.io_service_bytes"), ("blkio", "blkio.throttle.io_serviced"),
    ];

    private static readonly string[] V2Files =
        ["cpu.stat", "cpu.max", "cpu.weight", "memory.current", "memory.stat", "memory.events", "memory.swap.current", "memory.max", "pids.current", "io.stat"];

    /// <summary>A cgroup's files, resolved once per cgroup (a container's lifetime).</summary>
    public sealed class Handle(string relativePath, byte[][] paths)
    {
        public string RelativePath { get; } = relativePath;
        /// <summary>Each file's path, NUL-terminated UTF-8 (encoded once).</summary>
        internal byte[][] Paths { get; } = paths;
    }

    /// <summary>The cgroup at <paramref name="relativePath"/> (e.g. <c>kubepods/besteffort/pod&lt;uid&gt;/&lt;id&gt;</c>, "" for the root).</summary>
    public Handle Open(string relativePath)
    {
        string rel = relativePath.Trim('/');
        string[] paths;
        if (Version == CgroupVersion.V2)
        {
            paths = new string[V2Files.Length];
            for (int i = 0; i < paths.Length; i++) paths[i] = rel.Length == 0 ? $"{_root}/{V2Files[i]}" : $"{_root}/{rel}/{V2Files[i]}";
        }
        else
        {
            paths = new string[V1Files.Length];
            for (int i = 0; i < paths.Length; i++)
                paths[i] = rel.Length == 0 ? $"{_root}/{V1Files[i].Controller}/{V1Files[i].File}" : $"{_root}/{V1Files[i].Controller}/{rel}/{V1Files[i].File}";
        }
        var encoded = new byte[paths.Length][];
        for (int i = 0; i < paths.Length; i++) encoded[i] = RawFile.Path(paths[i]);
        return new Handle(rel, encoded);
    }

    /// <summary>Fills <paramref name="into"/>; false when the cgroup no longer exists.</summary>
    public bool Read(Handle h, CgroupStats into)
    {
        into.Clear();
        return Version == CgroupVersion.V2 ? ReadV2(h.Paths, into) : ReadV1(h.Paths, into);
    }

    private enum FileResult { Ok, Missing, Failed }

    /// <summary>Reads a whole (small) file into the shared buffer, with open/read/close and no allocation.</summary>
    private FileResult Load(byte[] path, out int length)
    {
        int n = RawFile.Read(path, _buffer);
        length = Math.Max(n, 0);
        if (n >= 0) return FileResult.Ok;
        switch (-n)
        {
            case RawFile.EACCES or RawFile.EPERM: Denied++; return FileResult.Failed;
            default: Vanished++; return FileResult.Missing; // ENOENT, ENODEV...: the cgroup is gone or going
        }
    }

    private bool Single(byte[] path, out ulong value)
    {
        value = 0;
        if (Load(path, out int n) != FileResult.Ok) return false;
        var s = Trim(_buffer.AsSpan(0, n));
        if (s.SequenceEqual("max"u8) || s.SequenceEqual("-1"u8)) { value = 0; return true; } // unlimited
        if (Utf8Parser.TryParse(s, out value, out int used) && used == s.Length) return true;
        Malformed++;
        return false;
    }

    /// <summary>The next line of <paramref name="data"/> (without its newline); <paramref name="data"/> moves past it.</summary>
    private static ReadOnlySpan<byte> NextLine(ref Span<byte> data)
    {
        int eol = data.IndexOf((byte)'\n');
        var line = eol < 0 ? data : data[..eol];
        data = eol < 0 ? [] : data[(eol + 1)..];
        return line;
    }

    private static ReadOnlySpan<byte> Trim(ReadOnlySpan<byte> s)
    {
        int start = 0, end = s.Length;
        while (start < end && s[start] is (byte)' ' or (byte)'\n' or (byte)'\t') start++;
        while (end > start && s[end - 1] is (byte)' ' or (byte)'\n' or (byte)'\t') end--;
        return s[start..end];
    }

    /// <summary>Calls <paramref name="each"/> for every "key value" line of the loaded file.</summary>
    private bool KeyValues(byte[] path, KeyValueHandler each, CgroupStats into)
    {
        if (Load(path, out int n) != FileResult.Ok) return false;
        var data = _buffer.AsSpan(0, n);
        bool ok = true;
        while (data.Length > 0)
        {
            var line = NextLine(ref data);
            if (line.IsEmpty) continue;
            int sp = line.IndexOf((byte)' ');
            if (sp <= 0 || !Utf8Parser.TryParse(line[(sp + 1)..], out ulong value, out int used) || used != line.Length - sp - 1) { ok = false; continue; }
            each(line[..sp], value, into);
        }
        if (!ok) Malformed++;
        return true;
    }

    private delegate void KeyValueHandler(ReadOnlySpan<byte> key, ulong value, CgroupStats into);

    private static readonly KeyValueHandler V1CpuStat = static (k, v, s) =>
    {
        if (k.SequenceEqual("nr_periods"u8)) s.CfsPeriods = v;
        else if (k.SequenceEqual("nr_throttled"u8)) s.CfsThrottledPeriods = v;
        else if (k.SequenceEqual("throttled_time"u8)) s.CfsThrottledNs = v;
    };

    // cAdvisor takes the hierarchical (total_*) figures in v1.
    private static readonly KeyValueHandler V1MemoryStat = static (k, v, s) =>
    {
        if (k.SequenceEqual("total_rss"u8)) s.MemoryRss = v;
        else if (k.SequenceEqual("total_cache"u8)) s.MemoryCache = v;
        else if (k.SequenceEqual("total_swap"u8)) s.MemorySwap = v;
        else if (k.SequenceEqual("total_mapped_file"u8)) s.MemoryMappedFile = v;
        else if (k.SequenceEqual("total_inactive_file"u8)) s.MemoryWorkingSet = v; // inactive file for now; see ReadV1
        else if (k.SequenceEqual("total_pgfault"u8)) s.PageFaults = v;
        else if (k.SequenceEqual("total_pgmajfault"u8)) s.MajorPageFaults = v;
    };

    private static readonly KeyValueHandler V1OomControl = static (k, v, s) =>
    {
        if (k.SequenceEqual("oom_kill"u8)) { s.OomKills = v; s.OomEvents = v; }
    };

    private static readonly KeyValueHandler V2CpuStat = static (k, v, s) =>
    {
        if (k.SequenceEqual("usage_usec"u8)) s.CpuUsageNs = v * 1000;
        else if (k.SequenceEqual("user_usec"u8)) s.CpuUserNs = v * 1000;
        else if (k.SequenceEqual("system_usec"u8)) s.CpuSystemNs = v * 1000;
        else if (k.SequenceEqual("nr_periods"u8)) s.CfsPeriods = v;
        else if (k.SequenceEqual("nr_throttled"u8)) s.CfsThrottledPeriods = v;
        else if (k.SequenceEqual("throttled_usec"u8)) s.CfsThrottledNs = v * 1000;
    };

    private static readonly KeyValueHandler V2MemoryStat = static (k, v, s) =>
    {
        if (k.SequenceEqual("anon"u8)) s.MemoryRss = v;
        else if (k.SequenceEqual("file"u8)) s.MemoryCache = v;
        else if (k.SequenceEqual("file_mapped"u8)) s.MemoryMappedFile = v;
        else if (k.SequenceEqual("inactive_file"u8)) s.MemoryWorkingSet = v; // inactive file for now; see ReadV2
        else if (k.SequenceEqual("pgfault"u8)) s.PageFaults = v;
        else if (k.SequenceEqual("pgmajfault"u8)) s.MajorPageFaults = v;
    };

    private static readonly KeyValueHandler V2MemoryEvents = static (k, v, s) =>
    {
        if (k.SequenceEqual("max"u8)) s.MemoryFailCount = v;
        else if (k.SequenceEqual("oom"u8)) s.OomEvents = v;
        else if (k.SequenceEqual("oom_kill"u8)) s.OomKills = v;
    };

    private bool ReadV1(byte[][] p, CgroupStats s)
    {
        bool any = false;
        if (Single(p[0], out s.CpuUsageNs))
        {
            any = true;
            s.Parts |= StatParts.Cpu;
            Single(p[1], out s.CpuUserNs);
            Single(p[2], out s.CpuSystemNs);
            KeyValues(p[3], V1CpuStat, s);
            if (Single(p[4], out ulong quota)) s.CpuQuotaUs = quota;
            Single(p[5], out s.CpuPeriodUs);
            Single(p[6], out s.CpuShares);
        }
        if (Single(p[7], out s.MemoryUsage))
        {
            any = true;
            s.Parts |= StatParts.Memory;
            KeyValues(p[8], V1MemoryStat, s);
            ulong inactive = s.MemoryWorkingSet;
            s.MemoryWorkingSet = s.MemoryUsage > inactive ? s.MemoryUsage - inactive : 0;
            Single(p[9], out s.MemoryFailCount);
            KeyValues(p[10], V1OomControl, s);
            // v1 reports "no limit" as a page-rounded huge number.
            if (Single(p[11], out ulong limit)) s.MemoryLimit = limit >= 0x7FFF_FFFF_FFFF_0000 ? 0 : limit;
        }
        if (Single(p[12], out s.Pids)) { any = true; s.Parts |= StatParts.Pids; }
        if (V1Io(p[13], bytes: true, s) | V1Io(p[14], bytes: false, s)) { any = true; s.Parts |= StatParts.Io; }
        return any;
    }

    private bool ReadV2(byte[][] p, CgroupStats s)
    {
        bool any = false;
        if (KeyValues(p[0], V2CpuStat, s))
        {
            any = true;
            s.Parts |= StatParts.Cpu;
            CpuMax(p[1], s);
            // cpu.weight (1..10000) back to shares, as the kubelet converts: shares = 2 + (weight - 1) * 262142 / 9999.
            if (Single(p[2], out ulong weight) && weight > 0) s.CpuShares = 2 + (weight - 1) * 262142 / 9999;
        }
        if (Single(p[3], out s.MemoryUsage))
        {
            any = true;
            s.Parts |= StatParts.Memory;
            KeyValues(p[4], V2MemoryStat, s);
            ulong inactive = s.MemoryWorkingSet;
            s.MemoryWorkingSet = s.MemoryUsage > inactive ? s.MemoryUsage - inactive : 0;
            KeyValues(p[5], V2MemoryEvents, s);
            Single(p[6], out s.MemorySwap);
            Single(p[7], out s.MemoryLimit);
        }
        if (Single(p[8], out s.Pids)) { any = true; s.Parts |= StatParts.Pids; }
        if (V2Io(p[9], s)) { any = true; s.Parts |= StatParts.Io; }
        return any;
    }

    /// <summary>cpu.max: "max 100000" or "50000 100000".</summary>
    private void CpuMax(byte[] path, CgroupStats s)
    {
        if (Load(path, out int n) != FileResult.Ok) return;
        var line = Trim(_buffer.AsSpan(0, n));
        int sp = line.IndexOf((byte)' ');
        if (sp < 0) { Malformed++; return; }
        if (!line[..sp].SequenceEqual("max"u8)) Utf8Parser.TryParse(line[..sp], out s.CpuQuotaUs, out _);
        Utf8Parser.TryParse(line[(sp + 1)..], out s.CpuPeriodUs, out _);
    }

    /// <summary>blkio.throttle.io_service_bytes / io_serviced: "8:0 Read 4096" lines, then "Total N".</summary>
    private bool V1Io(byte[] path, bool bytes, CgroupStats s)
    {
        if (Load(path, out int n) != FileResult.Ok) return false;
        var data = _buffer.AsSpan(0, n);
        while (data.Length > 0)
        {
            var line = NextLine(ref data);
            int sp1 = line.IndexOf((byte)' ');
            if (sp1 <= 0) continue;
            var rest = line[(sp1 + 1)..];
            int sp2 = rest.IndexOf((byte)' ');
            if (sp2 <= 0 || !Device(line[..sp1], out uint major, out uint minor)) continue; // "Total N"
            if (!Utf8Parser.TryParse(rest[(sp2 + 1)..], out ulong value, out _)) { Malformed++; continue; }
            var op = rest[..sp2];
            int i = Device(s, major, minor);
            var d = s.Io[i];
            if (op.SequenceEqual("Read"u8)) { if (bytes) d.ReadBytes = value; else d.ReadOps = value; }
            else if (op.SequenceEqual("Write"u8)) { if (bytes) d.WriteBytes = value; else d.WriteOps = value; }
            s.Io[i] = d;
        }
        return true;
    }

    /// <summary>io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device.</summary>
    private bool V2Io(byte[] path, CgroupStats s)
    {
        if (Load(path, out int n) != FileResult.Ok) return false;
        var data = _buffer.AsSpan(0, n);
        while (data.Length > 0)
        {
            var line = NextLine(ref data);
            int sp = line.IndexOf((byte)' ');
            if (sp <= 0 || !Device(line[..sp], out uint major, out uint minor)) continue;
            int i = Device(s, major, minor);
            var d = s.Io[i];
            var fields = line[(sp + 1)..];
            while (fields.Length > 0)
            {
                int next = fields.IndexOf((byte)' ');
                var field = next < 0 ? fields : fields[..next];
                fields = next < 0 ? [] : fields[(next + 1)..];
                int eq = field.IndexOf((byte)'=');
                if (eq <= 0 || !Utf8Parser.TryParse(field[(eq + 1)..], out ulong value, out _)) continue;
                var key = field[..eq];
                if (key.SequenceEqual("rbytes"u8)) d.ReadBytes = value;
                else if (key.SequenceEqual("wbytes"u8)) d.WriteBytes = value;
                else if (key.SequenceEqual("rios"u8)) d.ReadOps = value;
                else if (key.SequenceEqual("wios"u8)) d.WriteOps = value;
            }
            s.Io[i] = d;
        }
        return true;
    }

    /// <summary>The first process in the cgroup whose <c>cgroup.procs</c> is at <paramref name="procsPath"/>; 0 when none.</summary>
    public int FirstPid(byte[] procsPath)
    {
        if (Load(procsPath, out int n) != FileResult.Ok) return 0;
        var data = _buffer.AsSpan(0, n);
        return Utf8Parser.TryParse(NextLine(ref data), out int pid, out _) ? pid : 0;
    }

    /// <summary>
    /// /proc/PID/net/dev of a process in the pod: every interface but loopback, into
    /// <paramref name="into"/> (entries reused by name). False when the process is gone.
    /// </summary>
    public bool ReadNetDev(byte[] netDevPath, List<NetInterface> into)
    {
        if (Load(netDevPath, out int n) != FileResult.Ok) return false;
        var data = _buffer.AsSpan(0, n);
        int line = 0, seen = 0;
        Span<ulong> v = stackalloc ulong[16];
        while (data.Length > 0)
        {
            var text = NextLine(ref data);
            if (line++ < 2) continue; // two header lines
            int colon = text.IndexOf((byte)':');
            if (colon < 0) continue;
            var name = Trim(text[..colon]);
            if (name.SequenceEqual("lo"u8)) continue;
            var fields = text[(colon + 1)..];
            int k = 0;
            while (k < 16)
            {
                fields = fields.TrimStart((byte)' ');
                if (fields.IsEmpty || !Utf8Parser.TryParse(fields, out v[k], out int used)) break;
                fields = fields[used..];
                k++;
            }
            if (k < 12) { Malformed++; continue; }
            int i = 0;
            while (i < into.Count && !name.SequenceEqual(into[i].NameBytes)) i++;
            var iface = i < into.Count ? into[i] : new NetInterface { Name = System.Text.Encoding.ASCII.GetString(name), NameBytes = name.ToArray() };
            // receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs drop ...
            (iface.RxBytes, iface.RxPackets, iface.RxErrors, iface.RxDropped) = (v[0], v[1], v[2], v[3]);
            (iface.TxBytes, iface.TxPackets, iface.TxErrors, iface.TxDropped) = (v[8], v[9], v[10], v[11]);
            if (i < into.Count) into[i] = iface; else into.Add(iface);
            seen++;
        }
        if (seen < into.Count) into.RemoveRange(seen, into.Count - seen);
        return true;
    }

    private static bool Device(ReadOnlySpan<byte> text, out uint major, out uint minor)
    {
        minor = 0;
        int colon = text.IndexOf((byte)':');
        return Utf8Parser.TryParse(text[..Math.Max(colon, 0)], out major, out int used) && colon > 0 && used == colon
            && Utf8Parser.TryParse(text[(colon + 1)..], out minor, out _);
    }

    private static int Device(CgroupStats s, uint major, uint minor)
    {
        for (int i = 0; i < s.Io.Count; i++) if (s.Io[i].Major == major && s.Io[i].Minor == minor) return i;
        s.Io.Add(new BlockIo { Major = major, Minor = minor });
        return s.Io.Count - 1;
    }
}
