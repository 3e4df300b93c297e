using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>
/// One service address range (--service-cluster-ip-range holds one, or two of different families
/// for a dual-stack cluster). The network address is never handed out, nor an IPv4 range's
/// broadcast address; the first address is the "kubernetes" Service's.
/// </summary>
public sealed class ServiceIpRange
{
    private readonly UInt128 _base, _last;

    public ServiceIpRange(string cidr)
    {
        if (!IPNetwork.TryParse(cidr, out var net))
            throw new ArgumentException($"--service-cluster-ip-range {cidr}: not a CIDR");
        bool v6 = net.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6;
        // Upstream's bounds: an IPv4 range of at least 4 addresses; an IPv6 one no larger than a /64 (of at least 4 addresses too).
        if (v6 ? net.PrefixLength is < 64 or > 126 : net.PrefixLength is < 8 or > 30)
            throw new ArgumentException($"--service-cluster-ip-range {cidr}: expected a prefix of {(v6 ? "64 to 126" : "8 to 30")} bits for an {(v6 ? "IPv6" : "IPv4")} range");
        Cidr = cidr;
        Family = v6 ? "IPv6" : "IPv4";
        AddressFamily = net.BaseAddress.AddressFamily;
        _base = ToNumber(net.BaseAddress);
        int hostBits = (v6 ? 128 : 32) - net.PrefixLength;
        _last = _base + ((UInt128.One << hostBits) - 1) - (v6 ? UInt128.Zero : UInt128.One);
    }

    public string Cidr { get; }

    /// <summary>"IPv4" or "IPv6", as spec.ipFamilies names them.</summary>
    public string Family { get; }

    public AddressFamily AddressFamily { get; }

    public string First => FromNumber(_base + 1);

    public bool Contains(IPAddress ip)
    {
        if (ip.AddressFamily != AddressFamily) return false;
        var v = ToNumber(ip);
        return v > _base && v <= _last;
    }

    /// <summary>A random address of the range other than the first (the "kubernetes" Service's).</summary>
    public string Pick()
    {
        UInt128 span = _last - _base - 1; // offsets 2 .. last
        UInt128 r = ((UInt128)(ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue) << 64) | (ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue);
        return FromNumber(_base + 2 + r % span);
    }

    private UInt128 ToNumber(IPAddress ip)
    {
        Span<byte> b = stackalloc byte[16];
        ip.TryWriteBytes(b, out int n);
        return n == 4 ? BinaryPrimitives.ReadUInt32BigEndian(b) : BinaryPrimitives.ReadUInt128BigEndian(b);
    }

    private string FromNumber(UInt128 v)
    {
        Span<byte> b = stackalloc byte[16];
        if (AddressFamily == AddressFamily.InterNetwork)
        {
            BinaryPrimitives.WriteUInt32BigEndian(b, (uint)v);
            return new IPAddress(b[..4]).ToString();
        }
        BinaryPrimitives.WriteUInt128BigEndian(b, v);
        return new IPAddress(b).ToString();
    }
}

/// <summary>
/// ClusterIP and NodePort allocation. Each allocated IP or port is a key in etcd
/// (<c>/registry/ranges/serviceips/IP</c>, <c>/registry/ranges/servicenodeports/PORT</c>) written in
/// the same transaction as the Service, guarded by "key absent": two concurrent creates can never
/// get the same IP, and deleting the Service releases its keys in the same transaction.
/// Dual-stack as upstream: spec.ipFamilyPolicy (SingleStack by default, PreferDualStack,
/// RequireDualStack) and spec.ipFamilies decide which families a Service gets an address of, in
/// which order; spec.clusterIPs holds one address per family and clusterIP is its first.
/// </summary>
public sealed class ServiceAllocator
{
    public const string IpPrefix = "/registry/ranges/serviceips/";
    public const string PortPrefix = "/registry/ranges/servicenodeports/";
    private const string SingleStack = "SingleStack", PreferDualStack = "PreferDualStack", RequireDualStack = "RequireDualStack";
    private static readonly string[] FamilyPolicies = [SingleStack, PreferDualStack, RequireDualStack];
    private static readonly string[] Families = ["IPv4", "IPv6"];

