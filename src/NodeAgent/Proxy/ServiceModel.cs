using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NodeAgent.Proxy;

/// <summary>An endpoint of one service port: an address, the port it serves on, its conditions.</summary>
public readonly record struct ProxyEndpoint(string Ip, int Port, bool Ready, bool Serving, bool Terminating, bool Local);

/// <summary>
/// One service port of one IP family, as the proxy programs it. Equality is by content (the
/// lists are compared element by element), so a resync that finds the same service finds it equal.
/// </summary>
public sealed record ProxyServicePort(
    string Namespace, string Name, string PortName, string Protocol, int Port, int NodePort,
    string[] ClusterIps, string[] ExternalIps, string[] LoadBalancerIps,
    bool ExternalLocal, bool InternalLocal, int AffinitySeconds, ProxyEndpoint[] Endpoints)
{
    /// <summary>namespace/name:port/protocol, kube-proxy's ServicePortName plus the protocol.</summary>
    public string Key => $"{Namespace}/{Name}:{PortName}/{Protocol}";

    public bool Equals(ProxyServicePort? other) =>
        other is not null && Namespace == other.Namespace && Name == other.Name && PortName == other.PortName && Protocol == other.Protocol
        && Port == other.Port && NodePort == other.NodePort && ExternalLocal == other.ExternalLocal && InternalLocal == other.InternalLocal
        && AffinitySeconds == other.AffinitySeconds && ClusterIps.AsSpan().SequenceEqual(other.ClusterIps)
        && ExternalIps.AsSpan().SequenceEqual(other.ExternalIps) && LoadBalancerIps.AsSpan().SequenceEqual(other.LoadBalancerIps)
        && Endpoints.AsSpan().SequenceEqual(other.Endpoints);

    public override int GetHashCode() => HashCode.Combine(Namespace, Name, PortName, Protocol, Port, Endpoints.Length);

    /// <summary>
    /// The endpoints traffic may go to, as kube-proxy picks them: the ready ones; when there are
    /// none, the serving-but-terminating ones (so connections drain instead of failing).
    /// <paramref name="localOnly"/> restricts to this node's (a Local traffic policy).
    /// </summary>
    public List<ProxyEndpoint> Usable(bool localOnly)
    {
        var ready = new List<ProxyEndpoint>();
        var terminating = new List<ProxyEndpoint>();
        foreach (var e in Endpoints)
        {
            if (localOnly && !e.Local) continue;
            if (e.Ready) ready.Add(e);
            else if (e.Serving && e.Terminating) terminating.Add(e);
        }
        return ready.Count > 0 ? ready : terminating;
    }
}

/// <summary>
/// Turns Services and EndpointSlices (discovery.k8s.io/v1) into <see cref="ProxyServicePort"/>s per
/// IP family, as kube-proxy reads them: headless and ExternalName services, and services that name
/// another proxy (service.kubernetes.io/service-proxy-name), are not ours; slices are merged per
/// service and matched to service ports by port name; endpoints are deduplicated by address and
/// port; anything malformed (an unparsable IP, a port out of range, an unknown protocol) is
/// skipped with a reason, never failing the service's other ports or other services.
/// </summary>
public static class ServiceModel
{
    public const string ServiceNameLabel = "kubernetes.io/service-name", ProxyNameLabel = "service.kubernetes.io/service-proxy-name";

