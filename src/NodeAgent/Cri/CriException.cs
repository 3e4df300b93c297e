using Grpc.Core;

namespace NodeAgent.Cri;

public enum CriErrorKind { Unknown, NotFound, AlreadyExists, Unavailable, DeadlineExceeded, Invalid, Unimplemented, Cancelled }

/// <summary>The few error kinds the agent acts on; gRPC status codes are mapped once, here.</summary>
public sealed class CriException(CriErrorKind kind, string operation, string message, Exception? inner = null)
    : Exception($"{operation}: {message}", inner)
{
    public CriErrorKind Kind { get; } = kind;
    public string Operation { get; } = operation;
    /// <summary>The runtime's own words, without our operation prefix (for pod status messages).</summary>
    public string RuntimeMessage { get; } = message;

    public static CriException From(RpcException e, string operation)
    {
        var kind = e.StatusCode switch
        {
            StatusCode.NotFound => CriErrorKind.NotFound,
            StatusCode.AlreadyExists => CriErrorKind.AlreadyExists,
            StatusCode.Unavailable => CriErrorKind.Unavailable,
            StatusCode.DeadlineExceeded => CriErrorKind.DeadlineExceeded,
            StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange => CriErrorKind.Invalid,
            StatusCode.Unimplemented => CriErrorKind.Unimplemented,
            StatusCode.Cancelled => CriErrorKind.Cancelled,
            _ => CriErrorKind.Unknown,
        };
        // containerd reports some "not found" conditions as Unknown with this text.
        if (kind == CriErrorKind.Unknown && e.Status.Detail.Contains("not found", StringComparison.OrdinalIgnoreCase)) kind = CriErrorKind.NotFound;
        return new CriException(kind, operation, string.IsNullOrEmpty(e.Status.Detail) ? e.StatusCode.ToString() : e.Status.Detail, e);
    }
}
