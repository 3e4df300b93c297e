using Microsoft.Extensions.Logging.Abstractions;
using NodeAgent.Api.Core;
using NodeAgent.Api.Serialization;
using NodeAgent.Cm;
using NodeAgent.Config;
using NodeAgent.Cri;
using NodeAgent.Cri.V1;
using NodeAgent.Os;
using NodeAgent.Pods;
using NodeAgent.Pleg;
using NodeAgent.Probes;
using NodeAgent.Status;
using NodeAgent.Tests.Fakes;
using NodeAgent.Volumes;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>The pod worker's decisions against the fake runtime (the same paths run on containerd in the integration tests).</summary>
public sealed class PodWorkerTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("na-worker-").FullName;
    private readonly FakeRuntime _rt = new();
    private readonly PodStatusStore _store = new();
    private readonly CancellationTokenSource _shutdown = new();
    private readonly PodManager _manager;

    private sealed class NoMounts : IMounter
    {
        public void MountTmpfs(string target, long sizeBytes) { }
        public void Unmount(string target) { }
        public bool IsMountPoint(string path) => false;
    }

    private sealed class TreeFs(string root) : ICgroupFs
    {
        public bool Unified => true;
        public IReadOnlyList<string> Mounts => [root];
        public IReadOnlyList<string> AllMounts => [root];
    }

    public PodWorkerTests()
    {
        Directory.CreateDirectory(Path.Combine(_root, "cgroup"));
        var services = Services(_store);
        _manager = new PodManager(services, NullLogger<PodManager>.Instance);
        _manager.Start(_shutdown.Token);
    }

    /// <summary>Real agent services over the fake runtime, a temp directory and a cgroup tree.</summary>
    private PodServices Services(PodStatusStore store)
    {
        var layout = new CgroupLayout("cgroupfs");
        return new PodServices(_rt, _rt, new CriConfigBuilder(Path.Combine(_root, "logs"), layout),
            new PodCgroups(new TreeFs(Path.Combine(_root, "cgroup")), layout, NullLogger<PodCgroups>.Instance),
            new VolumeManager(Path.Combine(_root, "state"), new NoMounts(), NullLogger<VolumeManager>.Instance),
            new Prober(_rt), store, new LogEventRecorder(NullLogger<LogEventRecorder>.Instance),
            new NodeFacts("node", "192.0.2.1", 2000, 1L << 32), TimeProvider.System, NullLoggerFactory.Instance, TimeSpan.FromMinutes(1));
    }

    private static Pod Pod(string yaml)
    {
        var pod = Assert.Single(ManifestDecoder.DecodePods(yaml));
        StaticPods.ApplyDefaults(pod, "/m/test.yaml", "node", DateTimeOffset.UtcNow);
        return pod;
    }

    private async Task<Pod> WaitStatus(string uid, Func<Pod, bool> cond, string what)
    {
        for (int i = 0; i < 200; i++)
        {
            if (_store.Get(uid) is { } p && cond(p)) return p;
            await Task.Delay(25);
        }
        Assert.Fail($"timed out waiting for {what}; runtime:\n{_rt.Dump()}");
        return null!;
    }

    [Fact]
    public async Task OnFailureRestartsAFailedContainerThenCompletesAndTearsDown()
    {
        var pod = Pod("apiVersion: v1\nkind: Pod\nmetadata: {name: w}\nspec: {restartPolicy: OnFailure, containers: [{name: app, image: 'busybox:1.36'}]}\n");
        string uid = pod.Metadata.Uid!;
        _manager.SetDesired("file", [pod]);
        await WaitStatus(uid, p => p.Status?.ContainerStatuses?[0].State?.Running is not null, "running");
        var first = Assert.Single(_rt.Containers);
        Assert.Equal("app/0.log", first.Config.LogPath);

        _rt.Exit(first.Id, 1);
        _manager.Notify(uid); // what the PLEG does
        var restarted = await WaitStatus(uid, p => p.Status?.ContainerStatuses?[0].RestartCount == 1 && p.Status.ContainerStatuses[0].State?.Running is not null, "restart 1");
        Assert.Equal(1, restarted.Status!.ContainerStatuses![0].LastState!.Terminated!.ExitCode);
        var second = _rt.Containers[^1];
        Assert.Equal((uint)1, second.Config.Metadata.Attempt);
        Assert.Equal("app/1.log", second.Config.LogPath);
        Assert.Equal("1", second.Config.Annotations[Labels.ContainerRestartCount]);

        _rt.Exit(second.Id, 0);
        _manager.Notify(uid);
        var done = await WaitStatus(uid, p => p.Status?.Phase == PodPhase.Succeeded, "Succeeded");
        Assert.Equal(2, _rt.Containers.Count);
        Assert.Equal("Completed", done.Status!.ContainerStatuses![0].State!.Terminated!.Reason);
        Assert.Equal(PodSandboxState.SandboxNotready, (await _rt.ListPodSandboxAsync(null, default))[0].State);

        _manager.SetDesired("file", []);
        for (int i = 0; i < 200 && (_store.Get(uid) is not null || _rt.Containers.Count > 0); i++) await Task.Delay(25);
        Assert.Null(_store.Get(uid));
        Assert.Empty(_rt.Containers);
        Assert.Empty(await _rt.ListPodSandboxAsync(null, default));
        Assert.False(Directory.Exists(Path.Combine(_root, "state", "pods", uid)));
    }

    /// <summary>Which of the two calls the runtime saw first since <paramref name="from"/>: did the worker read before it created?</summary>
    private string FirstOf(int from, string a, string b)
    {
        string[] calls = [.. _rt.Calls];
        for (int i = from; i < calls.Length; i++) if (calls[i] == a || calls[i] == b) return calls[i];
        return "neither";
    }

    [Fact]
    public async Task ABrandNewPodSkipsItsFirstRuntimeReadOnlyWhenTheLastRelistCannotHaveMissedIt()
    {
        var pleg = new GenericPleg(_rt, _manager.Notify, TimeProvider.System, NullLogger<GenericPleg>.Instance);
        _manager.Listing = pleg;
        var pod = Pod("apiVersion: v1\nkind: Pod\nmetadata: {name: fresh}\nspec: {containers: [{name: app, image: 'busybox:1.36'}]}\n");
        string uid = pod.Metadata.Uid!;
        Func<Pod, bool> running = p => p.Status?.ContainerStatuses?[0].State?.Running is not null;

        // No relist has completed: nothing is known, the worker reads first.
        int mark = _rt.Calls.Count;
        _manager.SetDesired("file", [pod]);
        await WaitStatus(uid, running, "running");
        Assert.Equal("list_podsandbox", FirstOf(mark, "list_podsandbox", "run_podsandbox"));
        await TearDown(uid);

        // A relist after the teardown saw nothing of it: the new worker creates at once.
        await pleg.RelistOnceAsync(default);
        mark = _rt.Calls.Count;
        _manager.SetDesired("file", [pod]);
        await WaitStatus(uid, running, "running");
        Assert.Equal("run_podsandbox", FirstOf(mark, "list_podsandbox", "run_podsandbox"));

        // Torn down after the last relist listed: that relist proves nothing, so it reads first.
        await TearDown(uid);
        mark = _rt.Calls.Count;
        _manager.SetDesired("file", [pod]);
        await WaitStatus(uid, running, "running");
        Assert.Equal("list_podsandbox", FirstOf(mark, "list_podsandbox", "run_podsandbox"));
        await TearDown(uid);

        // Something of the pod on the runtime that no worker made (an earlier agent's sandbox): read first, and adopted.
        var left = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "fresh-node", Namespace = "default", Uid = uid } };
        left.Labels.Add(Labels.PodUid, uid);
        string leftId = await _rt.RunPodSandboxAsync(left, "", default);
        await pleg.RelistOnceAsync(default);
        mark = _rt.Calls.Count;
        _manager.SetDesired("file", [pod]);
        await WaitStatus(uid, running, "running");
        Assert.Equal("list_podsandbox", FirstOf(mark, "list_podsandbox", "run_podsandbox"));
        Assert.Equal(leftId, Assert.Single(_rt.Containers).SandboxId);
    }

    private async Task TearDown(string uid)
    {
        _manager.SetDesired("file", []);
        for (int i = 0; i < 200 && (_manager.KnownUids().Contains(uid) || _rt.Containers.Count > 0); i++) await Task.Delay(25);
        Assert.DoesNotContain(uid, _manager.KnownUids());
    }

    [Fact]
    public void AManifestCaughtMidWriteKeepsWhatItHeldUntilItHasSettled()
    {
        string dir = Path.Combine(_root, "manifests");
        Directory.CreateDirectory(dir);
        var files = new FileSource(dir, "node", _manager, TimeProvider.System, TimeSpan.FromMinutes(1), NullLogger<FileSource>.Instance);
        string path = Path.Combine(dir, "web.yaml");
        File.WriteAllText(path, """
            apiVersion: v1
            kind: Pod
            metadata: {name: web}
            spec: {containers: [{name: app, image: "busybox:1.36"}]}
            """);
        files.Scan(); // a fresh, complete file is taken at once
        Assert.Equal("web-node", Assert.Single(_manager.DesiredOf(StaticPods.Source)).Metadata.Name);
        Assert.False(files.Unsettled);

        File.WriteAllText(path, ""); // an editor truncated it and has not written yet
        files.Scan();
        Assert.Equal("web-node", Assert.Single(_manager.DesiredOf(StaticPods.Source)).Metadata.Name);
        Assert.True(files.Unsettled);
        File.WriteAllText(path, "apiVersion: v1\nkind: Pod\nmetadata: {name: web"); // half written
        files.Scan();
        Assert.Single(_manager.DesiredOf(StaticPods.Source));
        Assert.True(files.Unsettled);

        File.SetLastWriteTimeUtc(path, DateTime.UtcNow - TimeSpan.FromMinutes(1)); // still broken once it has settled: judged, and its pod goes
        files.Scan();
        Assert.Empty(_manager.DesiredOf(StaticPods.Source));
        Assert.False(files.Unsettled);
    }

    [Fact]
    public void AManifestThatIsGoneByTheTimeItIsReadTakesItsPodsAndNothingElse()
    {
        string dir = Path.Combine(_root, "gone");
        Directory.CreateDirectory(dir);
        var files = new FileSource(dir, "node", _manager, TimeProvider.System, TimeSpan.FromMinutes(1), NullLogger<FileSource>.Instance);
        string Manifest(string name) => $"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: app, image: 'busybox:1.36'}}]}}\n";
        File.WriteAllText(Path.Combine(dir, "a.yaml"), Manifest("a"));
        File.WriteAllText(Path.Combine(dir, "b.yaml"), Manifest("b"));
        files.Scan();
        Assert.Equal(["a-node", "b-node"], _manager.DesiredOf(StaticPods.Source).Select(p => p.Metadata.Name).Order());

        // The directory lists b.yaml, but there is nothing behind it any more (as for a file
        // removed between the listing and the read): b's pod goes, a's stays, the scan completes.
        File.Delete(Path.Combine(dir, "b.yaml"));
        File.CreateSymbolicLink(Path.Combine(dir, "b.yaml"), Path.Combine(dir, "nowhere"));
        File.CreateSymbolicLink(Path.Combine(dir, "c.yaml"), Path.Combine(dir, "nowhere-either"));
        files.Scan();
        Assert.Equal("a-node", Assert.Single(_manager.DesiredOf(StaticPods.Source)).Metadata.Name);
    }

    [Fact]
    public async Task OnePodChangesAtATimeAfterAFullSet()
    {
        var a = Pod("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: app, image: 'busybox:1.36'}]}\n");
        var b = Pod("apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {containers: [{name: app, image: 'busybox:1.36'}]}\n");
        Assert.Throws<InvalidOperationException>(() => _manager.UpdateDesired("api", b.Metadata.Uid!, b));
        _manager.SetDesired("api", [a]);
        await WaitStatus(a.Metadata.Uid!, p => p.Status?.ContainerStatuses?[0].State?.Running is not null, "a running");
        _manager.UpdateDesired("api", b.Metadata.Uid!, b);
        await WaitStatus(b.Metadata.Uid!, p => p.Status?.ContainerStatuses?[0].State?.Running is not null, "b running");
        Assert.Equal(2, _manager.DesiredOf("api").Count);
        _manager.UpdateDesired("api", a.Metadata.Uid!, null);
        for (int i = 0; i < 200 && _store.Get(a.Metadata.Uid!) is not null; i++) await Task.Delay(25);
        Assert.Null(_store.Get(a.Metadata.Uid!));
        Assert.NotNull(_store.Get(b.Metadata.Uid!));
        Assert.Equal([b.Metadata.Uid!], _manager.DesiredOf("api").Select(p => p.Metadata.Uid!));
    }

    [Fact]
    public async Task ARuntimeErrorOnCreateIsReportedAndRetriedWithoutDisturbingTheSandbox()
    {
        _rt.FailNext("create_container", CriErrorKind.Unknown);
        var pod = Pod("apiVersion: v1\nkind: Pod\nmetadata: {name: f}\nspec: {containers: [{name: app, image: 'busybox:1.36'}]}\n");
        string uid = pod.Metadata.Uid!;
        _manager.SetDesired("file", [pod]);
        var failed = await WaitStatus(uid, p => p.Status?.ContainerStatuses?[0].State?.Waiting?.Reason == "CreateContainerError", "CreateContainerError");
        Assert.Equal("injected failure", failed.Status!.ContainerStatuses![0].State!.Waiting!.Message);
        _manager.Notify(uid);
        await WaitStatus(uid, p => p.Status?.ContainerStatuses?[0].State?.Running is not null, "running after retry");
        Assert.Single(await _rt.ListPodSandboxAsync(null, default));
        Assert.Equal(1, _rt.Calls.Count(c => c == "run_podsandbox"));
    }

    [Fact]
    public async Task APodWhoseContainersRunIsAdoptedWithoutAnyCreateCall()
    {
        var pod = Pod("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: app, image: 'busybox:1.36'}]}\n");
        _manager.SetDesired("file", [pod]);
        await WaitStatus(pod.Metadata.Uid!, p => p.Status?.ContainerStatuses?[0].State?.Running is not null, "running");
        await _shutdown.CancelAsync(); // agent stops; pods stay
        await _manager.DrainAsync();
        Assert.Equal(NodeAgent.Cri.V1.ContainerState.ContainerRunning, Assert.Single(_rt.Containers).State);

        int creates = _rt.Calls.Count(c => c is "create_container" or "run_podsandbox");
        using var again = new CancellationTokenSource();
        var store2 = new PodStatusStore();
        var services = Services(store2);
        var manager2 = new PodManager(services, NullLogger<PodManager>.Instance);
        manager2.Start(again.Token);
        manager2.SetDesired("file", [Pod("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: app, image: 'busybox:1.36'}]}\n")]);
        for (int i = 0; i < 200 && store2.Get(pod.Metadata.Uid!) is null; i++) await Task.Delay(25);
        Assert.NotNull(store2.Get(pod.Metadata.Uid!)?.Status?.ContainerStatuses?[0].State?.Running);
        Assert.Equal(creates, _rt.Calls.Count(c => c is "create_container" or "run_podsandbox"));
        await again.CancelAsync();
    }

    public void Dispose()
    {
        _shutdown.Cancel();
        try { Directory.Delete(_root, true); } catch (IOException) { }
    }
}
