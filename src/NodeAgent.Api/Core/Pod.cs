using System.Text.Json;
using System.Text.Json.Serialization;
using NodeAgent.Api.Meta;

namespace NodeAgent.Api.Core;

// core/v1 Pod and what it references. Field names follow the upstream JSON names; the
// serializer's camelCase policy produces them (PodIP -> podIP, HTTPGet -> httpGet). Enum-like
// fields stay strings so values from newer API versions survive a round trip.

public sealed class Pod : ApiObject
{
    public PodSpec Spec { get; set; } = new();
    public PodStatus? Status { get; set; }

    protected override void OnDecoded()
    {
        base.OnDecoded();
        Spec ??= new();
    }
}

public sealed class PodList : ApiStruct
{
    public string? ApiVersion { get; set; } = "v1";
    public string? Kind { get; set; } = "PodList";
    public ListMeta Metadata { get; set; } = new();
    public List<Pod> Items { get; set; } = [];

    protected override void OnDecoded()
    {
        Metadata ??= new();
        Items ??= [];
        ZeroItems(Items);
    }
}

public sealed class PodSpec : ApiStruct
{
    public List<Volume>? Volumes { get; set; }
    public List<Container>? InitContainers { get; set; }
    public List<Container> Containers { get; set; } = [];
    public string? RestartPolicy { get; set; }
    public long? TerminationGracePeriodSeconds { get; set; }
    public long? ActiveDeadlineSeconds { get; set; }
    public string? DnsPolicy { get; set; }
    public Dictionary<string, string>? NodeSelector { get; set; }
    public string? ServiceAccountName { get; set; }
    /// <summary>The deprecated alias of <see cref="ServiceAccountName"/> (DeprecatedServiceAccount upstream).</summary>
    public string? ServiceAccount { get; set; }
    public bool? AutomountServiceAccountToken { get; set; }
    public string? NodeName { get; set; }
    public bool? HostNetwork { get; set; }
    public bool? HostPID { get; set; }
    public bool? HostIPC { get; set; }
    public bool? ShareProcessNamespace { get; set; }
    public PodSecurityContext? SecurityContext { get; set; }
    public string? Hostname { get; set; }
    public string? Subdomain { get; set; }
    public JsonElement? Affinity { get; set; }
    public string? SchedulerName { get; set; }
    public List<Toleration>? Tolerations { get; set; }
    public List<HostAlias>? HostAliases { get; set; }
    public string? PriorityClassName { get; set; }
    public int? Priority { get; set; }
    public PodDNSConfig? DnsConfig { get; set; }
    public string? RuntimeClassName { get; set; }
    public bool? EnableServiceLinks { get; set; }

    protected override void OnDecoded()
    {
        Containers ??= [];
        ZeroItems(Containers);
        ZeroItems(InitContainers);
        ZeroItems(Volumes);
        ZeroItems(Tolerations);
        ZeroItems(HostAliases);
        ZeroValues(NodeSelector);
    }
}

public sealed class Container : ApiStruct
{
    public string Name { get; set; } = "";
    public string? Image { get; set; }
    public List<string>? Command { get; set; }
    public List<string>? Args { get; set; }
    public string? WorkingDir { get; set; }
    public List<ContainerPort>? Ports { get; set; }
    public List<EnvFromSource>? EnvFrom { get; set; }
    public List<EnvVar>? Env { get; set; }
    public ResourceRequirements? Resources { get; set; }
    /// <summary>Only for init containers: "Always" makes it a sidecar (KEP-753).</summary>
    public string? RestartPolicy { get; set; }
    public List<VolumeMount>? VolumeMounts { get; set; }
    public Probe? LivenessProbe { get; set; }
    public Probe? ReadinessProbe { get; set; }
    public Probe? StartupProbe { get; set; }
    public Lifecycle? Lifecycle { get; set; }
    public string? TerminationMessagePath { get; set; }
    public string? TerminationMessagePolicy { get; set; }
    public string? ImagePullPolicy { get; set; }
    public SecurityContext? SecurityContext { get; set; }
    public bool? Stdin { get; set; }
    public bool? StdinOnce { get; set; }
    public bool? Tty { get; set; }

