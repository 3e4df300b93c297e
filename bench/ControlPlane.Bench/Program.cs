// API server benchmark (issue 3, "Benchmark"). Run:
//   dotnet run -c Release --project bench/ControlPlane.Bench -- [--creates 1000] [--big 10000] [--watchers 100] [--writes 200] [--concurrency 16] [--warmup 500] [--rounds 5]
// It starts a private etcd and the published AOT control-plane on it, then measures, each next to
// its floor measured in the same run (the same operation issued straight to etcd over gRPC):
//   create  N pods (concurrency C), then N/5 one at a time: POST through the API  vs  etcd Txn create-if-absent of the bytes the server stores
//   get     N pods by name:          GET through the API   vs  etcd Range of one key
//   list    1,000 and 10,000 pods:   GET list (JSON)       vs  etcd Range of the prefix
//   watch   W watchers, M etcd puts: put -> event at every API watcher (one etcd watch fanned out)  vs  put -> event at W raw etcd watches
// The floor writes what the server writes for such a pod (its stored value, read back from etcd
// once: the defaulted spec, the service-account volume, status; ~2.1 KB), not the request body
// (~0.9 KB), so that both sides put the same value into etcd and read the same values back.
// With --scheduler [--pods 1000] [--nodes 100]: scheduling throughput and a Deployment of that many
// replicas bound end to end instead (see SchedulerBench.cs).
// With --prepare: the pod create's own work in-process, the encoder next to the JsonNode tree path
// (see PrepareBench.cs); nothing is started.
// With --compare PATH: a second control-plane binary on the same etcd takes its turn in every create
// round too (A and B alternate who goes first), for an A/B of two builds within one run. Each server
// also receives the other's writes through its etcd watch, so with --compare both API sides are
// slower against the floor than in a plain run: read B against A, not against the floor.
// With --controllers LIST: what the servers run beside the API (control-plane's --controllers;
// default "-scheduler,-replicaset,-deployment", which as upstream's syntax, without '*', enables
// none: the API server alone, as the floor is etcd alone).
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Google.Protobuf;
using NodeAgent.ControlPlane.Etcd;
using NodeAgent.ControlPlane.Etcd.V3;

