using NodeAgent.Api.Core;
using NodeAgent.Pods;
using CriState = NodeAgent.Cri.V1.ContainerState;

namespace NodeAgent.Status;

/// <summary>What the pod's worker knows beyond the runtime: reasons for waiting, probe results, and its own facts.</summary>
public sealed class WorkerView
{
    /// <summary>Why a container is not running, by name (CrashLoopBackOff, ErrImagePull, CreateContainerConfigError, ...).</summary>
    public Dictionary<string, (string Reason, string Message)> Waiting { get; } = new(StringComparer.Ordinal);
    public Func<string, string, bool> IsReady { get; init; } = (_, _) => false;
    public Func<string, string, bool> IsStarted { get; init; } = (_, _) => true;
    public DateTimeOffset? StartTime { get; set; }
    public string? HostIP { get; init; }
    public IReadOnlyList<string> HostIPs { get; init; } = [];
    public string RuntimeName { get; init; } = "containerd";
    /// <summary>Set when the pod is done for good (e.g. an init container failed under restartPolicy Never).</summary>
    public string? TerminalPhase { get; set; }
    public Func<ContainerInfo, string?>? TerminationMessage { get; init; }
}

/// <summary>
/// Computes v1 PodStatus from the runtime's view of a pod, as the kubelet's generateAPIPodStatus,
/// getPhase and the status manager's condition helpers do. Pure; tests in tests/NodeAgent.Tests.
/// </summary>
public static class PodStatusComputer
{
    public static PodStatus Compute(Pod pod, RuntimePod rt, WorkerView view, PodStatus? previous, DateTimeOffset now)
    {
        var spec = pod.Spec;
        var sandbox = rt.CurrentSandbox;
        bool sandboxReady = sandbox is { State: Cri.V1.PodSandboxState.SandboxReady };
        var status = new PodStatus
        {
            QosClass = PodDefaults.QosClassOf(spec),
            HostIP = view.HostIP,
            HostIPs = view.HostIP is null ? null : view.HostIPs.Count > 0 ? [.. view.HostIPs.Select(ip => new PodIP { Ip = ip })] : [new PodIP { Ip = view.HostIP }],
            StartTime = view.StartTime,
        };
        if (sandboxReady && spec.HostNetwork == true && view.HostIP is not null)
        {
            status.PodIP = view.HostIP;
            status.PodIPs = status.HostIPs;
        }
        else if (sandboxReady && sandbox!.Ip is { } ip)
        {
            status.PodIP = ip;
            status.PodIPs = [new PodIP { Ip = ip }, .. sandbox.AdditionalIps.Select(a => new PodIP { Ip = a })];
        }
        else if (previous?.PodIP is { } prevIp && rt.Containers.Any(c => c.Running))
        {
            status.PodIP = prevIp;
            status.PodIPs = previous.PodIPs;
        }

        bool initializing = false;
        var uninitialized = new List<string>();
        if (spec.InitContainers is { Count: > 0 } inits)
        {
            status.InitContainerStatuses = [];
            foreach (var c in inits)
            {
                var cs = ContainerStatusOf(c, rt, view, initializing: false, pod);
                status.InitContainerStatuses.Add(cs);
                bool sidecar = c.RestartPolicy == RestartPolicy.Always;
                bool done = sidecar ? cs.Started == true : cs.State?.Terminated is { ExitCode: 0 } || InitSucceededBefore(c, rt);
                if (!done) { uninitialized.Add(c.Name); initializing = true; }
            }
        }
        status.ContainerStatuses = [];
        foreach (var c in spec.Containers) status.ContainerStatuses.Add(ContainerStatusOf(c, rt, view, initializing, pod));

        status.Phase = view.TerminalPhase ?? Phase(spec, status);

        var unready = new List<string>();
        foreach (var cs in status.ContainerStatuses) if (!cs.Ready) unready.Add(cs.Name);
        if (status.InitContainerStatuses is { } ics)
            for (int i = 0; i < ics.Count; i++)
                if (spec.InitContainers![i].RestartPolicy == RestartPolicy.Always && !ics[i].Ready) unready.Add(ics[i].Name);

        bool completed = status.Phase is PodPhase.Succeeded or PodPhase.Failed;
        var conditions = new List<PodCondition>
        {
            Condition("PodReadyToStartContainers", sandboxReady && (status.PodIP is not null || spec.HostNetwork == true), null, null, previous, now),
            uninitialized.Count == 0 || completed
                ? Condition("Initialized", true, completed && status.Phase == PodPhase.Succeeded ? "PodCompleted" : null, null, previous, now)
                : Condition("Initialized", false, "ContainersNotInitialized", $"containers with incomplete status: [{string.Join(' ', uninitialized)}]", previous, now),
        };
        if (completed)
        {
            conditions.Add(Condition("Ready", false, "PodCompleted", null, previous, now));
            conditions.Add(Condition("ContainersReady", false, "PodCompleted", null, previous, now));
        }
        else if (unready.Count == 0)
        {
            conditions.Add(Condition("Ready", true, null, null, previous, now));
            conditions.Add(Condition("ContainersReady", true, null, null, previous, now));
        }
        else
        {
            string msg = $"containers with unready status: [{string.Join(' ', unready)}]";
            conditions.Add(Condition("Ready", false, "ContainersNotReady", msg, previous, now));
            conditions.Add(Condition("ContainersReady", false, "ContainersNotReady", msg, previous, now));
        }
        conditions.Add(Condition("PodScheduled", true, null, null, previous, now));
        status.Conditions = conditions;
        return status;
    }

