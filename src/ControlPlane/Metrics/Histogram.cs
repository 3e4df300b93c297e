using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace NodeAgent.ControlPlane.Metrics;

/// <summary>
/// The bucket layout of a family of histograms: upper bounds in the raw integer unit observations
/// are made in (bytes, or <see cref="Stopwatch"/> ticks), the "le" label each bound is printed
/// with, and the factor that turns a raw sum into the exposed unit.
/// </summary>
public sealed class HistogramBuckets
{
    private HistogramBuckets(long[] raw, string[] le, double scale) => (Raw, Le, Scale) = (raw, le, scale);

    public long[] Raw { get; }
    public string[] Le { get; }
    public double Scale { get; }

    /// <summary>Bounds in seconds, observed as <see cref="Stopwatch.GetTimestamp"/> differences.</summary>
    public static HistogramBuckets Seconds(params double[] bounds) => new(
        [.. bounds.Select(b => (long)Math.Round(b * Stopwatch.Frequency))],
        [.. bounds.Select(b => b.ToString(CultureInfo.InvariantCulture))],
        1.0 / Stopwatch.Frequency);

    public static HistogramBuckets Units(params long[] bounds) =>
        new(bounds, [.. bounds.Select(b => b.ToString(CultureInfo.InvariantCulture))], 1.0);

    /// <summary>
    /// kube-apiserver's apiserver_request_duration_seconds and etcd_request_duration_seconds
    /// buckets (the same set for both upstream, so that the two can be read side by side).
    /// </summary>
    public static readonly HistogramBuckets RequestSeconds =
        Seconds(0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60);
}

/// <summary>
/// One Prometheus histogram series. Observing is lock-free and allocation-free: one bucket, the
/// count and the sum are incremented; the cumulative "le" counts are added up when rendered.
/// A scrape that races with observations may see a count a little ahead of its buckets, as with
/// any lock-free client.
/// </summary>
public sealed class Histogram(HistogramBuckets buckets)
{
    private readonly long[] _counts = new long[buckets.Raw.Length + 1]; // the last one is +Inf only
    private long _count, _sum;

    public long Count => Interlocked.Read(ref _count);

    public void Observe(long raw)
    {
        var bounds = buckets.Raw;
        int i = 0;
        while (i < bounds.Length && raw > bounds[i]) i++;
        Interlocked.Increment(ref _counts[i]);
        Interlocked.Add(ref _sum, raw);
        Interlocked.Increment(ref _count);
    }

    /// <summary>Appends NAME_bucket/_sum/_count lines; <paramref name="labels"/> is the series' label set without braces.</summary>
    public void WriteTo(StringBuilder sb, string name, string labels)
    {
        string sep = labels.Length > 0 ? "," : "";
        long cumulative = 0;
        for (int b = 0; b < buckets.Le.Length; b++)
        {
            cumulative += Interlocked.Read(ref _counts[b]);
            sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels}{sep}le=\"{buckets.Le[b]}\"}} {cumulative}\n");
        }
        long count = Interlocked.Read(ref _count);
        sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}\n");
        double sum = Interlocked.Read(ref _sum) * buckets.Scale;
        sb.Append(CultureInfo.InvariantCulture, $"{name}_sum{{{labels}}} {sum}\n");
        sb.Append(CultureInfo.InvariantCulture, $"{name}_count{{{labels}}} {count}\n");
    }
}
