using System.Net;
using System.Text;

namespace NodeAgent.Proxy;

/// <summary>The address family a ruleset is written for, with what its rules need to know of it.</summary>
public sealed record NftFamily(string Name, byte Nfproto, int AddressLength, int SourceOffset, int DestinationOffset, string AddressType)
{
    public static readonly NftFamily Ip = new("ip", 2, 4, 12, 16, "ipv4_addr");
    public static readonly NftFamily Ip6 = new("ip6", 10, 16, 8, 24, "ipv6_addr");
}

/// <summary>
/// One rule of a service or endpoint chain, kept both as the nft text the CLI takes and as what
/// it means (its kind and operands), from which <see cref="NftNetlink"/> writes the same
/// expressions nft would send. Equal rules are equal records.
/// </summary>
public sealed record NftRule(NftRule.Kinds Kind, string Text, string? Target = null, string? Address = null, string? Protocol = null, int Port = 0,
    int Modulus = 0, string? Set = null, string? Cidr = null)
{
    public enum Kinds
    {
        /// <summary><c>ip saddr A jump T</c> (hairpin: the endpoint talks to itself through the service).</summary>
        JumpIfSource,
        /// <summary><c>update @S { ip saddr }</c> (remember the client for affinity).</summary>
        UpdateAffinity,
        /// <summary><c>meta l4proto P dnat to A:port</c>.</summary>
        Dnat,
        /// <summary><c>ip daddr A P dport port ip saddr != CIDR jump T</c> (off-cluster clients of a ClusterIP).</summary>
        JumpIfOffCluster,
        /// <summary><c>ip saddr @S goto T</c> (an affine client goes back to its endpoint).</summary>
        GotoIfAffine,
        /// <summary><c>numgen random mod N == 0 goto T</c>.</summary>
        GotoRandom,
        Goto,
        Jump,
    }

    public static NftRule JumpIfSource(NftFamily f, string address, string target) => new(Kinds.JumpIfSource, $"{f.Name} saddr {address} jump {target}", target, address);
    public static NftRule UpdateAffinity(NftFamily f, string set) => new(Kinds.UpdateAffinity, $"update @{set} {{ {f.Name} saddr }}", Set: set);
    public static NftRule Dnat(NftFamily f, string protocol, string address, int port) =>
        new(Kinds.Dnat, f.Name == "ip6" ? $"meta l4proto {protocol} dnat to [{address}]:{port}" : $"meta l4proto {protocol} dnat to {address}:{port}", Address: address, Protocol: protocol, Port: port);
    public static NftRule JumpIfOffCluster(NftFamily f, string address, string protocol, int port, string cidr, string target) =>
        new(Kinds.JumpIfOffCluster, $"{f.Name} daddr {address} {protocol} dport {port} {f.Name} saddr != {cidr} jump {target}", target, address, protocol, port, Cidr: cidr);
    public static NftRule GotoIfAffine(NftFamily f, string set, string target) => new(Kinds.GotoIfAffine, $"{f.Name} saddr @{set} goto {target}", target, Set: set);
    public static NftRule GotoRandom(int modulus, string target) => new(Kinds.GotoRandom, $"numgen random mod {modulus} == 0 goto {target}", target, Modulus: modulus);
    public static NftRule Goto(string target) => new(Kinds.Goto, $"goto {target}", target);
    public static NftRule Jump(string target) => new(Kinds.Jump, $"jump {target}", target);

    public override string ToString() => Text;
}

/// <summary>An element of a verdict map: address (none in the NodePort maps) . protocol . port : verdict (<c>goto chain</c> or <c>drop</c>).</summary>
public sealed record NftElement(string Map, string? Address, string Protocol, int Port, string? GotoChain)
{
    public string KeyText => Address is null ? $"{Protocol} . {Port}" : $"{Address} . {Protocol} . {Port}";
    public string VerdictText => GotoChain is null ? "drop" : $"goto {GotoChain}";
    public string Text => $"{KeyText} : {VerdictText}";
}

/// <summary>An affinity set: client addresses that expire after the service's timeout.</summary>
public sealed record NftSet(string Name, int TimeoutSeconds)
{
    public string Text(NftFamily f) => $"{Name} {{ type {f.AddressType} ; flags dynamic,timeout ; timeout {TimeoutSeconds}s ; }}";
}

