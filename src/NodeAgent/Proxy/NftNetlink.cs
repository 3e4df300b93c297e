using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using NodeAgent.Os;

namespace NodeAgent.Proxy;

/// <summary>
/// An <see cref="NftDelta"/> as one nfnetlink batch (linux/netfilter/nf_tables.h), the bytes nft
/// itself sends for the same commands (checked against <c>nft --debug=mnl</c> and, in the kernel
/// tests, by listing what each path produced): NFNL_MSG_BATCH_BEGIN, the messages, BATCH_END,
/// applied atomically by the kernel. Unlike <c>nft -f</c> it needs nothing read back from the
/// kernel first (nft lists every chain, set and map of the table before it applies anything,
/// which costs O(table) for a one-element change): objects are named, never looked up.
/// </summary>
public static class NftNetlink
{
    private const ushort Subsys = 10; // NFNL_SUBSYS_NFTABLES
    private const ushort BatchBegin = 0x10, BatchEnd = 0x11;
    private const ushort NewChain = 3, DelChain = 5, NewRule = 6, DelRule = 8, NewSet = 9, DelSet = 11, NewSetElem = 12, DelSetElem = 14;

    // Attributes (enum nft_*_attributes).
    private const ushort ChainTable = 1, ChainName = 3;
    private const ushort RuleTable = 1, RuleChain = 2, RuleExpressions = 4;
    private const ushort SetTable = 1, SetName = 2, SetFlags = 3, SetKeyType = 4, SetKeyLen = 5, SetId = 10, SetTimeout = 11, SetUserdata = 13;
    private const ushort ElemListTable = 1, ElemListSet = 2, ElemListElements = 3;
    private const ushort ElemKey = 1, ElemData = 2;
    private const ushort ListElem = 1, ExprName = 1, ExprData = 2;
    private const ushort DataValue = 1, DataVerdict = 2, VerdictCode = 1, VerdictChain = 2;

    private const uint Reg1 = 1, Reg2 = 2, RegVerdict = 0;
    private const int Jump = -3, GotoCode = -4, Drop = 0;

