using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Meta;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// The EndpointSlice controller (pkg/controller/endpointslice) and the legacy Endpoints controller
/// in one loop, as a client of the API. For each Service with a selector: the selected pods that
/// have an IP and have not finished become endpoints with their conditions (ready, serving,
/// terminating), node name and targetRef; a named targetPort is resolved per pod, and pods whose
/// ports resolve alike share slices of at most 100 endpoints. Slices carry the
/// kubernetes.io/service-name and managed-by labels, the Service as controller owner and the
/// endpoints.kubernetes.io/last-change-trigger-time annotation; existing slices are reused and
/// written only when their content changes. The Endpoints object of the same name lists ready
/// addresses and notReadyAddresses (terminating pods left out, as upstream does).
/// Tests: NodeAgent.IntegrationTests ControllerTests.
/// </summary>
public sealed class EndpointSliceController(ApiClient api, TimeProvider time, ILogger<EndpointSliceController> log)
    : ControllerLoop(api, time, log, "/api/v1/services", "/api/v1/pods", "/apis/discovery.k8s.io/v1/endpointslices", "/api/v1/endpoints")
{
    public const string ManagedBy = "endpointslice.kubernetes.io/managed-by", ControllerName = "endpointslice-controller.k8s.io";
    public const string ServiceNameLabel = "kubernetes.io/service-name", TriggerTime = "endpoints.kubernetes.io/last-change-trigger-time";
    public const int MaxEndpointsPerSlice = 100;

    private const int Services = 0, Pods = 1, Slices = 2, Endpoints = 3;

    private readonly Dictionary<string, JsonObject> _services = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _pods = new(StringComparer.Ordinal);
    /// <summary>Managed slices by Service key, then slice name.</summary>
    private readonly Dictionary<string, Dictionary<string, JsonObject>> _slices = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonObject> _endpoints = new(StringComparer.Ordinal);

    protected override bool Exists(string key) => _services.ContainsKey(key) || _slices.ContainsKey(key) || _endpoints.ContainsKey(key);

    protected override void OnListed(int source, List<(string Key, JsonObject Obj)> items)
    {
        switch (source)
        {
            case Services: _services.Clear(); break;
            case Pods: _pods.Clear(); break;
            case Slices: _slices.Clear(); break;
            default: _endpoints.Clear(); break;
        }
        foreach (var (k, o) in items) OnChanged(source, "ADDED", k, o);
    }

    protected override void OnChanged(int source, string type, string key, JsonObject? obj)
    {
        bool deleted = type == "DELETED";
        switch (source)
        {
            case Services:
                if (deleted) _services.Remove(key); else _services[key] = obj!;
                Dirty.Add(key);
                break;
            case Pods:
                _pods.TryGetValue(key, out var before);
                if (deleted) _pods.Remove(key); else _pods[key] = obj!;
                string ns = key[..key.IndexOf('/')];
                foreach (var (sk, svc) in _services)
                {
                    if (!sk.StartsWith(ns, StringComparison.Ordinal) || sk.Length <= ns.Length || sk[ns.Length] != '/') continue;
                    var sel = Selector.OfMap(svc["spec"]?["selector"]);
                    if ((before is not null && sel.Matches(before)) || (obj is not null && sel.Matches(obj))) Dirty.Add(sk);
                }
                break;
            case Slices:
                if (obj?["metadata"]?["labels"] is not JsonObject labels || labels[ManagedBy]?.GetValue<string>() != ControllerName) return;
                string svcKey = ControllerKit.Str(obj["metadata"], "namespace") + "/" + labels[ServiceNameLabel]?.GetValue<string>();
                string name = ControllerKit.Str(obj["metadata"], "name");
                if (deleted)
                {
                    if (_slices.TryGetValue(svcKey, out var set) && set.Remove(name) && set.Count == 0) _slices.Remove(svcKey);
                }
                else
                {
                    if (!_slices.TryGetValue(svcKey, out var set)) _slices[svcKey] = set = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
                    set[name] = obj;
                }
                Dirty.Add(svcKey);
                break;
            default:
                if (deleted) _endpoints.Remove(key); else _endpoints[key] = obj!;
                Dirty.Add(key);
                break;
        }
    }

    /// <summary>
    /// One endpoint: a pod's address of one family with its resolved ports (the family and the
    /// ports decide which slices it may share). A dual-stack pod behind a dual-stack Service is two.
    /// </summary>
    private sealed record Endpoint(JsonObject Pod, string AddressType, string Ip, bool Ready, bool Serving, bool Terminating, string PortKey, JsonArray Ports, DateTimeOffset Changed);

    protected override async Task SyncAsync(string key, CancellationToken ct)
    {
        _services.TryGetValue(key, out var svc);
        var selector = svc?["spec"]?["selector"] as JsonObject;
        if (svc is null || selector is null || selector.Count == 0 || ControllerKit.Str(svc["spec"], "type") == "ExternalName")
        {
            // No Service, or one whose endpoints someone else manages: what this controller made goes.
            // (Slices also go with their owner through the garbage collector; this is faster.)
            foreach (var slice in _slices.GetValueOrDefault(key)?.Values.ToList() ?? [])
                await DeleteAsync($"/apis/discovery.k8s.io/v1/namespaces/{slice["metadata"]!["namespace"]}/endpointslices/{slice["metadata"]!["name"]}", ct).ConfigureAwait(false);
            if (svc is null && _endpoints.TryGetValue(key, out var ep) && ep["metadata"]?["labels"]?[ManagedByEndpoints] is null && IsOurs(ep))
                await DeleteAsync($"/api/v1/namespaces/{ep["metadata"]!["namespace"]}/endpoints/{ep["metadata"]!["name"]}", ct).ConfigureAwait(false);
            return;
        }
        var families = AddressTypes(svc);
        var endpoints = Collect(svc, families);
        await SyncSlicesAsync(key, svc, families, endpoints, ct).ConfigureAwait(false);
        // The Endpoints object (one address per pod) carries the Service's primary family only.
        await SyncEndpointsAsync(key, svc, endpoints.FindAll(e => e.AddressType == families[0]), ct).ConfigureAwait(false);
    }

    private const string ManagedByEndpoints = "endpoints.kubernetes.io/managed-by";

    /// <summary>The Endpoints objects this controller writes carry no marker upstream; one whose Service is gone is ours if it has subsets we could have written.</summary>
    private static bool IsOurs(JsonObject ep) => ep["metadata"]?["annotations"]?[TriggerTime] is not null;

    /// <summary>The Service's spec.ipFamilies (slices are per family), or the family of its clusterIP for one that predates them.</summary>
    private static List<string> AddressTypes(JsonObject svc)
    {
        var families = new List<string>(2);
        foreach (var f in (svc["spec"]?["ipFamilies"] as JsonArray) ?? [])
            if (f?.GetValueKind() == JsonValueKind.String && f.GetValue<string>() is "IPv4" or "IPv6" && !families.Contains(f.GetValue<string>())) families.Add(f.GetValue<string>());
        if (families.Count == 0) families.Add(ControllerKit.Str(svc["spec"], "clusterIP").Contains(':') ? "IPv6" : "IPv4");
        return families;
    }

    /// <summary>The pod's address of the family (status.podIPs, or podIP alone), or null.</summary>
    private static string? PodIpOf(JsonObject pod, string family)
    {
        bool v6 = family == "IPv6";
        foreach (var p in (pod["status"]?["podIPs"] as JsonArray)?.OfType<JsonObject>() ?? [])
            if (ControllerKit.Str(p, "ip") is { Length: > 0 } ip && ip.Contains(':') == v6) return ip;
        string one = ControllerKit.Str(pod["status"], "podIP");
        return one.Length > 0 && one.Contains(':') == v6 ? one : null;
    }

    private List<Endpoint> Collect(JsonObject svc, List<string> families)
    {
        var spec = svc["spec"]!;
        string ns = ControllerKit.Str(svc["metadata"], "namespace");
        var selector = Selector.OfMap(spec["selector"]);
        bool publishNotReady = spec["publishNotReadyAddresses"]?.GetValueKind() == JsonValueKind.True;
        var svcPorts = (spec["ports"] as JsonArray)?.OfType<JsonObject>().ToList() ?? [];
        var result = new List<Endpoint>();
        string prefix = ns + "/";
        foreach (var (pk, pod) in _pods)
        {
            if (!pk.StartsWith(prefix, StringComparison.Ordinal) || !selector.Matches(pod)) continue;
            string phase = ControllerKit.Str(pod["status"], "phase");
            if (ControllerKit.Str(pod["status"], "podIP").Length == 0 || phase is "Succeeded" or "Failed") continue;
            bool terminating = pod["metadata"]?["deletionTimestamp"] is not null;
            var (podReady, since) = ReadyCondition(pod);
            bool serving = podReady || publishNotReady;
            var ports = new JsonArray();
            var portKey = new System.Text.StringBuilder();
            foreach (var sp in svcPorts)
            {
                if (ResolvePort(pod, sp) is not { } number) continue;
                string protocol = sp["protocol"]?.GetValue<string>() ?? "TCP";
                var port = new JsonObject { ["name"] = sp["name"]?.GetValue<string>() ?? "", ["port"] = number, ["protocol"] = protocol };
                if (sp["appProtocol"] is { } ap) port["appProtocol"] = ap.DeepClone();
                ports.Add((JsonNode)port);
                portKey.Append(CultureInfo.InvariantCulture, $"{port["name"]}:{number}/{protocol};");
            }
            var created = ApiTime.TryParse(ControllerKit.Str(pod["metadata"], "creationTimestamp")) ?? DateTimeOffset.MinValue;
            foreach (var family in families)
                if (PodIpOf(pod, family) is { } ip)
                    result.Add(new Endpoint(pod, family, ip, serving && !terminating, serving, terminating, portKey.ToString(), ports,
                        since is { } s && s > created ? s : created));
        }
        // A stable order: slices are compared with what is stored, so the same set must render the same.
        result.Sort((a, b) => string.CompareOrdinal(a.AddressType, b.AddressType) is var c and not 0 ? c : string.CompareOrdinal(a.Ip, b.Ip));
        return result;
    }

    private static (bool Ready, DateTimeOffset? Since) ReadyCondition(JsonObject pod)
    {
        var c = (pod["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c["type"]?.GetValue<string>() == "Ready");
        return (c?["status"]?.GetValue<string>() == "True", ApiTime.TryParse(ControllerKit.Str(c, "lastTransitionTime")));
    }

    /// <summary>targetPort as a number, or the named container port of this pod (same protocol); null when the name is not there.</summary>
    private static int? ResolvePort(JsonObject pod, JsonObject svcPort)
    {
        var target = svcPort["targetPort"];
        if (target is null) return (int?)ControllerKit.Long(svcPort, "port");
        if (target.GetValueKind() == JsonValueKind.Number) return target.GetValue<int>();
        string name = target.GetValue<string>();
        if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int n)) return n;
        string protocol = svcPort["protocol"]?.GetValue<string>() ?? "TCP";
        foreach (var list in (string[])["containers", "initContainers"])
            foreach (var c in (pod["spec"]?[list] as JsonArray)?.OfType<JsonObject>() ?? [])
                foreach (var p in (c["ports"] as JsonArray)?.OfType<JsonObject>() ?? [])
                    if (ControllerKit.Str(p, "name") == name && (p["protocol"]?.GetValue<string>() ?? "TCP") == protocol)
                        return (int)ControllerKit.Long(p, "containerPort");
        return null;
    }

    private async Task SyncSlicesAsync(string key, JsonObject svc, List<string> families, List<Endpoint> endpoints, CancellationToken ct)
    {
        var meta = svc["metadata"]!;
        string ns = ControllerKit.Str(meta, "namespace"), name = ControllerKit.Str(meta, "name");

        // Desired slices: per family and port set, chunks of at most 100; a family without pods
        // keeps one empty slice (as upstream).
        var desired = new List<(string AddressType, string PortKey, JsonArray Ports, List<Endpoint> Members)>();
        foreach (var family in families)
        {
            int before = desired.Count;
            foreach (var group in endpoints.Where(e => e.AddressType == family).GroupBy(e => e.PortKey, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                var members = group.ToList();
                for (int i = 0; i < members.Count; i += MaxEndpointsPerSlice)
                    desired.Add((family, group.Key, members[0].Ports, members.GetRange(i, Math.Min(MaxEndpointsPerSlice, members.Count - i))));
            }
            if (desired.Count == before) desired.Add((family, "", new JsonArray(), []));
        }

        // Reuse existing slices of the same family (addressType is immutable): first those with
        // the same ports, in name order, then any.
        var existing = _slices.GetValueOrDefault(key)?.Values.OrderBy(s => ControllerKit.Str(s["metadata"], "name"), StringComparer.Ordinal).ToList() ?? [];
        var assigned = new JsonObject?[desired.Count];
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < desired.Count; i++)
            {
                if (assigned[i] is not null) continue;
                int j = existing.FindIndex(s => ControllerKit.Str(s, "addressType") == desired[i].AddressType && (pass == 1 || PortKeyOf(s) == desired[i].PortKey));
                if (j < 0) continue;
                assigned[i] = existing[j];
                existing.RemoveAt(j);
            }

        for (int i = 0; i < desired.Count; i++)
        {
            var (addressType, _, ports, members) = desired[i];
            var eps = new JsonArray();
            var trigger = ApiTime.TryParse(ControllerKit.Str(meta, "creationTimestamp")) ?? DateTimeOffset.MinValue;
            foreach (var e in members)
            {
                var pm = e.Pod["metadata"]!;
                var ep = new JsonObject
                {
                    ["addresses"] = new JsonArray(e.Ip),
                    ["conditions"] = new JsonObject { ["ready"] = e.Ready, ["serving"] = e.Serving, ["terminating"] = e.Terminating },
                    ["targetRef"] = new JsonObject { ["kind"] = "Pod", ["namespace"] = ns, ["name"] = pm["name"]!.DeepClone(), ["uid"] = pm["uid"]!.DeepClone() },
                };
                if (ControllerKit.Str(e.Pod["spec"], "nodeName") is { Length: > 0 } nodeName) ep["nodeName"] = nodeName;
                eps.Add((JsonNode)ep);
                if (e.Changed > trigger) trigger = e.Changed;
            }
            var current = assigned[i];
            var labels = new JsonObject();
            if (meta["labels"] is JsonObject svcLabels) foreach (var (k, v) in svcLabels) labels[k] = v?.DeepClone();
            labels[ServiceNameLabel] = name;
            labels[ManagedBy] = ControllerName;
            if (current is not null && JsonNode.DeepEquals(current["endpoints"] ?? new JsonArray(), eps)
                && JsonNode.DeepEquals(current["ports"] ?? new JsonArray(), ports) && ControllerKit.Str(current, "addressType") == addressType
                && JsonNode.DeepEquals(current["metadata"]?["labels"], labels))
                continue;
            var slice = new JsonObject
            {
                ["apiVersion"] = "discovery.k8s.io/v1", ["kind"] = "EndpointSlice",
                ["metadata"] = new JsonObject
                {
                    ["namespace"] = ns, ["labels"] = labels,
                    ["annotations"] = new JsonObject { [TriggerTime] = ApiTime.Format(trigger) },
                    ["ownerReferences"] = new JsonArray((JsonNode)ControllerKit.ControllerRef(svc, "v1", "Service")),
                },
                ["addressType"] = addressType, ["endpoints"] = eps, ["ports"] = ports.DeepClone(),
            };
            if (current is null)
            {
                slice["metadata"]!["generateName"] = name + "-";
                await Api.CreateAsync($"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", slice, ct).ConfigureAwait(false);
            }
            else
            {
                string sliceName = ControllerKit.Str(current["metadata"], "name");
                slice["metadata"]!["name"] = sliceName;
                slice["metadata"]!["resourceVersion"] = current["metadata"]!["resourceVersion"]!.DeepClone();
                try { await Api.UpdateAsync($"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{sliceName}", slice, ct).ConfigureAwait(false); }
                catch (ApiError e) when (e.IsConflict) { Later(key, TimeSpan.FromMilliseconds(100)); }
            }
        }
        foreach (var extra in existing)
            await DeleteAsync($"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{extra["metadata"]!["name"]}", ct).ConfigureAwait(false);
    }

    private static string PortKeyOf(JsonObject slice)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var p in (slice["ports"] as JsonArray)?.OfType<JsonObject>() ?? [])
            sb.Append(CultureInfo.InvariantCulture, $"{ControllerKit.Str(p, "name")}:{ControllerKit.Long(p, "port")}/{p["protocol"]?.GetValue<string>() ?? "TCP"};");
        return sb.ToString();
    }

    private async Task SyncEndpointsAsync(string key, JsonObject svc, List<Endpoint> endpoints, CancellationToken ct)
    {
        var meta = svc["metadata"]!;
        string ns = ControllerKit.Str(meta, "namespace"), name = ControllerKit.Str(meta, "name");
        var subsets = new JsonArray();
        var trigger = ApiTime.TryParse(ControllerKit.Str(meta, "creationTimestamp")) ?? DateTimeOffset.MinValue;
        foreach (var group in endpoints.Where(e => !e.Terminating).GroupBy(e => e.PortKey, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var ready = new JsonArray();
            var notReady = new JsonArray();
            JsonArray? ports = null;
            foreach (var e in group)
            {
                ports ??= e.Ports;
                var pm = e.Pod["metadata"]!;
                var address = new JsonObject { ["ip"] = e.Ip };
                if (ControllerKit.Str(e.Pod["spec"], "nodeName") is { Length: > 0 } nodeName) address["nodeName"] = nodeName;
                address["targetRef"] = new JsonObject { ["kind"] = "Pod", ["namespace"] = ns, ["name"] = pm["name"]!.DeepClone(), ["uid"] = pm["uid"]!.DeepClone() };
                (e.Ready ? ready : notReady).Add((JsonNode)address);
                if (e.Changed > trigger) trigger = e.Changed;
            }
            if (ports is null || ports.Count == 0) continue; // Endpoints need ports; a pod without any is in no subset
            var subset = new JsonObject();
            if (ready.Count > 0) subset["addresses"] = ready;
            if (notReady.Count > 0) subset["notReadyAddresses"] = notReady;
            // Endpoints ports carry no appProtocol-less empty names: drop an empty name as the API would.
            var epPorts = new JsonArray();
            foreach (var p in ports.OfType<JsonObject>())
            {
                var q = (JsonObject)p.DeepClone();
                if (ControllerKit.Str(q, "name").Length == 0) q.Remove("name");
                epPorts.Add((JsonNode)q);
            }
            subset["ports"] = epPorts;
            subsets.Add((JsonNode)subset);
        }
        var labels = new JsonObject();
        if (meta["labels"] is JsonObject svcLabels) foreach (var (k, v) in svcLabels) labels[k] = v?.DeepClone();
        _endpoints.TryGetValue(key, out var current);
        if (current is not null && JsonNode.DeepEquals(current["subsets"] ?? new JsonArray(), subsets)
            && JsonNode.DeepEquals(current["metadata"]?["labels"] ?? new JsonObject(), labels))
            return;
        var obj = new JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "Endpoints",
            ["metadata"] = new JsonObject
            {
                ["name"] = name, ["namespace"] = ns, ["labels"] = labels,
                ["annotations"] = new JsonObject { [TriggerTime] = ApiTime.Format(trigger) },
            },
            ["subsets"] = subsets,
        };
        if (current is null)
        {
            try { await Api.CreateAsync($"/api/v1/namespaces/{ns}/endpoints", obj, ct).ConfigureAwait(false); }
            catch (ApiError e) when (e.IsConflict) { Later(key, TimeSpan.FromMilliseconds(100)); }
        }
        else
        {
            obj["metadata"]!["resourceVersion"] = current["metadata"]!["resourceVersion"]!.DeepClone();
            try { await Api.UpdateAsync($"/api/v1/namespaces/{ns}/endpoints/{name}", obj, ct).ConfigureAwait(false); }
            catch (ApiError e) when (e.IsConflict) { Later(key, TimeSpan.FromMilliseconds(100)); }
        }
    }

    private async Task DeleteAsync(string path, CancellationToken ct)
    {
        try { await Api.DeleteAsync(path, null, ct).ConfigureAwait(false); }
        catch (ApiError e) when (e.IsNotFound) { }
    }
}
