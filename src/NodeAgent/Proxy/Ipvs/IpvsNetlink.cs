using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using NodeAgent.Os;

namespace NodeAgent.Proxy.Ipvs;

/// <summary>An IPVS virtual server: address, protocol and port, its scheduler and persistence (ClientIP affinity).</summary>
public sealed record IpvsService(IPAddress Address, string Protocol, int Port, string Scheduler, int PersistenceSeconds)
{
    public string Key => $"{Protocol}/{(Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{Address}]" : Address.ToString())}:{Port}";
}

/// <summary>An IPVS real server of a virtual server (masquerading forwarding, so DNAT as the nftables mode does).</summary>
public sealed record IpvsDestination(IPAddress Address, int Port, int Weight = 1)
{
    public string Key => Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{Address}]:{Port}" : $"{Address}:{Port}";
}

/// <summary>
/// The IPVS generic netlink messages, laid out as the kernel's uapi (linux/ip_vs.h,
/// linux/genetlink.h) defines them: the generic netlink family is named "IPVS", version 1;
/// commands carry a nested service (IPVS_CMD_ATTR_SERVICE 1) and, for destinations, a nested
/// destination (IPVS_CMD_ATTR_DEST 2). Addresses travel as the 16-byte <c>union nf_inet_addr</c>,
/// ports in network byte order, everything else in host order.
/// Tests: NodeAgent.Tests IpvsNetlinkTests (byte for byte).
/// </summary>
public static class IpvsNetlink
{
    public const string FamilyName = "IPVS";
    public const byte Version = 1;

    // Generic netlink controller (linux/genetlink.h).
    public const ushort GenlIdCtrl = 0x10;
    public const byte CtrlCmdGetFamily = 3;
    public const ushort CtrlAttrFamilyId = 1, CtrlAttrFamilyName = 2;

    // Commands (enum IPVS_CMD_*).
    public const byte CmdNewService = 1, CmdSetService = 2, CmdDelService = 3, CmdGetService = 4, CmdNewDest = 5, CmdSetDest = 6, CmdDelDest = 7, CmdGetDest = 8, CmdFlush = 17;

    // Top-level attributes (IPVS_CMD_ATTR_*).
    public const ushort CmdAttrService = 1, CmdAttrDest = 2;

    // Service attributes (IPVS_SVC_ATTR_*).
    public const ushort SvcAf = 1, SvcProtocol = 2, SvcAddr = 3, SvcPort = 4, SvcFwmark = 5, SvcSchedName = 6, SvcFlags = 7, SvcTimeout = 8, SvcNetmask = 9;

    // Destination attributes (IPVS_DEST_ATTR_*).
    public const ushort DestAddr = 1, DestPort = 2, DestFwdMethod = 3, DestWeight = 4, DestUThresh = 5, DestLThresh = 6, DestAddrFamily = 11;

    public const uint SvcFlagPersistent = 0x0001; // IP_VS_SVC_F_PERSISTENT
    public const uint ConnFlagMasq = 0x0000;      // IP_VS_CONN_F_MASQ
    public const ushort AfInet = 2, AfInet6 = 10;

    /// <summary>The schedulers the kernel ships (ip_vs_*.ko); the name is passed as is (at most 15 bytes).</summary>
    public static readonly string[] Schedulers = ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"];

    /// <summary>CTRL_CMD_GETFAMILY for "IPVS": the reply carries the family id IPVS commands are sent to.</summary>
    public static void GetFamily(NetlinkWriter w, uint sequence, string name = FamilyName)
    {
        w.Begin(GenlIdCtrl, NetlinkWriter.Request | NetlinkWriter.Ack, sequence);
        w.GenericHeader(CtrlCmdGetFamily, 1);
        w.String(CtrlAttrFamilyName, name);
        w.End();
    }

    public static void NewService(NetlinkWriter w, ushort family, uint sequence, IpvsService s) => Service(w, family, sequence, CmdNewService, s, full: true);
    public static void SetService(NetlinkWriter w, ushort family, uint sequence, IpvsService s) => Service(w, family, sequence, CmdSetService, s, full: true);
    public static void DelService(NetlinkWriter w, ushort family, uint sequence, IpvsService s) => Service(w, family, sequence, CmdDelService, s, full: false);

    public static void NewDest(NetlinkWriter w, ushort family, uint sequence, IpvsService s, IpvsDestination d) => Dest(w, family, sequence, CmdNewDest, s, d, full: true);
    public static void SetDest(NetlinkWriter w, ushort family, uint sequence, IpvsService s, IpvsDestination d) => Dest(w, family, sequence, CmdSetDest, s, d, full: true);
    public static void DelDest(NetlinkWriter w, ushort family, uint sequence, IpvsService s, IpvsDestination d) => Dest(w, family, sequence, CmdDelDest, s, d, full: false);

