using System.Globalization;

using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>
/// meta.k8s.io/v1 Table output (<c>Accept: application/json;as=Table;v=v1;g=meta.k8s.io</c>) with the
/// columns of upstream's printers, so <c>kubectl get</c> (and <c>-o wide</c>, priority 1) prints what
/// users know.
/// </summary>
public static class Table
{
    public readonly record struct Column(string Name, string Type = "string", string Format = "", int Priority = 0);

    public sealed class Convertor(Column[] columns, Func<JsonObject, DateTimeOffset, JsonNode?[]> cells)
    {
        public Column[] Columns { get; } = columns;
        public JsonNode?[] Cells(JsonObject obj, DateTimeOffset now) => cells(obj, now);
    }

    private static Column NameCol => new("Name", "string", "name");
    private static Column AgeCol => new("Age");

    /// <summary>The default for kinds without a printer: Name and Created At, as upstream's default convertor.</summary>
    public static readonly Convertor Default = new([NameCol, new("Created At", "date")],
        (o, _) => [o.Meta().Str("name"), o.Meta().Str("creationTimestamp")]);

    public static void WriteColumns(Utf8JsonWriter w, Convertor c)
    {
        w.WriteStartArray("columnDefinitions");
        foreach (var col in c.Columns)
        {
            w.WriteStartObject();
            w.WriteString("name", col.Name);
            w.WriteString("type", col.Type);
            w.WriteString("format", col.Format);
            w.WriteString("description", "");
            w.WriteNumber("priority", col.Priority);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    /// <summary>One row; <paramref name="include"/> is includeObject: None, Metadata (default) or Object.</summary>
    public static void WriteRow(Utf8JsonWriter w, Convertor c, JsonObject obj, DateTimeOffset now, string include)
    {
        w.WriteStartObject();
        w.WriteStartArray("cells");
        foreach (var cell in c.Cells(obj, now))
        {
            if (cell is null) w.WriteNullValue(); else cell.WriteTo(w);
        }
        w.WriteEndArray();
        switch (include)
        {
            case "None":
                break;
            case "Object":
                w.WritePropertyName("object");
                obj.WriteTo(w);
                break;
            default:
                w.WriteStartObject("object");
                w.WriteString("kind", "PartialObjectMetadata");
                w.WriteString("apiVersion", "meta.k8s.io/v1");
                w.WritePropertyName("metadata");
                obj.Meta().WriteTo(w);
                w.WriteEndObject();
                break;
        }
        w.WriteEndObject();
    }

    /// <summary>apimachinery's HumanDuration, which kubectl prints in AGE columns.</summary>
    public static string Age(JsonObject obj, DateTimeOffset now) =>
        obj.Meta().Time("creationTimestamp") is { } t ? HumanDuration(now - t) : "<unknown>";

    public static string HumanDuration(TimeSpan d)
    {
        long seconds = (long)d.TotalSeconds;
        if (seconds < -1) return "<invalid>";
        if (seconds < 0) return "0s";
        if (seconds < 60 * 2) return $"{seconds}s";
        long minutes = (long)d.TotalMinutes;
        if (minutes < 10)
        {
            long s = seconds % 60;
            return s == 0 ? $"{minutes}m" : $"{minutes}m{s}s";
        }
        if (minutes < 60 * 3) return $"{minutes}m";
        long hours = (long)d.TotalHours;
        if (hours < 8)
        {
            long m = minutes % 60;
            return m == 0 ? $"{hours}h" : $"{hours}h{m}m";
        }
        if (hours < 48) return $"{hours}h";
        if (hours < 24 * 8)
        {
            long h = hours % 24;
            return h == 0 ? $"{hours / 24}d" : $"{hours / 24}d{h}h";
        }
        if (hours < 24 * 365 * 2) return $"{hours / 24}d";
        if (hours < 24 * 365 * 8)
        {
            long dy = hours / 24 % 365;
            return dy == 0 ? $"{hours / 24 / 365}y" : $"{hours / 24 / 365}y{dy}d";
        }
        return $"{hours / 24 / 365}y";
    }

    private static string Or(string? s, string dflt) => string.IsNullOrEmpty(s) ? dflt : s;

    public static readonly Convertor Pods = new(
        [NameCol, new("Ready"), new("Status"), new("Restarts", "string"), AgeCol,
         new("IP", Priority: 1), new("Node", Priority: 1), new("Nominated Node", Priority: 1), new("Readiness Gates", Priority: 1)],
        (o, now) =>
        {
            var spec = o.ObjOrNull("spec");
            var st = o.ObjOrNull("status");
            int total = spec.ArrOrNull("containers")?.Count ?? 0, ready = 0;
            long restarts = 0;
            string reason = Or(st.Str("reason"), st.Str("phase") ?? "Pending");
            DateTimeOffset? lastRestart = null;
            int initCount = spec.ArrOrNull("initContainers")?.Count ?? 0, i = 0;
            bool initializing = false;
            foreach (var cs in st.ArrOrNull("initContainerStatuses").Objects())
            {
                restarts += cs.Long("restartCount") ?? 0;
                var state = cs.ObjOrNull("state");
                if (state.ObjOrNull("terminated") is { } term && term.Long("exitCode") == 0) { i++; continue; }
                if (spec.ArrOrNull("initContainers") is { } ic && ic.Objects().FirstOrDefault(c => c.Str("name") == cs.Str("name")).Str("restartPolicy") == "Always"
                    && cs.Bool("started") == true) { i++; continue; }
                initializing = true;
                reason = state.ObjOrNull("terminated") is { } t
                    ? "Init:" + Or(t.Str("reason"), t.Long("signal") is { } sig and not 0 ? $"Signal:{sig}" : $"ExitCode:{t.Long("exitCode")}")
                    : state.ObjOrNull("waiting") is { } wt && !string.IsNullOrEmpty(wt.Str("reason")) && wt.Str("reason") != "PodInitializing"
                        ? "Init:" + wt.Str("reason")
                        : $"Init:{i}/{initCount}";
                break;
            }
            if (!initializing)
            {
                bool hasRunning = false;
                var statuses = st.ArrOrNull("containerStatuses")?.Objects().ToList() ?? [];
                for (int k = statuses.Count - 1; k >= 0; k--)
                {
                    var cs = statuses[k];
                    restarts += cs.Long("restartCount") ?? 0;
                    if (cs.ObjOrNull("lastState")?.ObjOrNull("terminated")?.Time("finishedAt") is { } fa && (lastRestart is null || fa > lastRestart)) lastRestart = fa;
                    var state = cs.ObjOrNull("state");
                    if (state.ObjOrNull("waiting") is { } w && !string.IsNullOrEmpty(w.Str("reason"))) reason = w.Str("reason")!;
                    else if (state.ObjOrNull("terminated") is { } t)
                        reason = Or(t.Str("reason"), t.Long("signal") is { } sig and not 0 ? $"Signal:{sig}" : $"ExitCode:{t.Long("exitCode")}");
                    else if (state?["running"] is not null && cs.Bool("ready") == true) { hasRunning = true; ready++; }
                }
                if (reason == "Completed" && hasRunning) reason = "Running";
            }
            if (o.Meta()["deletionTimestamp"] is not null) reason = st.Str("reason") == "NodeLost" ? "Unknown" : "Terminating";
            string restartCell = restarts.ToString(CultureInfo.InvariantCulture);
            if (lastRestart is { } lr && restarts > 0) restartCell += $" ({HumanDuration(now - lr)} ago)";
            string ip = st.ArrOrNull("podIPs")?.Objects().FirstOrDefault().Str("ip") ?? st.Str("podIP") ?? "<none>";
            var gates = spec.ArrOrNull("readinessGates");
            return [o.Meta().Str("name"), $"{ready}/{total}", reason, restartCell, Age(o, now),
                    ip, Or(spec.Str("nodeName"), "<none>"), Or(st.Str("nominatedNodeName"), "<none>"),
                    gates is { Count: > 0 } ? $"0/{gates.Count}" : "<none>"];
        });

    public static readonly Convertor Nodes = new(
        [NameCol, new("Status"), new("Roles"), AgeCol, new("Version"),
         new("Internal-IP", Priority: 1), new("External-IP", Priority: 1), new("OS-Image", Priority: 1),
         new("Kernel-Version", Priority: 1), new("Container-Runtime", Priority: 1)],
        (o, now) =>
        {
            var st = o.ObjOrNull("status");
            string status = "Unknown";
            foreach (var c in st.ArrOrNull("conditions").Objects())
                if (c.Str("type") == "Ready") status = c.Str("status") == "True" ? "Ready" : "NotReady"; // Unknown too, as upstream prints it
            if (o.ObjOrNull("spec").Bool("unschedulable") == true) status += ",SchedulingDisabled";
            var roles = new List<string>();
            foreach (var (k, _) in o.Meta().ObjOrNull("labels") ?? [])
                if (k.StartsWith("node-role.kubernetes.io/", StringComparison.Ordinal) && k.Length > 24) roles.Add(k[24..]);
                else if (k == "kubernetes.io/role") roles.Add(o.Meta().ObjOrNull("labels").Str(k) ?? "");
            roles.Sort(StringComparer.Ordinal);
            string Addr(string type) => st.ArrOrNull("addresses")?.Objects().FirstOrDefault(a => a.Str("type") == type).Str("address") ?? "<none>";
            var info = st.ObjOrNull("nodeInfo");
            return [o.Meta().Str("name"), status, roles.Count > 0 ? string.Join(",", roles) : "<none>", Age(o, now), info.Str("kubeletVersion") ?? "",
                    Addr("InternalIP"), Addr("ExternalIP"), Or(info.Str("osImage"), "<unknown>"), Or(info.Str("kernelVersion"), "<unknown>"),
                    Or(info.Str("containerRuntimeVersion"), "<unknown>")];
        });

    public static readonly Convertor Services = new(
        [NameCol, new("Type"), new("Cluster-IP"), new("External-IP"), new("Port(s)"), AgeCol, new("Selector", Priority: 1)],
        (o, now) =>
        {
            var spec = o.ObjOrNull("spec");
            string type = spec.Str("type") ?? "ClusterIP";
            var external = new List<string>();
            if (type == "ExternalName") external.Add(spec.Str("externalName") ?? "");
            foreach (var ing in o.ObjOrNull("status")?.ObjOrNull("loadBalancer").ArrOrNull("ingress").Objects() ?? [])
                external.Add(ing.Str("ip") ?? ing.Str("hostname") ?? "");
            foreach (var ip in spec.ArrOrNull("externalIPs") ?? []) external.Add(ip?.GetValue<string>() ?? "");
            string ext = external.Count > 0 ? string.Join(",", external) : type == "LoadBalancer" ? "<pending>" : "<none>";
            var ports = new List<string>();
            foreach (var p in spec.ArrOrNull("ports").Objects())
                ports.Add(p.Long("nodePort") is { } np and not 0 ? $"{p.Long("port")}:{np}/{p.Str("protocol")}" : $"{p.Long("port")}/{p.Str("protocol")}");
            string selector = spec.StringMap("selector") is { Count: > 0 } sel
                ? string.Join(",", sel.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value)) : "<none>";
            return [o.Meta().Str("name"), type, Or(spec.Str("clusterIP"), "<none>"), ext, ports.Count > 0 ? string.Join(",", ports) : "<none>", Age(o, now), selector];
        });

    private static (string containers, string images) ContainersOf(JsonObject? template)
    {
        var cs = template?.ObjOrNull("spec").ArrOrNull("containers")?.Objects().ToList() ?? [];
        return (string.Join(",", cs.Select(c => c.Str("name"))), string.Join(",", cs.Select(c => c.Str("image"))));
    }

    private static string SelectorText(JsonObject? sel)
    {
        if (sel is null) return "<none>";
        try { var s = Api.LabelSelector.FromObject(sel).ToString(); return s.Length == 0 ? "<none>" : s; }
        catch (Api.ApiException) { return "<error>"; }
    }

    public static readonly Convertor Deployments = new(
        [NameCol, new("Ready"), new("Up-to-date", "integer"), new("Available", "integer"), AgeCol,
         new("Containers", Priority: 1), new("Images", Priority: 1), new("Selector", Priority: 1)],
        (o, now) =>
        {
            var spec = o.ObjOrNull("spec"); var st = o.ObjOrNull("status");
            var (c, i) = ContainersOf(spec.ObjOrNull("template"));
            return [o.Meta().Str("name"), $"{st.Long("readyReplicas") ?? 0}/{spec.Long("replicas") ?? 0}", st.Long("updatedReplicas") ?? 0,
                    st.Long("availableReplicas") ?? 0, Age(o, now), c, i, SelectorText(spec.ObjOrNull("selector"))];
        });

    public static readonly Convertor ReplicaSets = new(
        [NameCol, new("Desired", "integer"), new("Current", "integer"), new("Ready", "integer"), AgeCol,
         new("Containers", Priority: 1), new("Images", Priority: 1), new("Selector", Priority: 1)],
        (o, now) =>
        {
            var spec = o.ObjOrNull("spec"); var st = o.ObjOrNull("status");
            var (c, i) = ContainersOf(spec.ObjOrNull("template"));
            return [o.Meta().Str("name"), spec.Long("replicas") ?? 0, st.Long("replicas") ?? 0, st.Long("readyReplicas") ?? 0, Age(o, now),
                    c, i, SelectorText(spec.ObjOrNull("selector"))];
        });

    public static readonly Convertor DaemonSets = new(
        [NameCol, new("Desired", "integer"), new("Current", "integer"), new("Ready", "integer"), new("Up-to-date", "integer"),
         new("Available", "integer"), new("Node Selector"), AgeCol,
         new("Containers", Priority: 1), new("Images", Priority: 1), new("Selector", Priority: 1)],
        (o, now) =>
        {
            var spec = o.ObjOrNull("spec"); var st = o.ObjOrNull("status");
            var (c, i) = ContainersOf(spec.ObjOrNull("template"));
            var ns = spec.ObjOrNull("template")?.ObjOrNull("spec").StringMap("nodeSelector");
            return [o.Meta().Str("name"), st.Long("desiredNumberScheduled") ?? 0, st.Long("currentNumberScheduled") ?? 0,
                    st.Long("numberReady") ?? 0, st.Long("updatedNumberScheduled") ?? 0, st.Long("numberAvailable") ?? 0,
                    ns is { Count: > 0 } ? string.Join(",", ns.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value)) : "<none>",
                    Age(o, now), c, i, SelectorText(spec.ObjOrNull("selector"))];
        });