    /// <summary>
    /// Writes <paramref name="delta"/> as a batch; <paramref name="describe"/> gets, per sequence
    /// number, the command it carries (for errors). The last command asks for an acknowledgement,
    /// so the sender always gets an answer. Returns the sequence number of that command.
    /// </summary>
    public static uint EncodeDelta(NetlinkWriter w, NftDelta delta, uint firstSequence, Dictionary<uint, string> describe)
    {
        uint seq = firstSequence;
        var f = delta.Family;
        string table = delta.Table;
        w.Begin((ushort)BatchBegin, NetlinkWriter.Request, seq++);
        w.NetfilterHeader(0, Subsys);
        w.End();

        foreach (var e in delta.ElementsOut)
        {
            describe[seq] = $"delete element {f.Name} {table} {e.Map} {{ {e.KeyText} }}";
            Element(w, f, table, e, seq++, delete: true);
        }
        foreach (var c in delta.Flushes)
        {
            describe[seq] = $"flush chain {f.Name} {table} {c}";
            Message(w, f, DelRule, NetlinkWriter.Request, seq++);
            w.String(RuleTable, table);
            w.String(RuleChain, c);
            w.End();
        }
        foreach (var c in delta.ChainDeletes)
        {
            describe[seq] = $"delete chain {f.Name} {table} {c}";
            Message(w, f, DelChain, NetlinkWriter.Request, seq++);
            w.String(ChainTable, table);
            w.String(ChainName, c);
            w.End();
        }
        foreach (var s in delta.SetDeletes)
        {
            describe[seq] = $"delete set {f.Name} {table} {s}";
            Message(w, f, DelSet, NetlinkWriter.Request, seq++);
            w.String(SetTable, table);
            w.String(SetName, s);
            w.End();
        }
        uint setId = 1;
        foreach (var s in delta.SetAdds)
        {
            describe[seq] = $"add set {f.Name} {table} {s.Text(f)}";
            Message(w, f, NewSet, NetlinkWriter.Request | NetlinkWriter.Create, seq++);
            w.String(SetTable, table);
            w.String(SetName, s.Name);
            w.U32BigEndian(SetFlags, 0x10 | 0x20); // NFT_SET_TIMEOUT | NFT_SET_EVAL (dynamic)
            w.U32BigEndian(SetKeyType, f.AddressLength == 4 ? 7u : 8u); // TYPE_IPADDR / TYPE_IP6ADDR
            w.U32BigEndian(SetKeyLen, (uint)f.AddressLength);
            w.U32BigEndian(SetId, setId++);
            w.U64BigEndian(SetTimeout, (ulong)s.TimeoutSeconds * 1000);
            // nft's userdata: the key's byte order (NFTNL_UDATA_SET_KEYBYTEORDER = big endian), so nft lists it as addresses.
            w.Bytes(SetUserdata, [0, 4, 2, 0, 0, 0]);
            w.End();
        }
        foreach (var c in delta.ChainAdds)
        {
            describe[seq] = $"add chain {f.Name} {table} {c}";
            Message(w, f, NewChain, NetlinkWriter.Request | NetlinkWriter.Create, seq++);
            w.String(ChainTable, table);
            w.String(ChainName, c);
            w.End();
        }
        foreach (var (c, r) in delta.Rules)
        {
            describe[seq] = $"add rule {f.Name} {table} {c} {r.Text}";
            Message(w, f, NewRule, NetlinkWriter.Request | NetlinkWriter.Create | NetlinkWriter.Append, seq++);
            w.String(RuleTable, table);
            w.String(RuleChain, c);
            int exprs = w.Nest(RuleExpressions);
            Rule(w, f, r);
            w.EndNest(exprs);
            w.End();
        }
        foreach (var e in delta.ElementsIn)
        {
            describe[seq] = $"add element {f.Name} {table} {e.Map} {{ {e.Text} }}";
            Element(w, f, table, e, seq++, delete: false);
        }

        if (seq == firstSequence + 1) throw new ArgumentException("an empty delta", nameof(delta));
        w.AddFlags(LastCommand(w), NetlinkWriter.Ack);
        w.Begin(BatchEnd, NetlinkWriter.Request, seq);
        w.NetfilterHeader(0, Subsys);
        w.End();
        return seq - 1;
    }

    /// <summary>Where the last message written starts.</summary>
    private static int LastCommand(NetlinkWriter w)
    {
        var messages = NetlinkMessage.Split(w.Written);
        return messages[^1].Offset - 16;
    }

    private static int Message(NetlinkWriter w, NftFamily f, ushort type, ushort flags, uint seq)
    {
        int start = w.Begin((ushort)((Subsys << 8) | type), flags, seq);
        w.NetfilterHeader(f.Nfproto, 0);
        return start;
    }

    private static void Element(NetlinkWriter w, NftFamily f, string table, NftElement e, uint seq, bool delete)
    {
        Message(w, f, delete ? DelSetElem : NewSetElem, delete ? NetlinkWriter.Request : (ushort)(NetlinkWriter.Request | NetlinkWriter.Create), seq);
        w.String(ElemListTable, table);
        w.String(ElemListSet, e.Map);
        int list = w.Nest(ElemListElements);
        int elem = w.Nest(ListElem);
        int key = w.Nest(ElemKey);
        // A concatenation: each part in its own 4-byte-aligned slot (address, protocol, port in network order).
        Span<byte> value = stackalloc byte[16 + 4 + 4];
        value.Clear();
        int n = 0;
        if (e.Address is not null)
        {
            WriteAddress(e.Address, value);
            n = f.AddressLength;
        }
        value[n] = Protocol(e.Protocol);
        BinaryPrimitives.WriteUInt16BigEndian(value[(n + 4)..], (ushort)e.Port);
        w.Bytes(DataValue, value[..(n + 8)]);
        w.EndNest(key);
        if (!delete)
        {
            int data = w.Nest(ElemData);
            Verdict(w, e.GotoChain is null ? Drop : GotoCode, e.GotoChain);
            w.EndNest(data);
        }
        w.EndNest(elem);
        w.EndNest(list);
        w.End();
    }