    /// <summary>Removes every virtual server (IPVS_CMD_FLUSH).</summary>
    public static void Flush(NetlinkWriter w, ushort family, uint sequence)
    {
        w.Begin(family, NetlinkWriter.Request | NetlinkWriter.Ack, sequence);
        w.GenericHeader(CmdFlush, Version);
        w.End();
    }

    private static void Service(NetlinkWriter w, ushort family, uint sequence, byte command, IpvsService s, bool full)
    {
        w.Begin(family, NetlinkWriter.Request | NetlinkWriter.Ack, sequence);
        w.GenericHeader(command, Version);
        ServiceAttributes(w, s, full);
        w.End();
    }

    private static void Dest(NetlinkWriter w, ushort family, uint sequence, byte command, IpvsService s, IpvsDestination d, bool full)
    {
        w.Begin(family, NetlinkWriter.Request | NetlinkWriter.Ack, sequence);
        w.GenericHeader(command, Version);
        ServiceAttributes(w, s, full: false); // the service is named, not described
        int nest = w.Nest(CmdAttrDest);
        Span<byte> addr = stackalloc byte[16];
        Address(d.Address, addr);
        w.Bytes(DestAddr, addr);
        w.U16BigEndian(DestPort, (ushort)d.Port);
        if (full)
        {
            w.U32(DestFwdMethod, ConnFlagMasq);
            w.U32(DestWeight, (uint)d.Weight);
            w.U32(DestUThresh, 0);
            w.U32(DestLThresh, 0);
        }
        w.U16(DestAddrFamily, d.Address.AddressFamily == AddressFamily.InterNetworkV6 ? AfInet6 : AfInet);
        w.EndNest(nest);
        w.End();
    }

    /// <summary>
    /// The nested service: family, protocol, address and port identify it; a full description
    /// (new or set) adds the scheduler, flags (persistent when it has affinity), the persistence
    /// timeout and the netmask persistence groups clients by (one address: /32 or /128).
    /// </summary>
    private static void ServiceAttributes(NetlinkWriter w, IpvsService s, bool full)
    {
        bool v6 = s.Address.AddressFamily == AddressFamily.InterNetworkV6;
        int nest = w.Nest(CmdAttrService);
        w.U16(SvcAf, v6 ? AfInet6 : AfInet);
        w.U16(SvcProtocol, Protocol(s.Protocol));
        Span<byte> addr = stackalloc byte[16];
        Address(s.Address, addr);
        w.Bytes(SvcAddr, addr);
        w.U16BigEndian(SvcPort, (ushort)s.Port);
        if (full)
        {
            w.String(SvcSchedName, s.Scheduler);
            Span<byte> flags = stackalloc byte[8]; // struct ip_vs_flags { __u32 flags; __u32 mask; }
            BinaryPrimitives.WriteUInt32LittleEndian(flags, s.PersistenceSeconds > 0 ? SvcFlagPersistent : 0);
            BinaryPrimitives.WriteUInt32LittleEndian(flags[4..], uint.MaxValue);
            w.Bytes(SvcFlags, flags);
            w.U32(SvcTimeout, (uint)Math.Max(0, s.PersistenceSeconds));
            w.U32(SvcNetmask, v6 ? 128u : uint.MaxValue);
        }
        w.EndNest(nest);
    }

    public static ushort Protocol(string protocol) => protocol switch
    {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        _ => throw new ArgumentException($"IPVS: unsupported protocol {protocol}", nameof(protocol)),
    };

    /// <summary><c>union nf_inet_addr</c>: an IPv4 address in the first 4 of 16 bytes, an IPv6 one in all 16.</summary>
    private static void Address(IPAddress ip, Span<byte> into)
    {
        into.Clear();
        if (!ip.TryWriteBytes(into, out _)) throw new ArgumentException($"IPVS: cannot encode address {ip}", nameof(ip));
    }

    /// <summary>Reads CTRL_ATTR_FAMILY_ID from a CTRL_CMD_NEWFAMILY reply's payload (after the 4-byte generic header).</summary>
    public static ushort? FamilyId(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 4) return null;
        var attributes = payload[4..];
        foreach (var (type, offset, length) in NetlinkMessage.Attributes(attributes))
            if (type == CtrlAttrFamilyId && length >= 2) return BinaryPrimitives.ReadUInt16LittleEndian(attributes[offset..]);
        return null;
    }
}
