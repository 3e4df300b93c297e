using NodeAgent.Api.Core;

namespace NodeAgent.Cm;

/// <summary>
/// Names of the pod cgroups under the kubepods hierarchy, as the kubelet's cgroupsPerQOS layout
/// names them (pkg/kubelet/cm/qos_container_manager, pod_container_manager):
/// Guaranteed pods sit directly under kubepods, the other classes under kubepods/burstable and
/// kubepods/besteffort. With the systemd driver the same path becomes nested slice names, e.g.
/// kubepods-burstable-pod1234_abcd.slice ("-" in a UID becomes "_" because "-" nests slices).
/// </summary>
public sealed class CgroupLayout(string driver, string cgroupRoot = "/")
{
    public bool Systemd { get; } = driver == "systemd";

    /// <summary>Generic path segments from the hierarchy root, e.g. ["kubepods", "burstable", "pod<uid>"].</summary>
    public string[] PodSegments(string qosClass, string podUid) => qosClass switch
    {
        QosClass.Guaranteed => ["kubepods", "pod" + podUid],
        QosClass.Burstable => ["kubepods", "burstable", "pod" + podUid],
        _ => ["kubepods", "besteffort", "pod" + podUid],
    };

    /// <summary>The value for LinuxPodSandboxConfig.cgroup_parent.</summary>
    public string PodCgroupParent(string qosClass, string podUid)
    {
        var segments = PodSegments(qosClass, podUid);
        return Systemd ? SystemdSliceName(segments) : CgroupfsPath(segments);
    }

    /// <summary>Filesystem-relative path (below a controller mount) of the pod cgroup.</summary>
    public string PodRelativePath(string qosClass, string podUid)
    {
        var segments = PodSegments(qosClass, podUid);
        if (!Systemd) return CgroupfsPath(segments).TrimStart('/');
        // systemd nests each slice in its parent's directory: kubepods.slice/kubepods-burstable.slice/...
        var parts = new List<string>();
        for (int i = 1; i <= segments.Length; i++) parts.Add(SystemdSliceName(segments[..i]));
        return string.Join('/', parts);
    }

    private string CgroupfsPath(string[] segments)
    {
        string root = cgroupRoot.TrimEnd('/');
        return root + "/" + string.Join('/', segments);
    }

    public static string SystemdSliceName(ReadOnlySpan<string> segments)
    {
        var escaped = new string[segments.Length];
        for (int i = 0; i < segments.Length; i++) escaped[i] = segments[i].Replace('-', '_');
        return string.Join('-', escaped) + ".slice";
    }
}
