using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Core;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>core/v1 Pod: spec defaults, typed validation, status only through pods/status, the
/// narrow set of mutable spec fields, Pending phase and QoS class on create.</summary>
public sealed class PodStrategy : Strategy
{
    public PodStrategy() { StatusSubresource = true; }

    public override void Default(JsonObject obj) => PodTemplates.DefaultSpec(obj.Obj("spec"));

    public override void PrepareForCreate(JsonObject obj) => PrepareAndValidateCreate(obj, true, out _);

    /// <summary>
    /// One encode serves the typed decode (validation and the QoS class) and the stored bytes: the
    /// status a new pod starts with is the last member, so it is appended to the encoded spec.
    /// </summary>
    public override List<FieldError> PrepareAndValidateCreate(JsonObject obj, bool namespaced, out byte[]? encoded)
    {
        var bytes = AdmitAndEncode(obj);
        var errs = ValidateEncoded(bytes, out string qos);
        obj["status"] = new JsonObject { ["phase"] = "Pending", ["qosClass"] = qos };
        encoded = ObjectCodec.AppendMember(bytes, PendingStatus(qos));
        return errs;
    }

    /// <summary>A new pod through the two admission plugins, encoded without status (the tree keeps none either).</summary>
    public static byte[] AdmitAndEncode(JsonObject obj)
    {
        DefaultTolerationSeconds(obj.Obj("spec"));
        ServiceAccountAdmission.Admit(obj);
        obj.Remove("status");
        return ObjectCodec.Encode(obj);
    }

    /// <summary>A new pod's validation, on the typed decode of its encoded bytes (without status), and its QoS class.</summary>
    public List<FieldError> ValidateEncoded(ReadOnlySpan<byte> bytes, out string qos)
    {
        var pod = PodTemplates.ToTyped(bytes, "Pod");
        qos = PodDefaults.QosClassOf(pod.Spec);
        return Validate(pod);
    }

    /// <summary>The status member a new pod is stored with, as the writer writes it: Pending, and its QoS class.</summary>
    public static byte[] PendingStatus(string qos) => qos switch
    {
        "Guaranteed" => GuaranteedStatus,
        "Burstable" => BurstableStatus,
        "BestEffort" => BestEffortStatus,
        _ => System.Text.Encoding.UTF8.GetBytes($"\"status\":{{\"phase\":\"Pending\",\"qosClass\":\"{qos}\"}}"),
    };

    private static readonly byte[] GuaranteedStatus = "\"status\":{\"phase\":\"Pending\",\"qosClass\":\"Guaranteed\"}"u8.ToArray();
    private static readonly byte[] BestEffortStatus = "\"status\":{\"phase\":\"Pending\",\"qosClass\":\"BestEffort\"}"u8.ToArray();
    private static readonly byte[] BurstableStatus = "\"status\":{\"phase\":\"Pending\",\"qosClass\":\"Burstable\"}"u8.ToArray();

    public override List<FieldError> Validate(JsonObject obj, bool namespaced) => Validate(PodTemplates.ToTyped(obj, "Pod"));

    public override void CheckStatusWriteBody(JsonObject body) => PodTemplates.ToTyped(body, "Pod");

    /// <summary>
    /// The DefaultTolerationSeconds admission plugin: a new pod that does not already tolerate the
    /// not-ready and unreachable NoExecute taints tolerates each for 300 s, so a node that goes away
    /// has its pods evicted after five minutes rather than at once. (<see cref="PodCreateEncoder"/> does the same without the tree.)
    /// </summary>
    public static void DefaultTolerationSeconds(JsonObject spec)
    {
        var tolerations = spec["tolerations"] as JsonArray;
        bool notReady = Tolerates(tolerations, NotReadyTaint), unreachable = Tolerates(tolerations, UnreachableTaint);
        if (notReady && unreachable) return;
        if (tolerations is null) spec["tolerations"] = tolerations = [];
        if (!notReady) tolerations.Add((JsonNode)new JsonObject { ["key"] = NotReadyTaint, ["operator"] = "Exists", ["effect"] = "NoExecute", ["tolerationSeconds"] = 300 });
        if (!unreachable) tolerations.Add((JsonNode)new JsonObject { ["key"] = UnreachableTaint, ["operator"] = "Exists", ["effect"] = "NoExecute", ["tolerationSeconds"] = 300 });
    }

