using NodeAgent.Os;
using Xunit;

namespace NodeAgent.Tests;

// The environment is process-wide: these tests must not run beside each other.
[Collection(nameof(SharedPoolLimitTests))]
public class SharedPoolLimitTests
{
    [Fact]
    public void TheLimitIsNotLeftInTheEnvironmentForChildProcesses()
    {
        Assert.Null(Environment.GetEnvironmentVariable(SharedPoolLimit.Variable));
        Assert.True(SharedPoolLimit.Apply());
        Assert.Null(Environment.GetEnvironmentVariable(SharedPoolLimit.Variable));
    }

    [Fact]
    public void AnOperatorsOwnSettingIsKept()
    {
        Environment.SetEnvironmentVariable(SharedPoolLimit.Variable, "16");
        try
        {
            Assert.False(SharedPoolLimit.Apply());
            Assert.Equal("16", Environment.GetEnvironmentVariable(SharedPoolLimit.Variable));
        }
        finally { Environment.SetEnvironmentVariable(SharedPoolLimit.Variable, null); }
    }
}