if (args.Contains("--prepare")) return PrepareBench.Run(Pod("bench", "p1"));
bool schedulerMode = args.Contains("--scheduler");
int creates = Arg("--creates", 1000), big = Arg("--big", 10000), watchers = Arg("--watchers", 100), writes = Arg("--writes", 200), conc = Arg("--concurrency", 16);
string repo = FindRepo();
string bin = Environment.GetEnvironmentVariable("CONTROL_PLANE_BIN") ?? Path.Combine(repo, "artifacts/publish/control-plane/control-plane");
string? compareBin = ArgString("--compare");
string controllers = ArgString("--controllers") ?? "-scheduler,-replicaset,-deployment";
if (!File.Exists(bin)) { Console.Error.WriteLine($"publish the control plane first: {bin} missing"); return 2; }
string work = Path.Combine(Path.GetTempPath(), "cp-bench-" + Guid.NewGuid().ToString("N")[..6]);
Directory.CreateDirectory(work);
int etcdPort = FreePort(), apiPort = FreePort();
File.WriteAllText(Path.Combine(work, "tokens.csv"), "bench-token,bench,1,system:masters\n");
var procs = new List<Process>
{
    Start("etcd", "--name", "bench", "--data-dir", Path.Combine(work, "etcd"), "--listen-client-urls", $"http://127.0.0.1:{etcdPort}",
          "--advertise-client-urls", $"http://127.0.0.1:{etcdPort}", "--listen-peer-urls", $"http://127.0.0.1:{FreePort()}", "--quota-backend-bytes", "8589934592"),
};
try
{
    using var probe = new HttpClient();
    await Until(async () => (await probe.GetStringAsync($"http://127.0.0.1:{etcdPort}/health")).Contains("true"));
    procs.Add(Start(bin, "--data-dir", Path.Combine(work, "data"), "--etcd-servers", $"http://127.0.0.1:{etcdPort}", "--secure-port", apiPort.ToString(),
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--token-auth-file", Path.Combine(work, "tokens.csv"),
        // The API-server figures are measured without the scheduler (its pods have no nodes to go to).
        "--controllers", schedulerMode ? "scheduler,replicaset,deployment" : controllers));
    int apiPortB = FreePort();
    if (compareBin is not null)
        procs.Add(Start(compareBin, "--data-dir", Path.Combine(work, "data-b"), "--etcd-servers", $"http://127.0.0.1:{etcdPort}", "--secure-port", apiPortB.ToString(),
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--token-auth-file", Path.Combine(work, "tokens.csv"),
            "--controllers", controllers));
    var handler = new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true }, MaxConnectionsPerServer = 64, EnableMultipleHttp2Connections = true };
    using var api = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{apiPort}"), DefaultRequestVersion = HttpVersion.Version20, Timeout = TimeSpan.FromMinutes(5) };
    api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "bench-token");
    await Until(async () => (await api.GetStringAsync("/readyz")) == "ok");
    using var apiB = compareBin is null ? null : new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true }, MaxConnectionsPerServer = 64, EnableMultipleHttp2Connections = true })
        { BaseAddress = new Uri($"https://127.0.0.1:{apiPortB}"), DefaultRequestVersion = HttpVersion.Version20, Timeout = TimeSpan.FromMinutes(5) };
    apiB?.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "bench-token");
    if (apiB is not null) await Until(async () => (await apiB.GetStringAsync("/readyz")) == "ok");
    if (schedulerMode) return await SchedulerBench.RunAsync(api, Arg("--pods", 1000), Arg("--nodes", 100), conc, procs[1].Id);
    using var etcd = new EtcdClient(new Uri($"http://127.0.0.1:{etcdPort}"));
    foreach (var ns in (string[])["bench", "big", "warm"])
        (await api.PostAsync("/api/v1/namespaces", Json($"{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{ns}\"}}}}"))).EnsureSuccessStatusCode();

    // The value the server stores for the benchmark's pod, as the floor's template (see the top).
    (await api.PostAsync("/api/v1/namespaces/warm/pods", Json(Pod("warm", "template")))).EnsureSuccessStatusCode();
    string stored = (await etcd.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/registry/pods/warm/template") }, default)).Kvs[0].Value.ToStringUtf8();
    const string StoredName = "\"name\":\"template\",\"namespace\":\"warm\"";
    if (!stored.Contains(StoredName, StringComparison.Ordinal)) throw new InvalidOperationException("the stored pod does not start with its name and namespace: " + stored);
    // Spliced, not string-replaced: the floor's own preparation of a value stays as cheap as the API side's.
    byte[] storedHead = Encoding.UTF8.GetBytes(stored[..stored.IndexOf(StoredName, StringComparison.Ordinal)]);
    byte[] storedTail = Encoding.UTF8.GetBytes(stored[(stored.IndexOf(StoredName, StringComparison.Ordinal) + StoredName.Length)..]);
    byte[] Stored(string ns, string name) => [.. storedHead, .. Encoding.UTF8.GetBytes($"\"name\":\"{name}\",\"namespace\":\"{ns}\""), .. storedTail];
    Console.WriteLine($"pod: {Encoding.UTF8.GetByteCount(Pod("bench", "p-0"))} bytes as sent, {Stored("bench", "p-0").Length} bytes as stored (the floor writes these)");

    var rows = new List<string[]>();
    Console.WriteLine($"control-plane benchmark: {creates} creates/gets at concurrency {conc}, lists of 1,000 and {big:N0} pods, {watchers} watchers x {writes} writes");

    // Warm both paths the same way before anything is measured: the harness is JIT-compiled, and
    // its HTTP/2, TLS and gRPC code runs unoptimized until tiering has recompiled it. With a single
    // warm-up call, the API side (measured first) paid for that and the floor (second) did not.
    int warm = Arg("--warmup", 500);
    await Measure(warm, conc, i => ApiCreate(api, "warm", $"w-{i}"));
    if (apiB is not null) await Measure(warm, conc, i => ApiCreate(apiB, "warm", $"wb-{i}"));
    await Measure(warm, conc, async i => (await api.GetAsync($"/api/v1/namespaces/warm/pods/w-{i}")).EnsureSuccessStatusCode());
    await Measure(warm, conc, i => EtcdCreate(etcd, $"/floor/warm/w-{i}", Stored("warm", $"w-{i}")));
    await Measure(warm, conc, async i => await etcd.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8($"/floor/warm/w-{i}") }, default));

    // create: the API side and the floor take turns, a round of each at a time, so that a burst
    // from this VM's neighbours falls on both sides alike instead of on one whole phase; each
    // round's p50 ratio is kept, and the table shows their median beside the pooled ratio.
    int rounds = Math.Max(1, Arg("--rounds", 5));
    var cpu = new double[8]; // control-plane, etcd and client ms on the API side; etcd and client ms for the floor; the same three for --compare
    var switches = new double[5]; // context switches of control-plane, etcd and client on the API side; etcd and client for the floor
    var compare = new Side();
    var before16 = await ServerMeans(api);
    var (apiCreate, etcdCreate, createRatios) = await Interleaved(creates, conc, rounds,
        i => ApiCreate(api, "bench", $"p-{i}"), i => EtcdCreate(etcd, $"/floor/pods/bench/p-{i}", Stored("bench", $"p-{i}")), cpu,
        apiB is null ? null : i => ApiCreate(apiB, "bench", $"q-{i}"), compare, switches);
    if (apiB is not null)
        Console.WriteLine($"CPU per create through --compare: control-plane {cpu[5] / creates:0.00} ms, etcd {cpu[6] / creates:0.00} ms, client {cpu[7] / creates:0.00} ms");
    Console.WriteLine($"CPU per create through the API: control-plane {cpu[0] / creates:0.00} ms, etcd {cpu[1] / creates:0.00} ms, client {cpu[2] / creates:0.00} ms");
    Console.WriteLine($"CPU per create straight to etcd (the floor): etcd {cpu[3] / creates:0.00} ms, client {cpu[4] / creates:0.00} ms");
    Console.WriteLine($"context switches per create through the API: control-plane {switches[0] / creates:0.0}, etcd {switches[1] / creates:0.0}, client {switches[2] / creates:0.0}; "
        + $"straight to etcd: etcd {switches[3] / creates:0.0}, client {switches[4] / creates:0.0}");
    Console.WriteLine($"create c={conc}, p50 ratio per round, in order: {string.Join(" / ", createRatios.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture)))}");
    rows.Add(Row($"create {creates} pods (c={conc})", etcdCreate, apiCreate, paired: createRatios));
    PrintMeans($"c={conc}", apiCreate.Lat, before16, await ServerMeans(api), etcdCreate.Lat);
    // create, one at a time: the latency of the request path itself, not of three processes
    // sharing the machine's cores (at c=16 the ratio follows the total CPU per create).
    int serial = Math.Max(1, creates / 5);
    var before = await ServerMeans(api);
    var compareSerial = new Side();
    var (apiSerial, etcdSerial, serialRatios) = await Interleaved(serial, 1, rounds,
        i => ApiCreate(api, "warm", $"s-{i}"), i => EtcdCreate(etcd, $"/floor/warm/s-{i}", Stored("warm", $"s-{i}")), new double[8],
        apiB is null ? null : i => ApiCreate(apiB, "warm", $"sb-{i}"), compareSerial);
    var after = await ServerMeans(api);
    rows.Add(Row($"create {serial} pods (c=1)", etcdSerial, apiSerial, paired: serialRatios));
    if (apiB is not null)
    {
        rows.Add(Row($"create {creates} pods (c={conc}), --compare", etcdCreate, (compare.Lat, compare.Seconds), paired: compare.Ratios));
        rows.Add(Row($"create {serial} pods (c=1), --compare", etcdSerial, (compareSerial.Lat, compareSerial.Seconds), paired: compareSerial.Ratios));
    }
    Console.WriteLine($"control-plane RSS after the creates: {RssMiB(procs[1].Id):0.0} MiB");
    PrintMeans("c=1", apiSerial.Lat, before, after, etcdSerial.Lat);
    // get
    var apiGet = await Measure(creates, conc, async i => (await api.GetAsync($"/api/v1/namespaces/bench/pods/p-{i}")).EnsureSuccessStatusCode());
    var etcdGet = await Measure(creates, conc, async i => await etcd.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8($"/floor/pods/bench/p-{i}") }, default));
    rows.Add(Row($"get {creates} pods (c={conc})", etcdGet, apiGet));
    // list 1,000
    var apiList = await Measure(10, 1, async _ => await ReadAll(api, "/api/v1/namespaces/bench/pods"));
    var etcdList = await Measure(10, 1, async _ => Touch(await etcd.RangeAsync(Prefix("/floor/pods/bench/"), default)));
    rows.Add(Row($"list {creates} pods (x10)", etcdList, apiList));
    // list 10,000
    await Measure(big, conc, i => ApiCreate(api, "big", $"b-{i}"));
    await Measure(big, conc, i => EtcdCreate(etcd, $"/floor/pods/big/b-{i}", Stored("big", $"b-{i}")));
    var apiBig = await Measure(5, 1, async _ => await ReadAll(api, "/api/v1/namespaces/big/pods"));
    var etcdBig = await Measure(5, 1, async _ => Touch(await etcd.RangeAsync(Prefix("/floor/pods/big/"), default)));
    rows.Add(Row($"list {big:N0} pods (x5)", etcdBig, apiBig));
    // watch fan-out
    var (apiWatch, etcdWatch, watchAdded, benchPauses) = await WatchFanOut(api, etcd, watchers, writes, rounds);
    rows.Add(Row($"watch: {watchers} watchers, {writes} writes", etcdWatch, apiWatch, throughput: false));
    Console.WriteLine($"watch fan-out, p99 added (API minus floor): pooled {P(apiWatch.Item1, .99) - P(etcdWatch.Item1, .99):0.00} ms; "
        + $"within a round, median of {watchAdded.Count}: {P(watchAdded, .5):0.00} ms (rounds: {string.Join(" / ", watchAdded.Select(x => x.ToString("0.00", CultureInfo.InvariantCulture)))})");
    Console.WriteLine($"the bench's own GC pauses in each round, API half / floor half: {string.Join(" | ", benchPauses)} ms");

    Console.WriteLine();
    Console.WriteLine($"| operation | etcd floor p50 / p99 | control-plane p50 / p99 | floor ops/s | control-plane ops/s | ratio (p50) | ratio within a round (median of {rounds}) |");
    Console.WriteLine("|---|---|---|---|---|---|---|");
    foreach (var r in rows) Console.WriteLine("| " + string.Join(" | ", r) + " |");
    return 0;
}
finally
{
    foreach (var p in procs) { try { p.Kill(true); p.WaitForExit(); } catch (InvalidOperationException) { } }
    try { Directory.Delete(work, true); } catch (IOException) { }
}