    private const string NotReadyTaint = "node.kubernetes.io/not-ready", UnreachableTaint = "node.kubernetes.io/unreachable";

    /// <summary>Whether one of the pod's own tolerations already covers the NoExecute taint <paramref name="key"/>.</summary>
    private static bool Tolerates(JsonArray? tolerations, string key)
    {
        if (tolerations is null) return false;
        foreach (var node in tolerations)
        {
            if (node is not JsonObject t || t.Str("effect") is not (null or "" or "NoExecute")) continue;
            if (t.Str("key") is null or "" ? t.Str("operator") == "Exists" : t.Str("key") == key) return true;
        }
        return false;
    }

    private static List<FieldError> Validate(Pod pod)
    {
        var errs = PodValidation.Validate(pod);
        if (string.IsNullOrEmpty(pod.Metadata.Namespace)) errs.Add(FieldError.Required("metadata.namespace"));
        return errs;
    }

    private const string MutableFields =
        "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

    public override List<FieldError> ValidateUpdate(JsonObject obj, JsonObject old, bool namespaced)
    {
        var errs = Validate(obj, namespaced);
        var now = (JsonObject)(obj["spec"]?.DeepClone() ?? new JsonObject());
        // Objects stored before nulls were dropped on write may still carry some: not a change.
        var before = (JsonObject)(old.ObjOrNull("spec")?.DeepClone() ?? new JsonObject());
        Json.DropNulls(now);
        Json.DropNulls(before);
        foreach (var list in (string[])["containers", "initContainers"])
        {
            var a = now.ArrOrNull(list);
            var b = before.ArrOrNull(list);
            if (a is null || b is null || a.Count != b.Count) continue;
            for (int i = 0; i < a.Count; i++)
                if (a[i] is JsonObject ac && b[i] is JsonObject bc) ac["image"] = bc["image"]?.DeepClone();
        }
        foreach (var f in (string[])["activeDeadlineSeconds", "tolerations", "nodeName"])
        {
            // nodeName may go from empty to set (binding by update, as the scheduler once did).
            if (f == "nodeName" && !string.IsNullOrEmpty(before.Str(f))) continue;
            if (before[f] is { } v) now[f] = v.DeepClone(); else now.Remove(f);
        }
        if (!JsonNode.DeepEquals(now, before)) errs.Add(FieldError.Forbidden("spec", MutableFields));
        return errs;
    }
}

/// <summary>core/v1 Service: type, ports and traffic-policy defaults, DNS-1035 names, immutable clusterIP.</summary>
public sealed class ServiceStrategy : Strategy
{
    public static readonly string[] Types = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    private static readonly string[] Protocols = ["TCP", "UDP", "SCTP"];
    private static readonly string[] Affinities = ["ClientIP", "None"];
    private static readonly string[] Policies = ["Cluster", "Local"];

    public ServiceStrategy() { StatusSubresource = true; }

    public override Func<string?, string?> NameRule => Names.Dns1035Label;

    public override void Default(JsonObject obj)
    {
        var spec = obj.Obj("spec");
        PodTemplates.Def(spec, "type", "ClusterIP");
        PodTemplates.Def(spec, "sessionAffinity", "None");
        string type = spec.Str("type") ?? "ClusterIP";
        if (type == "ExternalName") return;
        foreach (var p in spec.ArrOrNull("ports").Objects())
        {
            PodTemplates.Def(p, "protocol", "TCP");
            if (p["targetPort"] is null && p["port"] is { } port) p["targetPort"] = port.DeepClone();
        }
        PodTemplates.Def(spec, "internalTrafficPolicy", "Cluster");
        if (type is "NodePort" or "LoadBalancer") PodTemplates.Def(spec, "externalTrafficPolicy", "Cluster");
        if (type == "LoadBalancer") PodTemplates.Def(spec, "allocateLoadBalancerNodePorts", true);
        if (spec.Str("sessionAffinity") == "ClientIP")
            PodTemplates.Def(spec, "sessionAffinityConfig", new JsonObject { ["clientIP"] = new JsonObject { ["timeoutSeconds"] = 10800 } });
    }

