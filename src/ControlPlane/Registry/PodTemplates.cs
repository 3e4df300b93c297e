using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>
/// Pod spec defaulting (pkg/apis/core/v1 defaults) on the JSON form, so unknown fields survive,
/// and validation through the shared typed <see cref="PodValidation"/>.
/// </summary>
public static class PodTemplates
{
    public static void Def(JsonObject o, string key, JsonNode value)
    {
        if (o[key] is null) o[key] = value;
    }

    /// <summary>
    /// The pod spec defaults. <see cref="PodCreateEncoder"/> writes the same ones for pod creates
    /// without the tree: a change here needs the same change there (PodCreateEncoderTests fails
    /// until the two agree on every body of its corpus).
    /// </summary>
    public static void DefaultSpec(JsonObject spec)
    {
        Def(spec, "restartPolicy", "Always");
        Def(spec, "dnsPolicy", "ClusterFirst");
        Def(spec, "terminationGracePeriodSeconds", 30);
        Def(spec, "schedulerName", "default-scheduler");
        Def(spec, "securityContext", new JsonObject());
        Def(spec, "enableServiceLinks", true);
        Def(spec, "priority", 0);
        Def(spec, "preemptionPolicy", "PreemptLowerPriority");
        bool hostNetwork = spec.Bool("hostNetwork") == true;
        foreach (var c in spec.ArrOrNull("initContainers").Objects()) DefaultContainer(c, hostNetwork);
        foreach (var c in spec.ArrOrNull("containers").Objects()) DefaultContainer(c, hostNetwork);
        foreach (var v in spec.ArrOrNull("volumes").Objects())
        {
            if (v.ObjOrNull("hostPath") is { } hp) Def(hp, "type", "");
            foreach (var kind in (string[])["configMap", "secret", "projected", "downwardAPI"])
                if (v.ObjOrNull(kind) is { } src) Def(src, "defaultMode", 420);
        }
    }

    private static void DefaultContainer(JsonObject c, bool hostNetwork)
    {
        Def(c, "terminationMessagePath", "/dev/termination-log");
        Def(c, "terminationMessagePolicy", "File");
        Def(c, "imagePullPolicy", PodDefaults.DefaultPullPolicy(c.Str("image")));
        Def(c, "resources", new JsonObject());
        foreach (var p in c.ArrOrNull("ports").Objects())
        {
            Def(p, "protocol", "TCP");
            if (hostNetwork && p["hostPort"] is null && p["containerPort"] is { } cp) p["hostPort"] = cp.DeepClone();
        }
        foreach (var e in c.ArrOrNull("env").Objects())
            if (e.ObjOrNull("valueFrom")?.ObjOrNull("fieldRef") is { } f) Def(f, "apiVersion", "v1");
        if (c.ObjOrNull("resources") is { } res && res.ObjOrNull("limits") is { Count: > 0 } limits)
        {
            var requests = res.Obj("requests");
            foreach (var (k, v) in limits) Def(requests, k, v!.DeepClone());
        }
        foreach (var probe in (string[])["livenessProbe", "readinessProbe", "startupProbe"])
            if (c.ObjOrNull(probe) is { } p)
            {
                Def(p, "timeoutSeconds", 1);
                Def(p, "periodSeconds", 10);
                Def(p, "successThreshold", 1);
                Def(p, "failureThreshold", 3);
                DefaultHttpGet(p.ObjOrNull("httpGet"));
            }
        if (c.ObjOrNull("lifecycle") is { } lc)
        {
            DefaultHttpGet(lc.ObjOrNull("postStart")?.ObjOrNull("httpGet"));
            DefaultHttpGet(lc.ObjOrNull("preStop")?.ObjOrNull("httpGet"));
        }
    }

    private static void DefaultHttpGet(JsonObject? h)
    {
        if (h is null) return;
        Def(h, "path", "/");
        Def(h, "scheme", "HTTP");
    }

    /// <summary>Typed view of a pod for validation; a field of the wrong JSON type is a 400, as upstream's decoder makes it.</summary>
    public static Pod ToTyped(JsonObject pod, string kind)
    {
        try { return pod.Deserialize(ApiJsonContext.Default.Pod) ?? throw Empty(kind); }
        catch (JsonException e) { throw WrongType(e, kind); }
    }

    /// <summary>The same typed view read from the pod's encoded bytes (cheaper than from the node tree).</summary>
    public static Pod ToTyped(ReadOnlySpan<byte> pod, string kind)
    {
        try { return JsonSerializer.Deserialize(pod, ApiJsonContext.Default.Pod) ?? throw Empty(kind); }
        catch (JsonException e) { throw WrongType(e, kind); }
    }

    private static ApiException Empty(string kind) => ApiException.BadRequest($"{kind} in version \"v1\" cannot be handled as a {kind}: empty object");

    private static ApiException WrongType(JsonException e, string kind)
    {
        string field = e.Path is { Length: > 2 } p ? p[2..] : "(root)";
        string reason = e.InnerException?.Message ?? e.Message;
        int cut = reason.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut > 0) reason = reason[..cut];
        return ApiException.BadRequest($"{kind} in version \"v1\" cannot be handled as a {kind}: {field}: {reason}");
    }

    /// <summary>Validates a pod template's spec, with field paths under <paramref name="prefix"/> (e.g. "spec.template.spec").</summary>
    public static void ValidateTemplate(JsonObject? template, string prefix, string kind, List<FieldError> errs)
    {
        if (template is null) { errs.Add(FieldError.Required(prefix)); return; }
        var probe = new JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "Pod",
            ["metadata"] = new JsonObject { ["name"] = "template" },
            ["spec"] = template["spec"]?.DeepClone() ?? new JsonObject(),
        };
        var pod = ToTyped(probe, kind);
        foreach (var e in PodValidation.Validate(pod))
            errs.Add(e with { Field = e.Field.StartsWith("spec", StringComparison.Ordinal) ? prefix + ".spec" + e.Field[4..] : prefix + "." + e.Field });
        Strategy.ValidateLabels(template.ObjOrNull("metadata"), prefix + ".metadata", errs);
    }
}