    protected override void OnDecoded()
    {
        Name ??= "";
        ZeroItems(Command);
        ZeroItems(Args);
        ZeroItems(Ports);
        ZeroItems(EnvFrom);
        ZeroItems(Env);
        ZeroItems(VolumeMounts);
    }
}

public sealed class ContainerPort : ApiStruct
{
    public string? Name { get; set; }
    public int? HostPort { get; set; }
    [JsonPropertyName("containerPort")]
    public int Number { get; set; }
    public string? Protocol { get; set; }
    public string? HostIP { get; set; }
}

public sealed class EnvVar : ApiStruct
{
    public string Name { get; set; } = "";
    public string? Value { get; set; }
    public EnvVarSource? ValueFrom { get; set; }

    protected override void OnDecoded()
    {
        Name ??= "";
    }
}

public sealed class EnvVarSource : ApiStruct
{
    public ObjectFieldSelector? FieldRef { get; set; }
    public ResourceFieldSelector? ResourceFieldRef { get; set; }
    public KeySelector? ConfigMapKeyRef { get; set; }
    public KeySelector? SecretKeyRef { get; set; }
}

public sealed class ObjectFieldSelector : ApiStruct
{
    public string? ApiVersion { get; set; }
    public string FieldPath { get; set; } = "";

    protected override void OnDecoded()
    {
        FieldPath ??= "";
    }
}

public sealed class ResourceFieldSelector : ApiStruct
{
    public string? ContainerName { get; set; }
    public string Resource { get; set; } = "";
    public Quantity? Divisor { get; set; }

    protected override void OnDecoded()
    {
        Resource ??= "";
    }
}

/// <summary>ConfigMapKeySelector and SecretKeySelector share this shape.</summary>
public sealed class KeySelector : ApiStruct
{
    public string? Name { get; set; }
    public string Key { get; set; } = "";
    public bool? Optional { get; set; }

    protected override void OnDecoded()
    {
        Key ??= "";
    }
}

public sealed class EnvFromSource : ApiStruct
{
    public string? Prefix { get; set; }
    public LocalObjectRef? ConfigMapRef { get; set; }
    public LocalObjectRef? SecretRef { get; set; }
}

public sealed class LocalObjectRef : ApiStruct
{
    public string? Name { get; set; }
    public bool? Optional { get; set; }
}

public sealed class ResourceRequirements : ApiStruct
{
    public Dictionary<string, Quantity>? Limits { get; set; }
    public Dictionary<string, Quantity>? Requests { get; set; }
}

public sealed class VolumeMount : ApiStruct
{
    public string Name { get; set; } = "";
    public bool? ReadOnly { get; set; }
    public string MountPath { get; set; } = "";
    public string? SubPath { get; set; }
    public string? MountPropagation { get; set; }

    protected override void OnDecoded()
    {
        Name ??= "";
        MountPath ??= "";
    }
}

public sealed class Volume : ApiStruct
{
    public string Name { get; set; } = "";
    public HostPathVolumeSource? HostPath { get; set; }
    public EmptyDirVolumeSource? EmptyDir { get; set; }

    protected override void OnDecoded()
    {
        Name ??= "";
    }
}

public sealed class HostPathVolumeSource : ApiStruct
{
    public string Path { get; set; } = "";
    public string? Type { get; set; }

    protected override void OnDecoded()
    {
        Path ??= "";
    }
}

public sealed class EmptyDirVolumeSource : ApiStruct
{
    public string? Medium { get; set; }
    public Quantity? SizeLimit { get; set; }
}

public sealed class Probe : ApiStruct
{
    public ExecAction? Exec { get; set; }
    public HTTPGetAction? HttpGet { get; set; }
    public TCPSocketAction? TcpSocket { get; set; }
    public GRPCAction? Grpc { get; set; }
    public int? InitialDelaySeconds { get; set; }
    public int? TimeoutSeconds { get; set; }
    public int? PeriodSeconds { get; set; }
    public int? SuccessThreshold { get; set; }
    public int? FailureThreshold { get; set; }
    public long? TerminationGracePeriodSeconds { get; set; }
}

