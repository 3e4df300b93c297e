using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>
/// The ServiceAccount admission plugin, for new pods: spec.serviceAccountName defaults to
/// "default", and unless automountServiceAccountToken is false the pod gets the
/// kube-api-access-xxxxx projected volume (a bound token at "token", the cluster CA from the
/// kube-root-ca.crt ConfigMap at "ca.crt", the namespace at "namespace"), mounted read-only at
/// /var/run/secrets/kubernetes.io/serviceaccount in every container that has nothing there yet.
/// Mirror pods are left as they are. (Upstream also refuses pods whose ServiceAccount does not
/// exist yet; here the kubelet's token request fails and retries until it does.)
/// <see cref="PodCreateEncoder"/> does the same for pod creates without the tree; PodCreateEncoderTests holds the two together.
/// </summary>
public static class ServiceAccountAdmission
{
    public const string MountPath = "/var/run/secrets/kubernetes.io/serviceaccount";
    /// <summary>Upstream's bound token lifetime for the default volume: one hour and seven seconds.</summary>
    public const long TokenSeconds = 3607;

    public static void Admit(JsonObject pod)
    {
        // The body is not validated yet: a member of the wrong JSON type is left for the typed
        // decode after admission to reject with a 400 naming it.
        if ((pod["metadata"] as JsonObject)?["annotations"] is JsonObject annotations && annotations.ContainsKey("kubernetes.io/config.mirror")) return;
        if (pod["spec"] is not JsonObject spec) return;
        var account = spec["serviceAccountName"];
        if (account is null || account is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>().Length == 0)
            spec["serviceAccountName"] = account = spec.Str("serviceAccount") is { Length: > 0 } legacy ? legacy : "default";
        if (spec["serviceAccount"] is not { } alias || alias.GetValueKind() == JsonValueKind.String)
            spec["serviceAccount"] = account.DeepClone(); // the deprecated alias mirrors it
        if (spec["automountServiceAccountToken"]?.GetValueKind() == JsonValueKind.False) return;

        // Straight loops: this runs on every pod create.
        bool any = NeedsMount(spec["initContainers"] as JsonArray) || NeedsMount(spec["containers"] as JsonArray);
        if (!any) return;

        var volumes = spec["volumes"] as JsonArray ?? [];
        spec["volumes"] = volumes;
        string name;
        do name = NewVolumeName(); while (HasVolume(volumes, name));
        volumes.Add((JsonNode)new JsonObject
        {
            ["name"] = name,
            ["projected"] = new JsonObject
            {
                ["defaultMode"] = 420,
                ["sources"] = new JsonArray(
                    (JsonNode)new JsonObject { ["serviceAccountToken"] = new JsonObject { ["expirationSeconds"] = TokenSeconds, ["path"] = "token" } },
                    (JsonNode)new JsonObject
                    {
                        ["configMap"] = new JsonObject
                        {
                            ["name"] = "kube-root-ca.crt", ["items"] = new JsonArray((JsonNode)new JsonObject { ["key"] = "ca.crt", ["path"] = "ca.crt" }),
                        },
                    },
                    (JsonNode)new JsonObject
                    {
                        ["downwardAPI"] = new JsonObject
                        {
                            ["items"] = new JsonArray((JsonNode)new JsonObject
                            {
                                ["path"] = "namespace", ["fieldRef"] = new JsonObject { ["apiVersion"] = "v1", ["fieldPath"] = "metadata.namespace" },
                            }),
                        },
                    }),
            },
        });
        AddMounts(spec["initContainers"] as JsonArray, name);
        AddMounts(spec["containers"] as JsonArray, name);
    }

    private static bool NeedsMount(JsonArray? containers)
    {
        if (containers is null) return false;
        foreach (var c in containers)
            if (c is JsonObject o && !Mounted(o)) return true;
        return false;
    }

    private static bool Mounted(JsonObject container)
    {
        if (container["volumeMounts"] is not JsonArray mounts) return false;
        foreach (var m in mounts)
            if (m is JsonObject o && o["mountPath"] is JsonValue v && v.TryGetValue(out string? path) && path.AsSpan().TrimEnd('/').SequenceEqual(MountPath))
                return true;
        return false;
    }

    private static bool HasVolume(JsonArray volumes, string name)
    {
        foreach (var v in volumes)
            if (v is JsonObject o && o["name"] is JsonValue n && n.TryGetValue(out string? s) && s == name) return true;
        return false;
    }

    private static void AddMounts(JsonArray? containers, string volume)
    {
        if (containers is null) return;
        foreach (var c in containers)
        {
            if (c is not JsonObject o || Mounted(o)) continue;
            var mounts = o["volumeMounts"] as JsonArray ?? [];
            o["volumeMounts"] = mounts;
            mounts.Add((JsonNode)new JsonObject { ["name"] = volume, ["readOnly"] = true, ["mountPath"] = MountPath });
        }
    }

    /// <summary>A fresh name for the access volume: kube-api-access- and five random characters.</summary>
    public static string NewVolumeName() => "kube-api-access-" + RandomSuffix();

    private static string RandomSuffix()
    {
        const string alphabet = "bcdfghjklmnpqrstvwxz2456789";
        Span<char> s = stackalloc char[5];
        for (int i = 0; i < s.Length; i++) s[i] = alphabet[Random.Shared.Next(alphabet.Length)];
        return new string(s);
    }
}