    public override void PrepareForCreate(JsonObject obj)
    {
        base.PrepareForCreate(obj);
        obj["status"] = new JsonObject { ["loadBalancer"] = new JsonObject() };
    }

    public override List<FieldError> Validate(JsonObject obj, bool namespaced)
    {
        var errs = ValidateMeta(obj, namespaced);
        var spec = obj.ObjOrNull("spec");
        string type = spec.Str("type") ?? "ClusterIP";
        if (!Types.Contains(type)) errs.Add(FieldError.NotSupported("spec.type", type, Types));
        if (spec.Str("sessionAffinity") is { } sa && !Affinities.Contains(sa)) errs.Add(FieldError.NotSupported("spec.sessionAffinity", sa, Affinities));
        if (spec.Str("externalTrafficPolicy") is { } etp && !Policies.Contains(etp)) errs.Add(FieldError.NotSupported("spec.externalTrafficPolicy", etp, Policies));
        if (spec.Str("internalTrafficPolicy") is { } itp && !Policies.Contains(itp)) errs.Add(FieldError.NotSupported("spec.internalTrafficPolicy", itp, Policies));
        if (type == "ExternalName")
        {
            if (string.IsNullOrEmpty(spec.Str("externalName"))) errs.Add(FieldError.Required("spec.externalName"));
            return errs;
        }
        string? clusterIP = spec.Str("clusterIP");
        if (!string.IsNullOrEmpty(clusterIP) && clusterIP != "None" && !IPAddress.TryParse(clusterIP, out _))
            errs.Add(FieldError.Invalid("spec.clusterIP", clusterIP, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"));
        if (clusterIP == "None" && type != "ClusterIP") errs.Add(FieldError.Invalid("spec.clusterIPs[0]", clusterIP, "may not be set to 'None' for LoadBalancer services or NodePort services"));
        var ports = spec.ArrOrNull("ports");
        if (ports is null || ports.Count == 0)
        {
            if (clusterIP != "None") errs.Add(FieldError.Required("spec.ports"));
        }
        else
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            var keys = new HashSet<string>(StringComparer.Ordinal);
            int i = 0;
            foreach (var p in ports.Objects())
            {
                string path = $"spec.ports[{i++}]";
                string? name = p.Str("name");
                if (ports.Count > 1 && string.IsNullOrEmpty(name)) errs.Add(FieldError.Required(path + ".name"));
                else if (!string.IsNullOrEmpty(name))
                {
                    if (Names.Dns1123Label(name) is { } ne) errs.Add(FieldError.Invalid(path + ".name", name, ne));
                    else if (!names.Add(name)) errs.Add(FieldError.Duplicate(path + ".name", name));
                }
                long port = p.Long("port") ?? 0;
                if (port is < 1 or > 65535) errs.Add(FieldError.Invalid(path + ".port", port, "must be between 1 and 65535, inclusive"));
                string proto = p.Str("protocol") ?? "TCP";
                if (!Protocols.Contains(proto)) errs.Add(FieldError.NotSupported(path + ".protocol", proto, Protocols));
                else if (!keys.Add(port + "/" + proto)) errs.Add(FieldError.Duplicate(path, $"{port}/{proto}"));
                switch (p["targetPort"])
                {
                    case JsonValue tv when tv.GetValueKind() == JsonValueKind.Number:
                        long tp = p.Long("targetPort") ?? 0;
                        if (tp is < 1 or > 65535) errs.Add(FieldError.Invalid(path + ".targetPort", tp, "must be between 1 and 65535, inclusive"));
                        break;
                    case JsonValue tv when tv.GetValueKind() == JsonValueKind.String:
                        if (Names.IanaSvcName(tv.GetValue<string>()) is { } te) errs.Add(FieldError.Invalid(path + ".targetPort", tv.GetValue<string>(), te));
                        break;
                }
                if (p.Long("nodePort") is { } np && np != 0)
                {
                    if (type == "ClusterIP") errs.Add(FieldError.Forbidden(path + ".nodePort", "may not be used when `type` is 'ClusterIP'"));
                    else if (np is < 1 or > 65535) errs.Add(FieldError.Invalid(path + ".nodePort", np, "must be between 1 and 65535, inclusive"));
                }
            }
        }
        if (spec.ObjOrNull("selector") is { } sel)
            foreach (var (k, v) in sel)
            {
                if (Names.QualifiedName(k) is { } ke) errs.Add(FieldError.Invalid("spec.selector", k, ke));
                if (v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String && Names.LabelValue(jv.GetValue<string>()) is { } ve)
                    errs.Add(FieldError.Invalid("spec.selector", jv.GetValue<string>(), ve));
            }
        return errs;
    }

    public override List<FieldError> ValidateUpdate(JsonObject obj, JsonObject old, bool namespaced)
    {
        var errs = Validate(obj, namespaced);
        var spec = obj.ObjOrNull("spec");
        var before = old.ObjOrNull("spec");
        // clusterIP (clusterIPs[0]) is immutable, except to and from ExternalName (which has none);
        // left out, it keeps the old value. A secondary address may be dropped (a downgrade to
        // SingleStack) or added (an upgrade), never changed.
        if (spec.Str("type") != "ExternalName" && before.Str("type") != "ExternalName")
        {
            if (!string.IsNullOrEmpty(before.Str("clusterIP")) && !string.IsNullOrEmpty(spec.Str("clusterIP")) && spec.Str("clusterIP") != before.Str("clusterIP"))
                errs.Add(FieldError.Invalid("spec.clusterIPs[0]", spec.Str("clusterIP") ?? "", "may not change once set"));
            if (spec.ArrOrNull("clusterIPs") is { Count: 2 } now && before.ArrOrNull("clusterIPs") is { Count: 2 } was
                && now[1]?.GetValueKind() == JsonValueKind.String && now[1]!.GetValue<string>() != was[1]?.GetValue<string>())
                errs.Add(FieldError.Invalid("spec.clusterIPs[1]", now[1]!.GetValue<string>(), "may not change once set"));
        }
        return errs;
    }
}

/// <summary>apps/v1 Deployment, ReplicaSet and DaemonSet: defaults, selector vs template labels, immutable selector.</summary>
public sealed class WorkloadStrategy : Strategy
{
    private readonly string _kind;

