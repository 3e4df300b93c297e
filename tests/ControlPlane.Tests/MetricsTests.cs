using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Http;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Metrics;
using NodeAgent.ControlPlane.Storage;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

public sealed class MetricsTests
{
    [Fact]
    public void AHistogramRendersCumulativeBucketsItsSumInTheExposedUnitAndItsCount()
    {
        var h = new Histogram(HistogramBuckets.Seconds(0.005, 0.1, 1));
        foreach (double s in (double[])[0.001, 0.005, 0.05, 0.5, 2])
            h.Observe((long)Math.Round(s * Stopwatch.Frequency));
        var sb = new StringBuilder();
        h.WriteTo(sb, "x_seconds", "verb=\"GET\"");
        Assert.Equal("""
            x_seconds_bucket{verb="GET",le="0.005"} 2
            x_seconds_bucket{verb="GET",le="0.1"} 3
            x_seconds_bucket{verb="GET",le="1"} 4
            x_seconds_bucket{verb="GET",le="+Inf"} 5
            x_seconds_sum{verb="GET"} 2.556
            x_seconds_count{verb="GET"} 5

            """.ReplaceLineEndings("\n"), sb.ToString());
    }

    [Fact]
    public void TheUpstreamRequestBucketsAreKept()
    {
        var sb = new StringBuilder();
        new Histogram(HistogramBuckets.RequestSeconds).WriteTo(sb, "d", "a=\"b\"");
        var le = sb.ToString().Split('\n').Where(l => l.StartsWith("d_bucket", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf("le=\"", StringComparison.Ordinal) + 4)..l.LastIndexOf('"')]);
        Assert.Equal(["0.005", "0.025", "0.05", "0.1", "0.2", "0.4", "0.6", "0.8", "1", "1.25", "1.5", "2", "3", "4", "5", "6", "8", "10", "15", "20", "30", "45", "60", "+Inf"], le);
    }

    [Fact]
    public void RequestsAreTimedUnderUpstreamLabelsAndMadeUpMethodsCountAsOther()
    {
        var m = new ApiMetrics();
        var create = new DefaultHttpContext();
        create.Request.Method = "POST";
        create.Request.QueryString = new QueryString("?dryRun=All");
        create.Response.StatusCode = 201;
        ApiMetrics.Describe(create, new ApiMetrics.Info("POST", "", "v1", "pods", "", "resource"));
        m.RecordRequest(create, Stopwatch.GetTimestamp());
        for (int i = 0; i < 3; i++)
        {
            var junk = new DefaultHttpContext();
            junk.Request.Method = $"MADEUP{i}";
            junk.Response.StatusCode = 405;
            m.RecordRequest(junk, Stopwatch.GetTimestamp());
        }
        string text = m.Exposition();
        Assert.Contains("apiserver_request_duration_seconds_count{component=\"apiserver\",dry_run=\"All\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 1\n", text);
        Assert.Contains("apiserver_request_total{code=\"201\",component=\"apiserver\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 1\n", text);
        // Three made-up methods are one series, not three.
        Assert.Contains("apiserver_request_total{code=\"405\",component=\"apiserver\",group=\"\",resource=\"\",scope=\"\",subresource=\"\",verb=\"other\",version=\"\"} 3\n", text);
        Assert.DoesNotContain("MADEUP", text);
    }

    [Fact]
    public void EtcdCallsAreCountedUnderTheResourceTheirKeyNames()
    {
        var m = new StorageMetrics([("", "pods"), ("apps", "deployments")]);
        long t = Stopwatch.GetTimestamp();
        m.Observe(StorageMetrics.Operation.Create, "/registry/pods/default/web", t, failed: false);
        m.Observe(StorageMetrics.Operation.Create, "/registry/pods/default/db", t, failed: true);
        m.Observe(StorageMetrics.Operation.List, "/registry/deployments/", t, failed: false);
        m.Observe(StorageMetrics.Operation.Get, "/registry/ranges/serviceips/10.96.0.1", t, failed: false);
        var sb = new StringBuilder();
        m.WriteTo(sb);
        string text = sb.ToString();
        Assert.Contains("etcd_requests_total{group=\"\",operation=\"create\",resource=\"pods\"} 2\n", text);
        Assert.Contains("etcd_request_errors_total{group=\"\",operation=\"create\",resource=\"pods\"} 1\n", text);
        Assert.Contains("etcd_requests_total{group=\"apps\",operation=\"list\",resource=\"deployments\"} 1\n", text);
        Assert.Contains("etcd_request_duration_seconds_count{group=\"\",operation=\"get\",resource=\"ranges\"} 1\n", text);
        // Only what happened is exposed: no series of an operation never made.
        Assert.DoesNotContain("operation=\"delete\"", text);
    }

    [Fact]
    public void TheProcessSeriesAreTheCollectorsNamesWithProcSelfsFigures()
    {
        var sb = new StringBuilder();
        NodeAgent.Api.Hosting.ProcessStats.WriteExposition(sb);
        string text = sb.ToString();
        double Value(string series)
        {
            var m = System.Text.RegularExpressions.Regex.Match(text, $@"(?m)^{System.Text.RegularExpressions.Regex.Escape(series)} (\S+)$");
            Assert.True(m.Success, $"{series} missing in:\n{text}");
            return double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        long vmRss = long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        Assert.InRange(Value("process_resident_memory_bytes"), vmRss * 0.5, vmRss * 2.0);
        Assert.True(Value("process_virtual_memory_bytes") >= Value("process_resident_memory_bytes"));
        long started = new DateTimeOffset(Process.GetCurrentProcess().StartTime.ToUniversalTime()).ToUnixTimeSeconds();
        Assert.InRange(Value("process_start_time_seconds"), started - 2, started + 2);
        Assert.True(Value("process_cpu_seconds_total") > 0);
        Assert.True(Value("process_max_fds") >= Value("process_open_fds"));
        Assert.True(Value("dotnet_gc_heap_total_allocated_bytes_total") > 0);
        Assert.True(Value("dotnet_gc_collections_total{gc_heap_generation=\"gen2\"}") >= 0);
        // Every series is announced once, with its type, before its samples.
        foreach (var name in new[] { "process_resident_memory_bytes", "process_cpu_seconds_total", "dotnet_gc_collections_total" })
        {
            int type = text.IndexOf($"# TYPE {name} ", StringComparison.Ordinal);
            Assert.True(type >= 0 && type == text.LastIndexOf($"# TYPE {name} ", StringComparison.Ordinal));
            Assert.True(type < text.IndexOf($"\n{name}", StringComparison.Ordinal));
        }
        Assert.Contains("# TYPE process_cpu_seconds_total counter\n", text);
    }
}
