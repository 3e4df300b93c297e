using NodeAgent.Os;

namespace NodeAgent.Proxy.Ipvs;

/// <summary>The kernel's IPVS table (the seam between the IPVS plan and the kernel). Not thread safe: the proxy's one sync loop owns it.</summary>
public interface IIpvs
{
    /// <summary>
    /// Applies <paramref name="operations"/> in order; throws <see cref="NetlinkException"/> naming
    /// the first one the kernel refused. <paramref name="reconcile"/> (a full sync, when what the
    /// kernel holds is not known exactly): an add of something present updates it, a delete of
    /// something absent is done.
    /// </summary>
    void Apply(IReadOnlyList<IpvsOperation> operations, bool reconcile = false);
}

/// <summary>
/// IPVS through generic netlink (no ipvsadm): the family id is resolved once, then each
/// operation is one request answered by an acknowledgement. <see cref="Probe"/> is what the agent
/// runs at start in IPVS mode: a kernel without IPVS has no "IPVS" generic netlink family, and the
/// mode is refused with that said plainly.
/// </summary>
public sealed class IpvsKernel : IIpvs, IDisposable
{
    private readonly NetlinkSocket _socket;
    private readonly ushort _family;
    private readonly NetlinkWriter _writer = new();
    private uint _sequence = 1;

    private IpvsKernel(NetlinkSocket socket, ushort family) { _socket = socket; _family = family; }

    /// <summary>Whether this kernel has IPVS; when not, why, in words an operator can act on.</summary>
    public static (bool Available, string Reason) Probe()
    {
        try
        {
            using var k = Open();
            return (true, $"IPVS generic netlink family id {k._family}");
        }
        catch (NetlinkException e) when (e.Errno == NetlinkException.ENOENT)
        {
            return (false, "this kernel has no IPVS (the generic netlink family \"IPVS\" does not exist: the ip_vs module is not loaded or not built); load ip_vs or use proxy mode nftables");
        }
        catch (NetlinkException e)
        {
            return (false, $"cannot reach the kernel's IPVS: {e.Message}");
        }
    }

    /// <summary>Opens a generic netlink socket and resolves the IPVS family; <see cref="NetlinkException"/> (ENOENT) when the kernel has none.</summary>
    public static IpvsKernel Open()
    {
        var socket = new NetlinkSocket(NetlinkSocket.Generic);
        try
        {
            var w = new NetlinkWriter();
            IpvsNetlink.GetFamily(w, 1);
            ushort? id = null;
            socket.Request(w.Written, 1, "resolving the IPVS generic netlink family", reply => id ??= IpvsNetlink.FamilyId(reply.Payload));
            if (id is null) throw new NetlinkException(NetlinkException.ENOENT, "the kernel answered without an IPVS family id");
            return new IpvsKernel(socket, id.Value);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Apply(IReadOnlyList<IpvsOperation> operations, bool reconcile = false)
    {
        foreach (var op in operations)
        {
            try { Send(op); }
            catch (NetlinkException e) when (reconcile && e.Errno == NetlinkException.EEXIST && op.Kind is IpvsOperation.Kinds.AddService or IpvsOperation.Kinds.AddDestination)
            {
                Send(op with { Kind = op.Kind == IpvsOperation.Kinds.AddService ? IpvsOperation.Kinds.UpdateService : IpvsOperation.Kinds.UpdateDestination });
            }
            catch (NetlinkException e) when (reconcile && e.Errno is NetlinkException.ENOENT or 3 /* ESRCH: no such service */ && op.Kind is IpvsOperation.Kinds.DeleteService or IpvsOperation.Kinds.DeleteDestination)
            {
            }
        }
    }

    private void Send(IpvsOperation op)
    {
        _writer.Clear();
        uint seq = ++_sequence;
        op.Encode(_writer, _family, seq);
        _socket.Request(_writer.Written, seq, $"IPVS {op}");
    }

    public void Dispose() => _socket.Dispose();
}