    public WorkloadStrategy(string kind)
    {
        _kind = kind;
        StatusSubresource = true;
        Generation = true;
    }

    public override void Default(JsonObject obj)
    {
        var spec = obj.Obj("spec");
        switch (_kind)
        {
            case "Deployment":
                PodTemplates.Def(spec, "replicas", 1);
                PodTemplates.Def(spec, "revisionHistoryLimit", 10);
                PodTemplates.Def(spec, "progressDeadlineSeconds", 600);
                var strategy = spec.Obj("strategy");
                PodTemplates.Def(strategy, "type", "RollingUpdate");
                if (strategy.Str("type") == "RollingUpdate")
                {
                    var ru = strategy.Obj("rollingUpdate");
                    PodTemplates.Def(ru, "maxUnavailable", "25%");
                    PodTemplates.Def(ru, "maxSurge", "25%");
                }
                break;
            case "ReplicaSet":
                PodTemplates.Def(spec, "replicas", 1);
                break;
            case "DaemonSet":
                PodTemplates.Def(spec, "revisionHistoryLimit", 10);
                var us = spec.Obj("updateStrategy");
                PodTemplates.Def(us, "type", "RollingUpdate");
                if (us.Str("type") == "RollingUpdate")
                {
                    var ru = us.Obj("rollingUpdate");
                    PodTemplates.Def(ru, "maxUnavailable", 1);
                    PodTemplates.Def(ru, "maxSurge", 0);
                }
                break;
        }
        if (spec.ObjOrNull("template") is { } t) PodTemplates.DefaultSpec(t.Obj("spec"));
    }

