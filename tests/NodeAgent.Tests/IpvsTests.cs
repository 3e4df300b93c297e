using System.Net;
using NodeAgent.Os;
using NodeAgent.Proxy;
using NodeAgent.Proxy.Ipvs;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>
/// The IPVS generic netlink messages byte for byte against the kernel's uapi layout
/// (linux/netlink.h nlmsghdr, linux/genetlink.h genlmsghdr, linux/ip_vs.h attributes), and the
/// plan that turns service ports into virtual and real servers.
/// </summary>
public sealed class IpvsTests
{
    private static byte[] Hex(string text)
    {
        var lines = text.Split('\n').Select(l => l.IndexOf("//", StringComparison.Ordinal) is int i and >= 0 ? l[..i] : l);
        var digits = new string([.. string.Concat(lines).Where(Uri.IsHexDigit)]);
        return Convert.FromHexString(digits);
    }

    private static readonly IpvsService Web = new(IPAddress.Parse("10.96.0.10"), "tcp", 80, "rr", 0);

    [Fact]
    public void ResolvingTheFamilyIsACtrlGetFamilyForIpvs()
    {
        var w = new NetlinkWriter();
        IpvsNetlink.GetFamily(w, 1);
        Assert.Equal(Hex("""
            20000000 1000 0500 01000000 00000000   // nlmsghdr: len 32, GENL_ID_CTRL, REQUEST|ACK, seq 1, pid 0
            03 01 0000                             // genlmsghdr: CTRL_CMD_GETFAMILY, version 1
            0900 0200 49505653 00 000000           // CTRL_ATTR_FAMILY_NAME "IPVS\0", padded to 4
            """), w.Written.ToArray());
    }

    [Fact]
    public void ANewServiceCarriesEveryFieldTheKernelRequiresForAFullEntry()
    {
        var w = new NetlinkWriter();
        IpvsNetlink.NewService(w, 0x1234, 7, Web);
        Assert.Equal(Hex("""
            68000000 3412 0500 07000000 00000000   // nlmsghdr: len 104, IPVS family 0x1234, REQUEST|ACK, seq 7
            01 01 0000                             // IPVS_CMD_NEW_SERVICE, IPVS_GENL_VERSION 1
            5400 0180                              // IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED, len 84
              0600 0100 0200 0000                  // IPVS_SVC_ATTR_AF: AF_INET (u16)
              0600 0200 0600 0000                  // IPVS_SVC_ATTR_PROTOCOL: IPPROTO_TCP (u16)
              1400 0300 0a60000a 00000000 00000000 00000000   // IPVS_SVC_ATTR_ADDR: union nf_inet_addr
              0600 0400 0050 0000                  // IPVS_SVC_ATTR_PORT: 80, network order
              0700 0600 727200 00                  // IPVS_SVC_ATTR_SCHED_NAME "rr\0"
              0c00 0700 00000000 ffffffff          // IPVS_SVC_ATTR_FLAGS: struct ip_vs_flags { flags 0, mask ~0 }
              0800 0800 00000000                   // IPVS_SVC_ATTR_TIMEOUT: 0 (no persistence)
              0800 0900 ffffffff                   // IPVS_SVC_ATTR_NETMASK: /32
            """), w.Written.ToArray());
    }

    [Fact]
    public void AffinityMakesTheServicePersistentWithItsTimeoutAndIpv6UsesAPrefixNetmask()
    {
        var w = new NetlinkWriter();
        IpvsNetlink.SetService(w, 0x1234, 8, new IpvsService(IPAddress.Parse("fd00::a"), "udp", 53, "sh", 10800));
        Assert.Equal(Hex("""
            68000000 3412 0500 08000000 00000000
            02 01 0000                             // IPVS_CMD_SET_SERVICE
            5400 0180
              0600 0100 0a00 0000                  // AF_INET6
              0600 0200 1100 0000                  // IPPROTO_UDP
              1400 0300 fd000000 00000000 00000000 0000000a
              0600 0400 0035 0000                  // port 53
              0700 0600 736800 00                  // "sh\0"
              0c00 0700 01000000 ffffffff          // IP_VS_SVC_F_PERSISTENT
              0800 0800 302a0000                   // 10800 s
              0800 0900 80000000                   // 128
            """), w.Written.ToArray());
    }

    [Fact]
    public void ADestinationNamesItsServiceAndDescribesItselfForMasquerading()
    {
        var w = new NetlinkWriter();
        IpvsNetlink.NewDest(w, 0x1234, 9, Web, new IpvsDestination(IPAddress.Parse("10.244.0.5"), 8080));
        Assert.Equal(Hex("""
            8c000000 3412 0500 09000000 00000000   // len 140
            05 01 0000                             // IPVS_CMD_NEW_DEST
            3000 0180                              // the service, identified only (len 48)
              0600 0100 0200 0000
              0600 0200 0600 0000
              1400 0300 0a60000a 00000000 00000000 00000000
              0600 0400 0050 0000
            4800 0280                              // IPVS_CMD_ATTR_DEST | NLA_F_NESTED, len 72
              1400 0100 0af40005 00000000 00000000 00000000   // IPVS_DEST_ATTR_ADDR
              0600 0200 1f90 0000                  // IPVS_DEST_ATTR_PORT 8080, network order
              0800 0300 00000000                   // IPVS_DEST_ATTR_FWD_METHOD: IP_VS_CONN_F_MASQ
              0800 0400 01000000                   // IPVS_DEST_ATTR_WEIGHT 1
              0800 0500 00000000                   // IPVS_DEST_ATTR_U_THRESH
              0800 0600 00000000                   // IPVS_DEST_ATTR_L_THRESH
              0600 0b00 0200 0000                  // IPVS_DEST_ATTR_ADDR_FAMILY AF_INET
            """), w.Written.ToArray());

        w.Clear();
        IpvsNetlink.DelDest(w, 0x1234, 10, Web, new IpvsDestination(IPAddress.Parse("10.244.0.5"), 8080));
        Assert.Equal(Hex("""
            6c000000 3412 0500 0a000000 00000000   // len 108
            07 01 0000                             // IPVS_CMD_DEL_DEST
            3000 0180
              0600 0100 0200 0000
              0600 0200 0600 0000
              1400 0300 0a60000a 00000000 00000000 00000000
              0600 0400 0050 0000
            2800 0280                              // the destination, identified only (len 40)
              1400 0100 0af40005 00000000 00000000 00000000
              0600 0200 1f90 0000
              0600 0b00 0200 0000
            """), w.Written.ToArray());
    }

