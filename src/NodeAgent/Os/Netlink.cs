using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace NodeAgent.Os;

/// <summary>
/// Builds netlink messages into one growing buffer, laid out as the kernel's uapi says
/// (linux/netlink.h): a 16-byte <c>nlmsghdr</c> (length, type, flags, sequence, port id), a
/// family header, then attributes (<c>nlattr</c>: 16-bit length, 16-bit type, payload padded to
/// 4 bytes), nested attributes carrying <see cref="Nested"/>. Host byte order unless a method
/// says big-endian (network order, as addresses, ports and nftables data are sent). Not thread
/// safe; one writer per request or batch.
/// </summary>
public sealed class NetlinkWriter
{
    public const ushort Request = 0x1, Ack = 0x4, Replace = 0x100, Excl = 0x200, Create = 0x400, Append = 0x800, Dump = 0x300;
    public const ushort Nested = 0x8000;

    private byte[] _buffer = new byte[4096];
    private int _length, _messageStart = -1;

    /// <summary>The messages written so far.</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);
    public int Length => _length;
    public void Clear() { _length = 0; _messageStart = -1; }

    /// <summary>Starts a message; <see cref="End"/> writes its length. Returns where the message starts.</summary>
    public int Begin(ushort type, ushort flags, uint sequence)
    {
        if (_messageStart >= 0) throw new InvalidOperationException("a netlink message is still open");
        _messageStart = _length;
        var h = Grow(16);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], sequence);
        return _messageStart;
    }

    public void End()
    {
        if (_messageStart < 0) throw new InvalidOperationException("no netlink message is open");
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(_messageStart), (uint)(_length - _messageStart));
        _messageStart = -1;
    }

    /// <summary>Adds <paramref name="flags"/> to the message that starts at <paramref name="messageStart"/> (what <see cref="Begin"/> returned).</summary>
    public void AddFlags(int messageStart, ushort flags)
    {
        var h = _buffer.AsSpan(messageStart + 6, 2);
        BinaryPrimitives.WriteUInt16LittleEndian(h, (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(h) | flags));
    }

    /// <summary>The generic netlink header (linux/genetlink.h): command, version, two reserved bytes.</summary>
    public void GenericHeader(byte command, byte version)
    {
        var h = Grow(4);
        h[0] = command;
        h[1] = version;
    }

    /// <summary>The nfnetlink header (linux/netfilter/nfnetlink.h): family, version 0, resource id big-endian.</summary>
    public void NetfilterHeader(byte family, ushort resourceId)
    {
        var h = Grow(4);
        h[0] = family;
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], resourceId);
    }

    public void Bytes(ushort type, ReadOnlySpan<byte> value)
    {
        var a = Grow(Align(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(a, (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(a[2..], type);
        value.CopyTo(a[4..]);
    }

    public void U8(ushort type, byte value) => Bytes(type, [value]);

    public void U16(ushort type, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        Bytes(type, b);
    }

    public void U32(ushort type, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Bytes(type, b);
    }

    public void U16BigEndian(ushort type, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(b, value);
        Bytes(type, b);
    }

    public void U32BigEndian(ushort type, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        Bytes(type, b);
    }

    public void U64BigEndian(ushort type, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        Bytes(type, b);
    }

    /// <summary>A NUL-terminated string (NLA_NUL_STRING / NLA_STRING both accept it).</summary>
    public void String(ushort type, string value)
    {
        int n = Encoding.UTF8.GetByteCount(value);
        var a = Grow(Align(4 + n + 1));
        BinaryPrimitives.WriteUInt16LittleEndian(a, (ushort)(4 + n + 1));
        BinaryPrimitives.WriteUInt16LittleEndian(a[2..], type);
        Encoding.UTF8.GetBytes(value, a[4..]);
    }

    /// <summary>Opens a nested attribute; pass the result to <see cref="EndNest"/>.</summary>
    public int Nest(ushort type)
    {
        int start = _length;
        var a = Grow(4);
        BinaryPrimitives.WriteUInt16LittleEndian(a[2..], (ushort)(type | Nested));
        return start;
    }

    public void EndNest(int start) => BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(start), (ushort)(_length - start));

    public static int Align(int n) => (n + 3) & ~3;

    /// <summary>Zeroed space at the end, 4-byte aligned in total.</summary>
    private Span<byte> Grow(int n)
    {
        if (_length + n > _buffer.Length) Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + n));
        var span = _buffer.AsSpan(_length, n);
        span.Clear();
        _length += n;
        return span;
    }
}