// n operations on each side in `rounds` alternating rounds (the API side first in each), pooled per
// side, with each round's p50 ratio. cpu gets the CPU ms each process spent on each side's rounds.
// With viaB (--compare), the second server takes a turn in each round as well, before or after the
// first one in alternate rounds, and its figures go to b.
async Task<((List<double> Lat, double Seconds) Api, (List<double> Lat, double Seconds) Floor, List<double> Ratios)> Interleaved(
    int n, int concurrency, int rounds, Func<int, Task> viaApi, Func<int, Task> viaEtcd, double[] cpu, Func<int, Task>? viaB = null, Side? b = null, double[]? switches = null)
{
    var api = (Lat: new List<double>(), Seconds: 0.0);
    var floor = (Lat: new List<double>(), Seconds: 0.0);
    var ratios = new List<double>();
    double Self() => Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;
    for (int r = 0; r < rounds; r++)
    {
        int from = n * r / rounds, count = n * (r + 1) / rounds - from;
        (List<double> Lat, double Seconds) bRound = default;
        async Task RunB()
        {
            if (viaB is null || b is null) return;
            double s0 = CpuMs(procs[2].Id), e0 = CpuMs(procs[0].Id), c0 = Self();
            bRound = await Measure(count, concurrency, i => viaB(from + i));
            cpu[5] += CpuMs(procs[2].Id) - s0; cpu[6] += CpuMs(procs[0].Id) - e0; cpu[7] += Self() - c0;
            b.Lat.AddRange(bRound.Lat); b.Seconds += bRound.Seconds;
        }
        if (r % 2 == 1) await RunB();
        double server0 = CpuMs(procs[1].Id), etcd0 = CpuMs(procs[0].Id), self0 = Self();
        long sw0 = Switches(procs[1].Id), sw1 = Switches(procs[0].Id), sw2 = Switches(Environment.ProcessId);
        var a = await Measure(count, concurrency, i => viaApi(from + i));
        double server1 = CpuMs(procs[1].Id), etcd1 = CpuMs(procs[0].Id), self1 = Self();
        cpu[0] += server1 - server0; cpu[1] += etcd1 - etcd0; cpu[2] += self1 - self0;
        if (switches is not null)
        {
            switches[0] += Switches(procs[1].Id) - sw0; switches[1] += Switches(procs[0].Id) - sw1; switches[2] += Switches(Environment.ProcessId) - sw2;
        }
        if (r % 2 == 0) await RunB();
        etcd1 = CpuMs(procs[0].Id); self1 = Self();
        sw1 = Switches(procs[0].Id); sw2 = Switches(Environment.ProcessId);
        var f = await Measure(count, concurrency, i => viaEtcd(from + i));
        cpu[3] += CpuMs(procs[0].Id) - etcd1; cpu[4] += Self() - self1;
        if (switches is not null) { switches[3] += Switches(procs[0].Id) - sw1; switches[4] += Switches(Environment.ProcessId) - sw2; }
        api.Lat.AddRange(a.Lat); api.Seconds += a.Seconds;
        floor.Lat.AddRange(f.Lat); floor.Seconds += f.Seconds;
        ratios.Add(P(a.Lat, .5) / P(f.Lat, .5));
        if (b is not null && bRound.Lat is not null) b.Ratios.Add(P(bRound.Lat, .5) / P(f.Lat, .5));
    }
    return (api, floor, ratios);
}