    [Fact]
    public void DeletingAServiceAndFlushingAreShort()
    {
        var w = new NetlinkWriter();
        IpvsNetlink.DelService(w, 0x1234, 11, Web);
        Assert.Equal(Hex("""
            44000000 3412 0500 0b000000 00000000   // len 68
            03 01 0000                             // IPVS_CMD_DEL_SERVICE
            3000 0180
              0600 0100 0200 0000
              0600 0200 0600 0000
              1400 0300 0a60000a 00000000 00000000 00000000
              0600 0400 0050 0000
            """), w.Written.ToArray());
        w.Clear();
        IpvsNetlink.Flush(w, 0x1234, 12);
        Assert.Equal(Hex("14000000 3412 0500 0c000000 00000000 11 01 0000"), w.Written.ToArray());
    }

    [Fact]
    public void TheFamilyIdIsReadFromTheControllersReply()
    {
        // genlmsghdr (CTRL_CMD_NEWFAMILY), CTRL_ATTR_FAMILY_NAME "IPVS", CTRL_ATTR_FAMILY_ID 0x1f.
        var payload = Hex("01 02 0000  0900 0200 49505653 00 000000  0600 0100 1f00 0000");
        Assert.Equal((ushort)0x1f, IpvsNetlink.FamilyId(payload));
    }

    private static ProxyServicePort Port(string clusterIp, int nodePort, bool externalLocal, int affinity, params ProxyEndpoint[] endpoints) =>
        new("default", "web", "http", "tcp", 80, nodePort, [clusterIp], nodePort > 0 ? ["192.0.2.10"] : [], [], externalLocal, false, affinity, endpoints);

    [Fact]
    public void ThePlanHasAVirtualServerPerAddressAndTheUsableEndpointsAsRealServers()
    {
        var port = Port("10.96.0.10", 30080, externalLocal: true, affinity: 0,
            new ProxyEndpoint("10.244.0.5", 8080, true, true, false, Local: true),
            new ProxyEndpoint("10.244.1.5", 8080, true, true, false, Local: false),
            new ProxyEndpoint("10.244.1.6", 8080, false, true, true, Local: false));
        var desired = IpvsPlan.Desired([port], [IPAddress.Parse("172.18.0.2"), IPAddress.Parse("fd00::2")], "rr");
        Assert.Equal(["tcp/10.96.0.10:80", "tcp/172.18.0.2:30080", "tcp/192.0.2.10:80"], desired.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["10.244.0.5:8080", "10.244.1.5:8080"], desired["tcp/10.96.0.10:80"].Destinations.Select(d => d.Key));
        Assert.Equal(["10.244.0.5:8080"], desired["tcp/172.18.0.2:30080"].Destinations.Select(d => d.Key)); // Local: this node's only
    }

    [Fact]
    public void TheDiffTouchesOnlyWhatChanged()
    {
        var a = new ProxyEndpoint("10.244.0.5", 8080, true, true, false, true);
        var b = new ProxyEndpoint("10.244.0.6", 8080, true, true, false, true);
        var c = new ProxyEndpoint("10.244.0.7", 8080, true, true, false, true);
        var before = IpvsPlan.Desired([Port("10.96.0.10", 0, false, 0, a, b), Port("10.96.0.11", 0, false, 0, a) with { Name = "gone" }], [], "rr");
        var after = IpvsPlan.Desired([Port("10.96.0.10", 0, false, 0, a, c)], [], "rr");
        Assert.Empty(IpvsPlan.Diff(before, before));
        var ops = IpvsPlan.Diff(before, after).Select(o => o.ToString()).ToList();
        Assert.Equal([
            "DeleteService tcp/10.96.0.11:80 rr persistence=0",
            "DeleteDestination tcp/10.96.0.10:80 -> 10.244.0.6:8080 weight=1",
            "AddDestination tcp/10.96.0.10:80 -> 10.244.0.7:8080 weight=1",
        ], ops);

        // Turning on affinity changes the virtual server in place; its real servers stay.
        var sticky = IpvsPlan.Desired([Port("10.96.0.10", 0, false, 600, a, c)], [], "rr");
        Assert.Equal(["UpdateService tcp/10.96.0.10:80 rr persistence=600"], IpvsPlan.Diff(after, sticky).Where(o => o.Service.Address.ToString() == "10.96.0.10").Select(o => o.ToString()));
    }
}
