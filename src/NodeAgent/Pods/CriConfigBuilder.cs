using System.Globalization;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Cm;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using Container = NodeAgent.Api.Core.Container;
using NodeAgent.Volumes;
using CriContainerConfig = NodeAgent.Cri.V1.ContainerConfig;

namespace NodeAgent.Pods;

/// <summary>
/// Maps a v1 Pod to CRI sandbox and container configs the way kuberuntime does
/// (kuberuntime_sandbox.go, kuberuntime_container.go, security_context.go): same labels and
/// annotations, log layout, namespaces, resources and security settings. Pure: no I/O except the
/// host's resolv.conf for the Default DNS policy.
/// </summary>
public sealed class CriConfigBuilder(string podLogsDir, CgroupLayout cgroups, string resolvConf = "/etc/resolv.conf")
{
    public string PodLogDir(Pod pod) => Path.Combine(podLogsDir, $"{pod.Metadata.Namespace}_{pod.Metadata.Name}_{pod.Metadata.Uid}");

    public static string ContainerLogPath(string containerName, int restartCount) => $"{containerName}/{restartCount.ToString(CultureInfo.InvariantCulture)}.log";

    public PodSandboxConfig Sandbox(Pod pod, uint attempt, string qosClass)
    {
        var m = pod.Metadata;
        var spec = pod.Spec;
        var cfg = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = m.Name, Namespace = m.Namespace, Uid = m.Uid, Attempt = attempt },
            LogDirectory = PodLogDir(pod),
            Hostname = spec.HostNetwork == true ? "" : Hostname(pod),
            DnsConfig = Dns(spec),
            Linux = new LinuxPodSandboxConfig
            {
                CgroupParent = cgroups.PodCgroupParent(qosClass, m.Uid!),
                SecurityContext = new LinuxSandboxSecurityContext
                {
                    NamespaceOptions = Namespaces(spec),
                    Privileged = PodDefaults.AllContainers(spec).Any(c => c.SecurityContext?.Privileged == true),
                },
            },
        };
        if (m.Labels is { } labels) cfg.Labels.Add(labels);
        cfg.Labels[Labels.PodName] = m.Name;
        cfg.Labels[Labels.PodNamespace] = m.Namespace;
        cfg.Labels[Labels.PodUid] = m.Uid;
        if (m.Annotations is { } ann) cfg.Annotations.Add(ann);
        var psc = spec.SecurityContext;
        if (psc?.RunAsUser is { } uid) cfg.Linux.SecurityContext.RunAsUser = new Int64Value { Value = uid };
        if (psc?.RunAsGroup is { } gid) cfg.Linux.SecurityContext.RunAsGroup = new Int64Value { Value = gid };
        if (psc?.SupplementalGroups is { } groups) cfg.Linux.SecurityContext.SupplementalGroups.AddRange(groups);
        if (psc?.FsGroup is { } fsg) cfg.Linux.SecurityContext.SupplementalGroups.Add(fsg);
        if (psc?.Sysctls is { } sysctls) foreach (var s in sysctls) cfg.Linux.Sysctls[s.Name] = s.Value;
        foreach (var c in PodDefaults.AllContainers(spec))
            if (c.Ports is { } ports)
                foreach (var p in ports)
                    if (p.HostPort is > 0 && spec.HostNetwork != true)
                        cfg.PortMappings.Add(new PortMapping
                        {
                            ContainerPort = p.Number, HostPort = p.HostPort.Value, HostIp = p.HostIP ?? "",
                            Protocol = p.Protocol switch { "UDP" => Protocol.Udp, "SCTP" => Protocol.Sctp, _ => Protocol.Tcp },
                        });
        return cfg;
    }

    /// <summary>The pod's hostname: spec.hostname, else the pod name, cut to 63 characters like the kubelet.</summary>
    public static string Hostname(Pod pod)
    {
        string h = string.IsNullOrEmpty(pod.Spec.Hostname) ? pod.Metadata.Name! : pod.Spec.Hostname;
        return h.Length > 63 ? h[..63].TrimEnd('-', '.') : h;
    }

    private static NamespaceOption Namespaces(PodSpec spec) => new()
    {
        Network = spec.HostNetwork == true ? NamespaceMode.Node : NamespaceMode.Pod,
        Pid = spec.HostPID == true ? NamespaceMode.Node : spec.ShareProcessNamespace == true ? NamespaceMode.Pod : NamespaceMode.Container,
        Ipc = spec.HostIPC == true ? NamespaceMode.Node : NamespaceMode.Pod,
    };

    private DNSConfig? Dns(PodSpec spec)
    {
        // Without cluster DNS configured, ClusterFirst falls back to the host's resolver (as in the kubelet).
        var dns = new DNSConfig();
        if (spec.DnsPolicy != "None" && File.Exists(resolvConf))
        {
            foreach (var line in File.ReadLines(resolvConf))
            {
                var f = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 2 || f[0].StartsWith('#')) continue;
                switch (f[0])
                {
                    case "nameserver": dns.Servers.Add(f[1]); break;
                    case "search": dns.Searches.Clear(); dns.Searches.AddRange(f[1..]); break;
                    case "options": dns.Options.AddRange(f[1..]); break;
                }
            }
        }
        if (spec.DnsConfig is { } extra)
        {
            if (extra.Nameservers is { } ns) dns.Servers.AddRange(ns);
            if (extra.Searches is { } s) dns.Searches.AddRange(s);
            if (extra.Options is { } o) dns.Options.AddRange(o.Select(x => x.Value is null ? x.Name ?? "" : $"{x.Name}:{x.Value}"));
        }
        return dns;
    }

    /// <summary>Builds one container's config. Throws <see cref="ContainerConfigException"/> or <see cref="VolumeException"/>.</summary>
    public CriContainerConfig Container(Pod pod, Container c, ContainerContext ctx)
    {
        var env = EnvResolver.Resolve(pod, c, ctx.Facts);
        var vars = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in env) vars[kv.Key] = kv.Value;

        var cfg = new CriContainerConfig
        {
            Metadata = new ContainerMetadata { Name = c.Name, Attempt = (uint)ctx.RestartCount },
            Image = new ImageSpec { Image = ctx.ImageRef, UserSpecifiedImage = c.Image ?? "" },
            WorkingDir = c.WorkingDir ?? "",
            LogPath = ContainerLogPath(c.Name, ctx.RestartCount),
            Stdin = c.Stdin == true,
            StdinOnce = c.StdinOnce == true,
            Tty = c.Tty == true,
            Linux = new LinuxContainerConfig
            {
                Resources = ResourceMath.ForContainer(c, ctx.QosClass, ctx.Facts.NodeMemoryBytes),
                SecurityContext = Security(pod.Spec, c),
            },
        };
        if (c.Command is { } cmd) cfg.Command.AddRange(cmd.Select(s => EnvResolver.Expand(s, vars)));
        if (c.Args is { } args) cfg.Args.AddRange(args.Select(s => EnvResolver.Expand(s, vars)));
        foreach (var (k, v) in env) cfg.Envs.Add(new KeyValue { Key = k, Value = v });

        if (c.VolumeMounts is { } mounts)
            foreach (var vm in mounts)
            {
                if (!ctx.VolumePaths.TryGetValue(vm.Name, out var hostPath))
                    throw new ContainerConfigException($"volumeMount \"{vm.Name}\": volume is not set up");
                cfg.Mounts.Add(new Mount
                {
                    ContainerPath = vm.MountPath,
                    HostPath = VolumeManager.MountSource(hostPath, vm.SubPath, vm.Name),
                    Readonly = vm.ReadOnly == true,
                    Propagation = vm.MountPropagation switch
                    {
                        "HostToContainer" => MountPropagation.PropagationHostToContainer,
                        "Bidirectional" => MountPropagation.PropagationBidirectional,
                        _ => MountPropagation.PropagationPrivate,
                    },
                });
            }
        bool mountsEtcHosts = c.VolumeMounts?.Any(v => v.MountPath == "/etc/hosts") == true;
        if (ctx.EtcHostsPath is { } hosts && !mountsEtcHosts)
            cfg.Mounts.Add(new Mount { ContainerPath = "/etc/hosts", HostPath = hosts });
        if (ctx.TerminationLogPath is { } tl && !string.IsNullOrEmpty(c.TerminationMessagePath))
            cfg.Mounts.Add(new Mount { ContainerPath = c.TerminationMessagePath, HostPath = tl });

        cfg.Labels[Labels.ContainerName] = c.Name;
        cfg.Labels[Labels.PodName] = pod.Metadata.Name;
        cfg.Labels[Labels.PodNamespace] = pod.Metadata.Namespace;
        cfg.Labels[Labels.PodUid] = pod.Metadata.Uid;
        cfg.Annotations[Labels.ContainerHash] = Hash(c);
        cfg.Annotations[Labels.ContainerRestartCount] = ctx.RestartCount.ToString(CultureInfo.InvariantCulture);
        cfg.Annotations[Labels.TerminationMessagePath] = c.TerminationMessagePath ?? "";
        cfg.Annotations[Labels.TerminationMessagePolicy] = c.TerminationMessagePolicy ?? "File";
        cfg.Annotations[Labels.PodTerminationGracePeriod] = (pod.Spec.TerminationGracePeriodSeconds ?? 30).ToString(CultureInfo.InvariantCulture);
        if (c.Lifecycle?.PreStop is { } preStop)
            cfg.Annotations[Labels.PreStopHandler] = JsonSerializer.Serialize(preStop, ApiJsonContext.Default.LifecycleHandler);
        return cfg;
    }

    private static LinuxContainerSecurityContext Security(PodSpec spec, Container c)
    {
        var sc = c.SecurityContext;
        var psc = spec.SecurityContext;
        var r = new LinuxContainerSecurityContext
        {
            Privileged = sc?.Privileged == true,
            ReadonlyRootfs = sc?.ReadOnlyRootFilesystem == true,
            NamespaceOptions = Namespaces(spec),
            NoNewPrivs = sc?.AllowPrivilegeEscalation == false,
        };
        if ((sc?.RunAsUser ?? psc?.RunAsUser) is { } uid) r.RunAsUser = new Int64Value { Value = uid };
        if ((sc?.RunAsGroup ?? psc?.RunAsGroup) is { } gid) r.RunAsGroup = new Int64Value { Value = gid };
        if (psc?.SupplementalGroups is { } groups) r.SupplementalGroups.AddRange(groups);
        if (psc?.FsGroup is { } fsg) r.SupplementalGroups.Add(fsg);
        if (sc?.Capabilities is { } caps)
        {
            r.Capabilities = new Capability();
            if (caps.Add is { } add) r.Capabilities.AddCapabilities.AddRange(add.Select(CapName));
            if (caps.Drop is { } drop) r.Capabilities.DropCapabilities.AddRange(drop.Select(CapName));
        }
        return r;
    }

    /// <summary>Kubernetes writes NET_ADMIN; OCI wants CAP_NET_ADMIN. "ALL" stays as is.</summary>
    private static string CapName(string cap) =>
        cap == "ALL" || cap.StartsWith("CAP_", StringComparison.OrdinalIgnoreCase) ? cap.ToUpperInvariant() : "CAP_" + cap.ToUpperInvariant();

    /// <summary>Stable hash of the container spec: a changed spec means a new container (annotation io.kubernetes.container.hash).</summary>
    public static string Hash(Container c)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(c, ApiJsonContext.Default.Container);
        return XxHash64.HashToUInt64(json).ToString("x16", CultureInfo.InvariantCulture);
    }

    /// <summary>The kubelet's managed /etc/hosts for a pod with its own network namespace.</summary>
    public static string EtcHosts(Pod pod, IReadOnlyList<string> podIps)
    {
        var sb = new StringBuilder("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n");
        string host = Hostname(pod);
        foreach (var ip in podIps) sb.Append(ip).Append('\t').Append(host).Append('\n');
        if (pod.Spec.HostAliases is { Count: > 0 } aliases)
        {
            sb.Append("\n# Entries added by HostAliases.\n");
            foreach (var a in aliases) sb.Append(a.Ip).Append('\t').Append(string.Join('\t', a.Hostnames ?? [])).Append('\n');
        }
        return sb.ToString();
    }
}

/// <summary>Per-start inputs to <see cref="CriConfigBuilder.Container"/>.</summary>
public sealed record ContainerContext(
    int RestartCount, string ImageRef, string QosClass, EnvResolver.PodFacts Facts,
    IReadOnlyDictionary<string, string> VolumePaths, string? EtcHostsPath, string? TerminationLogPath);
