using System.Text.Json;
using NodeAgent.Api.Core;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>
/// A pod create straight from the request's parsed document to the stored bytes, without the
/// JsonNode tree: the general path parses the body into a tree, defaults and admits it there,
/// encodes it and decodes the result again for validation (`ControlPlane.Bench --prepare` measures
/// both, this at about two thirds of the time and less than half the garbage). This writes the same bytes as that path (same members, same order, same escaping,
/// since every member it copies is written by the same <see cref="JsonElement.WriteTo"/> the tree's
/// unchanged values use) in one walk: the server's metadata, <see cref="PodTemplates.DefaultSpec"/>,
/// <see cref="PodStrategy.DefaultTolerationSeconds"/> and <see cref="ServiceAccountAdmission"/>.
/// <para>
/// It takes only bodies it is sure of: a JSON object without a null anywhere, kind and apiVersion
/// absent or right, metadata and spec objects, a name or generateName, the namespace of the path,
/// and every member of the type the field tables want. Anything else returns null from
/// <see cref="TryParse"/> and the create takes the general path, which also words every error.
/// PodCreateEncoderTests holds the two paths to the same bytes.
/// </para>
/// </summary>
public sealed class PodCreateEncoder : IDisposable
{
    private readonly JsonDocument _doc;
    private readonly JsonElement _meta, _spec;
    private readonly bool _hostNetwork, _admit, _mount, _notReadyTolerated, _unreachableTolerated;
    private readonly string? _account;

    /// <summary>metadata.generateName when the body has no name (the caller picks the name, and a new one if it is taken).</summary>
    public string? GenerateName { get; }

    /// <summary>metadata.name as sent, when there is one.</summary>
    public string? Name { get; }

    private PodCreateEncoder(JsonDocument doc, JsonElement meta, JsonElement spec, string? name, string? generateName)
    {
        _doc = doc;
        _meta = meta;
        _spec = spec;
        Name = name;
        GenerateName = generateName;
        _hostNetwork = spec.TryGetProperty("hostNetwork"u8, out var hn) && hn.ValueKind == JsonValueKind.True;
        _notReadyTolerated = Tolerates(spec, NotReadyTaint);
        _unreachableTolerated = Tolerates(spec, UnreachableTaint);
        // ServiceAccount admission, as ServiceAccountAdmission.Admit decides it.
        _admit = !(meta.TryGetProperty("annotations"u8, out var ann) && ann.ValueKind == JsonValueKind.Object && ann.TryGetProperty("kubernetes.io/config.mirror"u8, out _));
        if (!_admit) return;
        _account = Str(spec, "serviceAccountName"u8) is { Length: > 0 } account ? account
            : Str(spec, "serviceAccount"u8) is { Length: > 0 } legacy ? legacy : "default";
        bool automount = !(spec.TryGetProperty("automountServiceAccountToken"u8, out var am) && am.ValueKind == JsonValueKind.False);
        _mount = automount && (NeedsMount(spec, "initContainers"u8) || NeedsMount(spec, "containers"u8));
    }

    public void Dispose() => _doc.Dispose();

    /// <summary>The body as parsed (for server-side field validation).</summary>
    public JsonElement Root => _doc.RootElement;

