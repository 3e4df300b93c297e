using System.Diagnostics;
using System.Globalization;
using System.Text;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Registry;
using NodeAgent.ControlPlane.Storage;

/// <summary>
/// The pod create's own work in-process (issue 3, create): from the request body to the bytes
/// stored, validation included, on the bench's pod. Ours, <see cref="PodCreateEncoder"/>, next to
/// its peer, the general path through the JsonNode tree (what every other kind takes, and what a
/// pod took before). No etcd, no HTTP: the server-side cost per create that is the handler's.
/// Both include server-side field validation (<see cref="FieldSchema"/>), also shown alone.
/// Median of 7 batches of 20,000 after 20,000 warm-up runs; allocations per create on this thread.
/// </summary>
internal static class PrepareBench
{
    public static int Run(string podJson)
    {
        var pods = new Resources().Get("", "pods");
        var strategy = (PodStrategy)pods.Strategy;
        var body = Encoding.UTF8.GetBytes(podJson);
        const string uid = "3f0c2a1e-5b7d-4c8e-9a61-0d2f4b6c8e10", created = "2026-12-06T10:00:00Z";

        byte[] Tree()
        {
            var obj = NodeAgent.ControlPlane.Storage.Json.ParseObject(body);
            ApiServer.CheckTypeMeta(obj, pods, "Pod", "v1");
            if (FieldSchema.UnknownFields("Pod", "", obj).Count > 0) throw new InvalidOperationException("unknown fields");
            ApiServer.CheckNewObject(pods, "bench", obj);
            ApiServer.StampNewObject(pods, obj, uid, created);
            var errs = strategy.PrepareAndValidateCreate(obj, true, out var encoded);
            if (errs.Count > 0) throw new InvalidOperationException(errs[0].ToString());
            return encoded!;
        }
        byte[] Direct()
        {
            using var pod = PodCreateEncoder.TryParse(body, "bench") ?? throw new InvalidOperationException("the encoder declined the bench's pod");
            if (FieldSchema.UnknownFields("Pod", "", pod.Root).Count > 0) throw new InvalidOperationException("unknown fields");
            var bytes = pod.Encode("bench", pod.Name!, uid, created, ServiceAccountAdmission.NewVolumeName());
            var errs = strategy.ValidateEncoded(bytes, out string qos);
            if (errs.Count > 0) throw new InvalidOperationException(errs[0].ToString());
            return ObjectCodec.AppendMember(bytes, PodStrategy.PendingStatus(qos));
        }

        // The two give the same object (up to the access volume's random name).
        static string Normal(byte[] b) => System.Text.RegularExpressions.Regex.Replace(Encoding.UTF8.GetString(b), "kube-api-access-[a-z0-9]{5}", "kube-api-access-x");
        if (Normal(Tree()) != Normal(Direct())) throw new InvalidOperationException("the encoder and the tree path store different bytes");

        Console.WriteLine($"pod create preparation in-process ({body.Length}-byte pod body; JIT, {RuntimeInformationText()})");
        Console.WriteLine();
        Console.WriteLine("| path | per create (median of 7 x 20,000) | allocated per create |");
        Console.WriteLine("|---|---|---|");
        using var parsed = System.Text.Json.JsonDocument.Parse(body);
        byte[] FieldsOnly() => FieldSchema.UnknownFields("Pod", "", parsed.RootElement).Count == 0 ? body : throw new InvalidOperationException("unknown fields");
        foreach (var (name, run) in new (string, Func<byte[]>)[]
                 { ("peer: JsonNode tree (general path)", Tree), ("PodCreateEncoder", Direct), ("of which field validation (the parsed body)", FieldsOnly) })
        {
            var (us, bytes) = Measure(run);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {us:F1} µs | {bytes:N0} B |"));
        }
        return 0;
    }

    private static string RuntimeInformationText() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;

    private static (double Us, long Bytes) Measure(Func<byte[]> run)
    {
        const int batch = 20_000;
        for (int i = 0; i < batch; i++) run();
        var times = new List<double>();
        long allocated = 0;
        for (int b = 0; b < 7; b++)
        {
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < batch; i++) run();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds / batch);
            allocated = (GC.GetAllocatedBytesForCurrentThread() - a0) / batch;
        }
        times.Sort();
        return (times[3], allocated);
    }
}
