using NodeAgent.Api.Core;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>Acceptance for the pod lifecycle: serving pods, init order, probes, restart policies, crash backoff.</summary>
[Collection(NodeCollection.Name)]
public sealed class PodLifecycleTests(NodeFixture node)
{
    private static readonly TimeSpan Start = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task HttpdPodGetsAnIpServesThePageAndIsRunningAndReady()
    {
        node.RequireReady();
        node.WriteManifest("web.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: web, labels: {app: web}}
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: httpd
                image: busybox:1.36
                command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
                ports: [{name: http, containerPort: 8080}]
                readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
            """);
        try
        {
            var pod = await node.WaitForPodAsync("web", p => p.Status?.Conditions?.Any(c => c is { Type: "Ready", Status: "True" }) == true, "Ready", Start);
            var s = pod.Status!;
            Assert.Equal(PodPhase.Running, s.Phase);
            Assert.StartsWith("10.245.0.", s.PodIP);
            // Dual-stack pod network: the IPv4 address first, then the IPv6 one (from CRI's additional_ips).
            Assert.Equal(2, s.PodIPs!.Count);
            Assert.Equal(s.PodIP, s.PodIPs[0].Ip);
            Assert.StartsWith("fd00:245::", s.PodIPs[1].Ip);
            Assert.Equal(QosClass.BestEffort, s.QosClass);
            Assert.NotNull(s.StartTime);
            foreach (var type in (string[])["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled"])
                Assert.Equal("True", Assert.Single(s.Conditions!, c => c.Type == type).Status);
            var cs = Assert.Single(s.ContainerStatuses!);
            Assert.Equal("httpd", cs.Name);
            Assert.True(cs.Ready);
            Assert.True(cs.Started);
            Assert.Equal(0, cs.RestartCount);
            Assert.NotNull(cs.State!.Running);
            Assert.StartsWith("containerd://", cs.ContainerID);
            Assert.Equal("docker.io/library/busybox:1.36", cs.Image);
            Assert.StartsWith("sha256:", cs.ImageID);

            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var page = await http.GetStringAsync($"http://{s.PodIP}:8080/");
            Assert.Contains("hello from node-agent", page);

            // Logs live where the kubelet puts them.
            string logDir = Path.Combine(node.PodLogs, $"default_web-{NodeFixture.NodeName}_{pod.Metadata.Uid}", "httpd");
            Assert.True(File.Exists(Path.Combine(logDir, "0.log")), $"missing {logDir}/0.log");
        }
        finally
        {
            await node.RemoveAllAsync("web.yaml");
        }
    }

    [Fact]
    public async Task InitContainersRunInOrderAndAnExecReadinessProbeGatesReady()
    {
        node.RequireReady();
        node.WriteManifest("init.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: init-order}
            spec:
              terminationGracePeriodSeconds: 2
              volumes: [{name: shared, emptyDir: {}}]
              initContainers:
              - name: first
                image: busybox:1.36
                command: ["sh", "-c", "sleep 1; echo first >> /shared/order"]
                volumeMounts: [{name: shared, mountPath: /shared}]
              - name: second
                image: busybox:1.36
                command: ["sh", "-c", "echo second >> /shared/order"]
                volumeMounts: [{name: shared, mountPath: /shared}]
              containers:
              - name: app
                image: busybox:1.36
                command: ["sh", "-c", "echo app >> /shared/order; trap 'exit 0' TERM; while true; do sleep 1; done"]
                volumeMounts: [{name: shared, mountPath: /shared}]
                readinessProbe:
                  exec: {command: ["test", "-f", "/shared/ready"]}
                  periodSeconds: 1
            """);
        try
        {
            var pod = await node.WaitForPodAsync("init-order", p => p.Status?.ContainerStatuses?.FirstOrDefault()?.State?.Running is not null, "app running", Start);
            Assert.Equal("True", pod.Status!.Conditions!.Single(c => c.Type == "Initialized").Status);
            Assert.All(pod.Status.InitContainerStatuses!, ics => Assert.Equal("Completed", ics.State!.Terminated!.Reason));
            // Not ready until the probe's file exists; stays so for several probe periods.
            await Task.Delay(3000);
            pod = (await node.GetPodAsync("init-order"))!;
            var ready = pod.Status!.Conditions!.Single(c => c.Type == "Ready");
            Assert.Equal("False", ready.Status);
            Assert.Equal("ContainersNotReady", ready.Reason);
            Assert.Equal("containers with unready status: [app]", ready.Message);
            Assert.False(pod.Status.ContainerStatuses![0].Ready);

            string volume = Path.Combine(node.RootDir, "pods", pod.Metadata.Uid!, "volumes", "kubernetes.io~empty-dir", "shared");
            Assert.Equal("first\nsecond\napp\n", await File.ReadAllTextAsync(Path.Combine(volume, "order")));
            await File.WriteAllTextAsync(Path.Combine(volume, "ready"), "");
            await node.WaitForPodAsync("init-order", p => p.Status?.Conditions?.Any(c => c is { Type: "Ready", Status: "True" }) == true, "Ready after the probe passes", Start);
        }
        finally
        {
            await node.RemoveAllAsync("init.yaml");
        }
    }