public sealed class ExecAction : ApiStruct
{
    public List<string>? Command { get; set; }

    protected override void OnDecoded()
    {
        ZeroItems(Command);
    }
}

public sealed class HTTPGetAction : ApiStruct
{
    public string? Path { get; set; }
    public IntOrString Port { get; set; }
    public string? Host { get; set; }
    public string? Scheme { get; set; }
    public List<HTTPHeader>? HttpHeaders { get; set; }

    protected override void OnDecoded()
    {
        ZeroItems(HttpHeaders);
    }
}

public sealed class HTTPHeader : ApiStruct
{
    public string Name { get; set; } = "";
    public string Value { get; set; } = "";

    protected override void OnDecoded()
    {
        Name ??= "";
        Value ??= "";
    }
}

public sealed class TCPSocketAction : ApiStruct
{
    public IntOrString Port { get; set; }
    public string? Host { get; set; }
}

public sealed class GRPCAction : ApiStruct
{
    public int Port { get; set; }
    public string? Service { get; set; }
}

public sealed class Lifecycle : ApiStruct
{
    public LifecycleHandler? PostStart { get; set; }
    public LifecycleHandler? PreStop { get; set; }
}

public sealed class LifecycleHandler : ApiStruct
{
    public ExecAction? Exec { get; set; }
    public HTTPGetAction? HttpGet { get; set; }
    public TCPSocketAction? TcpSocket { get; set; }
    public SleepAction? Sleep { get; set; }
}

public sealed class SleepAction : ApiStruct
{
    public long Seconds { get; set; }
}

public sealed class SecurityContext : ApiStruct
{
    public Capabilities? Capabilities { get; set; }
    public bool? Privileged { get; set; }
    public long? RunAsUser { get; set; }
    public long? RunAsGroup { get; set; }
    public bool? RunAsNonRoot { get; set; }
    public bool? ReadOnlyRootFilesystem { get; set; }
    public bool? AllowPrivilegeEscalation { get; set; }
}

public sealed class Capabilities : ApiStruct
{
    public List<string>? Add { get; set; }
    public List<string>? Drop { get; set; }

    protected override void OnDecoded()
    {
        ZeroItems(Add);
        ZeroItems(Drop);
    }
}

public sealed class PodSecurityContext : ApiStruct
{
    public long? RunAsUser { get; set; }
    public long? RunAsGroup { get; set; }
    public bool? RunAsNonRoot { get; set; }
    public List<long>? SupplementalGroups { get; set; }
    public long? FsGroup { get; set; }
    public List<Sysctl>? Sysctls { get; set; }

    protected override void OnDecoded()
    {
        ZeroItems(Sysctls);
    }
}

public sealed class Sysctl : ApiStruct
{
    public string Name { get; set; } = "";
    public string Value { get; set; } = "";

    protected override void OnDecoded()
    {
        Name ??= "";
        Value ??= "";
    }
}

public sealed class Toleration : ApiStruct
{
    public string? Key { get; set; }
    public string? Operator { get; set; }
    public string? Value { get; set; }
    public string? Effect { get; set; }
    public long? TolerationSeconds { get; set; }
}

public sealed class HostAlias : ApiStruct
{
    public string? Ip { get; set; }
    public List<string>? Hostnames { get; set; }

    protected override void OnDecoded()
    {
        ZeroItems(Hostnames);
    }
}

public sealed class PodDNSConfig : ApiStruct
{
    public List<string>? Nameservers { get; set; }
    public List<string>? Searches { get; set; }
    public List<PodDNSConfigOption>? Options { get; set; }

    protected override void OnDecoded()
    {
        ZeroItems(Nameservers);
        ZeroItems(Searches);
        ZeroItems(Options);
    }
}

public sealed class PodDNSConfigOption : ApiStruct
{
    public string? Name { get; set; }
    public string? Value { get; set; }
}