    private static bool InitSucceededBefore(Container c, RuntimePod rt)
    {
        // An init container that completed in the current sandbox stays completed even after GC.
        var sb = rt.CurrentSandbox;
        if (sb is null) return false;
        foreach (var x in rt.Containers)
            if (x.Name == c.Name && x.SandboxId == sb.Id && x.Exited && x.ExitCode == 0) return true;
        return false;
    }

    private static ContainerStatus ContainerStatusOf(Container c, RuntimePod rt, WorkerView view, bool initializing, Pod pod)
    {
        var cs = new ContainerStatus { Name = c.Name, Image = c.Image ?? "", ImageID = "", Started = false };
        var latest = rt.Latest(c.Name);
        view.Waiting.TryGetValue(c.Name, out var waiting);
        if (latest is null)
        {
            cs.State = new ContainerState
            {
                Waiting = new ContainerStateWaiting
                {
                    Reason = waiting.Reason ?? (initializing ? "PodInitializing" : "ContainerCreating"),
                    Message = waiting.Message,
                },
            };
            return cs;
        }
        cs.ContainerID = $"{view.RuntimeName}://{latest.Id}";
        cs.ImageID = latest.ImageRef;
        if (!string.IsNullOrEmpty(latest.Image) && !latest.Image.StartsWith("sha256:", StringComparison.Ordinal)) cs.Image = latest.Image;
        cs.RestartCount = latest.RestartCount;
        var previous = rt.Previous(c.Name, latest);
        switch (latest.State)
        {
            case CriState.ContainerRunning:
                cs.State = new ContainerState { Running = new ContainerStateRunning { StartedAt = ContainerInfo.Time(latest.StartedAt) } };
                cs.Started = view.IsStarted(c.Name, latest.Id);
                cs.Ready = cs.Started == true && view.IsReady(c.Name, latest.Id);
                if (previous is { Exited: true }) cs.LastState = new ContainerState { Terminated = Terminated(previous, view) };
                break;
            case CriState.ContainerExited:
                var term = Terminated(latest, view);
                if (waiting.Reason is not null)
                {
                    // Waiting to restart (e.g. CrashLoopBackOff): the exit becomes lastState.
                    cs.State = new ContainerState { Waiting = new ContainerStateWaiting { Reason = waiting.Reason, Message = waiting.Message } };
                    cs.LastState = new ContainerState { Terminated = term };
                }
                else
                {
                    cs.State = new ContainerState { Terminated = term };
                    if (previous is { Exited: true }) cs.LastState = new ContainerState { Terminated = Terminated(previous, view) };
                }
                break;
            default:
                cs.State = new ContainerState { Waiting = new ContainerStateWaiting { Reason = waiting.Reason ?? "ContainerCreating", Message = waiting.Message } };
                if (previous is { Exited: true }) cs.LastState = new ContainerState { Terminated = Terminated(previous, view) };
                break;
        }
        return cs;
    }

