using System.Globalization;

namespace NodeAgent.Api.Meta;

/// <summary>Go's time.Duration text ("1m30s", "500ms", "2h"), as Kubernetes config files use it.</summary>
public static class GoDuration
{
    public static TimeSpan Parse(string s) => TryParse(s, out var d) ? d : throw new FormatException($"invalid duration \"{s}\"");

    public static bool TryParse(string? s, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrEmpty(s)) return false;
        if (s == "0") return true;
        double totalMs = 0;
        int i = 0;
        while (i < s.Length)
        {
            int start = i;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
            if (start == i || !double.TryParse(s.AsSpan(start, i - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n)) return false;
            int unitStart = i;
            while (i < s.Length && !char.IsAsciiDigit(s[i]) && s[i] != '.') i++;
            double unitMs = s.AsSpan(unitStart, i - unitStart) switch
            {
                "ns" => 1e-6, "us" or "µs" => 1e-3, "ms" => 1, "s" => 1000, "m" => 60_000, "h" => 3_600_000, _ => -1,
            };
            if (unitMs < 0) return false;
            totalMs += n * unitMs;
        }
        value = TimeSpan.FromMilliseconds(totalMs);
        return true;
    }
}
