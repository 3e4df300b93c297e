using System.Globalization;

namespace NodeAgent.Api.Meta;

/// <summary>The API's two time formats, written once: metav1.Time and metav1.MicroTime.</summary>
public static class ApiTime
{
    /// <summary>metav1.Time: RFC 3339, UTC, whole seconds ("2006-01-02T15:04:05Z").</summary>
    public static string Format(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>metav1.MicroTime: RFC 3339, UTC, microseconds (Lease renewTime, Event eventTime).</summary>
    public static string FormatMicro(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    /// <summary>Either format (or any RFC 3339 time) as UTC; null for empty or malformed text.</summary>
    public static DateTimeOffset? TryParse(string? text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t) ? t : null;
}