    private static void Verdict(NetlinkWriter w, int code, string? chain)
    {
        int verdict = w.Nest(DataVerdict);
        w.U32BigEndian(VerdictCode, unchecked((uint)code));
        if (chain is not null) w.String(VerdictChain, chain);
        w.EndNest(verdict);
    }

    /// <summary>The expressions of <paramref name="r"/>, as nft compiles its text.</summary>
    private static void Rule(NetlinkWriter w, NftFamily f, NftRule r)
    {
        Span<byte> addr = stackalloc byte[16];
        switch (r.Kind)
        {
            case NftRule.Kinds.JumpIfSource:
                Payload(w, 1, f.SourceOffset, f.AddressLength);
                WriteAddress(r.Address!, addr);
                Cmp(w, 0, addr[..f.AddressLength]);
                ImmediateVerdict(w, Jump, r.Target);
                break;
            case NftRule.Kinds.UpdateAffinity:
                Payload(w, 1, f.SourceOffset, f.AddressLength);
                Expr(w, "dynset", () =>
                {
                    w.U32BigEndian(4, Reg1);      // NFTA_DYNSET_SREG_KEY
                    w.U32BigEndian(3, 1);         // NFTA_DYNSET_OP: NFT_DYNSET_OP_UPDATE
                    w.String(1, r.Set!);          // NFTA_DYNSET_SET_NAME
                });
                break;
            case NftRule.Kinds.Dnat:
                L4Proto(w, r.Protocol!);
                WriteAddress(r.Address!, addr);
                ImmediateValue(w, Reg1, addr[..f.AddressLength]);
                Span<byte> port = stackalloc byte[2];
                BinaryPrimitives.WriteUInt16BigEndian(port, (ushort)r.Port);
                ImmediateValue(w, Reg2, port);
                Expr(w, "nat", () =>
                {
                    w.U32BigEndian(1, 1);         // NFTA_NAT_TYPE: NFT_NAT_DNAT
                    w.U32BigEndian(2, f.Nfproto); // NFTA_NAT_FAMILY
                    w.U32BigEndian(3, Reg1);      // NFTA_NAT_REG_ADDR_MIN
                    w.U32BigEndian(5, Reg2);      // NFTA_NAT_REG_PROTO_MIN
                    w.U32BigEndian(7, 2);         // NFTA_NAT_FLAGS: NF_NAT_RANGE_PROTO_SPECIFIED
                });
                break;
            case NftRule.Kinds.JumpIfOffCluster:
            {
                Payload(w, 1, f.DestinationOffset, f.AddressLength);
                WriteAddress(r.Address!, addr);
                Cmp(w, 0, addr[..f.AddressLength]);
                L4Proto(w, r.Protocol!);
                Payload(w, 2, 2, 2); // th dport
                Span<byte> p = stackalloc byte[2];
                BinaryPrimitives.WriteUInt16BigEndian(p, (ushort)r.Port);
                Cmp(w, 0, p);
                var (network, prefix) = NftDelta.Cidr(r.Cidr!);
                if (prefix == 0 || network.Length != f.AddressLength) throw new NotSupportedException($"cluster CIDR {r.Cidr} in a {f.Name} rule");
                if (prefix % 8 == 0)
                {
                    Payload(w, 1, f.SourceOffset, prefix / 8);
                    Cmp(w, 1, network.AsSpan(0, prefix / 8));
                }
                else
                {
                    // nft: the whole address, masked, compared with the masked network.
                    Payload(w, 1, f.SourceOffset, f.AddressLength);
                    Span<byte> mask = stackalloc byte[f.AddressLength];
                    for (int i = 0; i < mask.Length; i++) mask[i] = (byte)(i < prefix / 8 ? 0xff : i == prefix / 8 ? (0xff << (8 - prefix % 8)) & 0xff : 0);
                    var masked = network.AsSpan(0, f.AddressLength).ToArray();
                    for (int i = 0; i < masked.Length; i++) masked[i] &= mask[i];
                    var maskBytes = mask.ToArray();
                    Expr(w, "bitwise", () =>
                    {
                        w.U32BigEndian(1, Reg1);  // NFTA_BITWISE_SREG
                        w.U32BigEndian(2, Reg1);  // NFTA_BITWISE_DREG
                        w.U32BigEndian(3, (uint)maskBytes.Length); // NFTA_BITWISE_LEN
                        int m = w.Nest(4);        // NFTA_BITWISE_MASK
                        w.Bytes(DataValue, maskBytes);
                        w.EndNest(m);
                        int x = w.Nest(5);        // NFTA_BITWISE_XOR
                        w.Bytes(DataValue, new byte[maskBytes.Length]);
                        w.EndNest(x);
                    });
                    Cmp(w, 1, masked);
                }
                ImmediateVerdict(w, Jump, r.Target);
                break;
            }
            case NftRule.Kinds.GotoIfAffine:
                Payload(w, 1, f.SourceOffset, f.AddressLength);
                Expr(w, "lookup", () =>
                {
                    w.String(1, r.Set!);          // NFTA_LOOKUP_SET
                    w.U32BigEndian(2, Reg1);      // NFTA_LOOKUP_SREG
                });
                ImmediateVerdict(w, GotoCode, r.Target);
                break;
            case NftRule.Kinds.GotoRandom:
                Expr(w, "numgen", () =>
                {
                    w.U32BigEndian(1, Reg1);      // NFTA_NG_DREG
                    w.U32BigEndian(2, (uint)r.Modulus); // NFTA_NG_MODULUS
                    w.U32BigEndian(3, 1);         // NFTA_NG_TYPE: NFT_NG_RANDOM
                    w.U32BigEndian(4, 0);         // NFTA_NG_OFFSET
                });
                Cmp(w, 0, [0, 0, 0, 0]);
                ImmediateVerdict(w, GotoCode, r.Target);
                break;
            case NftRule.Kinds.Goto:
                ImmediateVerdict(w, GotoCode, r.Target);
                break;
            case NftRule.Kinds.Jump:
                ImmediateVerdict(w, Jump, r.Target);
                break;
            default:
                throw new NotSupportedException($"rule kind {r.Kind}");
        }
    }

