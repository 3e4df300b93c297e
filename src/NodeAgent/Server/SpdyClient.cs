using System.Buffers.Binary;
using System.Text;

namespace NodeAgent.Server;

/// <summary>What <see cref="SpdyClient.ReadFrameAsync"/> returns; Payload is valid until the next read.</summary>
public readonly record struct SpdyFrame(SpdyFrameKind Kind, uint StreamId, bool Fin, ReadOnlyMemory<byte> Payload);

public enum SpdyFrameKind { Data, SynReply, RstStream, GoAway, Other }

/// <summary>
/// The client half of SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 §2.6), as much as the CRI
/// streaming server's exec and attach need: open streams with headers, send data with FIN for a
/// half-close, read data and the control frames that end streams, answer PINGs. Header blocks are
/// sent as zlib "stored" deflate blocks in one continuous stream without the preset dictionary,
/// which every SPDY reader accepts (the dictionary only matters to a compressor); header blocks
/// received (SYN_REPLY) are skipped unread, since nothing in them is needed. The peer, Go's
/// spdystream, does not enforce flow control, so no WINDOW_UPDATE is sent.
/// Reads come from one caller at a time; writes are serialised here.
/// </summary>
public sealed class SpdyClient(Stream connection) : IAsyncDisposable
{
    private const ushort Version = 3;
    private const byte FlagFin = 0x01;
    private const int MaxFrame = 1 << 24;

    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly byte[] _head = new byte[8];
    private readonly byte[] _readHead = new byte[8];
    private byte[] _payload = new byte[65536];
    private uint _nextStreamId = 1;
    private bool _headerStreamStarted;

