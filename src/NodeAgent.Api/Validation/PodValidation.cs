using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;

namespace NodeAgent.Api.Validation;

/// <summary>
/// The subset of the apiserver's Pod validation (pkg/apis/core/validation) that matters to a node:
/// everything here would make the pod fail at run time or be rejected upstream. Call after
/// <see cref="PodDefaults.Apply"/>.
/// </summary>
public static class PodValidation
{
    private static readonly string[] RestartPolicies = [RestartPolicy.Always, RestartPolicy.OnFailure, RestartPolicy.Never];
    private static readonly string[] PullPolicies = ["Always", "IfNotPresent", "Never"];
    private static readonly string[] Protocols = ["TCP", "UDP", "SCTP"];
    private static readonly string[] DnsPolicies = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
    private static readonly string[] HostPathTypes = ["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"];
    private static readonly string[] FieldPaths =
        ["metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations", "spec.nodeName",
         "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"];
    private static readonly string[] ResourceFields =
        ["limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage"];

    /// <summary>
    /// Validates a pod. <paramref name="staticPod"/>: the pod comes from a manifest file, so it may
    /// not use volume types that reference API objects (the kubelet refuses those for static pods);
    /// the API server validates with false.
    /// </summary>
    public static List<FieldError> Validate(Pod pod, bool staticPod = false)
    {
        var errs = new List<FieldError>();
        var m = pod.Metadata;
        if (string.IsNullOrEmpty(m.Name) && string.IsNullOrEmpty(m.GenerateName)) errs.Add(FieldError.Required("metadata.name", "name or generateName is required"));
        else if (!string.IsNullOrEmpty(m.Name) && Names.Dns1123Subdomain(m.Name) is { } ne) errs.Add(FieldError.Invalid("metadata.name", m.Name, ne));
        if (!string.IsNullOrEmpty(m.Namespace) && Names.Dns1123Label(m.Namespace) is { } nse) errs.Add(FieldError.Invalid("metadata.namespace", m.Namespace, nse));
        if (m.Labels is { } labels)
            foreach (var (k, v) in labels)
            {
                if (Names.QualifiedName(k) is { } ke) errs.Add(FieldError.Invalid("metadata.labels", k, ke));
                if (Names.LabelValue(v) is { } ve) errs.Add(FieldError.Invalid("metadata.labels", v, ve));
            }
        if (m.Annotations is { } ann)
            foreach (var k in ann.Keys)
                if (Names.QualifiedName(k.ToLowerInvariant()) is { } ke) errs.Add(FieldError.Invalid("metadata.annotations", k, ke));
        ValidateSpec(pod.Spec, errs, staticPod);
        return errs;
    }