    public static readonly Convertor Namespaces = new([NameCol, new("Status"), AgeCol],
        (o, now) => [o.Meta().Str("name"), o.ObjOrNull("status").Str("phase") ?? "", Age(o, now)]);

    public static readonly Convertor Events = new(
        [new("Last Seen"), new("Type"), new("Reason"), new("Object"), new("Subobject", Priority: 1), new("Source", Priority: 1),
         new("Message"), new("First Seen", Priority: 1), new("Count", "integer", Priority: 1), new("Name", Priority: 1)],
        (o, now) =>
        {
            var io = o.ObjOrNull("involvedObject");
            DateTimeOffset? last = o.Time("lastTimestamp") ?? o.Time("eventTime") ?? o.Meta().Time("creationTimestamp");
            DateTimeOffset? first = o.Time("firstTimestamp") ?? o.Time("eventTime") ?? o.Meta().Time("creationTimestamp");
            long count = o.Long("count") ?? o.ObjOrNull("series").Long("count") ?? 1;
            string lastSeen = last is { } l ? HumanDuration(now - l) : "<unknown>";
            if (count > 1 && first is { } f) lastSeen += $" (x{count} over {HumanDuration(now - f)})";
            var src = o.ObjOrNull("source");
            string source = Or(src.Str("component") ?? o.Str("reportingComponent"), "");
            if (!string.IsNullOrEmpty(src.Str("host"))) source += ", " + src.Str("host");
            return [lastSeen, o.Str("type") ?? "", o.Str("reason") ?? "", $"{(io.Str("kind") ?? "").ToLowerInvariant()}/{io.Str("name")}",
                    io.Str("fieldPath") ?? "", source, (o.Str("message") ?? "").Trim(), first is { } fs ? HumanDuration(now - fs) : "<unknown>",
                    count, o.Meta().Str("name")];
        });

