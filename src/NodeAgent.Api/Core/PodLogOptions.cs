using System.Globalization;
using System.Text;
using NodeAgent.Api.Meta;
using NodeAgent.Api.Validation;

namespace NodeAgent.Api.Core;

/// <summary>A query parameter that does not parse as its type (a 400, as upstream's parameter decoding makes it).</summary>
public sealed class QueryParameterException(string name, string value, string expected)
    : FormatException($"invalid value \"{value}\" for query parameter {name}: {expected}")
{
    public string Name { get; } = name;
}

/// <summary>Query parameters as apimachinery converts them into an options struct.</summary>
public static class QueryParameters
{
    /// <summary>A bool: absent (null), "0" and "false" (any case) are false; anything else, "" included, is true.</summary>
    public static bool Bool(string? v) => v is not null && v != "0" && !v.Equals("false", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// core/v1 PodLogOptions: the query of pods/log on the API server and of the kubelet's
/// /containerLogs, parsed and validated the same way on both (ValidatePodLogOptions upstream).
/// </summary>
public sealed record PodLogOptions
{
    public string? Container { get; init; }
    public bool Follow { get; init; }
    public bool Previous { get; init; }
    public bool Timestamps { get; init; }
    public long? SinceSeconds { get; init; }
    public DateTimeOffset? SinceTime { get; init; }
    public long? TailLines { get; init; }
    public long? LimitBytes { get; init; }

    /// <summary>
    /// Reads the options from a query (<paramref name="get"/> returns a parameter's first value, or
    /// null when absent). Booleans follow apimachinery's query conversion: absent, "0" and "false"
    /// (any case) are false, anything else is true. A number or time that does not parse throws
    /// <see cref="QueryParameterException"/>.
    /// </summary>
    public static PodLogOptions FromQuery(Func<string, string?> get) => new()
    {
        Container = get("container") is { Length: > 0 } c ? c : null,
        Follow = QueryParameters.Bool(get("follow")),
        Previous = QueryParameters.Bool(get("previous")),
        Timestamps = QueryParameters.Bool(get("timestamps")),
        SinceSeconds = Int64("sinceSeconds", get("sinceSeconds")),
        SinceTime = Time("sinceTime", get("sinceTime")),
        TailLines = Int64("tailLines", get("tailLines")),
        LimitBytes = Int64("limitBytes", get("limitBytes")),
    };

    /// <summary>What upstream refuses with 422 (kind PodLogOptions), with its field paths and messages.</summary>
    public List<FieldError> Validate()
    {
        var errs = new List<FieldError>();
        if (TailLines is < 0) errs.Add(FieldError.Invalid("tailLines", TailLines, "must be greater than or equal to 0"));
        if (LimitBytes is < 1) errs.Add(FieldError.Invalid("limitBytes", LimitBytes, "must be greater than 0"));
        if (SinceSeconds is not null && SinceTime is not null)
            errs.Add(FieldError.Forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"));
        else if (SinceSeconds is < 1)
            errs.Add(FieldError.Invalid("sinceSeconds", SinceSeconds, "must be greater than 0"));
        return errs;
    }

    /// <summary>The options as a query string for the kubelet ("" when all are unset), without the container.</summary>
    public string ToQuery()
    {
        var q = new StringBuilder();
        void Add(string name, string value) => q.Append(q.Length == 0 ? '?' : '&').Append(name).Append('=').Append(Uri.EscapeDataString(value));
        if (Follow) Add("follow", "true");
        if (Previous) Add("previous", "true");
        if (Timestamps) Add("timestamps", "true");
        if (TailLines is { } t) Add("tailLines", t.ToString(CultureInfo.InvariantCulture));
        if (LimitBytes is { } l) Add("limitBytes", l.ToString(CultureInfo.InvariantCulture));
        if (SinceSeconds is { } s) Add("sinceSeconds", s.ToString(CultureInfo.InvariantCulture));
        if (SinceTime is { } st) Add("sinceTime", ApiTime.Format(st));
        return q.ToString();
    }

    private static long? Int64(string name, string? v) =>
        string.IsNullOrEmpty(v) ? null
        : long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n
        : throw new QueryParameterException(name, v, "must be an integer");

    private static DateTimeOffset? Time(string name, string? v) =>
        string.IsNullOrEmpty(v) || v == "null" ? null
        : DateTimeOffset.TryParseExact(v, ["yyyy-MM-dd'T'HH:mm:ssK", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK"], CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out var t) ? t
        : throw new QueryParameterException(name, v, "must be an RFC 3339 time");
}