    private const string NotReadyTaint = "node.kubernetes.io/not-ready", UnreachableTaint = "node.kubernetes.io/unreachable";
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 128, AllowDuplicateProperties = false };

    /// <summary>An encoder for <paramref name="body"/> (a JSON pod create in namespace <paramref name="ns"/>), or null when the general path must take it.</summary>
    public static PodCreateEncoder? TryParse(ReadOnlyMemory<byte> body, string ns)
    {
        // A null anywhere is dropped by the general path (or sits in a string: rare, and not worth telling apart).
        if (body.Span.IndexOf("null"u8) >= 0) return null;
        JsonDocument doc;
        try { doc = JsonDocument.Parse(body, Options); }
        catch (JsonException) { return null; }
        try
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !Absent(root, "kind"u8, "Pod"u8) || !Absent(root, "apiVersion"u8, "v1"u8)
                || !root.TryGetProperty("metadata"u8, out var meta) || meta.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("spec"u8, out var spec) || spec.ValueKind != JsonValueKind.Object
                || !KubeProtobuf.JsonTypesOk("Pod", root))
            {
                doc.Dispose();
                return null;
            }
            // ServiceAccount admission replaces a volumeMounts that is not a list (the tables do not cover it).
            if (!MountListsOk(spec, "initContainers"u8) || !MountListsOk(spec, "containers"u8)) { doc.Dispose(); return null; }
            // The tables made these strings, if present.
            string? bodyNs = Str(meta, "namespace"u8), name = Str(meta, "name"u8), generate = null;
            if (!string.IsNullOrEmpty(bodyNs) && bodyNs != ns) { doc.Dispose(); return null; }
            if (string.IsNullOrEmpty(name))
            {
                generate = Str(meta, "generateName"u8);
                if (string.IsNullOrEmpty(generate) || Names.Dns1123Subdomain(generate.TrimEnd('-') + "x") is not null) { doc.Dispose(); return null; }
                name = null;
            }
            return new PodCreateEncoder(doc, meta, spec, name, generate);
        }
        catch
        {
            doc.Dispose();
            throw;
        }
    }

    private static readonly byte[][] ContainerLists = ["containers"u8.ToArray(), "initContainers"u8.ToArray()];
    private static readonly byte[][] Probes = ["livenessProbe"u8.ToArray(), "readinessProbe"u8.ToArray(), "startupProbe"u8.ToArray()];
    private static readonly byte[][] Hooks = ["postStart"u8.ToArray(), "preStop"u8.ToArray()];
    private static readonly byte[][] FileSources = ["configMap"u8.ToArray(), "secret"u8.ToArray(), "projected"u8.ToArray(), "downwardAPI"u8.ToArray()];

    /// <summary>The one of <paramref name="names"/> that <paramref name="p"/> is called, to write as its name; null if none.</summary>
    private static byte[]? OneOf(JsonProperty p, byte[][] names)
    {
        foreach (var n in names)
            if (p.NameEquals(n)) return n;
        return null;
    }

    private static bool Absent(JsonElement o, ReadOnlySpan<byte> member, ReadOnlySpan<byte> expected) =>
        !o.TryGetProperty(member, out var v) || (v.ValueKind == JsonValueKind.String && v.ValueEquals(expected));

    private static string? Str(JsonElement o, ReadOnlySpan<byte> member) =>
        o.TryGetProperty(member, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>
    /// The stored bytes (without status, as <see cref="PodStrategy.PrepareAndValidateCreate"/> encodes them
    /// before the typed decode), with <paramref name="name"/>, the namespace, uid and creationTimestamp
    /// set and the new ServiceAccount volume called <paramref name="volume"/> (see <see cref="VolumeNameFree"/>).
    /// </summary>
    public byte[] Encode(string ns, string name, string uid, string created, string volume)
    {
        var w = ObjectCodec.BeginEncode();
        w.WriteStartObject();
        w.WriteString("kind"u8, "Pod"u8);
        w.WriteString("apiVersion"u8, "v1"u8);
        WriteMeta(w, ns, name, uid, created);
        foreach (var p in _doc.RootElement.EnumerateObject())
        {
            if (p.NameEquals("kind"u8) || p.NameEquals("apiVersion"u8) || p.NameEquals("metadata"u8) || p.NameEquals("status"u8)) continue;
            if (p.NameEquals("spec"u8))
            {
                w.WritePropertyName("spec"u8);
                WriteSpec(w, volume);
            }
            else p.WriteTo(w);
        }
        w.WriteEndObject();
        return ObjectCodec.EndEncode(w);
    }

    /// <summary>Whether <paramref name="volume"/> is not yet a volume of the pod (the admission draws again if it is).</summary>
    public bool VolumeNameFree(string volume)
    {
        if (_spec.TryGetProperty("volumes"u8, out var volumes))
            foreach (var v in volumes.EnumerateArray())
                if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("name"u8, out var n) && n.ValueKind == JsonValueKind.String && n.ValueEquals(volume)) return false;
        return true;
    }

    private void WriteMeta(Utf8JsonWriter w, string ns, string name, string uid, string created)
    {
        w.WritePropertyName("metadata"u8);
        w.WriteStartObject();
        bool hasNs = false, hasName = false, hasUid = false, hasCreated = false;
        foreach (var p in _meta.EnumerateObject())
        {
            if (p.NameEquals("resourceVersion"u8) || p.NameEquals("deletionTimestamp"u8) || p.NameEquals("deletionGracePeriodSeconds"u8)
                || p.NameEquals("generation"u8) || p.NameEquals("selfLink"u8)) continue;
            if (p.NameEquals("namespace"u8)) { hasNs = true; w.WriteString("namespace"u8, ns); }
            else if (p.NameEquals("name"u8)) { hasName = true; w.WriteString("name"u8, name); }
            else if (p.NameEquals("uid"u8)) { hasUid = true; w.WriteString("uid"u8, uid); }
            else if (p.NameEquals("creationTimestamp"u8)) { hasCreated = true; w.WriteString("creationTimestamp"u8, created); }
            else p.WriteTo(w);
        }
        if (!hasNs) w.WriteString("namespace"u8, ns);
        if (!hasName) w.WriteString("name"u8, name);
        if (!hasUid) w.WriteString("uid"u8, uid);
        if (!hasCreated) w.WriteString("creationTimestamp"u8, created);
        w.WriteEndObject();
    }

    // ---- spec: PodTemplates.DefaultSpec, then the two admission plugins --------------------------

    private void WriteSpec(Utf8JsonWriter w, string volume)
    {
        w.WriteStartObject();
        Seen seen = default;
        foreach (var p in _spec.EnumerateObject())
        {
            if (OneOf(p, ContainerLists) is { } list)
            {
                w.WritePropertyName(list);
                w.WriteStartArray();
                foreach (var c in p.Value.EnumerateArray())
                    if (c.ValueKind == JsonValueKind.Object) WriteContainer(w, c, volume); else c.WriteTo(w);
                w.WriteEndArray();
                continue;
            }
            if (p.NameEquals("volumes"u8))
            {
                w.WritePropertyName("volumes"u8);
                w.WriteStartArray();
                foreach (var v in p.Value.EnumerateArray())
                    if (v.ValueKind == JsonValueKind.Object) WriteVolume(w, v); else v.WriteTo(w);
                if (_mount) WriteAccessVolume(w, volume);
                w.WriteEndArray();
                seen.Volumes = true;
                continue;
            }
            if (p.NameEquals("tolerations"u8))
            {
                w.WritePropertyName("tolerations"u8);
                w.WriteStartArray();
                foreach (var t in p.Value.EnumerateArray()) t.WriteTo(w);
                WriteTolerations(w);
                w.WriteEndArray();
                seen.Tolerations = true;
                continue;
            }
            if (_admit && p.NameEquals("serviceAccountName"u8)) { w.WriteString("serviceAccountName"u8, _account); seen.Account = true; continue; }
            if (_admit && p.NameEquals("serviceAccount"u8)) { w.WriteString("serviceAccount"u8, _account); seen.Legacy = true; continue; }
            seen.Note(p);
            p.WriteTo(w);
        }
        if (!seen.RestartPolicy) w.WriteString("restartPolicy"u8, "Always"u8);
        if (!seen.DnsPolicy) w.WriteString("dnsPolicy"u8, "ClusterFirst"u8);
        if (!seen.Grace) w.WriteNumber("terminationGracePeriodSeconds"u8, 30);
        if (!seen.Scheduler) w.WriteString("schedulerName"u8, "default-scheduler"u8);
        if (!seen.SecurityContext) { w.WriteStartObject("securityContext"u8); w.WriteEndObject(); }
        if (!seen.ServiceLinks) w.WriteBoolean("enableServiceLinks"u8, true);
        if (!seen.Priority) w.WriteNumber("priority"u8, 0);
        if (!seen.Preemption) w.WriteString("preemptionPolicy"u8, "PreemptLowerPriority"u8);
        if (!seen.Tolerations && !(_notReadyTolerated && _unreachableTolerated))
        {
            w.WriteStartArray("tolerations"u8);
            WriteTolerations(w);
            w.WriteEndArray();
        }
        if (_admit && !seen.Account) w.WriteString("serviceAccountName"u8, _account);
        if (_admit && !seen.Legacy) w.WriteString("serviceAccount"u8, _account);
        if (_mount && !seen.Volumes)
        {
            w.WriteStartArray("volumes"u8);
            WriteAccessVolume(w, volume);
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    /// <summary>The spec members DefaultSpec defaults, and the ones the admission appends to.</summary>
    private struct Seen
    {
        public bool RestartPolicy, DnsPolicy, Grace, Scheduler, SecurityContext, ServiceLinks, Priority, Preemption, Tolerations, Account, Legacy, Volumes;

        public void Note(JsonProperty p)
        {
            if (p.NameEquals("restartPolicy"u8)) RestartPolicy = true;
            else if (p.NameEquals("dnsPolicy"u8)) DnsPolicy = true;
            else if (p.NameEquals("terminationGracePeriodSeconds"u8)) Grace = true;
            else if (p.NameEquals("schedulerName"u8)) Scheduler = true;
            else if (p.NameEquals("securityContext"u8)) SecurityContext = true;
            else if (p.NameEquals("enableServiceLinks"u8)) ServiceLinks = true;
            else if (p.NameEquals("priority"u8)) Priority = true;
            else if (p.NameEquals("preemptionPolicy"u8)) Preemption = true;
            else if (p.NameEquals("serviceAccountName"u8)) Account = true;
            else if (p.NameEquals("serviceAccount"u8)) Legacy = true;
        }
    }

    private void WriteTolerations(Utf8JsonWriter w)
    {
        if (!_notReadyTolerated) WriteToleration(w, NotReadyTaint);
        if (!_unreachableTolerated) WriteToleration(w, UnreachableTaint);
    }

    private static void WriteToleration(Utf8JsonWriter w, string key)
    {
        w.WriteStartObject();
        w.WriteString("key"u8, key);
        w.WriteString("operator"u8, "Exists"u8);
        w.WriteString("effect"u8, "NoExecute"u8);
        w.WriteNumber("tolerationSeconds"u8, 300);
        w.WriteEndObject();
    }

    /// <summary>As PodStrategy's Tolerates: one of the pod's tolerations already covers the NoExecute taint <paramref name="key"/>.</summary>
    private static bool Tolerates(JsonElement spec, string key)
    {
        if (!spec.TryGetProperty("tolerations"u8, out var list)) return false;
        foreach (var t in list.EnumerateArray())
        {
            if (t.ValueKind != JsonValueKind.Object || Str(t, "effect"u8) is not (null or "" or "NoExecute")) continue;
            if (Str(t, "key"u8) is null or "" ? Str(t, "operator"u8) == "Exists" : Str(t, "key"u8) == key) return true;
        }
        return false;
    }

    private static void WriteAccessVolume(Utf8JsonWriter w, string name)
    {
        w.WriteStartObject();
        w.WriteString("name"u8, name);
        w.WritePropertyName("projected"u8);
        w.WriteRawValue(AccessVolumeSource, skipInputValidation: true);
        w.WriteEndObject();
    }

    /// <summary>ServiceAccountAdmission's projected source, as the writer writes it.</summary>
    private static ReadOnlySpan<byte> AccessVolumeSource =>
        """{"defaultMode":420,"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},{"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]}"""u8;

    private static bool NeedsMount(JsonElement spec, ReadOnlySpan<byte> list)
    {
        if (!spec.TryGetProperty(list, out var containers)) return false;
        foreach (var c in containers.EnumerateArray())
            if (c.ValueKind == JsonValueKind.Object && !Mounted(c)) return true;
        return false;
    }

    private static bool MountListsOk(JsonElement spec, ReadOnlySpan<byte> list)
    {
        if (!spec.TryGetProperty(list, out var containers)) return true;
        foreach (var c in containers.EnumerateArray())
            if (c.ValueKind == JsonValueKind.Object && c.TryGetProperty("volumeMounts"u8, out var m) && m.ValueKind != JsonValueKind.Array) return false;
        return true;
    }

    private static bool Mounted(JsonElement container)
    {
        if (!container.TryGetProperty("volumeMounts"u8, out var mounts) || mounts.ValueKind != JsonValueKind.Array) return false;
        foreach (var m in mounts.EnumerateArray())
            if (m.ValueKind == JsonValueKind.Object && Str(m, "mountPath"u8) is { } path && path.AsSpan().TrimEnd('/').SequenceEqual(ServiceAccountAdmission.MountPath))
                return true;
        return false;
    }

    // ---- containers: PodTemplates.DefaultContainer and the access volume's mount ------------------

    private void WriteContainer(Utf8JsonWriter w, JsonElement c, string volume)
    {
        bool mount = _mount && !Mounted(c);
        bool path = false, policy = false, pull = false, resources = false, mounts = false;
        w.WriteStartObject();
        foreach (var p in c.EnumerateObject())
        {
            var kind = p.Value.ValueKind;
            if (kind == JsonValueKind.Array && p.NameEquals("ports"u8))
            {
                w.WritePropertyName("ports"u8);
                w.WriteStartArray();
                foreach (var port in p.Value.EnumerateArray())
                    if (port.ValueKind == JsonValueKind.Object) WritePort(w, port); else port.WriteTo(w);
                w.WriteEndArray();
            }
            else if (kind == JsonValueKind.Array && p.NameEquals("env"u8))
            {
                w.WritePropertyName("env"u8);
                w.WriteStartArray();
                foreach (var e in p.Value.EnumerateArray())
                    if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("valueFrom"u8, out var vf) && vf.ValueKind == JsonValueKind.Object
                        && vf.TryGetProperty("fieldRef"u8, out var fr) && fr.ValueKind == JsonValueKind.Object)
                        WriteEnv(w, e);
                    else e.WriteTo(w);
                w.WriteEndArray();
            }
            else if (kind == JsonValueKind.Array && p.NameEquals("volumeMounts"u8))
            {
                mounts = true;
                w.WritePropertyName("volumeMounts"u8);
                w.WriteStartArray();
                foreach (var m in p.Value.EnumerateArray()) m.WriteTo(w);
                if (mount) WriteAccessMount(w, volume);
                w.WriteEndArray();
            }
            else if (kind == JsonValueKind.Object && p.NameEquals("resources"u8))
            {
                resources = true;
                w.WritePropertyName("resources"u8);
                WriteResources(w, p.Value);
            }
            else if (kind == JsonValueKind.Object && OneOf(p, Probes) is { } probe)
            {
                w.WritePropertyName(probe);
                WriteProbe(w, p.Value);
            }
            else if (kind == JsonValueKind.Object && p.NameEquals("lifecycle"u8))
            {
                w.WritePropertyName("lifecycle"u8);
                WriteLifecycle(w, p.Value);
            }
            else
            {
                // Anything else is copied; the tables have made the defaulted members strings and objects.
                if (p.NameEquals("terminationMessagePath"u8)) path = true;
                else if (p.NameEquals("terminationMessagePolicy"u8)) policy = true;
                else if (p.NameEquals("imagePullPolicy"u8)) pull = true;
                else if (p.NameEquals("resources"u8)) resources = true;
                p.WriteTo(w);
            }
        }
        if (!path) w.WriteString("terminationMessagePath"u8, "/dev/termination-log"u8);
        if (!policy) w.WriteString("terminationMessagePolicy"u8, "File"u8);
        if (!pull) w.WriteString("imagePullPolicy"u8, PodDefaults.DefaultPullPolicy(Str(c, "image"u8)));
        if (!resources) { w.WriteStartObject("resources"u8); w.WriteEndObject(); }
        if (mount && !mounts)
        {
            w.WriteStartArray("volumeMounts"u8);
            WriteAccessMount(w, volume);
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    private static void WriteAccessMount(Utf8JsonWriter w, string volume)
    {
        w.WriteStartObject();
        w.WriteString("name"u8, volume);
        w.WriteBoolean("readOnly"u8, true);
        w.WriteString("mountPath"u8, ServiceAccountAdmission.MountPath);
        w.WriteEndObject();
    }

    private void WritePort(Utf8JsonWriter w, JsonElement port)
    {
        w.WriteStartObject();
        foreach (var p in port.EnumerateObject()) p.WriteTo(w);
        if (!port.TryGetProperty("protocol"u8, out _)) w.WriteString("protocol"u8, "TCP"u8);
        if (_hostNetwork && !port.TryGetProperty("hostPort"u8, out _) && port.TryGetProperty("containerPort"u8, out var cp))
        {
            w.WritePropertyName("hostPort"u8);
            cp.WriteTo(w);
        }
        w.WriteEndObject();
    }

    private static void WriteEnv(Utf8JsonWriter w, JsonElement env)
    {
        w.WriteStartObject();
        foreach (var p in env.EnumerateObject())
        {
            if (!p.NameEquals("valueFrom"u8)) { p.WriteTo(w); continue; }
            w.WritePropertyName("valueFrom"u8);
            w.WriteStartObject();
            foreach (var q in p.Value.EnumerateObject())
            {
                if (!q.NameEquals("fieldRef"u8)) { q.WriteTo(w); continue; }
                w.WritePropertyName("fieldRef"u8);
                WriteWithDefaults(w, q.Value, "apiVersion"u8, "v1"u8);
            }
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    /// <summary>Requests default to the limits, key by key, in the limits' order.</summary>
    private static void WriteResources(Utf8JsonWriter w, JsonElement res)
    {
        if (res.ValueKind != JsonValueKind.Object) { res.WriteTo(w); return; }
        bool limits = res.TryGetProperty("limits"u8, out var lim) && lim.ValueKind == JsonValueKind.Object && lim.EnumerateObject().MoveNext();
        w.WriteStartObject();
        bool requests = false;
        foreach (var p in res.EnumerateObject())
        {
            if (!limits || !p.NameEquals("requests"u8) || p.Value.ValueKind != JsonValueKind.Object) { p.WriteTo(w); continue; }
            requests = true;
            w.WritePropertyName("requests"u8);
            w.WriteStartObject();
            foreach (var q in p.Value.EnumerateObject()) q.WriteTo(w);
            foreach (var l in lim.EnumerateObject())
                if (!HasMember(p.Value, l)) l.WriteTo(w);
            w.WriteEndObject();
        }
        if (limits && !requests)
        {
            w.WriteStartObject("requests"u8);
            foreach (var l in lim.EnumerateObject()) l.WriteTo(w);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static bool HasMember(JsonElement o, JsonProperty like)
    {
        // The raw name is the name itself unless it has an escape.
        var raw = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8PropertyName(like);
        return raw.IndexOf((byte)'\\') < 0 ? o.TryGetProperty(raw, out _) : o.TryGetProperty(like.Name, out _);
    }

    private static void WriteProbe(Utf8JsonWriter w, JsonElement probe)
    {
        w.WriteStartObject();
        foreach (var p in probe.EnumerateObject())
        {
            if (!p.NameEquals("httpGet"u8) || p.Value.ValueKind != JsonValueKind.Object) { p.WriteTo(w); continue; }
            w.WritePropertyName("httpGet"u8);
            WriteHttpGet(w, p.Value);
        }
        if (!probe.TryGetProperty("timeoutSeconds"u8, out _)) w.WriteNumber("timeoutSeconds"u8, 1);
        if (!probe.TryGetProperty("periodSeconds"u8, out _)) w.WriteNumber("periodSeconds"u8, 10);
        if (!probe.TryGetProperty("successThreshold"u8, out _)) w.WriteNumber("successThreshold"u8, 1);
        if (!probe.TryGetProperty("failureThreshold"u8, out _)) w.WriteNumber("failureThreshold"u8, 3);
        w.WriteEndObject();
    }

    private static void WriteLifecycle(Utf8JsonWriter w, JsonElement lifecycle)
    {
        w.WriteStartObject();
        foreach (var p in lifecycle.EnumerateObject())
        {
            if (OneOf(p, Hooks) is not { } hook || p.Value.ValueKind != JsonValueKind.Object
                || !p.Value.TryGetProperty("httpGet"u8, out var h) || h.ValueKind != JsonValueKind.Object)
            {
                p.WriteTo(w);
                continue;
            }
            w.WritePropertyName(hook);
            w.WriteStartObject();
            foreach (var q in p.Value.EnumerateObject())
            {
                if (!q.NameEquals("httpGet"u8)) { q.WriteTo(w); continue; }
                w.WritePropertyName("httpGet"u8);
                WriteHttpGet(w, q.Value);
            }
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static void WriteHttpGet(Utf8JsonWriter w, JsonElement h)
    {
        w.WriteStartObject();
        foreach (var p in h.EnumerateObject()) p.WriteTo(w);
        if (!h.TryGetProperty("path"u8, out _)) w.WriteString("path"u8, "/"u8);
        if (!h.TryGetProperty("scheme"u8, out _)) w.WriteString("scheme"u8, "HTTP"u8);
        w.WriteEndObject();
    }

    private static void WriteWithDefaults(Utf8JsonWriter w, JsonElement o, ReadOnlySpan<byte> member, ReadOnlySpan<byte> value)
    {
        w.WriteStartObject();
        foreach (var p in o.EnumerateObject()) p.WriteTo(w);
        if (!o.TryGetProperty(member, out _)) w.WriteString(member, value);
        w.WriteEndObject();
    }

    // ---- volumes: hostPath type, and the defaultMode of the four file-projecting sources --------

    private static void WriteVolume(Utf8JsonWriter w, JsonElement v)
    {
        w.WriteStartObject();
        foreach (var p in v.EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.Object)
            {
                if (p.NameEquals("hostPath"u8)) { w.WritePropertyName("hostPath"u8); WriteWithDefaults(w, p.Value, "type"u8, ""u8); continue; }
                if (OneOf(p, FileSources) is { } source)
                {
                    w.WritePropertyName(source);
                    w.WriteStartObject();
                    foreach (var q in p.Value.EnumerateObject()) q.WriteTo(w);
                    if (!p.Value.TryGetProperty("defaultMode"u8, out _)) w.WriteNumber("defaultMode"u8, 420);
                    w.WriteEndObject();
                    continue;
                }
            }
            p.WriteTo(w);
        }
        w.WriteEndObject();
    }
}