static double RssMiB(int pid)
{
    foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    return double.NaN;
}

// Context switches (voluntary and not) summed over the process's threads.
static long Switches(int pid)
{
    long n = 0;
    foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
    {
        try
        {
            foreach (var line in File.ReadLines(Path.Combine(task, "status")))
                if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal) || line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                    n += long.Parse(line.AsSpan(line.IndexOf(':') + 1).Trim(), CultureInfo.InvariantCulture);
        }
        catch (IOException) { } // the thread ended
    }
    return n;
}

static double CpuMs(int pid)
{
    var f = File.ReadAllText($"/proc/{pid}/stat");
    var rest = f[(f.LastIndexOf(')') + 2)..].Split(' ');
    return (double.Parse(rest[11], CultureInfo.InvariantCulture) + double.Parse(rest[12], CultureInfo.InvariantCulture)) * 10; // clock ticks of 10 ms
}

// Where a create's time goes, from the server's own apiserver_request_duration_seconds and
// etcd_request_duration_seconds (means over the phase) next to what the client saw.
static void PrintMeans(string label, List<double> client, ((double Sum, long Count) Requests, (double Sum, long Count) Etcd)? before,
    ((double Sum, long Count) Requests, (double Sum, long Count) Etcd)? after, List<double> floor)
{
    if (after is not { } a || before is not { } b || a.Requests.Count <= b.Requests.Count) return;
    static double Mean((double Sum, long Count) x, (double Sum, long Count) y) => (x.Sum - y.Sum) / (x.Count - y.Count) * 1000;
    Console.WriteLine($"{label} create, means: client {client.Average():0.00} ms; in the server {Mean(a.Requests, b.Requests):0.00} ms, "
        + $"of which its etcd create {Mean(a.Etcd, b.Etcd):0.00} ms; the floor's etcd create {floor.Average():0.00} ms");
}