    private static void Expr(NetlinkWriter w, string name, Action data)
    {
        int elem = w.Nest(ListElem);
        w.String(ExprName, name);
        int d = w.Nest(ExprData);
        data();
        w.EndNest(d);
        w.EndNest(elem);
    }

    /// <summary>payload load <paramref name="length"/> bytes at <paramref name="offset"/> of a header (1 network, 2 transport) into reg 1.</summary>
    private static void Payload(NetlinkWriter w, uint header, int offset, int length) => Expr(w, "payload", () =>
    {
        w.U32BigEndian(1, Reg1);          // NFTA_PAYLOAD_DREG
        w.U32BigEndian(2, header);        // NFTA_PAYLOAD_BASE
        w.U32BigEndian(3, (uint)offset);  // NFTA_PAYLOAD_OFFSET
        w.U32BigEndian(4, (uint)length);  // NFTA_PAYLOAD_LEN
    });

    /// <summary>cmp reg 1 against <paramref name="value"/>: op 0 eq, 1 neq.</summary>
    private static void Cmp(NetlinkWriter w, uint op, ReadOnlySpan<byte> value)
    {
        var copy = value.ToArray();
        Expr(w, "cmp", () =>
        {
            w.U32BigEndian(1, Reg1);      // NFTA_CMP_SREG
            w.U32BigEndian(2, op);        // NFTA_CMP_OP
            int d = w.Nest(3);            // NFTA_CMP_DATA
            w.Bytes(DataValue, copy);
            w.EndNest(d);
        });
    }

    /// <summary><c>meta l4proto P</c>: meta load into reg 1, compare one byte.</summary>
    private static void L4Proto(NetlinkWriter w, string protocol)
    {
        Expr(w, "meta", () =>
        {
            w.U32BigEndian(2, 16);        // NFTA_META_KEY: NFT_META_L4PROTO
            w.U32BigEndian(1, Reg1);      // NFTA_META_DREG
        });
        Cmp(w, 0, [Protocol(protocol)]);
    }