/// <summary>
/// The commands of a delta in the order references allow: elements out, chains emptied and
/// removed, sets removed, then new sets, chains, rules and elements. <see cref="Text"/> is the
/// transaction for <c>nft -f</c>; <see cref="NftNetlink.EncodeDelta"/> writes the same as one
/// netlink batch.
/// </summary>
public sealed class NftDelta(NftFamily family, string table)
{
    public NftFamily Family { get; } = family;
    public string Table { get; } = table;
    public List<NftElement> ElementsOut { get; } = [];
    public List<string> Flushes { get; } = [];
    public List<string> ChainDeletes { get; } = [];
    public List<string> SetDeletes { get; } = [];
    public List<NftSet> SetAdds { get; } = [];
    public List<string> ChainAdds { get; } = [];
    public List<(string Chain, NftRule Rule)> Rules { get; } = [];
    public List<NftElement> ElementsIn { get; } = [];

    public bool IsEmpty => ElementsOut.Count + Flushes.Count + ChainDeletes.Count + SetDeletes.Count + SetAdds.Count + ChainAdds.Count + Rules.Count + ElementsIn.Count == 0;

    public string Text
    {
        get
        {
            string t = $"{Family.Name} {Table}";
            var sb = new StringBuilder(256 * (1 + Rules.Count));
            foreach (var e in ElementsOut) sb.Append("delete element ").Append(t).Append(' ').Append(e.Map).Append(" { ").Append(e.KeyText).Append(" }\n");
            foreach (var c in Flushes) sb.Append("flush chain ").Append(t).Append(' ').Append(c).Append('\n');
            foreach (var c in ChainDeletes) sb.Append("delete chain ").Append(t).Append(' ').Append(c).Append('\n');
            foreach (var s in SetDeletes) sb.Append("delete set ").Append(t).Append(' ').Append(s).Append('\n');
            foreach (var s in SetAdds) sb.Append("add set ").Append(t).Append(' ').Append(s.Text(Family)).Append('\n');
            foreach (var c in ChainAdds) sb.Append("add chain ").Append(t).Append(' ').Append(c).Append('\n');
            foreach (var (c, r) in Rules) sb.Append("add rule ").Append(t).Append(' ').Append(c).Append(' ').Append(r.Text).Append('\n');
            foreach (var e in ElementsIn) sb.Append("add element ").Append(t).Append(' ').Append(e.Map).Append(" { ").Append(e.Text).Append(" }\n");
            return sb.ToString();
        }
    }

    public override string ToString() => Text;

    /// <summary>Parses a CIDR for rules (prefix bytes of the network).</summary>
    internal static (byte[] Network, int Prefix) Cidr(string cidr)
    {
        var n = IPNetwork.Parse(cidr);
        var bytes = n.BaseAddress.GetAddressBytes();
        return (bytes, n.PrefixLength);
    }
}

/// <summary>
/// A growing UTF-8 buffer for nft transactions (ASCII in practice: names are sanitized), reused
/// from one write to the next by its single owner; <see cref="Written"/> is valid until <see cref="Reset"/>.
/// </summary>
public sealed class Utf8Text
{
    private byte[] _buffer = new byte[64 * 1024];
    private int _length;

    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, _length);

    public void Reset()
    {
        _length = 0;
        // Do not keep a huge buffer after the table shrank a lot.
        if (_buffer.Length > 256 * 1024 * 1024) _buffer = new byte[64 * 1024];
    }

    public Utf8Text Append(string s)
    {
        Ensure(Encoding.UTF8.GetMaxByteCount(s.Length));
        _length += Encoding.UTF8.GetBytes(s, _buffer.AsSpan(_length));
        return this;
    }

    public Utf8Text Append(char c)
    {
        if (c < 0x80)
        {
            Ensure(1);
            _buffer[_length++] = (byte)c;
            return this;
        }
        return Append(c.ToString());
    }

    public Utf8Text Append(StringBuilder sb)
    {
        foreach (var chunk in sb.GetChunks())
        {
            Ensure(Encoding.UTF8.GetMaxByteCount(chunk.Length));
            _length += Encoding.UTF8.GetBytes(chunk.Span, _buffer.AsSpan(_length));
        }
        return this;
    }

    private void Ensure(int more)
    {
        if (_length + more <= _buffer.Length) return;
        Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + more));
    }
}
