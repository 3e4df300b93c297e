using NodeAgent.Api.Core;
using Xunit;

namespace NodeAgent.IntegrationTests;

/// <summary>Acceptance for the rest of the pod spec: sidecars, volumes, security context, env, hooks, log rotation.</summary>
[Collection(NodeCollection.Name)]
public sealed class PodFeatureTests(NodeFixture node)
{
    private static readonly TimeSpan Start = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task SidecarStartsBeforeLaterInitContainersAndKeepsRunning()
    {
        node.RequireReady();
        node.WriteManifest("sidecar.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: sidecar}
            spec:
              terminationGracePeriodSeconds: 2
              volumes: [{name: shared, emptyDir: {medium: Memory, sizeLimit: 1Mi}}]
              initContainers:
              - name: proxy
                image: busybox:1.36
                restartPolicy: Always
                command: ["sh", "-c", "sleep 1; echo up > /shared/proxy; trap 'exit 0' TERM; while true; do sleep 1; done"]
                startupProbe: {exec: {command: ["test", "-f", "/shared/proxy"]}, periodSeconds: 1, failureThreshold: 30}
                volumeMounts: [{name: shared, mountPath: /shared}]
              - name: needs-proxy
                image: busybox:1.36
                command: ["test", "-f", "/shared/proxy"]
                volumeMounts: [{name: shared, mountPath: /shared}]
              containers:
              - name: app
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
            """);
        try
        {
            var pod = await node.WaitForPodAsync("sidecar", p => p.Status?.Conditions?.Any(c => c is { Type: "Ready", Status: "True" }) == true, "Ready", Start);
            var inits = pod.Status!.InitContainerStatuses!;
            Assert.NotNull(inits[0].State!.Running);
            Assert.True(inits[0].Started);
            Assert.True(inits[0].Ready);
            Assert.Equal(0, inits[1].State!.Terminated!.ExitCode); // it found the sidecar's file: ordering held
            Assert.Equal(0, inits[1].RestartCount);
            Assert.Equal(PodPhase.Running, pod.Status.Phase);
            // The memory-backed emptyDir is a tmpfs mount while the pod lives.
            string dir = Path.Combine(node.RootDir, "pods", pod.Metadata.Uid!, "volumes", "kubernetes.io~empty-dir", "shared");
            Assert.Contains(File.ReadAllLines("/proc/self/mounts"), l => l.Split(' ')[1] == dir && l.Split(' ')[2] == "tmpfs");
        }
        finally
        {
            await node.RemoveAllAsync("sidecar.yaml");
        }
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mounts"), l => l.Contains(Path.Combine(node.RootDir, "pods")));
    }

    [Fact]
    public async Task HostPathSubPathSecurityContextEnvAndHooksReachTheContainer()
    {
        node.RequireReady();
        string host = Path.Combine(node.Work, "hostpath-" + Guid.NewGuid().ToString("N")[..6]);
        node.WriteManifest("features.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: features, labels: {tier: test}}
            spec:
              terminationGracePeriodSeconds: 5
              securityContext: {runAsUser: 65534, runAsGroup: 65534}
              volumes: [{name: out, hostPath: {path: HOSTPATH, type: DirectoryOrCreate}}]
              containers:
              - name: app
                image: busybox:1.36
                workingDir: /out
                command: ["sh", "-c"]
                args:
                - |
                  id -u > /out/sub/uid
                  echo "$POD_NAME $POD_NAMESPACE $NODE $TIER $GREETING" > /out/sub/env
                  touch /rootfs-test 2>/dev/null && echo writable > /out/sub/rootfs || echo readonly > /out/sub/rootfs
                  pwd > /out/sub/pwd
                  trap 'exit 0' TERM; while true; do sleep 1; done
                env:
                - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
                - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
                - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
                - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
                - {name: GREETING, value: "hello-$(NODE)"}
                securityContext: {readOnlyRootFilesystem: true, runAsUser: 0, capabilities: {drop: [ALL], add: [CHOWN]}}
                volumeMounts:
                - {name: out, mountPath: /out}
                - {name: out, mountPath: /out/sub, subPath: sub}
                lifecycle:
                  postStart: {exec: {command: ["sh", "-c", "echo started > /out/sub/poststart"]}}
                  preStop: {exec: {command: ["sh", "-c", "echo stopping > /out/sub/prestop"]}}
            """.Replace("HOSTPATH", host));
        string sub = Path.Combine(host, "sub");
        try
        {
            await node.WaitForPodAsync("features", p => p.Status?.ContainerStatuses?[0].State?.Running is not null, "running", Start);
            await node.WaitForAsync("container wrote its facts", () => Task.FromResult(File.Exists(Path.Combine(sub, "pwd"))), Start);
            Assert.Equal("0", File.ReadAllText(Path.Combine(sub, "uid")).Trim()); // container runAsUser wins over the pod's
            Assert.Equal($"features-{NodeFixture.NodeName} default {NodeFixture.NodeName} test hello-{NodeFixture.NodeName}", File.ReadAllText(Path.Combine(sub, "env")).Trim());
            Assert.Equal("readonly", File.ReadAllText(Path.Combine(sub, "rootfs")).Trim());
            Assert.Equal("/out", File.ReadAllText(Path.Combine(sub, "pwd")).Trim());
            Assert.Equal("started", File.ReadAllText(Path.Combine(sub, "poststart")).Trim());
        }
        finally
        {
            await node.RemoveAllAsync("features.yaml");
        }
        Assert.Equal("stopping", File.ReadAllText(Path.Combine(sub, "prestop")).Trim());
        Assert.True(Directory.Exists(host), "hostPath content must survive the pod");
    }

    [Fact]
    public async Task ContainerLogsRotateBySizeAndKeepTheConfiguredNumberOfFiles()
    {
        node.RequireReady();
        node.WriteManifest("chatty.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: chatty}
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: app
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; usleep 20000; done"]
            """);
        try
        {
            var pod = await node.WaitForPodAsync("chatty", p => p.Status?.ContainerStatuses?[0].State?.Running is not null, "running", Start);
            string dir = Path.Combine(node.PodLogs, $"default_chatty-{NodeFixture.NodeName}_{pod.Metadata.Uid}", "app");
            // 8 KiB limit, checked every 10 s: within ~25 s at least two rotations have happened.
            await node.WaitForAsync("two rotations", () => Task.FromResult(node.AgentLog.Split('\n').Count(l => l.Contains("rotated container log " + dir)) >= 2), TimeSpan.FromSeconds(40));
            // Between a rename and the runtime's reopen the live file is briefly absent: judge settled states.
            List<string> files = [];
            await node.WaitForAsync("live log reopened, at most 3 files kept", () =>
            {
                files = Directory.GetFiles(dir).Select(f => Path.GetFileName(f)!).Order().ToList();
                return Task.FromResult(files.Contains("0.log") && files.Count is >= 2 and <= 3 &&
                    File.ReadLines(Path.Combine(dir, "0.log")).Any());
            }, TimeSpan.FromSeconds(10)).ContinueWith(t =>
            {
                if (t.IsFaulted) Assert.Fail($"log directory holds [{string.Join(", ", files)}]: {t.Exception!.InnerException!.Message}");
            });
            Assert.All(files.Where(f => f != "0.log"), f => Assert.Matches(@"^0\.log\.\d{8}-\d{6}$", f));
            Assert.Matches(@"^\d{4}-\d{2}-\d{2}T\S+ stdout F line \d+ x+$", File.ReadLines(Path.Combine(dir, files[^1])).First());
        }
        finally
        {
            await node.RemoveAllAsync("chatty.yaml");
        }
    }
}
