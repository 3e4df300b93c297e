using System.Text.Json.Serialization;
using NodeAgent.Api.Meta;

namespace NodeAgent.Api.Core;

public sealed class PodStatus : ApiStruct
{
    public string? Phase { get; set; }
    public List<PodCondition>? Conditions { get; set; }
    public string? Message { get; set; }
    public string? Reason { get; set; }
    public string? HostIP { get; set; }
    public List<PodIP>? HostIPs { get; set; }
    public string? PodIP { get; set; }
    public List<PodIP>? PodIPs { get; set; }
    [JsonConverter(typeof(Rfc3339Converter))]
    public DateTimeOffset? StartTime { get; set; }
    public List<ContainerStatus>? InitContainerStatuses { get; set; }
    public List<ContainerStatus>? ContainerStatuses { get; set; }
    public string? QosClass { get; set; }

    protected override void OnDecoded()
    {
        ZeroItems(Conditions);
        ZeroItems(HostIPs);
        ZeroItems(PodIPs);
        ZeroItems(InitContainerStatuses);
        ZeroItems(ContainerStatuses);
    }
}

public sealed class PodIP : ApiStruct
{
    public string? Ip { get; set; }
}

public sealed class PodCondition : ApiStruct
{
    public string Type { get; set; } = "";
    public string Status { get; set; } = "";
    [JsonConverter(typeof(Rfc3339Converter))]
    public DateTimeOffset? LastProbeTime { get; set; }
    [JsonConverter(typeof(Rfc3339Converter))]
    public DateTimeOffset? LastTransitionTime { get; set; }
    public string? Reason { get; set; }
    public string? Message { get; set; }
}

public sealed class ContainerStatus : ApiStruct
{
    public string Name { get; set; } = "";
    public ContainerState? State { get; set; }
    public ContainerState? LastState { get; set; }
    public bool Ready { get; set; }
    public int RestartCount { get; set; }
    public string Image { get; set; } = "";
    public string ImageID { get; set; } = "";
    public string? ContainerID { get; set; }
    public bool? Started { get; set; }
}

public sealed class ContainerState : ApiStruct
{
    public ContainerStateWaiting? Waiting { get; set; }
    public ContainerStateRunning? Running { get; set; }
    public ContainerStateTerminated? Terminated { get; set; }
}

public sealed class ContainerStateWaiting : ApiStruct
{
    public string? Reason { get; set; }
    public string? Message { get; set; }
}

public sealed class ContainerStateRunning : ApiStruct
{
    [JsonConverter(typeof(Rfc3339Converter))]
    public DateTimeOffset? StartedAt { get; set; }
}

public sealed class ContainerStateTerminated : ApiStruct
{
    public int ExitCode { get; set; }
    public int? Signal { get; set; }
    public string? Reason { get; set; }
    public string? Message { get; set; }
    [JsonConverter(typeof(Rfc3339Converter))]
    public DateTimeOffset? StartedAt { get; set; }
    [JsonConverter(typeof(Rfc3339Converter))]
    public DateTimeOffset? FinishedAt { get; set; }
    public string? ContainerID { get; set; }
}

/// <summary>Well-known values, as upstream spells them.</summary>
public static class PodPhase
{
    public const string Pending = "Pending", Running = "Running", Succeeded = "Succeeded", Failed = "Failed", Unknown = "Unknown";
}

public static class RestartPolicy
{
    public const string Always = "Always", OnFailure = "OnFailure", Never = "Never";
}

public static class QosClass
{
    public const string Guaranteed = "Guaranteed", Burstable = "Burstable", BestEffort = "BestEffort";
}