// The sums and counts of the server's POST-pods and etcd-create-pods latency histograms, or null
// when the server does not expose them.
static async Task<((double Sum, long Count) Requests, (double Sum, long Count) Etcd)?> ServerMeans(HttpClient api)
{
    string text = await api.GetStringAsync("/metrics");
    (double, long)? Find(string name, string labels)
    {
        double? sum = null; long? count = null;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith($"{name}_sum{{{labels}}} ", StringComparison.Ordinal)) sum = double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            if (line.StartsWith($"{name}_count{{{labels}}} ", StringComparison.Ordinal)) count = long.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        return sum is { } s && count is { } c ? (s, c) : null;
    }
    var requests = Find("apiserver_request_duration_seconds", "component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"");
    var etcdCreate = Find("etcd_request_duration_seconds", "group=\"\",operation=\"create\",resource=\"pods\"");
    return requests is { } r && etcdCreate is { } e ? (r, e) : null;
}

static async Task ApiCreate(HttpClient api, string ns, string name)
{
    using var r = await api.PostAsync($"/api/v1/namespaces/{ns}/pods", Json(Pod(ns, name)));
    if (r.StatusCode != HttpStatusCode.Created) throw new InvalidOperationException($"create {name}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
}

static async Task EtcdCreate(EtcdClient etcd, string key, byte[] value)
{
    var txn = new TxnRequest();
    txn.Compare.Add(new Compare { Key = ByteString.CopyFromUtf8(key), Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 });
    txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFrom(value) } });
    if (!(await etcd.TxnAsync(txn, default)).Succeeded) throw new InvalidOperationException("exists: " + key);
}