    public static readonly Convertor ConfigMaps = new([NameCol, new("Data", "integer"), AgeCol],
        (o, now) => [o.Meta().Str("name"), (o.ObjOrNull("data")?.Count ?? 0) + (o.ObjOrNull("binaryData")?.Count ?? 0), Age(o, now)]);

    public static readonly Convertor Secrets = new([NameCol, new("Type"), new("Data", "integer"), AgeCol],
        (o, now) => [o.Meta().Str("name"), o.Str("type") ?? "", o.ObjOrNull("data")?.Count ?? 0, Age(o, now)]);

    public static readonly Convertor ServiceAccounts = new([NameCol, new("Secrets", "integer"), AgeCol],
        (o, now) => [o.Meta().Str("name"), o.ArrOrNull("secrets")?.Count ?? 0, Age(o, now)]);

    public static readonly Convertor Endpoints = new([NameCol, new("Endpoints"), AgeCol],
        (o, now) =>
        {
            var list = new List<string>();
            foreach (var s in o.ArrOrNull("subsets").Objects())
            {
                var ports = s.ArrOrNull("ports")?.Objects().Select(p => p.Long("port")).ToList() ?? [];
                foreach (var a in s.ArrOrNull("addresses").Objects())
                    if (ports.Count == 0) list.Add(a.Str("ip") ?? "");
                    else foreach (var p in ports) list.Add($"{a.Str("ip")}:{p}");
            }
            string text = list.Count == 0 ? "<none>" : list.Count > 3 ? string.Join(",", list.Take(3)) + $" + {list.Count - 3} more..." : string.Join(",", list);
            return [o.Meta().Str("name"), text, Age(o, now)];
        });