    private static ContainerStateTerminated Terminated(ContainerInfo c, WorkerView view)
    {
        string reason = string.IsNullOrEmpty(c.Reason) ? (c.ExitCode == 0 ? "Completed" : "Error") : c.Reason;
        string? message = view.TerminationMessage?.Invoke(c);
        if (string.IsNullOrEmpty(message)) message = string.IsNullOrEmpty(c.Message) ? null : c.Message;
        return new ContainerStateTerminated
        {
            ExitCode = c.ExitCode,
            Reason = reason,
            Message = message,
            StartedAt = ContainerInfo.Time(c.StartedAt),
            FinishedAt = ContainerInfo.Time(c.FinishedAt),
            ContainerID = $"{view.RuntimeName}://{c.Id}",
        };
    }

    /// <summary>The kubelet's getPhase.</summary>
    public static string Phase(PodSpec spec, PodStatus status)
    {
        int pendingInit = 0, failedInit = 0;
        if (spec.InitContainers is { } inits)
            for (int i = 0; i < inits.Count; i++)
            {
                var cs = status.InitContainerStatuses![i];
                bool sidecar = inits[i].RestartPolicy == RestartPolicy.Always;
                if (sidecar) { if (cs.Started != true) pendingInit++; continue; }
                if (cs.State?.Terminated is { } t)
                {
                    if (t.ExitCode != 0) { failedInit++; if (spec.RestartPolicy != RestartPolicy.Never) pendingInit++; }
                }
                else if (cs.State?.Running is not null || cs.State?.Waiting is not null) pendingInit++;
            }
        if (failedInit > 0 && spec.RestartPolicy == RestartPolicy.Never) return PodPhase.Failed;

        int running = 0, waiting = 0, stopped = 0, succeeded = 0;
        foreach (var cs in status.ContainerStatuses!)
        {
            if (cs.State?.Running is not null) running++;
            else if (cs.State?.Terminated is { } t) { stopped++; if (t.ExitCode == 0) succeeded++; }
            else if (cs.State?.Waiting is not null)
            {
                if (cs.LastState?.Terminated is not null) stopped++;
                else waiting++;
            }
        }
        if (pendingInit > 0 && running == 0) return PodPhase.Pending;
        if (waiting > 0) return PodPhase.Pending;
        if (running > 0) return PodPhase.Running;
        if (stopped > 0)
        {
            if (spec.RestartPolicy == RestartPolicy.Always) return PodPhase.Running;
            if (stopped == succeeded && status.ContainerStatuses.All(c => c.State?.Terminated is not null)) return PodPhase.Succeeded;
            if (spec.RestartPolicy == RestartPolicy.Never) return PodPhase.Failed;
            return PodPhase.Running; // OnFailure: the failed ones restart
        }
        return PodPhase.Pending;
    }

    private static PodCondition Condition(string type, bool value, string? reason, string? message, PodStatus? previous, DateTimeOffset now)
    {
        string s = value ? "True" : "False";
        var prev = previous?.Conditions?.Find(c => c.Type == type);
        return new PodCondition
        {
            Type = type,
            Status = s,
            Reason = reason,
            Message = message,
            LastProbeTime = null,
            LastTransitionTime = prev is not null && prev.Status == s ? prev.LastTransitionTime : now,
        };
    }
}