    private static void ValidateSpec(PodSpec spec, List<FieldError> errs, bool staticPod)
    {
        var volumes = ValidateVolumes(spec.Volumes, errs, staticPod);
        if (spec.Containers.Count == 0) errs.Add(FieldError.Required("spec.containers"));
        if (spec.RestartPolicy is { } rp && !RestartPolicies.Contains(rp)) errs.Add(FieldError.NotSupported("spec.restartPolicy", rp, RestartPolicies));
        if (spec.DnsPolicy is { } dp && !DnsPolicies.Contains(dp)) errs.Add(FieldError.NotSupported("spec.dnsPolicy", dp, DnsPolicies));
        if (spec.TerminationGracePeriodSeconds is < 0) errs.Add(FieldError.Invalid("spec.terminationGracePeriodSeconds", spec.TerminationGracePeriodSeconds, "must be greater than or equal to 0"));
        if (spec.ActiveDeadlineSeconds is <= 0) errs.Add(FieldError.Invalid("spec.activeDeadlineSeconds", spec.ActiveDeadlineSeconds, "must be between 1 and 2147483647, inclusive"));

        var names = new HashSet<string>(StringComparer.Ordinal);
        if (spec.InitContainers is { } inits)
            for (int i = 0; i < inits.Count; i++)
            {
                var path = $"spec.initContainers[{i}]";
                ValidateContainer(inits[i], path, volumes, names, errs);
                if (inits[i].RestartPolicy is { } crp && crp != RestartPolicy.Always)
                    errs.Add(FieldError.NotSupported(path + ".restartPolicy", crp, RestartPolicy.Always));
                if (inits[i].RestartPolicy != RestartPolicy.Always)
                {
                    // Only sidecars may carry lifecycle and long-running probes (KEP-753).
                    if (inits[i].LivenessProbe is not null) errs.Add(FieldError.Forbidden(path + ".livenessProbe", "may not be set for init containers without restartPolicy=Always"));
                    if (inits[i].ReadinessProbe is not null) errs.Add(FieldError.Forbidden(path + ".readinessProbe", "may not be set for init containers without restartPolicy=Always"));
                    if (inits[i].StartupProbe is not null) errs.Add(FieldError.Forbidden(path + ".startupProbe", "may not be set for init containers without restartPolicy=Always"));
                }
            }
        for (int i = 0; i < spec.Containers.Count; i++)
        {
            var path = $"spec.containers[{i}]";
            ValidateContainer(spec.Containers[i], path, volumes, names, errs);
            if (spec.Containers[i].RestartPolicy is not null) errs.Add(FieldError.Forbidden(path + ".restartPolicy", "may not be set for non-init containers"));
        }
    }

    private static readonly string[] ApiVolumeTypes = ["configMap", "secret", "projected", "downwardAPI", "persistentVolumeClaim", "nfs", "csi", "ephemeral", "image"];

    private static Dictionary<string, Volume> ValidateVolumes(List<Volume>? volumes, List<FieldError> errs, bool staticPod)
    {
        var byName = new Dictionary<string, Volume>(StringComparer.Ordinal);
        if (volumes is null) return byName;
        for (int i = 0; i < volumes.Count; i++)
        {
            var v = volumes[i];
            var path = $"spec.volumes[{i}]";
            if (Names.Dns1123Label(v.Name) is { } e) errs.Add(string.IsNullOrEmpty(v.Name) ? FieldError.Required(path + ".name") : FieldError.Invalid(path + ".name", v.Name, e));
            else if (!byName.TryAdd(v.Name, v)) errs.Add(FieldError.Duplicate(path + ".name", v.Name));
            var others = v.Extra?.Keys.Where(k => ApiVolumeTypes.Contains(k)).ToList() ?? [];
            int sources = (v.HostPath is null ? 0 : 1) + (v.EmptyDir is null ? 0 : 1) + others.Count;
            if (staticPod && others.Count > 0) errs.Add(FieldError.Forbidden($"{path}.{others[0]}", "this volume type is not supported by node-agent for this pod source"));
            else if (sources == 0) errs.Add(FieldError.Required(path, "must specify a volume type"));
            else if (sources > 1) errs.Add(FieldError.Forbidden(path, "may not specify more than 1 volume type"));
            if (v.HostPath is { } hp)
            {
                if (string.IsNullOrEmpty(hp.Path)) errs.Add(FieldError.Required(path + ".hostPath.path"));
                else if (!hp.Path.StartsWith('/')) errs.Add(FieldError.Invalid(path + ".hostPath.path", hp.Path, "must be an absolute path"));
                if (hp.Type is { } t && !HostPathTypes.Contains(t)) errs.Add(FieldError.NotSupported(path + ".hostPath.type", t, HostPathTypes));
            }
            if (v.EmptyDir is { } ed)
            {
                if (ed.Medium is { } md && md is not ("" or "Memory")) errs.Add(FieldError.NotSupported(path + ".emptyDir.medium", md, "", "Memory"));
                if (ed.SizeLimit is { } sl && !sl.IsValid) errs.Add(QuantityError(path + ".emptyDir.sizeLimit", sl));
            }
        }
        return byName;
    }

