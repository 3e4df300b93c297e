namespace NodeAgent.Api.Core;

/// <summary>
/// The defaults the apiserver applies to a Pod (pkg/apis/core/v1/defaults.go), which the kubelet
/// also applies to static pods it reads from files. Idempotent.
/// </summary>
public static class PodDefaults
{
    public static void Apply(Pod pod)
    {
        var spec = pod.Spec;
        spec.RestartPolicy ??= RestartPolicy.Always;
        spec.DnsPolicy ??= "ClusterFirst";
        spec.TerminationGracePeriodSeconds ??= 30;
        spec.SchedulerName ??= "default-scheduler";
        spec.SecurityContext ??= new PodSecurityContext();
        spec.EnableServiceLinks ??= true;
        if (spec.InitContainers is { } inits) foreach (var c in inits) Apply(c, spec.HostNetwork == true);
        foreach (var c in spec.Containers) Apply(c, spec.HostNetwork == true);
        if (spec.Volumes is { } volumes)
            foreach (var v in volumes)
                if (v.HostPath is { } hp) hp.Type ??= "";
    }

    private static void Apply(Container c, bool hostNetwork)
    {
        c.TerminationMessagePath ??= "/dev/termination-log";
        c.TerminationMessagePolicy ??= "File";
        c.ImagePullPolicy ??= DefaultPullPolicy(c.Image);
        if (c.Ports is { } ports)
            foreach (var p in ports)
            {
                p.Protocol ??= "TCP";
                if (hostNetwork && p.HostPort is null or 0) p.HostPort = p.Number;
            }
        if (c.Env is { } env)
            foreach (var e in env)
                if (e.ValueFrom?.FieldRef is { } f) f.ApiVersion ??= "v1";
        // Requests default to limits for every resource that has a limit but no request.
        if (c.Resources?.Limits is { Count: > 0 } limits)
        {
            c.Resources.Requests ??= [];
            foreach (var (name, q) in limits) c.Resources.Requests.TryAdd(name, q);
        }
        Apply(c.LivenessProbe);
        Apply(c.ReadinessProbe);
        Apply(c.StartupProbe);
        if (c.Lifecycle is { } lc)
        {
            ApplyHttp(lc.PostStart?.HttpGet);
            ApplyHttp(lc.PreStop?.HttpGet);
        }
    }

    private static void Apply(Probe? p)
    {
        if (p is null) return;
        p.TimeoutSeconds ??= 1;
        p.PeriodSeconds ??= 10;
        p.SuccessThreshold ??= 1;
        p.FailureThreshold ??= 3;
        ApplyHttp(p.HttpGet);
    }

    private static void ApplyHttp(HTTPGetAction? h)
    {
        if (h is null) return;
        h.Path ??= "/";
        h.Scheme ??= "HTTP";
    }

    /// <summary>Always for ":latest" or an untagged name, IfNotPresent otherwise (a digest counts as a tag).</summary>
    public static string DefaultPullPolicy(string? image)
    {
        if (string.IsNullOrEmpty(image)) return "IfNotPresent";
        if (image.Contains('@')) return "IfNotPresent";
        int slash = image.LastIndexOf('/');
        int colon = image.LastIndexOf(':');
        if (colon <= slash) return "Always";
        return image[(colon + 1)..] == "latest" ? "Always" : "IfNotPresent";
    }

    /// <summary>The QoS class as pkg/apis/core/helper/qos computes it (init containers included).</summary>
    public static string QosClassOf(PodSpec spec)
    {
        bool any = false, guaranteed = true;
        foreach (var c in AllContainers(spec))
        {
            var req = c.Resources?.Requests;
            var lim = c.Resources?.Limits;
            foreach (var name in (string[])["cpu", "memory"])
            {
                bool hasReq = req is not null && req.TryGetValue(name, out var r) && r.IsValid && r.Value != 0;
                bool hasLim = lim is not null && lim.TryGetValue(name, out var l) && l.IsValid && l.Value != 0;
                if (hasReq || hasLim) any = true;
                if (!hasLim) { guaranteed = false; continue; }
                if (hasReq && req![name].Value != lim![name].Value) guaranteed = false;
            }
        }
        if (!any) return QosClass.BestEffort;
        return guaranteed ? QosClass.Guaranteed : QosClass.Burstable;
    }

    public static IEnumerable<Container> AllContainers(PodSpec spec)
    {
        if (spec.InitContainers is { } inits) foreach (var c in inits) yield return c;
        foreach (var c in spec.Containers) yield return c;
    }
}