static RangeRequest Prefix(string p) => new() { Key = ByteString.CopyFromUtf8(p), RangeEnd = EtcdClient.PrefixEnd(Encoding.UTF8.GetBytes(p)) };

static int Touch(RangeResponse r)
{
    // The floor hands the caller the bytes too, as the API server must.
    int n = 0;
    foreach (var kv in r.Kvs) n += kv.Value.ToByteArray().Length;
    return n;
}

static async Task<long> ReadAll(HttpClient api, string path)
{
    using var r = await api.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
    r.EnsureSuccessStatusCode();
    await using var s = await r.Content.ReadAsStreamAsync();
    var buf = new byte[65536];
    long n = 0;
    int k;
    while ((k = await s.ReadAsync(buf)) > 0) n += k;
    return n;
}

static async Task<(List<double> Lat, double Seconds)> Measure(int n, int concurrency, Func<int, Task> op)
{
    var lat = new double[n];
    int next = -1;
    var sw = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
    {
        int i;
        while ((i = Interlocked.Increment(ref next)) < n)
        {
            long t0 = Stopwatch.GetTimestamp();
            await op(i);
            lat[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
    }));
    return (lat.ToList(), sw.Elapsed.TotalSeconds);
}

// W watchers through the API vs W raw etcd watches on the floor prefix; each write is timed from
// just before it is sent to the moment each watcher has decoded its event. Both sets of watchers
// are open throughout, and the writes alternate between the two sides in `rounds` rounds (as the
// creates do), so that a burst from this VM's neighbours falls on both sides alike. ratios gets,
// per round, the API side's p99 minus the floor's (ms).
static async Task<((List<double>, double), (List<double>, double), List<double>, List<string>)> WatchFanOut(HttpClient api, EtcdClient etcd, int watchers, int writes, int rounds)
{
    (await api.PostAsync("/api/v1/namespaces/bench/configmaps", Json("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"w\"},\"data\":{\"i\":\"-1\"}}"))).EnsureSuccessStatusCode();
    await EtcdCreate(etcd, "/floor/configmaps/w", "{\"i\":-1}"u8.ToArray());
    var sentApi = new long[writes];
    var sentFloor = new long[writes];
    // Latency per write index, one list per side: the round of a write is known from its index.
    var apiLat = new List<(int I, double Ms)>();
    var etcdLat = new List<(int I, double Ms)>();
    using var cts = new CancellationTokenSource();

    // API watchers. Both sides are fed by the same kind of write, an etcd put (here of the object
    // as the API server stored it), so the difference is the fan-out alone.
    var stored = (await etcd.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("/registry/configmaps/bench/w") }, default)).Kvs[0].Value.ToStringUtf8();
    var rv = System.Text.Json.Nodes.JsonNode.Parse(await api.GetStringAsync("/api/v1/namespaces/bench/configmaps"))!["metadata"]!["resourceVersion"]!.GetValue<string>();
    int apiReady = 0;
    var apiTasks = Enumerable.Range(0, watchers).Select(_ => Task.Run(async () =>
    {
        using var r = await api.GetAsync($"/api/v1/namespaces/bench/configmaps?watch=true&resourceVersion={rv}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        using var reader = new StreamReader(await r.Content.ReadAsStreamAsync(cts.Token));
        Interlocked.Increment(ref apiReady);
        int got = 0;
        while (got < writes && await reader.ReadLineAsync(cts.Token) is { } line)
        {
            int at = line.IndexOf("\"i\":\"", StringComparison.Ordinal);
            if (at < 0) continue;
            int i = int.Parse(line.AsSpan(at + 5, line.IndexOf('"', at + 5) - at - 5), CultureInfo.InvariantCulture);
            if (i < 0) continue;
            double ms = Stopwatch.GetElapsedTime(Volatile.Read(ref sentApi[i])).TotalMilliseconds;
            lock (apiLat) apiLat.Add((i, ms));
            got++;
        }
    })).ToList();
    // etcd watchers (one stream each, as W independent clients would have)
    int etcdReady = 0;
    var etcdTasks = Enumerable.Range(0, watchers).Select(_ => Task.Run(async () =>
    {
        using var call = etcd.OpenWatch(cts.Token);
        await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = ByteString.CopyFromUtf8("/floor/configmaps/w") } });
        int got = 0;
        while (got < writes && await call.ResponseStream.MoveNext(cts.Token))
        {
            var resp = call.ResponseStream.Current;
            if (resp.Created) { Interlocked.Increment(ref etcdReady); continue; }
            foreach (var ev in resp.Events)
            {
                string s = ev.Kv.Value.ToStringUtf8();
                int i = int.Parse(s.AsSpan(5, s.Length - 6), CultureInfo.InvariantCulture);
                if (i < 0) continue;
                double ms = Stopwatch.GetElapsedTime(Volatile.Read(ref sentFloor[i])).TotalMilliseconds;
                lock (etcdLat) etcdLat.Add((i, ms));
                got++;
            }
        }
    })).ToList();
    while (Volatile.Read(ref apiReady) < watchers || Volatile.Read(ref etcdReady) < watchers) await Task.Delay(10);
    await Task.Delay(200);

    double apiSeconds = 0, floorSeconds = 0;
    var roundOf = new int[writes];
    // This process's own GC pauses in each half-round: a pause here delays the watchers of both
    // sides, so a stall in one round's figure can be told apart from the server's.
    var benchPauses = new List<string>();
    // And keep this process from collecting while the rounds run, so that neither side's figure
    // carries the bench's own pauses (they were 11-26 ms in single rounds). The budget covers the
    // phase's allocations; if the runtime refuses it, the rounds run as before and the pauses show.
    bool noGc = false;
    try { noGc = GC.TryStartNoGCRegion(192L << 20); } catch (ArgumentOutOfRangeException) { }
    for (int r = 0; r < rounds; r++)
    {
        int from = writes * r / rounds, to = writes * (r + 1) / rounds;
        for (int i = from; i < to; i++) roundOf[i] = r;
        var sw = Stopwatch.StartNew();
        var pause0 = GC.GetTotalPauseDuration();
        for (int i = from; i < to; i++)
        {
            var value = ByteString.CopyFromUtf8(stored.Replace("\"i\":\"-1\"", $"\"i\":\"{i}\"", StringComparison.Ordinal));
            Volatile.Write(ref sentApi[i], Stopwatch.GetTimestamp());
            await etcd.TxnAsync(new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8("/registry/configmaps/bench/w"), Value = value } } } }, default);
            await Task.Delay(5);
        }
        apiSeconds += sw.Elapsed.TotalSeconds;
        var pause1 = GC.GetTotalPauseDuration();
        sw.Restart();
        for (int i = from; i < to; i++)
        {
            Volatile.Write(ref sentFloor[i], Stopwatch.GetTimestamp());
            await etcd.TxnAsync(new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8("/floor/configmaps/w"), Value = ByteString.CopyFromUtf8($"{{\"i\":{i}}}") } } } }, default);
            await Task.Delay(5);
        }
        floorSeconds += sw.Elapsed.TotalSeconds;
        var pause2 = GC.GetTotalPauseDuration();
        benchPauses.Add(string.Create(CultureInfo.InvariantCulture, $"{(pause1 - pause0).TotalMilliseconds:0.0}/{(pause2 - pause1).TotalMilliseconds:0.0}"));
    }
    await Task.WhenAll(apiTasks.Concat(etcdTasks)).WaitAsync(TimeSpan.FromMinutes(2));
    if (noGc && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
    benchPauses.Add(noGc ? "(no-GC region held)" : "(no-GC region refused)");
    var added = new List<double>();
    for (int r = 0; r < rounds; r++)
    {
        var a = apiLat.Where(x => roundOf[x.I] == r).Select(x => x.Ms).ToList();
        var f = etcdLat.Where(x => roundOf[x.I] == r).Select(x => x.Ms).ToList();
        if (a.Count > 0 && f.Count > 0) added.Add(P(a, .99) - P(f, .99));
    }
    return ((apiLat.Select(x => x.Ms).ToList(), apiSeconds), (etcdLat.Select(x => x.Ms).ToList(), floorSeconds), added, benchPauses);
}

