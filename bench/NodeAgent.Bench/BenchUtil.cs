using System.Diagnostics;
using System.Globalization;

namespace NodeAgent.Bench;

/// <summary>Measuring and process helpers shared by the static-pod and the cluster benchmarks.</summary>
internal static class BenchUtil
{
    public static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        return 0;
    }

    /// <summary>Resident memory by kind (/proc/PID/status RssAnon, RssFile): what the process allocated vs mapped files (the binary, libraries).</summary>
    public static (long Anon, long File) RssParts(int pid)
    {
        long anon = 0, file = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("RssAnon:", StringComparison.Ordinal)) anon = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            else if (line.StartsWith("RssFile:", StringComparison.Ordinal)) file = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        return (anon, file);
    }

    /// <summary>CPU seconds (user + system) the process has used so far.</summary>
    public static double CpuSeconds(int pid)
    {
        var f = File.ReadAllText($"/proc/{pid}/stat");
        var rest = f[(f.LastIndexOf(')') + 2)..].Split(' ');
        return (double.Parse(rest[11], CultureInfo.InvariantCulture) + double.Parse(rest[12], CultureInfo.InvariantCulture)) / 100.0; // utime + stime, USER_HZ = 100
    }

    public static async Task<double> CpuPerMinuteAsync(int pid, int seconds)
    {
        double before = CpuSeconds(pid);
        await Task.Delay(TimeSpan.FromSeconds(seconds));
        return (CpuSeconds(pid) - before) * 60.0 / seconds;
    }

    public static async Task WaitAsync(Func<Task<bool>> cond, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout) { if (await cond()) return; await Task.Delay(200); }
        throw new TimeoutException("timed out");
    }

    public static double P(List<double> xs, int p)
    {
        var s = xs.Order().ToList();
        return s[Math.Clamp((int)Math.Ceiling(p / 100.0 * s.Count) - 1, 0, s.Count - 1)];
    }

    public static string Pct(double ours, double floor) => $"{Math.Round((ours - floor) / floor * 100):+0;-0;0}%"; // no "-+0" for a value that rounds to 0

    public static void Sh(string cmd, bool check = true)
    {
        var p = Process.Start(new ProcessStartInfo("bash", ["-c", cmd]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string err = p.StandardError.ReadToEnd(); p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (check && p.ExitCode != 0) throw new InvalidOperationException($"{cmd}: {err}");
    }

    public static string FindRepo()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NodeAgent.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("run from inside the repository");
    }
}