    public static readonly Convertor EndpointSlices = new([NameCol, new("AddressType"), new("Ports"), new("Endpoints"), AgeCol],
        (o, now) =>
        {
            var ports = o.ArrOrNull("ports")?.Objects().Select(p => p.Long("port")?.ToString(CultureInfo.InvariantCulture) ?? "<unset>").ToList() ?? [];
            var addrs = o.ArrOrNull("endpoints")?.Objects().SelectMany(e => e.ArrOrNull("addresses")?.Select(a => a?.GetValue<string>() ?? "") ?? []).ToList() ?? [];
            string a = addrs.Count == 0 ? "<unset>" : addrs.Count > 3 ? string.Join(",", addrs.Take(3)) + $" + {addrs.Count - 3} more..." : string.Join(",", addrs);
            return [o.Meta().Str("name"), o.Str("addressType") ?? "", ports.Count == 0 ? "<unset>" : string.Join(",", ports), a, Age(o, now)];
        });

    /// <summary>kubectl get controllerrevisions: the controller as kind.group/name.</summary>
    public static readonly Convertor ControllerRevisions = new([NameCol, new("Controller"), new("Revision", "integer"), AgeCol],
        (o, now) =>
        {
            var owner = o.Meta().ArrOrNull("ownerReferences")?.Objects().FirstOrDefault(r => r.Bool("controller") == true);
            string controller = owner is null ? "<none>"
                : $"{(owner.Str("kind") ?? "").ToLowerInvariant()}.{(owner.Str("apiVersion") ?? "").Split('/')[0]}/{owner.Str("name")}";
            return [o.Meta().Str("name"), controller, o.Long("revision") ?? 0, Age(o, now)];
        });

    public static readonly Convertor Leases = new([NameCol, new("Holder"), AgeCol],
        (o, now) => [o.Meta().Str("name"), o.ObjOrNull("spec").Str("holderIdentity") ?? "", Age(o, now)]);

}