static double P(List<double> l, double q) { var s = l.Order().ToList(); return s[Math.Min(s.Count - 1, (int)Math.Ceiling(q * s.Count) - 1)]; }

static string[] Row(string what, (List<double> Lat, double Seconds) floor, (List<double> Lat, double Seconds) ours, bool throughput = true, List<double>? paired = null)
{
    string F(double v) => v.ToString(v < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture);
    return [what, $"{F(P(floor.Lat, .5))} / {F(P(floor.Lat, .99))} ms", $"{F(P(ours.Lat, .5))} / {F(P(ours.Lat, .99))} ms",
            throughput ? F(floor.Lat.Count / floor.Seconds) : "-", throughput ? F(ours.Lat.Count / ours.Seconds) : "-",
            (P(ours.Lat, .5) / P(floor.Lat, .5)).ToString("0.00", CultureInfo.InvariantCulture) + "x",
            paired is null ? "-" : P(paired, .5).ToString("0.00", CultureInfo.InvariantCulture) + "x"];
}

static string Pod(string ns, string name) => """
    {"apiVersion":"v1","kind":"Pod","metadata":{"name":"__NAME__","namespace":"__NS__","labels":{"app":"bench","tier":"web","pod-template-hash":"5d4f8c7b9"},
     "annotations":{"example.com/owner":"benchmark"}},
     "spec":{"containers":[{"name":"app","image":"registry.example.com/team/app:1.2.3","command":["/bin/app","--port=8080","--verbose"],
       "ports":[{"name":"http","containerPort":8080}],"env":[{"name":"MODE","value":"bench"},{"name":"POD","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
       "resources":{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"cpu":"500m","memory":"128Mi"}},
       "readinessProbe":{"httpGet":{"path":"/healthz","port":8080},"periodSeconds":5},
       "volumeMounts":[{"name":"data","mountPath":"/data"}]}],
      "volumes":[{"name":"data","emptyDir":{}}],"nodeSelector":{"kubernetes.io/os":"linux"}}}
    """.Replace("__NAME__", name, StringComparison.Ordinal).Replace("__NS__", ns, StringComparison.Ordinal);

