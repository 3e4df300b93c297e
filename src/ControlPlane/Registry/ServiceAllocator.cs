using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>
/// ClusterIP and NodePort allocation. Each allocated IP or port is a key in etcd
/// (<c>/registry/ranges/serviceips/IP</c>, <c>/registry/ranges/servicenodeports/PORT</c>) written in
/// the same transaction as the Service, guarded by "key absent": two concurrent creates can never
/// get the same IP, and deleting the Service releases its keys in the same transaction.
/// </summary>
public sealed class ServiceAllocator
{
    public const string IpPrefix = "/registry/ranges/serviceips/";
    public const string PortPrefix = "/registry/ranges/servicenodeports/";

    private readonly uint _base;
    private readonly uint _size;
    private readonly int _portMin, _portMax;

    public ServiceAllocator(string cidr, string portRange)
    {
        var parts = cidr.Split('/');
        if (parts.Length != 2 || !IPAddress.TryParse(parts[0], out var ip) || ip.AddressFamily != AddressFamily.InterNetwork
            || !int.TryParse(parts[1], out int bits) || bits is < 8 or > 30)
            throw new ArgumentException($"--service-cluster-ip-range {cidr}: expected an IPv4 CIDR with a prefix of 8 to 30 bits");
        uint mask = bits == 0 ? 0 : uint.MaxValue << (32 - bits);
        _base = ToUint(ip) & mask;
        _size = (uint)(1L << (32 - bits));
        var pr = portRange.Split('-');
        if (pr.Length != 2 || !int.TryParse(pr[0], out _portMin) || !int.TryParse(pr[1], out _portMax) || _portMin < 1 || _portMax > 65535 || _portMin > _portMax)
            throw new ArgumentException($"--service-node-port-range {portRange}: expected MIN-MAX");
        Cidr = cidr;
    }

    public string Cidr { get; }

    /// <summary>The first usable address, reserved for the "kubernetes" Service.</summary>
    public string KubernetesServiceIp => FromUint(_base + 1);