/// <summary>One message read back from the kernel.</summary>
public readonly ref struct NetlinkMessage(ushort type, ushort flags, uint sequence, ReadOnlySpan<byte> payload)
{
    public const ushort Error = 2, Done = 3;
    public ushort Type { get; } = type;
    public ushort Flags { get; } = flags;
    public uint Sequence { get; } = sequence;
    /// <summary>Everything after the 16-byte header.</summary>
    public ReadOnlySpan<byte> Payload { get; } = payload;

    /// <summary>For an <see cref="Error"/> message: 0 (an acknowledgement) or a positive errno.</summary>
    public int Errno => -BinaryPrimitives.ReadInt32LittleEndian(Payload);

    /// <summary>Splits a buffer the kernel returned into its messages.</summary>
    public static List<(ushort Type, ushort Flags, uint Sequence, int Offset, int Length)> Split(ReadOnlySpan<byte> buffer)
    {
        var result = new List<(ushort, ushort, uint, int, int)>();
        int offset = 0;
        while (offset + 16 <= buffer.Length)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer[offset..]);
            if (length < 16 || offset + length > buffer.Length) break;
            result.Add((BinaryPrimitives.ReadUInt16LittleEndian(buffer[(offset + 4)..]), BinaryPrimitives.ReadUInt16LittleEndian(buffer[(offset + 6)..]),
                BinaryPrimitives.ReadUInt32LittleEndian(buffer[(offset + 8)..]), offset + 16, length - 16));
            offset += NetlinkWriter.Align(length);
        }
        return result;
    }

    /// <summary>The attributes in <paramref name="data"/> (type without the nested flag, payload).</summary>
    public static List<(ushort Type, int Offset, int Length)> Attributes(ReadOnlySpan<byte> data)
    {
        var result = new List<(ushort, int, int)>();
        int offset = 0;
        while (offset + 4 <= data.Length)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(data[offset..]);
            if (length < 4 || offset + length > data.Length) break;
            result.Add(((ushort)(BinaryPrimitives.ReadUInt16LittleEndian(data[(offset + 2)..]) & 0x3fff), offset + 4, length - 4));
            offset += NetlinkWriter.Align(length);
        }
        return result;
    }
}

/// <summary>A netlink socket's failure: the kernel's errno and what was being done.</summary>
public sealed class NetlinkException(int errno, string message) : IOException(message)
{
    public int Errno { get; } = errno;
    public const int ENOENT = 2, EEXIST = 17, EPERM = 1, EPROTONOSUPPORT = 93, EAGAIN = 11;
}

/// <summary>
/// A netlink socket to the kernel (AF_NETLINK, SOCK_RAW, the given protocol: NETLINK_GENERIC 16,
/// NETLINK_NETFILTER 12, NETLINK_ROUTE 0). Blocking; one request at a time; not thread safe.
/// </summary>
public sealed partial class NetlinkSocket : IDisposable
{
    public const int Generic = 16, Netfilter = 12, Route = 0;
    private const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, SOL_SOCKET = 1, SO_RCVBUF = 8, SO_SNDBUF = 7, SOL_NETLINK = 270, NETLINK_EXT_ACK = 11, MSG_DONTWAIT = 0x40;
    private const int SO_RCVTIMEO = 20;
    private readonly int _fd;
    private byte[] _receive = new byte[1 << 16];