    private static void ImmediateVerdict(NetlinkWriter w, int code, string? chain) => Expr(w, "immediate", () =>
    {
        w.U32BigEndian(1, RegVerdict);    // NFTA_IMMEDIATE_DREG
        int d = w.Nest(2);                // NFTA_IMMEDIATE_DATA
        Verdict(w, code, chain);
        w.EndNest(d);
    });

    private static void ImmediateValue(NetlinkWriter w, uint register, ReadOnlySpan<byte> value)
    {
        var copy = value.ToArray();
        Expr(w, "immediate", () =>
        {
            w.U32BigEndian(1, register);
            int d = w.Nest(2);
            w.Bytes(DataValue, copy);
            w.EndNest(d);
        });
    }

    private static byte Protocol(string p) => p switch
    {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        _ => throw new NotSupportedException($"protocol {p}"),
    };

    private static void WriteAddress(string text, Span<byte> into)
    {
        if (!IPAddress.TryParse(text, out var ip) || !ip.TryWriteBytes(into, out _)) throw new NotSupportedException($"address {text}");
    }
}

/// <summary>
/// <see cref="INftables"/> that writes deltas as netlink batches (no table read first, so a
/// one-endpoint change costs the same at 30,000 services as at 10) and everything else through
/// the nft CLI (full resyncs, the damage check). A delta the encoder cannot express goes through
/// the CLI too.
/// </summary>
public sealed class NftNetlinkBackend(string? netns = null) : INftables, IDisposable
{
    private readonly NftCli _cli = new(netns);
    private NetlinkSocket? _socket;
    private readonly NetlinkWriter _writer = new();
    private readonly Dictionary<uint, string> _describe = [];
    private uint _sequence = (uint)Environment.TickCount;

    /// <summary>Deltas the encoder could not express, applied through the CLI instead.</summary>
    public int CliFallbacks { get; private set; }

    /// <summary>Deltas written as netlink batches.</summary>
    public int Batches { get; private set; }

    public Task ApplyAsync(string transaction, CancellationToken ct) => _cli.ApplyAsync(transaction, ct);

    public Task ApplyAsync(ReadOnlyMemory<byte> transaction, CancellationToken ct) => _cli.ApplyAsync(transaction, ct);

    public Task<bool> IntactAsync(string family, string table, CancellationToken ct) => _cli.IntactAsync(family, table, ct);

    public Task ApplyAsync(NftDelta delta, CancellationToken ct)
    {
        if (delta.IsEmpty) return Task.CompletedTask;
        _writer.Clear();
        _describe.Clear();
        uint first = _sequence;
        uint last;
        try { last = NftNetlink.EncodeDelta(_writer, delta, first, _describe); }
        catch (NotSupportedException)
        {
            CliFallbacks++;
            return _cli.ApplyAsync(delta.Text, ct);
        }
        _sequence = last + 2;
        try
        {
            _socket ??= new NetlinkSocket(NetlinkSocket.Netfilter, netns);
            Send(first, last);
            Batches++;
        }
        catch (NetlinkException e)
        {
            _socket?.Dispose();
            _socket = null;
            throw new NftException(e.Message);
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// The kernel handles a batch within the send and queues its answers before send returns:
    /// an error for each refused command (the whole batch is then aborted) and the
    /// acknowledgement the last command asked for. The first answer is awaited, the rest drained.
    /// </summary>
    private void Send(uint first, uint last)
    {
        _socket!.Send(_writer.Written);
        string? failure = null;
        bool answered = false;
        for (var buffer = _socket.Receive(); buffer.Length > 0; buffer = _socket.Receive(wait: false))
            foreach (var (type, _, seq, offset, length) in NetlinkMessage.Split(buffer))
            {
                if (seq < first || seq > last || type != NetlinkMessage.Error) continue;
                answered = true;
                int errno = -BinaryPrimitives.ReadInt32LittleEndian(buffer.Slice(offset, length));
                if (errno != 0) failure ??= $"{_describe.GetValueOrDefault(seq, "the batch")}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
            }
        if (failure is not null) throw new NetlinkException(0, failure);
        if (!answered) throw new NetlinkException(0, "the kernel did not answer the nftables batch");
    }

    public void Dispose() => _socket?.Dispose();
}