    [Fact]
    public async Task FailingLivenessProbeRestartsTheContainerWithLastState()
    {
        node.RequireReady();
        node.WriteManifest("live.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: liveness}
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: app
                image: busybox:1.36
                command: ["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; trap 'exit 0' TERM; while true; do sleep 1; done"]
                livenessProbe:
                  exec: {command: ["cat", "/tmp/healthy"]}
                  periodSeconds: 1
                  failureThreshold: 2
            """);
        try
        {
            var pod = await node.WaitForPodAsync("liveness", p => p.Status?.ContainerStatuses?.FirstOrDefault()?.RestartCount >= 1, "restartCount >= 1", TimeSpan.FromSeconds(60));
            var cs = pod.Status!.ContainerStatuses![0];
            var last = cs.LastState?.Terminated;
            Assert.NotNull(last);
            Assert.NotNull(last.FinishedAt);
            Assert.StartsWith("containerd://", last.ContainerID);
            Assert.NotEqual(last.ContainerID, cs.ContainerID);
            Assert.Contains("reason=Unhealthy", node.AgentLog);
            Assert.Contains("failed liveness probe, will be restarted", node.AgentLog);
        }
        finally
        {
            await node.RemoveAllAsync("live.yaml");
        }
    }

    [Fact]
    public async Task CrashingContainerBacksOffWithGrowingDelays()
    {
        node.RequireReady();
        node.WriteManifest("crash.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: crash}
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: app
                image: busybox:1.36
                command: ["sh", "-c", "exit 3"]
            """);
        try
        {
            // restart 1 is immediate, restart 2 after 10 s, restart 3 after 20 s (kubelet backoff).
            var starts = new List<(int Restarts, DateTimeOffset At)>();
            bool sawBackOff = false;
            await node.WaitForAsync("three restarts", async () =>
            {
                var p = await node.GetPodAsync("crash");
                var cs = p?.Status?.ContainerStatuses?.FirstOrDefault();
                if (cs is null) return false;
                if (starts.Count == 0 || starts[^1].Restarts != cs.RestartCount) starts.Add((cs.RestartCount, DateTimeOffset.UtcNow));
                if (cs.State?.Waiting is { Reason: "CrashLoopBackOff" } w)
                {
                    sawBackOff = true;
                    Assert.Matches(@"^back-off \d+s restarting failed container=app pod=crash-it-node_default\(", w.Message);
                    Assert.Equal(3, cs.LastState!.Terminated!.ExitCode);
                    Assert.Equal("Error", cs.LastState.Terminated.Reason);
                }
                return cs.RestartCount >= 3;
            }, TimeSpan.FromSeconds(90));
            Assert.True(sawBackOff, "never saw CrashLoopBackOff");
            var t1 = starts.First(s => s.Restarts == 1).At;
            var t2 = starts.First(s => s.Restarts == 2).At;
            var t3 = starts.First(s => s.Restarts == 3).At;
            Assert.InRange((t2 - t1).TotalSeconds, 8, 16);
            Assert.InRange((t3 - t2).TotalSeconds, 17, 27);
            Assert.True(t3 - t2 > t2 - t1, "delays must grow");
            var pod = (await node.GetPodAsync("crash"))!;
            Assert.Equal(PodPhase.Running, pod.Status!.Phase); // restartPolicy Always: restarting, not failed
            // Four instances ran; only the newest and the one before it (lastState) are kept.
            Assert.InRange((await node.RuntimeObjectsAsync(pod.Metadata.Uid!)).Containers, 1, 2);
        }
        finally
        {
            await node.RemoveAllAsync("crash.yaml");
        }
    }

