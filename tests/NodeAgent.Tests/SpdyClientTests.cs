using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using NodeAgent.Server;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>
/// The SPDY/3.1 frames the exec bridge writes, checked byte by byte; the live check against
/// containerd's streaming server is tests/NodeAgent.IntegrationTests/StreamingTests.
/// </summary>
public sealed class SpdyClientTests
{
    [Fact]
    public async Task SynStreamsCarryOneZlibStreamOfStoredBlocksThatAnyInflaterReads()
    {
        var wire = new MemoryStream();
        var spdy = new SpdyClient(wire);
        Assert.Equal(1u, await spdy.OpenStreamAsync([new("streamtype", "error")], default));
        Assert.Equal(3u, await spdy.OpenStreamAsync([new("streamtype", "stdin"), new("x", "y")], default));

        var bytes = wire.ToArray();
        var headerBlocks = new MemoryStream();
        int p = 0;
        var ids = new List<uint>();
        while (p < bytes.Length)
        {
            Assert.Equal(0x8003, BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(p)));     // control, version 3
            Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(p + 2)));     // SYN_STREAM
            int len = (int)(BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(p + 4)) & 0xffffff);
            ids.Add(BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(p + 8)));
            headerBlocks.Write(bytes, p + 18, len - 10);
            p += 8 + len;
        }
        Assert.Equal([1u, 3u], ids);
        headerBlocks.Position = 0;
        using var inflate = new ZLibStream(headerBlocks, CompressionMode.Decompress);
        var plain = new MemoryStream();
        await inflate.CopyToAsync(plain);
        var r = plain.ToArray().AsSpan();
        Assert.Equal(["streamtype", "error"], ReadBlock(ref r));
        Assert.Equal(["streamtype", "stdin", "x", "y"], ReadBlock(ref r));
        Assert.True(r.IsEmpty);
    }

    [Fact]
    public async Task DataFramesHalfCloseWithFinAndPingsAreEchoed()
    {
        var wire = new MemoryStream();
        var spdy = new SpdyClient(wire);
        await spdy.SendDataAsync(3, "hi"u8.ToArray(), fin: false, default);
        await spdy.SendDataAsync(3, ReadOnlyMemory<byte>.Empty, fin: true, default);
        Assert.Equal(new byte[] { 0, 0, 0, 3, 0, 0, 0, 2, (byte)'h', (byte)'i', 0, 0, 0, 3, 1, 0, 0, 0 }, wire.ToArray());

        // Incoming: PING (answered, not returned), SYN_REPLY for 1, data on 2 with FIN, then the end.
        byte[] incoming = [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2,
                           0x80, 3, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1,
                           0, 0, 0, 2, 1, 0, 0, 3, (byte)'o', (byte)'u', (byte)'t'];
        var duplex = new Duplex(incoming);
        var client = new SpdyClient(duplex);
        var reply = await client.ReadFrameAsync(default);
        Assert.Equal(SpdyFrameKind.SynReply, reply!.Value.Kind);
        Assert.Equal(1u, reply.Value.StreamId);
        var data = await client.ReadFrameAsync(default);
        Assert.Equal((SpdyFrameKind.Data, 2u, true, "out"), (data!.Value.Kind, data.Value.StreamId, data.Value.Fin, Encoding.ASCII.GetString(data.Value.Payload.Span)));
        Assert.Null(await client.ReadFrameAsync(default));
        Assert.Equal(incoming[..12], duplex.Written.ToArray());
    }

    private static string[] ReadBlock(ref Span<byte> r)
    {
        int n = (int)BinaryPrimitives.ReadUInt32BigEndian(r);
        r = r[4..];
        var list = new List<string>();
        for (int i = 0; i < 2 * n; i++)
        {
            int l = (int)BinaryPrimitives.ReadUInt32BigEndian(r);
            list.Add(Encoding.UTF8.GetString(r.Slice(4, l)));
            r = r[(4 + l)..];
        }
        return [.. list];
    }

    private sealed class Duplex(byte[] input) : Stream
    {
        private readonly MemoryStream _in = new(input);
        public MemoryStream Written { get; } = new();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _in.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Written.Write(buffer, offset, count);
    }
}