    public override List<FieldError> Validate(JsonObject obj, bool namespaced)
    {
        var errs = ValidateMeta(obj, namespaced);
        var spec = obj.ObjOrNull("spec");
        if (spec is null) { errs.Add(FieldError.Required("spec")); return errs; }
        if (spec.Long("replicas") is < 0) errs.Add(FieldError.Invalid("spec.replicas", spec.Long("replicas"), "must be greater than or equal to 0"));
        var selector = spec.ObjOrNull("selector");
        var templateLabels = spec.ObjOrNull("template")?.ObjOrNull("metadata").StringMap("labels") ?? [];
        if (selector is null || selector.Count == 0) errs.Add(FieldError.Required("spec.selector"));
        else
        {
            try
            {
                var sel = Api.LabelSelector.FromObject(selector);
                if (sel.IsEmpty) errs.Add(FieldError.Invalid("spec.selector", "{}", "empty selector is invalid for deployment"));
                else if (!sel.Matches(templateLabels))
                    errs.Add(FieldError.Invalid("spec.template.metadata.labels", FormatLabels(templateLabels), "`selector` does not match template `labels`"));
            }
            catch (Api.ApiException e)
            {
                errs.Add(FieldError.Invalid("spec.selector", selector.ToJsonString(), e.Message));
            }
        }
        PodTemplates.ValidateTemplate(spec.ObjOrNull("template"), "spec.template", _kind, errs);
        if (spec.ObjOrNull("template")?.ObjOrNull("spec").Str("restartPolicy") is { } rp && rp != "Always")
            errs.Add(FieldError.NotSupported("spec.template.spec.restartPolicy", rp, "Always"));
        if (_kind == "Deployment")
        {
            var strategy = spec.ObjOrNull("strategy");
            string? st = strategy.Str("type");
            if (st is not (null or "RollingUpdate" or "Recreate")) errs.Add(FieldError.NotSupported("spec.strategy.type", st, "Recreate", "RollingUpdate"));
            if (st == "Recreate" && strategy?["rollingUpdate"] is not null)
                errs.Add(FieldError.Forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"));
            ValidateRollingUpdate(strategy.ObjOrNull("rollingUpdate"), "spec.strategy.rollingUpdate", errs);
        }
        if (_kind == "DaemonSet")
        {
            var strategy = spec.ObjOrNull("updateStrategy");
            if (strategy.Str("type") is { } st && st is not ("RollingUpdate" or "OnDelete"))
                errs.Add(FieldError.NotSupported("spec.updateStrategy.type", st, "OnDelete", "RollingUpdate"));
            ValidateRollingUpdate(strategy.ObjOrNull("rollingUpdate"), "spec.updateStrategy.rollingUpdate", errs);
        }
        return errs;
    }

    /// <summary>
    /// maxUnavailable and maxSurge (apps validation): each a non-negative integer or a percent
    /// string, maxUnavailable at most 100%, and not both zero (a rollout could never progress).
    /// </summary>
    private static void ValidateRollingUpdate(JsonObject? ru, string path, List<FieldError> errs)
    {
        if (ru is null) return;
        long? unavailable = IntOrPercent(ru["maxUnavailable"], path + ".maxUnavailable", errs);
        long? surge = IntOrPercent(ru["maxSurge"], path + ".maxSurge", errs);
        if (ru["maxUnavailable"] is JsonValue { } mu && mu.GetValueKind() == JsonValueKind.String && unavailable > 100)
            errs.Add(FieldError.Invalid(path + ".maxUnavailable", mu.GetValue<string>(), "must not be greater than 100%"));
        if (unavailable == 0 && surge == 0)
            errs.Add(FieldError.Invalid(path + ".maxUnavailable", ru["maxUnavailable"]!.ToJsonString().Trim('"'), "may not be 0 when `maxSurge` is 0"));
    }

    /// <summary>The value of an int-or-percent member (the number, or the percent's number), or null when absent or invalid (then an error is added).</summary>
    private static long? IntOrPercent(JsonNode? v, string path, List<FieldError> errs)
    {
        if (v is not JsonValue jv) return null;
        if (jv.GetValueKind() == JsonValueKind.Number)
        {
            // Parsed numbers read as long; defaults set by the server are ints. Anything else is not an
            // integer, which the type check has refused already.
            if (!jv.TryGetValue(out long n))
            {
                if (!jv.TryGetValue(out int i)) return null;
                n = i;
            }
            if (n < 0) { errs.Add(FieldError.Invalid(path, n, "must be greater than or equal to 0")); return null; }
            return n;
        }
        if (jv.GetValueKind() != JsonValueKind.String) return null;
        string s = jv.GetValue<string>();
        if (s.Length < 2 || s[^1] != '%' || s.AsSpan(0, s.Length - 1).ContainsAnyExceptInRange('0', '9'))
        {
            errs.Add(FieldError.Invalid(path, s, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')"));
            return null;
        }
        return long.TryParse(s.AsSpan(0, s.Length - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long p) ? p : long.MaxValue;
    }

    public override List<FieldError> ValidateUpdate(JsonObject obj, JsonObject old, bool namespaced)
    {
        var errs = Validate(obj, namespaced);
        Immutable(obj.ObjOrNull("spec")?["selector"], old.ObjOrNull("spec")?["selector"], "spec.selector", errs);
        return errs;
    }

    private static string FormatLabels(Dictionary<string, string> labels) =>
        "map[string]string{" + string.Join(", ", labels.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"\"{kv.Key}\":\"{kv.Value}\"")) + "}";
}

/// <summary>core/v1 Namespace: DNS-1123 label names, the "kubernetes" finalizer, Active on create.</summary>
public sealed class NamespaceStrategy : Strategy
{
    public NamespaceStrategy() { StatusSubresource = true; }

    public override Func<string?, string?> NameRule => Names.Dns1123Label;

    public override void Default(JsonObject obj)
    {
        var spec = obj.Obj("spec");
        if (spec["finalizers"] is null) spec["finalizers"] = new JsonArray("kubernetes");
    }

    public override void PrepareForCreate(JsonObject obj)
    {
        base.PrepareForCreate(obj);
        obj["status"] = new JsonObject { ["phase"] = "Active" };
        obj.Meta().Obj("labels")["kubernetes.io/metadata.name"] = obj.Meta().Str("name");
    }

    public override void PrepareForUpdate(JsonObject obj, JsonObject old)
    {
        base.PrepareForUpdate(obj, old);
        // spec.finalizers change only through namespaces/finalize.
        if (old.ObjOrNull("spec")?["finalizers"] is { } f) obj.Obj("spec")["finalizers"] = f.DeepClone();
        obj.Meta().Obj("labels")["kubernetes.io/metadata.name"] = obj.Meta().Str("name");
    }
}

/// <summary>core/v1 Node: cluster-scoped, status accepted on create, taint effects checked.</summary>
public sealed class NodeStrategy : Strategy
{
    private static readonly string[] Effects = ["NoExecute", "NoSchedule", "PreferNoSchedule"];

    public NodeStrategy() { StatusSubresource = true; ClearStatusOnCreate = false; }

    public override List<FieldError> Validate(JsonObject obj, bool namespaced)
    {
        var errs = ValidateMeta(obj, namespaced);
        int i = 0;
        foreach (var t in obj.ObjOrNull("spec").ArrOrNull("taints").Objects())
        {
            string path = $"spec.taints[{i++}]";
            if (string.IsNullOrEmpty(t.Str("key"))) errs.Add(FieldError.Required(path + ".key"));
            else if (Names.QualifiedName(t.Str("key")!) is { } ke) errs.Add(FieldError.Invalid(path + ".key", t.Str("key"), ke));
            if (t.Str("effect") is not { } eff) errs.Add(FieldError.Required(path + ".effect"));
            else if (!Effects.Contains(eff)) errs.Add(FieldError.NotSupported(path + ".effect", eff, Effects));
        }
        return errs;
    }
}

/// <summary>core/v1 ConfigMap and Secret: key names, base64 data, type defaults, the immutable flag.</summary>
public sealed class DataStrategy(bool secret) : Strategy
{
    public override void Default(JsonObject obj)
    {
        if (secret) PodTemplates.Def(obj, "type", "Opaque");
    }

    public override List<FieldError> Validate(JsonObject obj, bool namespaced)
    {
        var errs = ValidateMeta(obj, namespaced);
        long total = 0;
        foreach (var field in secret ? (string[])["data", "stringData"] : ["data", "binaryData"])
            if (obj.ObjOrNull(field) is { } data)
                foreach (var (k, v) in data)
                {
                    if (!ValidKey(k)) errs.Add(FieldError.Invalid($"{field}[{k}]", k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name')"));
                    string s = v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String ? jv.GetValue<string>() : "";
                    total += s.Length;
                    if (field is "data" && secret || field is "binaryData")
                    {
                        var buf = new byte[(s.Length * 3 + 3) / 4];
                        if (!Convert.TryFromBase64String(s, buf, out _)) errs.Add(FieldError.Invalid($"{field}[{k}]", "<value omitted>", "illegal base64 data"));
                    }
                }
        if (total > 1024 * 1024) errs.Add(new FieldError(secret ? "data" : "[]", "Too long", null, "must have at most 1048576 bytes"));
        return errs;
    }

    public override List<FieldError> ValidateUpdate(JsonObject obj, JsonObject old, bool namespaced)
    {
        var errs = Validate(obj, namespaced);
        if (old.Bool("immutable") == true)
        {
            Immutable(obj["data"], old["data"], "data", errs);
            Immutable(obj["immutable"], old["immutable"], "immutable", errs);
        }
        if (secret) Immutable(obj["type"], old["type"], "type", errs);
        return errs;
    }

    private static bool ValidKey(string k)
    {
        if (k.Length is 0 or > 253 || k is "." or "..") return false;
        foreach (char c in k) if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) return false;
        return true;
    }
}

/// <summary>Secrets' stringData is write-only: merged into data (base64) before storage, as upstream.</summary>
public static class SecretData
{
    public static void FoldStringData(JsonObject obj)
    {
        // Values of other types never get here: KubeProtobuf.CheckJsonTypes refused them (a 400).
        if (obj.ObjOrNull("stringData") is not { } sd) return;
        var data = obj.Obj("data");
        foreach (var (k, v) in sd)
            if (v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String)
                data[k] = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(jv.GetValue<string>()));
        obj.Remove("stringData");
    }
}

/// <summary>discovery.k8s.io/v1 EndpointSlice: addressType required and immutable.</summary>
public sealed class EndpointSliceStrategy : Strategy
{
    private static readonly string[] AddressTypes = ["FQDN", "IPv4", "IPv6"];

    public override List<FieldError> Validate(JsonObject obj, bool namespaced)
    {
        var errs = ValidateMeta(obj, namespaced);
        if (obj.Str("addressType") is not { } at) errs.Add(FieldError.Required("addressType"));
        else if (!AddressTypes.Contains(at)) errs.Add(FieldError.NotSupported("addressType", at, AddressTypes));
        if (obj.ArrOrNull("endpoints") is { Count: > 1000 }) errs.Add(new FieldError("endpoints", "Too many", null, "must have at most 1000 items"));
        return errs;
    }

    public override List<FieldError> ValidateUpdate(JsonObject obj, JsonObject old, bool namespaced)
    {
        var errs = Validate(obj, namespaced);
        Immutable(obj["addressType"], old["addressType"], "addressType", errs);
        return errs;
    }
}