    /// <summary>The service ports of <paramref name="service"/> for <paramref name="family"/>; <paramref name="problems"/> collects what was skipped and why.</summary>
    public static List<ProxyServicePort> Build(JsonObject service, IEnumerable<JsonObject> slices, AddressFamily family, string nodeName, List<string> problems)
    {
        var result = new List<ProxyServicePort>();
        var meta = service["metadata"];
        string ns = Str(meta, "namespace"), name = Str(meta, "name");
        if (meta?["labels"]?[ProxyNameLabel] is not null) return result;
        var spec = service["spec"] as JsonObject;
        if (spec is null) return result;
        string type = Str(spec, "type") is { Length: > 0 } t ? t : "ClusterIP";
        if (type == "ExternalName") return result;

        if (Str(spec, "clusterIP") == "None") return result; // headless
        var clusterIps = Ips(spec["clusterIPs"] as JsonArray ?? (spec["clusterIP"] is { } one ? new JsonArray(one.DeepClone()) : null), family, $"Service {ns}/{name}: spec.clusterIPs", problems);
        var externalIps = Ips(spec["externalIPs"] as JsonArray, family, $"Service {ns}/{name}: spec.externalIPs", problems);
        var lbIps = type == "LoadBalancer"
            ? Ips(new JsonArray([.. ((service["status"]?["loadBalancer"]?["ingress"] as JsonArray)?.OfType<JsonObject>() ?? []).Select(i => i["ip"]?.DeepClone()).Where(i => i is not null)]),
                family, $"Service {ns}/{name}: status.loadBalancer.ingress", problems)
            : [];
        if (clusterIps.Length == 0 && externalIps.Length == 0 && lbIps.Length == 0) return result;
        bool externalLocal = Str(spec, "externalTrafficPolicy") == "Local"; // NodePorts, external and load-balancer IPs
        bool internalLocal = Str(spec, "internalTrafficPolicy") == "Local";
        int affinity = Str(spec, "sessionAffinity") == "ClientIP"
            ? (int)(spec["sessionAffinityConfig"]?["clientIP"]?["timeoutSeconds"] is JsonValue v && v.TryGetValue<long>(out long s) ? s : 10800)
            : 0;
        string wantedType = family == AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4";

        foreach (var p in (spec["ports"] as JsonArray)?.OfType<JsonObject>() ?? [])
        {
            string portName = Str(p, "name");
            string protocol = (Str(p, "protocol") is { Length: > 0 } pr ? pr : "TCP").ToLowerInvariant();
            int port = Int(p, "port"), nodePort = Int(p, "nodePort");
            if (protocol is not ("tcp" or "udp" or "sctp")) { problems.Add($"Service {ns}/{name}: port {portName}: unsupported protocol {Str(p, "protocol")}"); continue; }
            if (port is < 1 or > 65535) { problems.Add($"Service {ns}/{name}: port {portName}: invalid port {port}"); continue; }
            if (nodePort is < 0 or > 65535) { problems.Add($"Service {ns}/{name}: port {portName}: invalid nodePort {nodePort}"); nodePort = 0; }
            if (type is not ("NodePort" or "LoadBalancer")) nodePort = 0;

            var endpoints = new List<ProxyEndpoint>();
            var seen = new HashSet<(string, int)>();
            foreach (var slice in slices)
            {
                if (Str(slice, "addressType") != wantedType) continue;
                int target = 0;
                foreach (var sp in (slice["ports"] as JsonArray)?.OfType<JsonObject>() ?? [])
                    if (Str(sp, "name") == portName && (Str(sp, "protocol") is { Length: > 0 } spr ? spr : "TCP").Equals(protocol, StringComparison.OrdinalIgnoreCase))
                        target = Int(sp, "port");
                if (target is < 1 or > 65535) continue; // this slice serves other ports
                foreach (var e in (slice["endpoints"] as JsonArray)?.OfType<JsonObject>() ?? [])
                {
                    var conditions = e["conditions"];
                    // Unset ready means ready; unset serving means as ready; unset terminating means not (the API's defaults).
                    bool ready = conditions?["ready"]?.GetValueKind() != JsonValueKind.False;
                    bool serving = conditions?["serving"] is { } sv ? sv.GetValueKind() == JsonValueKind.True : ready;
                    bool terminating = conditions?["terminating"]?.GetValueKind() == JsonValueKind.True;
                    bool local = Str(e, "nodeName") == nodeName;
                    foreach (var a in (e["addresses"] as JsonArray) ?? [])
                    {
                        string ip = a?.GetValue<string>() ?? "";
                        if (!IPAddress.TryParse(ip, out var parsed) || parsed.AddressFamily != family)
                        {
                            problems.Add($"EndpointSlice {ns}/{Str(slice["metadata"], "name")}: invalid {wantedType} address \"{ip}\"");
                            continue;
                        }
                        string canonical = parsed.ToString();
                        if (seen.Add((canonical, target))) endpoints.Add(new ProxyEndpoint(canonical, target, ready, serving, terminating, local));
                    }
                }
            }
            endpoints.Sort((x, y) => x.Ip != y.Ip ? CompareIps(x.Ip, y.Ip) : x.Port.CompareTo(y.Port));
            result.Add(new ProxyServicePort(ns, name, portName, protocol, port, nodePort, clusterIps, externalIps, lbIps,
                externalLocal, internalLocal, affinity, [.. endpoints]));
        }
        return result;
    }

    private static int CompareIps(string a, string b)
    {
        var x = IPAddress.Parse(a).GetAddressBytes();
        var y = IPAddress.Parse(b).GetAddressBytes();
        return x.AsSpan().SequenceCompareTo(y);
    }

    private static string[] Ips(JsonArray? list, AddressFamily family, string field, List<string> problems)
    {
        if (list is null) return [];
        var ips = new List<string>();
        foreach (var n in list)
        {
            string text = n?.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : "";
            if (text is "" or "None") continue;
            if (!IPAddress.TryParse(text, out var ip)) { problems.Add($"{field}: invalid IP \"{text}\""); continue; }
            if (ip.AddressFamily == family && !ips.Contains(ip.ToString())) ips.Add(ip.ToString());
        }
        return [.. ips];
    }

    private static string Str(JsonNode? n, string name) => n?[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";

    private static int Int(JsonNode? n, string name) =>
        n?[name] is JsonValue v && v.TryGetValue<long>(out long l) ? (l is < int.MinValue or > int.MaxValue ? -1 : (int)l)
        : n?[name] is JsonValue s && s.TryGetValue<string>(out var text) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int i) ? i : 0;
}