    private static uint ToUint(IPAddress ip)
    {
        var b = ip.GetAddressBytes();
        return (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
    }

    private static string FromUint(uint v) => new IPAddress([(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v]).ToString();

    public bool InRange(string ip, out uint offset)
    {
        offset = 0;
        if (!IPAddress.TryParse(ip, out var a) || a.AddressFamily != AddressFamily.InterNetwork) return false;
        uint v = ToUint(a);
        if (v <= _base || v >= _base + _size - 1) return false;
        offset = v - _base;
        return true;
    }

    /// <summary>The allocation keys a Service holds.</summary>
    public static List<string> KeysOf(JsonObject? svc)
    {
        var keys = new List<string>();
        var spec = svc?.ObjOrNull("spec");
        if (spec.Str("clusterIP") is { Length: > 0 } ip && ip != "None") keys.Add(IpPrefix + ip);
        foreach (var p in spec.ArrOrNull("ports").Objects())
            if (p.Long("nodePort") is { } np and > 0) keys.Add(PortPrefix + np);
        if (spec.Long("healthCheckNodePort") is { } hc and > 0) keys.Add(PortPrefix + hc);
        return keys.Distinct().ToList();
    }

    /// <summary>
    /// Fills in a ClusterIP and NodePorts where the Service needs them and has none (keeping the old
    /// object's where it had them). Returns which values were picked here (and may be re-picked on a collision).
    /// </summary>
    public HashSet<string> Assign(JsonObject svc, JsonObject? old, List<FieldError> errs)
    {
        var picked = new HashSet<string>(StringComparer.Ordinal);
        var spec = svc.Obj("spec");
        string type = spec.Str("type") ?? "ClusterIP";
        if (type == "ExternalName")
        {
            spec.Remove("clusterIP");
            spec.Remove("clusterIPs");
            return picked;
        }
        string? ip = spec.Str("clusterIP");
        if (string.IsNullOrEmpty(ip) && old?.ObjOrNull("spec").Str("clusterIP") is { Length: > 0 } oldIp && old.ObjOrNull("spec").Str("type") != "ExternalName") ip = oldIp;
        if (string.IsNullOrEmpty(ip))
        {
            ip = FromUint(_base + 1 + (uint)Random.Shared.NextInt64(1, _size - 2));
            picked.Add(IpPrefix + ip);
        }
        else if (ip != "None" && !InRange(ip, out _) && ip != old?.ObjOrNull("spec").Str("clusterIP"))
        {
            errs.Add(FieldError.Invalid("spec.clusterIPs", $"[]string{{\"{ip}\"}}", $"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {Cidr}"));
        }
        spec["clusterIP"] = ip;
        spec["clusterIPs"] = new JsonArray(ip);
        if (ip != "None")
        {
            PodTemplates.Def(spec, "ipFamilies", new JsonArray("IPv4"));
            PodTemplates.Def(spec, "ipFamilyPolicy", "SingleStack");
        }
        else
        {
            PodTemplates.Def(spec, "ipFamilies", new JsonArray("IPv4"));
            PodTemplates.Def(spec, "ipFamilyPolicy", "SingleStack");
        }
        bool wantsNodePorts = type == "NodePort" || type == "LoadBalancer" && spec.Bool("allocateLoadBalancerNodePorts") != false;
        var oldPorts = old?.ObjOrNull("spec").ArrOrNull("ports")?.Objects().ToList() ?? [];
        int i = 0;
        foreach (var p in spec.ArrOrNull("ports").Objects())
        {
            long np = p.Long("nodePort") ?? 0;
            if (!wantsNodePorts)
            {
                if (type == "ClusterIP") p.Remove("nodePort");
                i++;
                continue;
            }
            if (np == 0)
            {
                var prev = oldPorts.FirstOrDefault(o => o.Long("port") == p.Long("port") && o.Str("protocol") == p.Str("protocol"));
                np = prev.Long("nodePort") ?? 0;
            }
            if (np == 0)
            {
                np = Random.Shared.Next(_portMin, _portMax + 1);
                picked.Add(PortPrefix + np);
            }
            else if ((np < _portMin || np > _portMax) && !oldPorts.Any(o => o.Long("nodePort") == np))
            {
                errs.Add(FieldError.Invalid($"spec.ports[{i}].nodePort", np, $"provided port is not in the valid range. The range of valid ports is {_portMin}-{_portMax}"));
            }
            p["nodePort"] = np;
            i++;
        }
        // A LoadBalancer with externalTrafficPolicy Local gets a health-check NodePort, where each
        // node's proxy says whether it has local endpoints (so the load balancer skips the others).
        bool wantsHealthCheck = type == "LoadBalancer" && spec.Str("externalTrafficPolicy") == "Local";
        long hc = spec.Long("healthCheckNodePort") ?? 0;
        if (!wantsHealthCheck) spec.Remove("healthCheckNodePort");
        else
        {
            if (hc == 0) hc = old?.ObjOrNull("spec").Long("healthCheckNodePort") ?? 0;
            if (hc == 0)
            {
                hc = Random.Shared.Next(_portMin, _portMax + 1);
                picked.Add(PortPrefix + hc);
            }
            else if ((hc < _portMin || hc > _portMax) && old?.ObjOrNull("spec").Long("healthCheckNodePort") != hc)
            {
                errs.Add(FieldError.Invalid("spec.healthCheckNodePort", hc, $"provided port is not in the valid range. The range of valid ports is {_portMin}-{_portMax}"));
            }
            spec["healthCheckNodePort"] = hc;
        }
        return picked;
    }

    /// <summary>After a collision on <paramref name="taken"/>: picks again if it was ours to pick, else reports it.</summary>
    public bool Repick(JsonObject svc, string taken, HashSet<string> picked, List<FieldError> errs)
    {
        var spec = svc.Obj("spec");
        if (taken.StartsWith(IpPrefix, StringComparison.Ordinal))
        {
            string ip = taken[IpPrefix.Length..];
            if (!picked.Remove(taken))
            {
                errs.Add(FieldError.Invalid("spec.clusterIPs", $"[]string{{\"{ip}\"}}", $"failed to allocate IP {ip}: provided IP is already allocated"));
                return false;
            }
            spec.Remove("clusterIP");
            spec.Remove("clusterIPs");
        }
        else
        {
            long port = long.Parse(taken[PortPrefix.Length..], System.Globalization.CultureInfo.InvariantCulture);
            if (spec.Long("healthCheckNodePort") == port)
            {
                if (!picked.Remove(taken))
                {
                    errs.Add(FieldError.Invalid("spec.healthCheckNodePort", port, "provided port is already allocated"));
                    return false;
                }
                spec.Remove("healthCheckNodePort");
            }
            int i = 0;
            foreach (var p in spec.ArrOrNull("ports").Objects())
            {
                if (p.Long("nodePort") == port)
                {
                    if (!picked.Remove(taken))
                    {
                        errs.Add(FieldError.Invalid($"spec.ports[{i}].nodePort", port, "provided port is already allocated"));
                        return false;
                    }
                    p.Remove("nodePort");
                }
                i++;
            }
        }
        return true;
    }
}
