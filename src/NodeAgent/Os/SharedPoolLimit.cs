using System.Buffers;
using System.Globalization;

namespace NodeAgent.Os;

/// <summary>
/// Caps how many arrays of each size the process-wide <see cref="ArrayPool{T}.Shared"/> keeps per
/// core: 4 instead of the runtime's 32. A burst of 50 pod starts runs ~50 CRI calls at once, whose
/// HTTP/2 and gRPC buffers go back to the pool afterwards; the pool lets go of them only on a full
/// collection under memory pressure, so a node agent that is otherwise quiet kept ~4 MiB of them
/// for good (measured in docs/benchmarks.md). Four per size per core still serve the steady state
/// (a relist, a status update, a probe at a time). The runtime reads the limit from the
/// environment once, when the pool first keeps an array; <see cref="Apply"/> sets it for that
/// moment, makes it happen, and removes the variable again so the processes the agent starts do
/// not inherit it. An operator who sets the variable himself keeps his value.
/// </summary>
public static class SharedPoolLimit
{
    public const string Variable = "DOTNET_SYSTEM_BUFFERS_SHAREDARRAYPOOL_MAXARRAYSPERPARTITION";
    public const int ArraysPerCore = 4;

    /// <summary>Call first thing in Main, before anything uses the pool. False when the operator's own setting applies.</summary>
    public static bool Apply()
    {
        if (Environment.GetEnvironmentVariable(Variable) is not null) return false;
        Environment.SetEnvironmentVariable(Variable, ArraysPerCore.ToString(CultureInfo.InvariantCulture));
        // The first array returned goes to the thread's own slot; the second makes the pool set up
        // its per-core storage, which is when it reads the limit.
        var pool = ArrayPool<byte>.Shared;
        byte[] a = pool.Rent(16), b = pool.Rent(16);
        pool.Return(a);
        pool.Return(b);
        Environment.SetEnvironmentVariable(Variable, null);
        return true;
    }
}
