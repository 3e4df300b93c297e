using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Api.Validation;
using NodeAgent.Cri;

namespace NodeAgent.Config;

/// <summary>
/// Turns manifest files into static pods the way the kubelet's file source does
/// (pkg/kubelet/config/common.go applyDefaults): name suffixed with "-&lt;node&gt;", namespace
/// "default", spec.nodeName set, a UID hashed from the object, the node and the file path (so any
/// edit makes a new pod that replaces the old), config.* annotations, and a NoExecute toleration.
/// </summary>
public static class StaticPods
{
    public const string Source = "file";

    /// <summary>Reads one file. Throws <see cref="ManifestException"/> whose message names the file, the pod and the field.</summary>
    public static List<Pod> Load(string path, string text, string nodeName, DateTimeOffset seen)
    {
        List<Pod> pods;
        try { pods = ManifestDecoder.DecodePods(text); }
        catch (ManifestException e) { throw new ManifestException($"{path}: {e.Message}", e); }
        if (pods.Count == 0) throw new ManifestException($"{path}: no pod in file");
        foreach (var pod in pods)
        {
            string shown = pod.Metadata.Name ?? "(unnamed)";
            ApplyDefaults(pod, path, nodeName, seen);
            var errs = PodValidation.Validate(pod, staticPod: true);
            if (errs.Count > 0)
                throw new ManifestException($"{path}: pod \"{shown}\" is invalid: {string.Join("; ", errs)}");
        }
        return pods;
    }

    public static void ApplyDefaults(Pod pod, string path, string nodeName, DateTimeOffset seen)
    {
        var m = pod.Metadata;
        if (string.IsNullOrEmpty(m.Uid))
        {
            var json = JsonSerializer.SerializeToUtf8Bytes(pod, ApiJsonContext.Default.Pod);
            var salt = Encoding.UTF8.GetBytes($"host:{nodeName}file:{path}");
            m.Uid = Convert.ToHexStringLower(MD5.HashData([.. json, .. salt]));
        }
        m.Name = $"{m.Name}-{nodeName}";
        if (string.IsNullOrEmpty(m.Namespace)) m.Namespace = "default";
        pod.Spec.NodeName = nodeName;
        m.Annotations ??= [];
        m.Annotations[Labels.ConfigHash] = m.Uid;
        m.Annotations[Labels.ConfigSource] = Source;
        m.Annotations[Labels.ConfigSeen] = seen.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);
        pod.Spec.Tolerations ??= [];
        if (!pod.Spec.Tolerations.Any(t => t.Operator == "Exists" && t.Effect == "NoExecute" && t.Key is null))
            pod.Spec.Tolerations.Add(new Toleration { Operator = "Exists", Effect = "NoExecute" });
        PodDefaults.Apply(pod);
    }
}