    /// <summary>
    /// Opens the socket in the caller's network namespace, or in the named one
    /// (<c>/var/run/netns/NAME</c>, as <c>ip netns</c> makes them): the thread enters it only to
    /// create the socket, which stays bound to that namespace.
    /// </summary>
    public NetlinkSocket(int protocol, string? netns = null)
    {
        _fd = netns is null ? Socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol) : InNamespace(netns, protocol);
        if (_fd < 0) throw Failure("socket(AF_NETLINK)");
        SetInt(SOL_SOCKET, SO_RCVBUF, 4 << 20);
        SetInt(SOL_SOCKET, SO_SNDBUF, 4 << 20);
        SetInt(SOL_NETLINK, NETLINK_EXT_ACK, 1);
        Span<long> timeout = [5, 0]; // struct timeval: a kernel that never answers is an error, not a hang
        unsafe
        {
            fixed (long* t = timeout) SetSockOpt(_fd, SOL_SOCKET, SO_RCVTIMEO, t, 16);
        }
    }

    private static int InNamespace(string netns, int protocol)
    {
        const int O_RDONLY = 0, O_CLOEXEC = 0x80000, CLONE_NEWNET = 0x40000000;
        int self = Open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (self < 0) throw Failure("open /proc/thread-self/ns/net");
        int target = Open(Path.Combine("/var/run/netns", netns), O_RDONLY | O_CLOEXEC);
        if (target < 0) { int e = Marshal.GetLastPInvokeError(); Close(self); throw Failure($"open netns {netns}", e); }
        try
        {
            if (SetNs(target, CLONE_NEWNET) != 0) throw Failure($"setns {netns}");
            int fd = Socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
            int errno = Marshal.GetLastPInvokeError();
            if (SetNs(self, CLONE_NEWNET) != 0) Environment.FailFast("cannot return to the network namespace of this thread");
            if (fd < 0) throw Failure("socket(AF_NETLINK)", errno);
            return fd;
        }
        finally
        {
            Close(target);
            Close(self);
        }
    }

    private unsafe void SetInt(int level, int name, int value) => SetSockOpt(_fd, level, name, &value, 4);

    /// <summary>Sends <paramref name="messages"/> (one or more, e.g. a batch) in one sendmsg.</summary>
    public unsafe void Send(ReadOnlySpan<byte> messages)
    {
        nint sent;
        fixed (byte* p = messages) sent = SendNative(_fd, p, messages.Length, 0);
        if (sent < 0) throw Failure("send");
        if (sent != messages.Length) throw new NetlinkException(0, $"netlink send: {sent} of {messages.Length} bytes sent");
    }

    /// <summary>Reads one datagram (one or more messages); <paramref name="wait"/> false returns 0 when nothing is queued.</summary>
    public unsafe ReadOnlySpan<byte> Receive(bool wait = true)
    {
        while (true)
        {
            nint n;
            fixed (byte* p = _receive) n = RecvNative(_fd, p, _receive.Length, wait ? 0 : MSG_DONTWAIT);
            if (n >= 0) return _receive.AsSpan(0, (int)n);
            int errno = Marshal.GetLastPInvokeError();
            if (errno == 4) continue; // EINTR
            if (!wait && errno == NetlinkException.EAGAIN) return [];
            throw Failure("recv", errno);
        }
    }

    /// <summary>
    /// Sends a request (flagged <see cref="NetlinkWriter.Ack"/>, or a dump) and reads the replies
    /// until its acknowledgement, an error or the end of the dump; <paramref name="onReply"/> sees each data message. A kernel error becomes a
    /// <see cref="NetlinkException"/> carrying the errno.
    /// </summary>
    public void Request(ReadOnlySpan<byte> message, uint sequence, string what, ReplyHandler? onReply = null)
    {
        Send(message);
        while (true)
        {
            var buffer = Receive();
            foreach (var (type, flags, seq, offset, length) in NetlinkMessage.Split(buffer))
            {
                if (seq != sequence) continue;
                var m = new NetlinkMessage(type, flags, seq, buffer.Slice(offset, length));
                if (type == NetlinkMessage.Error)
                {
                    if (m.Errno == 0) return;
                    throw new NetlinkException(m.Errno, $"{what}: {Marshal.GetPInvokeErrorMessage(m.Errno)} (errno {m.Errno})");
                }
                if (type == NetlinkMessage.Done) return;
                onReply?.Invoke(m);
            }
        }
    }

    public delegate void ReplyHandler(NetlinkMessage reply);

    public void Dispose() => Close(_fd);

    private static NetlinkException Failure(string call, int? errno = null)
    {
        int e = errno ?? Marshal.GetLastPInvokeError();
        return new NetlinkException(e, $"netlink {call}: {Marshal.GetPInvokeErrorMessage(e)} (errno {e})");
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static unsafe partial int SetSockOpt(int fd, int level, int name, void* value, int length);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static unsafe partial nint SendNative(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static unsafe partial nint RecvNative(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nstype);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