    private readonly ServiceIpRange[] _ranges;
    private readonly int _portMin, _portMax;

    public ServiceAllocator(string cidrs, string portRange)
    {
        var parts = cidrs.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length is < 1 or > 2)
            throw new ArgumentException($"--service-cluster-ip-range {cidrs}: expected one CIDR, or two of different IP families");
        _ranges = [.. parts.Select(c => new ServiceIpRange(c))];
        if (_ranges.Length == 2 && _ranges[0].Family == _ranges[1].Family)
            throw new ArgumentException($"--service-cluster-ip-range {cidrs}: the two CIDRs must be of different IP families (one IPv4, one IPv6)");
        var pr = portRange.Split('-');
        if (pr.Length != 2 || !int.TryParse(pr[0], out _portMin) || !int.TryParse(pr[1], out _portMax) || _portMin < 1 || _portMax > 65535 || _portMin > _portMax)
            throw new ArgumentException($"--service-node-port-range {portRange}: expected MIN-MAX");
        Cidr = cidrs;
    }

    public string Cidr { get; }

    /// <summary>The ranges in flag order: the first is the cluster's primary family.</summary>
    public IReadOnlyList<ServiceIpRange> Ranges => _ranges;

    public bool IsDualStack => _ranges.Length == 2;

    /// <summary>The first usable address of the primary range, reserved for the "kubernetes" Service.</summary>
    public string KubernetesServiceIp => _ranges[0].First;

    private ServiceIpRange? RangeOf(string family) => Array.Find(_ranges, r => r.Family == family);

    public bool InRange(string ip) => IPAddress.TryParse(ip, out var a) && Array.Exists(_ranges, r => r.Contains(a));

    private static string? FamilyOf(string ip) =>
        IPAddress.TryParse(ip, out var a) ? a.AddressFamily == AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4" : null;

    /// <summary>The key an address is reserved under: its canonical text, so two spellings of one IPv6 address collide.</summary>
    private static string IpKey(string ip) => IpPrefix + (IPAddress.TryParse(ip, out var a) ? a.ToString() : ip);

    private static List<string> Strings(JsonArray? a)
    {
        var list = new List<string>();
        foreach (var n in a ?? []) if (n is JsonValue v && v.GetValueKind() == JsonValueKind.String) list.Add(v.GetValue<string>());
        return list;
    }

    private static List<string> ClusterIps(JsonObject? spec)
    {
        var ips = Strings(spec.ArrOrNull("clusterIPs"));
        if (ips.Count == 0 && spec.Str("clusterIP") is { Length: > 0 } one) ips.Add(one);
        return ips;
    }

    /// <summary>The allocation keys a Service holds.</summary>
    public static List<string> KeysOf(JsonObject? svc)
    {
        var keys = new List<string>();
        var spec = svc?.ObjOrNull("spec");
        foreach (var ip in ClusterIps(spec)) if (ip.Length > 0 && ip != "None") keys.Add(IpKey(ip));
        foreach (var p in spec.ArrOrNull("ports").Objects())
            if (p.Long("nodePort") is { } np and > 0) keys.Add(PortPrefix + np);
        if (spec.Long("healthCheckNodePort") is { } hc and > 0) keys.Add(PortPrefix + hc);
        return keys.Distinct().ToList();
    }

    /// <summary>
    /// Fills in ClusterIPs and NodePorts where the Service needs them and has none (keeping the old
    /// object's where it had them). Returns which values were picked here (and may be re-picked on a collision).
    /// </summary>
    public HashSet<string> Assign(JsonObject svc, JsonObject? old, List<FieldError> errs)
    {
        var picked = new HashSet<string>(StringComparer.Ordinal);
        var spec = svc.Obj("spec");
        string type = spec.Str("type") ?? "ClusterIP";
        if (type == "ExternalName")
        {
            foreach (var f in (string[])["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"]) spec.Remove(f);
            return picked;
        }
        var oldSpec = old?.ObjOrNull("spec");
        if (oldSpec.Str("type") == "ExternalName") oldSpec = null;
        if (!AssignIps(spec, oldSpec, errs, picked)) return picked;
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

    /// <summary>
    /// spec.clusterIP(s), ipFamilies and ipFamilyPolicy as upstream settles them: families follow the
    /// addresses given, then the policy (unset: SingleStack, or RequireDualStack when two families
    /// are asked for, and for a headless Service without selector); a dual-stack policy adds the
    /// cluster's other family where it has one; each family without an address gets one from its
    /// range. On update, a Service without addresses keeps its old ones, and SingleStack over the
    /// old two keeps only the primary (the secondary is released). False when the request is invalid.
    /// </summary>
    private bool AssignIps(JsonObject spec, JsonObject? oldSpec, List<FieldError> errs, HashSet<string> picked)
    {
        int errors = errs.Count;
        var ips = Strings(spec.ArrOrNull("clusterIPs"));
        string? single = spec.Str("clusterIP");
        if (ips.Count == 0 && !string.IsNullOrEmpty(single)) ips.Add(single);
        else if (ips.Count > 0 && !string.IsNullOrEmpty(single) && single != ips[0])
            errs.Add(FieldError.Invalid("spec.clusterIPs[0]", ips[0], "must be same as clusterIP"));
        var oldIps = ClusterIps(oldSpec);
        if (ips.Count == 0) ips.AddRange(oldIps);
        var families = Strings(spec.ArrOrNull("ipFamilies"));
        string? policy = spec.Str("ipFamilyPolicy");

        if (policy is not null && !FamilyPolicies.Contains(policy)) errs.Add(FieldError.NotSupported("spec.ipFamilyPolicy", policy, FamilyPolicies));
        if (ips.Count > 2) errs.Add(FieldError.Invalid("spec.clusterIPs", string.Join(",", ips), "may only hold up to 2 values"));
        if (families.Count > 2) errs.Add(FieldError.Invalid("spec.ipFamilies", string.Join(",", families), "may only hold up to 2 values"));
        for (int i = 0; i < families.Count; i++)
        {
            if (!Families.Contains(families[i])) errs.Add(FieldError.NotSupported($"spec.ipFamilies[{i}]", families[i], Families));
            else if (families.IndexOf(families[i]) < i) errs.Add(FieldError.Duplicate($"spec.ipFamilies[{i}]", families[i]));
        }
        for (int i = 0; i < ips.Count; i++)
        {
            if (ips[i] == "None")
            {
                if (ips.Count > 1) errs.Add(FieldError.Invalid($"spec.clusterIPs[{i}]", "None", "must not be 'None' when more than one value is given"));
            }
            else if (FamilyOf(ips[i]) is null) errs.Add(FieldError.Invalid($"spec.clusterIPs[{i}]", ips[i], "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"));
        }
        if (ips.Count == 2 && FamilyOf(ips[0]) is { } f0 && f0 == FamilyOf(ips[1]))
            errs.Add(FieldError.Invalid("spec.clusterIPs[1]", ips[1], $"must be of the other IP family than clusterIPs[0] ({f0}) in a dual-stack Service"));
        if (errs.Count > errors) return false;

        bool headless = ips.Count > 0 && ips[0] == "None";
        // The families of the addresses given come first, in their order.
        for (int i = 0; i < ips.Count && !headless; i++)
        {
            string family = FamilyOf(ips[i])!;
            if (i >= families.Count) families.Add(family);
            else if (families[i] != family)
                errs.Add(FieldError.Invalid($"spec.ipFamilies[{i}]", families[i], $"does not match the IP family of spec.clusterIPs[{i}] ({ips[i]})"));
        }
        if (errs.Count > errors) return false;
        bool selectorless = spec.ObjOrNull("selector") is not { Count: > 0 };
        policy ??= headless && selectorless || families.Count == 2 ? RequireDualStack : SingleStack;
        // Downgrade: SingleStack over the two addresses the Service had keeps the primary one.
        if (policy == SingleStack && oldIps.Count == 2 && ips.Count == 2 && ips[0] == oldIps[0] && ips[1] == oldIps[1])
        {
            ips.RemoveAt(1);
            if (families.Count == 2) families.RemoveAt(1);
        }
        if (policy == SingleStack && families.Count > 1)
        {
            errs.Add(FieldError.Invalid("spec.ipFamilyPolicy", policy, "must be RequireDualStack or PreferDualStack when multiple IP families are specified"));
            return false;
        }
        if (headless && selectorless)
        {
            // Not checked against the cluster's ranges: no address is allocated, the families only
            // say which endpoint addresses the Service's users publish.
            if (families.Count == 0) families.Add(_ranges[0].Family);
            if (policy != SingleStack && families.Count == 1) families.Add(families[0] == "IPv4" ? "IPv6" : "IPv4");
        }
        else
        {
            if (policy == RequireDualStack && !IsDualStack)
            {
                errs.Add(FieldError.Invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services"));
                return false;
            }
            for (int i = 0; i < families.Count; i++)
                if (RangeOf(families[i]) is null) errs.Add(FieldError.Invalid($"spec.ipFamilies[{i}]", families[i], "not configured on this cluster"));
            if (errs.Count > errors) return false;
            if (families.Count == 0) families.Add(_ranges[0].Family);
            if (policy != SingleStack && IsDualStack && families.Count == 1) families.Add(_ranges[0].Family == families[0] ? _ranges[1].Family : _ranges[0].Family);
        }
        if (!headless)
        {
            for (int i = 0; i < families.Count; i++)
            {
                var range = RangeOf(families[i])!;
                if (i >= ips.Count)
                {
                    string ip = range.Pick();
                    ips.Add(ip);
                    picked.Add(IpKey(ip));
                }
                else if (!range.Contains(IPAddress.Parse(ips[i])) && !oldIps.Contains(ips[i]))
                {
                    string ip = ips[i];
                    errs.Add(FieldError.Invalid("spec.clusterIPs", $"[]string{{\"{ip}\"}}", $"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range.Cidr}"));
                }
            }
            if (errs.Count > errors) return false;
        }
        spec["clusterIP"] = ips[0];
        spec["clusterIPs"] = new JsonArray([.. ips.Select(x => (JsonNode?)x)]);
        spec["ipFamilies"] = new JsonArray([.. families.Select(x => (JsonNode?)x)]);
        spec["ipFamilyPolicy"] = policy;
        return true;
    }

    /// <summary>After a collision on <paramref name="taken"/>: picks again if it was ours to pick, else reports it.</summary>
    public bool Repick(JsonObject svc, string taken, HashSet<string> picked, List<FieldError> errs)
    {
        var spec = svc.Obj("spec");
        if (taken.StartsWith(IpPrefix, StringComparison.Ordinal))
        {
            string ip = taken[IpPrefix.Length..];
            var ips = ClusterIps(spec);
            int at = ips.FindIndex(x => IpKey(x) == taken);
            if (!picked.Remove(taken) || at < 0 || RangeOf(FamilyOf(ip) ?? "") is not { } range)
            {
                errs.Add(FieldError.Invalid("spec.clusterIPs", $"[]string{{\"{ip}\"}}", $"failed to allocate IP {ip}: provided IP is already allocated"));
                return false;
            }
            // Another address of the same family in the same place (the other family's stays).
            ips[at] = range.Pick();
            picked.Add(IpKey(ips[at]));
            spec["clusterIP"] = ips[0];
            spec["clusterIPs"] = new JsonArray([.. ips.Select(x => (JsonNode?)x)]);
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