static StringContent Json(string s) => new(s, Encoding.UTF8, "application/json");

static async Task Until(Func<Task<bool>> check)
{
    var sw = Stopwatch.StartNew();
    while (sw.Elapsed < TimeSpan.FromSeconds(30))
    {
        try { if (await check()) return; } catch (HttpRequestException) { }
        await Task.Delay(50);
    }
    throw new TimeoutException("not ready in 30 s");
}

static Process Start(string file, params string[] args)
{
    var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in args) psi.ArgumentList.Add(a);
    var p = Process.Start(psi)!;
    p.OutputDataReceived += (_, _) => { };
    p.ErrorDataReceived += (_, _) => { };
    p.BeginOutputReadLine();
    p.BeginErrorReadLine();
    return p;
}

static int FreePort()
{
    using var l = new TcpListener(IPAddress.Loopback, 0);
    l.Start();
    return ((IPEndPoint)l.LocalEndpoint).Port;
}

static string? ArgString(string name)
{
    var a = Environment.GetCommandLineArgs();
    int i = Array.IndexOf(a, name);
    return i >= 0 && i + 1 < a.Length ? a[i + 1] : null;
}

static int Arg(string name, int dflt)
{
    var a = Environment.GetCommandLineArgs();
    int i = Array.IndexOf(a, name);
    return i >= 0 && i + 1 < a.Length ? int.Parse(a[i + 1], CultureInfo.InvariantCulture) : dflt;
}

static string FindRepo()
{
    var d = new DirectoryInfo(AppContext.BaseDirectory);
    while (d is not null && !File.Exists(Path.Combine(d.FullName, "NodeAgent.sln"))) d = d.Parent;
    return d?.FullName ?? throw new InvalidOperationException("NodeAgent.sln not found");
}
sealed class Side
{
    public List<double> Lat { get; } = [];
    public double Seconds { get; set; }
    public List<double> Ratios { get; } = [];
}