    [Fact]
    public async Task AMissingImageWithPullPolicyNeverWaitsWithErrImageNeverPull()
    {
        node.RequireReady();
        node.WriteManifest("noimage.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: noimage}
            spec:
              containers: [{name: app, image: "example.invalid/nothing:1.0", imagePullPolicy: Never}]
            """);
        try
        {
            var pod = await node.WaitForPodAsync("noimage", p => p.Status?.ContainerStatuses?[0].State?.Waiting?.Reason == "ErrImageNeverPull", "ErrImageNeverPull", Start);
            Assert.Equal("Container image \"example.invalid/nothing:1.0\" is not present with pull policy of Never", pod.Status!.ContainerStatuses![0].State!.Waiting!.Message);
            Assert.Equal(PodPhase.Pending, pod.Status.Phase);
            Assert.Equal("ok", await node.Healthz());
        }
        finally
        {
            await node.RemoveAllAsync("noimage.yaml");
        }
    }

    [Fact]
    public async Task RestartPoliciesOnFailureAndNeverBehaveAsKubelet()
    {
        node.RequireReady();
        node.WriteManifest("policies.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: onfailure-ok}
            spec:
              restartPolicy: OnFailure
              containers: [{name: app, image: busybox:1.36, command: ["true"]}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: onfailure-bad}
            spec:
              restartPolicy: OnFailure
              containers: [{name: app, image: busybox:1.36, command: ["false"]}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: never-bad}
            spec:
              restartPolicy: Never
              containers: [{name: app, image: busybox:1.36, command: ["sh", "-c", "echo bye > /dev/termination-log; exit 2"]}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: never-ok}
            spec:
              restartPolicy: Never
              containers: [{name: app, image: busybox:1.36, command: ["true"]}]
            """);
        try
        {
            var ok = await node.WaitForPodAsync("onfailure-ok", p => p.Status?.Phase == PodPhase.Succeeded, "Succeeded", Start);
            Assert.Equal(0, ok.Status!.ContainerStatuses![0].RestartCount);
            Assert.Equal("Completed", ok.Status.ContainerStatuses[0].State!.Terminated!.Reason);
            Assert.Equal("PodCompleted", ok.Status.Conditions!.Single(c => c.Type == "Ready").Reason);

            var bad = await node.WaitForPodAsync("onfailure-bad", p => p.Status?.ContainerStatuses?.FirstOrDefault()?.RestartCount >= 1, "restarted", Start);
            Assert.NotEqual(PodPhase.Failed, bad.Status!.Phase);

            var never = await node.WaitForPodAsync("never-bad", p => p.Status?.Phase == PodPhase.Failed, "Failed", Start);
            var term = never.Status!.ContainerStatuses![0].State!.Terminated!;
            Assert.Equal(2, term.ExitCode);
            Assert.Equal("bye\n", term.Message);
            var neverOk = await node.WaitForPodAsync("never-ok", p => p.Status?.Phase == PodPhase.Succeeded, "Succeeded", Start);

            // Terminal pods are never started again, and their sandboxes are stopped.
            await Task.Delay(3000);
            Assert.Equal(0, (await node.GetPodAsync("never-bad"))!.Status!.ContainerStatuses![0].RestartCount);
            Assert.Equal(0, (await node.GetPodAsync("onfailure-ok"))!.Status!.ContainerStatuses![0].RestartCount);
            Assert.Equal("False", (await node.GetPodAsync("never-ok"))!.Status!.Conditions!.Single(c => c.Type == "PodReadyToStartContainers").Status);
        }
        finally
        {
            await node.RemoveAllAsync("policies.yaml");
        }
    }
}