    private static void ValidateContainer(Container c, string path, Dictionary<string, Volume> volumes, HashSet<string> names, List<FieldError> errs)
    {
        if (string.IsNullOrEmpty(c.Name)) errs.Add(FieldError.Required(path + ".name"));
        else if (Names.Dns1123Label(c.Name) is { } ne) errs.Add(FieldError.Invalid(path + ".name", c.Name, ne));
        else if (!names.Add(c.Name)) errs.Add(FieldError.Duplicate(path + ".name", c.Name));
        if (string.IsNullOrWhiteSpace(c.Image)) errs.Add(FieldError.Required(path + ".image"));
        else if (c.Image.Trim() != c.Image) errs.Add(FieldError.Invalid(path + ".image", c.Image, "must not have leading or trailing whitespace"));
        if (c.ImagePullPolicy is { } pp && !PullPolicies.Contains(pp)) errs.Add(FieldError.NotSupported(path + ".imagePullPolicy", pp, PullPolicies));
        if (c.TerminationMessagePolicy is { } tmp && tmp is not ("File" or "FallbackToLogsOnError")) errs.Add(FieldError.NotSupported(path + ".terminationMessagePolicy", tmp, "File", "FallbackToLogsOnError"));

        var portNames = new HashSet<string>(StringComparer.Ordinal);
        if (c.Ports is { } ports)
            for (int i = 0; i < ports.Count; i++)
            {
                var p = ports[i];
                var pp2 = $"{path}.ports[{i}]";
                if (p.Name is { Length: > 0 } pn)
                {
                    if (Names.IanaSvcName(pn) is { } e) errs.Add(FieldError.Invalid(pp2 + ".name", pn, e));
                    else if (!portNames.Add(pn)) errs.Add(FieldError.Duplicate(pp2 + ".name", pn));
                }
                if (p.Number == 0) errs.Add(FieldError.Required(pp2 + ".containerPort"));
                else if (p.Number is < 1 or > 65535) errs.Add(FieldError.Invalid(pp2 + ".containerPort", p.Number, "must be between 1 and 65535, inclusive"));
                if (p.HostPort is < 0 or > 65535) errs.Add(FieldError.Invalid(pp2 + ".hostPort", p.HostPort, "must be between 1 and 65535, inclusive"));
                if (p.Protocol is { } proto && !Protocols.Contains(proto)) errs.Add(FieldError.NotSupported(pp2 + ".protocol", proto, Protocols));
            }

        if (c.Env is { } env)
            for (int i = 0; i < env.Count; i++)
            {
                var e = env[i];
                var ep = $"{path}.env[{i}]";
                if (string.IsNullOrEmpty(e.Name)) errs.Add(FieldError.Required(ep + ".name"));
                else if (e.Name.Contains('=') || e.Name.Any(ch => ch < 32 || ch > 126))
                    errs.Add(FieldError.Invalid(ep + ".name", e.Name, "a valid environment variable name must consist only of printable ASCII characters other than '='"));
                if (e.ValueFrom is { } vf)
                {
                    if (!string.IsNullOrEmpty(e.Value)) errs.Add(FieldError.Invalid(ep + ".valueFrom", "", "may not be specified when `value` is not empty"));
                    int n = (vf.FieldRef is null ? 0 : 1) + (vf.ResourceFieldRef is null ? 0 : 1) + (vf.ConfigMapKeyRef is null ? 0 : 1) + (vf.SecretKeyRef is null ? 0 : 1);
                    if (n == 0) errs.Add(FieldError.Invalid(ep + ".valueFrom", "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
                    else if (n > 1) errs.Add(FieldError.Invalid(ep + ".valueFrom", "", "may not have more than one field specified at a time"));
                    if (vf.FieldRef is { } fr && !IsSupportedFieldPath(fr.FieldPath))
                        errs.Add(FieldError.NotSupported(ep + ".valueFrom.fieldRef.fieldPath", fr.FieldPath, FieldPaths));
                    if (vf.ResourceFieldRef is { } rf && !ResourceFields.Contains(rf.Resource))
                        errs.Add(FieldError.NotSupported(ep + ".valueFrom.resourceFieldRef.resource", rf.Resource, ResourceFields));
                }
            }

        if (c.Resources is { } res)
        {
            CheckQuantities(res.Limits, path + ".resources.limits", errs);
            CheckQuantities(res.Requests, path + ".resources.requests", errs);
            if (res.Limits is not null && res.Requests is not null)
                foreach (var (name, req) in res.Requests)
                    if (res.Limits.TryGetValue(name, out var lim) && req.IsValid && lim.IsValid && req.Value > lim.Value)
                        errs.Add(FieldError.Invalid($"{path}.resources.requests[{name}]", req.Text, $"must be less than or equal to {name} limit of {lim.Text}"));
        }

        if (c.VolumeMounts is { } mounts)
        {
            var paths = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < mounts.Count; i++)
            {
                var vm = mounts[i];
                var mp = $"{path}.volumeMounts[{i}]";
                if (string.IsNullOrEmpty(vm.Name)) errs.Add(FieldError.Required(mp + ".name"));
                else if (!volumes.ContainsKey(vm.Name)) errs.Add(FieldError.NotFound(mp + ".name", vm.Name));
                if (string.IsNullOrEmpty(vm.MountPath)) errs.Add(FieldError.Required(mp + ".mountPath"));
                else if (!paths.Add(vm.MountPath)) errs.Add(FieldError.Invalid(mp + ".mountPath", vm.MountPath, "must be unique"));
                if (vm.SubPath is { Length: > 0 } sp)
                {
                    if (sp.StartsWith('/')) errs.Add(FieldError.Invalid(mp + ".subPath", sp, "must be a relative path"));
                    else if (sp.Split('/').Contains("..")) errs.Add(FieldError.Invalid(mp + ".subPath", sp, "must not contain '..'"));
                }
            }
        }

        ValidateProbe(c.LivenessProbe, path + ".livenessProbe", mustSucceedOnce: true, errs);
        ValidateProbe(c.ReadinessProbe, path + ".readinessProbe", mustSucceedOnce: false, errs);
        ValidateProbe(c.StartupProbe, path + ".startupProbe", mustSucceedOnce: true, errs);
        if (c.Lifecycle is { } lc)
        {
            ValidateHandler(lc.PostStart, path + ".lifecycle.postStart", errs);
            ValidateHandler(lc.PreStop, path + ".lifecycle.preStop", errs);
        }
    }

    private static bool IsSupportedFieldPath(string path)
    {
        if (FieldPaths.Contains(path)) return true;
        foreach (var prefix in (string[])["metadata.labels['", "metadata.annotations['"])
            if (path.StartsWith(prefix, StringComparison.Ordinal) && path.EndsWith("']", StringComparison.Ordinal) && path.Length > prefix.Length + 2)
                return true;
        return false;
    }

    private static void CheckQuantities(Dictionary<string, Quantity>? list, string path, List<FieldError> errs)
    {
        if (list is null) return;
        foreach (var (name, q) in list)
        {
            if (!q.IsValid) errs.Add(QuantityError($"{path}[{name}]", q));
            else if (q.Value < 0) errs.Add(FieldError.Invalid($"{path}[{name}]", q.Text, "must be greater than or equal to 0"));
        }
    }

    private static FieldError QuantityError(string path, Quantity q) =>
        FieldError.Invalid(path, q.Text, "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");

    private static void ValidateProbe(Probe? p, string path, bool mustSucceedOnce, List<FieldError> errs)
    {
        if (p is null) return;
        int handlers = (p.Exec is null ? 0 : 1) + (p.HttpGet is null ? 0 : 1) + (p.TcpSocket is null ? 0 : 1) + (p.Grpc is null ? 0 : 1);
        if (handlers == 0) errs.Add(FieldError.Required(path, "must specify a handler type"));
        else if (handlers > 1) errs.Add(FieldError.Forbidden(path, "may not specify more than 1 handler type"));
        if (p.InitialDelaySeconds is < 0) errs.Add(FieldError.Invalid(path + ".initialDelaySeconds", p.InitialDelaySeconds, "must be greater than or equal to 0"));
        if (p.TimeoutSeconds is < 1) errs.Add(FieldError.Invalid(path + ".timeoutSeconds", p.TimeoutSeconds, "must be greater than or equal to 1"));
        if (p.PeriodSeconds is < 1) errs.Add(FieldError.Invalid(path + ".periodSeconds", p.PeriodSeconds, "must be greater than or equal to 1"));
        if (p.FailureThreshold is < 1) errs.Add(FieldError.Invalid(path + ".failureThreshold", p.FailureThreshold, "must be greater than or equal to 1"));
        if (p.SuccessThreshold is < 1) errs.Add(FieldError.Invalid(path + ".successThreshold", p.SuccessThreshold, "must be greater than or equal to 1"));
        else if (mustSucceedOnce && p.SuccessThreshold is > 1) errs.Add(FieldError.Invalid(path + ".successThreshold", p.SuccessThreshold, "must be 1"));
        if (p.Exec is { } ex && ex.Command is not { Count: > 0 }) errs.Add(FieldError.Required(path + ".exec.command"));
        ValidateHttp(p.HttpGet, path + ".httpGet", errs);
        ValidatePort(p.TcpSocket?.Port, path + ".tcpSocket.port", errs);
        if (p.Grpc is { } g && g.Port is < 1 or > 65535) errs.Add(FieldError.Invalid(path + ".grpc.port", g.Port, "must be between 1 and 65535, inclusive"));
    }

    private static void ValidateHandler(LifecycleHandler? h, string path, List<FieldError> errs)
    {
        if (h is null) return;
        int handlers = (h.Exec is null ? 0 : 1) + (h.HttpGet is null ? 0 : 1) + (h.TcpSocket is null ? 0 : 1) + (h.Sleep is null ? 0 : 1);
        if (handlers == 0) errs.Add(FieldError.Required(path, "must specify a handler type"));
        else if (handlers > 1) errs.Add(FieldError.Forbidden(path, "may not specify more than 1 handler type"));
        if (h.Exec is { } ex && ex.Command is not { Count: > 0 }) errs.Add(FieldError.Required(path + ".exec.command"));
        ValidateHttp(h.HttpGet, path + ".httpGet", errs);
        ValidatePort(h.TcpSocket?.Port, path + ".tcpSocket.port", errs);
        if (h.Sleep is { Seconds: < 0 }) errs.Add(FieldError.Invalid(path + ".sleep.seconds", h.Sleep.Seconds, "must be greater than or equal to 0"));
    }

    private static void ValidateHttp(HTTPGetAction? h, string path, List<FieldError> errs)
    {
        if (h is null) return;
        ValidatePort(h.Port, path + ".port", errs);
        if (h.Scheme is { } s && s is not ("HTTP" or "HTTPS")) errs.Add(FieldError.NotSupported(path + ".scheme", s, "HTTP", "HTTPS"));
    }

    private static void ValidatePort(IntOrString? port, string path, List<FieldError> errs)
    {
        if (port is not { } p) return;
        if (p.IsInt)
        {
            if (p.IntValue is < 1 or > 65535) errs.Add(FieldError.Invalid(path, p.IntValue, "must be between 1 and 65535, inclusive"));
        }
        else if (Names.IanaSvcName(p.StringValue ?? "") is { } e) errs.Add(FieldError.Invalid(path, p.StringValue, e));
    }
}