    /// <summary>Sends SYN_STREAM with the given headers (names lower-case, as SPDY requires) and returns the stream id.</summary>
    public async Task<uint> OpenStreamAsync(IReadOnlyList<KeyValuePair<string, string>> headers, CancellationToken ct)
    {
        int blockLen = 4;
        foreach (var (k, v) in headers) blockLen += 8 + Encoding.UTF8.GetByteCount(k) + Encoding.UTF8.GetByteCount(v);
        if (blockLen > ushort.MaxValue) throw new ArgumentException("SPDY header block too large");
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            uint id = _nextStreamId;
            _nextStreamId += 2;
            int zlibHead = _headerStreamStarted ? 0 : 2;
            int compressed = zlibHead + 5 + blockLen + 5;
            int frameLen = 10 + compressed;
            var frame = new byte[8 + frameLen];
            var f = frame.AsSpan();
            ControlHeader(f, 1, 0, frameLen);                                   // SYN_STREAM
            BinaryPrimitives.WriteUInt32BigEndian(f[8..], id);
            BinaryPrimitives.WriteUInt32BigEndian(f[12..], 0);                  // associated stream
            f[16] = 0;                                                          // priority, unused
            f[17] = 0;                                                          // slot
            int p = 18;
            if (zlibHead > 0)
            {
                f[p++] = 0x78; f[p++] = 0x01;                                   // zlib header: deflate, no dictionary
                _headerStreamStarted = true;
            }
            f[p++] = 0x00;                                                      // stored block, not final
            BinaryPrimitives.WriteUInt16LittleEndian(f[p..], (ushort)blockLen);
            BinaryPrimitives.WriteUInt16LittleEndian(f[(p + 2)..], (ushort)~blockLen);
            p += 4;
            BinaryPrimitives.WriteUInt32BigEndian(f[p..], (uint)headers.Count);
            p += 4;
            foreach (var (k, v) in headers)
            {
                p += WriteString(f[p..], k);
                p += WriteString(f[p..], v);
            }
            // An empty stored block: the sync flush that makes a deflate reader hand out what it has.
            f[p++] = 0x00; f[p++] = 0x00; f[p++] = 0x00; f[p++] = 0xff; f[p++] = 0xff;
            await connection.WriteAsync(frame, ct).ConfigureAwait(false);
            await connection.FlushAsync(ct).ConfigureAwait(false);
            return id;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Sends data on a stream; <paramref name="fin"/> half-closes it (our side is done: stdin EOF).</summary>
    public async Task SendDataAsync(uint streamId, ReadOnlyMemory<byte> data, bool fin, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            do
            {
                var chunk = data[..Math.Min(data.Length, MaxFrame - 1)];
                data = data[chunk.Length..];
                BinaryPrimitives.WriteUInt32BigEndian(_head, streamId & 0x7fffffff);
                BinaryPrimitives.WriteUInt32BigEndian(_head.AsSpan(4), (uint)chunk.Length);
                _head[4] = fin && data.IsEmpty ? FlagFin : (byte)0;
                await connection.WriteAsync(_head, ct).ConfigureAwait(false);
                if (!chunk.IsEmpty) await connection.WriteAsync(chunk, ct).ConfigureAwait(false);
            } while (!data.IsEmpty);
            await connection.FlushAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>The next frame, or null when the connection has ended. PINGs are answered here.</summary>
    public async Task<SpdyFrame?> ReadFrameAsync(CancellationToken ct)
    {
        var head = _readHead;
        while (true)
        {
            if (!await ReadExactlyOrEndAsync(head, ct).ConfigureAwait(false)) return null;
            int length = (int)(BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(4)) & 0xffffff);
            byte flags = head[4];
            if (length > _payload.Length) _payload = new byte[Math.Max(length, _payload.Length * 2)];
            var payload = _payload.AsMemory(0, length);
            if (!await ReadExactlyOrEndAsync(payload, ct).ConfigureAwait(false)) return null;
            if ((head[0] & 0x80) == 0)
                return new SpdyFrame(SpdyFrameKind.Data, BinaryPrimitives.ReadUInt32BigEndian(head) & 0x7fffffff, (flags & FlagFin) != 0, payload);
            ushort type = BinaryPrimitives.ReadUInt16BigEndian(head.AsSpan(2));
            uint stream = length >= 4 ? BinaryPrimitives.ReadUInt32BigEndian(payload.Span) & 0x7fffffff : 0;
            switch (type)
            {
                case 2: return new SpdyFrame(SpdyFrameKind.SynReply, stream, (flags & FlagFin) != 0, default);
                case 3: return new SpdyFrame(SpdyFrameKind.RstStream, stream, true, default);
                case 7: return new SpdyFrame(SpdyFrameKind.GoAway, stream, true, default);
                case 6:                                                          // PING: echo it
                    await _writeLock.WaitAsync(ct).ConfigureAwait(false);
                    try
                    {
                        await connection.WriteAsync(head, ct).ConfigureAwait(false);
                        await connection.WriteAsync(payload, ct).ConfigureAwait(false);
                        await connection.FlushAsync(ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        _writeLock.Release();
                    }
                    continue;
                default:                                                         // SETTINGS, HEADERS, WINDOW_UPDATE
                    continue;
            }
        }
    }

    private async Task<bool> ReadExactlyOrEndAsync(Memory<byte> buffer, CancellationToken ct)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = await connection.ReadAsync(buffer[got..], ct).ConfigureAwait(false);
            if (n == 0) return false;
            got += n;
        }
        return true;
    }

    private static void ControlHeader(Span<byte> f, ushort type, byte flags, int length)
    {
        BinaryPrimitives.WriteUInt16BigEndian(f, (ushort)(0x8000 | Version));
        BinaryPrimitives.WriteUInt16BigEndian(f[2..], type);
        BinaryPrimitives.WriteUInt32BigEndian(f[4..], (uint)length);
        f[4] = flags;
    }

    private static int WriteString(Span<byte> dest, string s)
    {
        int n = Encoding.UTF8.GetBytes(s, dest[4..]);
        BinaryPrimitives.WriteUInt32BigEndian(dest, (uint)n);
        return 4 + n;
    }

    public ValueTask DisposeAsync()
    {
        _writeLock.Dispose();
        return connection.DisposeAsync();
    }
}
